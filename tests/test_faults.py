"""Faults in the middle of real runs, launched through the webserver's GraphQL API as the UI does,
on an instance whose storage is a real PostgreSQL server (a team's instance, `cloud_assets.instance`):

- two runs of every asset but the fold audit's (`classifier_job`) at once both succeed and leave consistent values and a valid site;
- SIGKILL to the step process in the middle of `image_cache`, `model_pass` (val_predictions and
  saliency_maps) or `report_site` leaves the previous values and site in place and loadable, and
  the killed model run, re-executed from its failure (the UI's "Re-execute from failure"), computes
  the killed step again and succeeds; the next run succeeds and sweeps the dead processes' staging
  folders;
- terminating a run (the UI's Terminate button) stops `model_pass` within a few batches and leaves
  the previous values in place.

The dataset is the small synthetic one, its images hard-linked many times over, so that the
loops over images last long enough to be interrupted.
"""
import csv
import os
import signal
import sys
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from tests.helpers import dagster_home, fold_audit, free_port, graphql, open_instance, run_env
from tests.test_ui_end_to_end import _wait, webserver

pytestmark = pytest.mark.e2e  # the end-to-end tier (make test-fast leaves it out)

TRAIN, TEST = 1000, 40          # 200 validation images
BATCH = 4                       # saliency batches of 4 images: about 0.1 s each here
DONE = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
REEXECUTE = """mutation($parent: String!) { launchRunReexecution(reexecutionParams: {parentRunId: $parent,
  strategy: FROM_FAILURE}) { __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""


def _replicate(small: Path, out: Path) -> Path:
    """`small`'s images hard-linked `TRAIN` + `TEST` times under new names, with their labels."""
    (out / "train_images").mkdir(parents=True)
    (out / "test_images").mkdir()
    with open(small / "train.csv") as f:
        rows = list(csv.reader(f))[1:]
    by_image = {}
    for label, enc in rows:
        image, _, cls = label.rpartition("_")
        by_image.setdefault(image, []).append((cls, enc))
    sources = sorted(by_image)
    with open(out / "train.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Image_Label", "EncodedPixels"])
        for i in range(TRAIN):
            src = sources[i % len(sources)]
            name = f"r{i:05d}.jpg"
            os.link(small / "train_images" / src, out / "train_images" / name)
            w.writerows([f"{name}_{cls}", enc] for cls, enc in by_image[src])
    tests = sorted((small / "test_images").iterdir())
    for i in range(TEST):
        os.link(tests[i % len(tests)], out / "test_images" / f"t{i:05d}.jpg")
    return out


@pytest.fixture(scope="module")
def server(small_dataset, tmp_path_factory, postgres_server):
    from dagster_graphql import DagsterGraphQLClient

    from cloud_assets.synth import classifier

    tmp = tmp_path_factory.mktemp("faults")
    data = _replicate(small_dataset, tmp / "data")
    model = tmp / "model.keras"
    classifier.build().save(model)
    env = run_env(tmp / "home", data, model, batch_size=BATCH, postgres_url=postgres_server())
    home = dagster_home(tmp, "run_coordinator:\n  module: dagster._core.run_coordinator\n"
                             "  class: DefaultRunCoordinator\n", env)
    fold_audit(data, tmp / "var")  # what label_issues reads
    port = free_port()
    command = [str(Path(sys.executable).parent / "dagster-webserver"), "-m", "cloud_assets.definitions",
               "-h", "127.0.0.1", "-p", str(port)]
    with webserver(command, port, tmp / "webserver.log", cwd=tmp, env=env):
        with open_instance(home, env) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            yield DagsterGraphQLClient("127.0.0.1", port_number=port), instance, tmp / "var", port


def _finish(client, run_id, timeout=600):
    return _wait(lambda: (s := client.get_run_status(run_id)) in DONE and s, timeout, f"run {run_id}", 1.0)


def _links(var: Path) -> dict:
    store = var / "store"
    links = {n: os.readlink(store / n) for n in os.listdir(store) if not n.startswith(".")}
    return {**links, "site": os.readlink(var / "site")}


def _check_values(var: Path, links: dict) -> None:
    """Every published value is complete: its arrays load in full and its tables read; the site has
    every page."""
    from cloud_assets.lib.store import Store

    store = Store(var / "store")
    for name in links:
        if name == "site":
            continue
        bundle = store.get(name)
        for item in bundle.names():
            if (bundle.path / f"{item}.npy").exists():
                assert np.isfinite(np.asarray(bundle.array(item), np.float64).sum()), (name, item)
            elif (bundle.path / f"{item}.parquet").exists():
                bundle.table(item)
            else:
                bundle.json(item)
    site = (var / "site").resolve()
    for page in ("index.html", "issues.html", "dark.html", "methods.html", "classes/Fish.html"):
        assert "</html>" in (site / page).read_text(), page


def _succeeded(instance, run_id) -> set:
    return {e.dagster_event.step_key for e in instance.all_logs(run_id)
            if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.STEP_SUCCESS}


def _staging_pid(folder: Path, prefix: str, timeout: float) -> int:
    """The process writing a `prefix` staging folder (its name ends in __<host>__<pid>__<random>)."""
    def find():
        for p in folder.glob(f"{prefix}__*") if folder.is_dir() else ():
            return int(p.name.rsplit("__", 2)[1])
    return _wait(find, timeout, f"a {prefix} staging folder in {folder}", 0.02)


@pytest.mark.timeout(1500)
def test_two_runs_at_once_then_kills_and_a_cancel_lose_nothing(server):
    client, instance, var, port = server
    # two runs of every asset at once
    runs = [client.submit_job_execution("classifier_job") for _ in range(2)]
    assert [_finish(client, r) for r in runs] == [dg.DagsterRunStatus.SUCCESS] * 2
    _check_values(var, _links(var))
    assert not list((var / "store" / ".staging").iterdir()) and not list((var / ".staging").iterdir())
    saliency = instance.get_latest_materialization_event(dg.AssetKey("saliency_maps"))
    full_s = saliency.asset_materialization.metadata["seconds_per_image"].value * TRAIN / 5

    # Terminate (the UI's button) while model_pass is in its loop
    before = _links(var)
    run_id = client.submit_job_execution("model_audit_job")
    _wait(lambda: any("model_pass: " in (r.user_message or "") and " images, " in r.user_message
                      for r in instance.all_logs(run_id)), 300, "the first model_pass progress line", 0.2)
    start = time.monotonic()
    client.terminate_run(run_id)
    assert _finish(client, run_id) == dg.DagsterRunStatus.CANCELED
    stopped_s = time.monotonic() - start
    assert stopped_s < max(full_s / 2, 5), (stopped_s, full_s)
    assert all(_links(var)[n] == before[n] for n in ("val_predictions", "saliency_maps"))
    assert not [p for p in (var / "store" / ".staging").iterdir() if p.name.startswith("saliency_maps")]
    _check_values(var, _links(var))

    # SIGKILL to the step process in the middle of each long step
    for job, folder, prefix, changes in [
        ("data_job", var / "store" / ".staging", "image_cache", {"image_cache"}),
        ("model_audit_job", var / "store" / ".staging", "saliency_maps", {"saliency_maps", "val_predictions"}),
        ("report_job", var / ".staging", "site-src", {"site"}),
    ]:
        before = _links(var)
        run_id = client.submit_job_execution(job)
        os.kill(_staging_pid(folder, prefix, 300), signal.SIGKILL)
        assert _finish(client, run_id) == dg.DagsterRunStatus.FAILURE
        after = _links(var)
        assert {n: after[n] for n in changes} == {n: before[n] for n in changes}, prefix
        _check_values(var, after)
        if job == "model_audit_job":  # resumed: re-executed from the failure, the killed step only
            answer = graphql(port, REEXECUTE, {"parent": run_id})["data"]["launchRunReexecution"]
            assert answer["__typename"] == "LaunchRunSuccess", answer
            resumed = answer["run"]["runId"]
            assert _finish(client, resumed) == dg.DagsterRunStatus.SUCCESS
            done_before, done_now = (_succeeded(instance, r) for r in (run_id, resumed))
            assert "model_pass" in done_now and not done_now & done_before, (done_before, done_now)
            assert all(_links(var)[n] != after[n] for n in changes)
            _check_values(var, _links(var))

    # the next run succeeds, and the dead processes' staging folders are gone
    before = _links(var)
    rerun = client.submit_job_execution("classifier_job")
    assert _finish(client, rerun) == dg.DagsterRunStatus.SUCCESS
    after = _links(var)
    assert all(after[n] != before[n] for n in ("image_cache", "saliency_maps", "site"))
    _check_values(var, after)
    assert not list((var / "store" / ".staging").iterdir()) and not list((var / ".staging").iterdir())
