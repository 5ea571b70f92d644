"""The UI end to end: `make ui` (dagster dev: webserver + daemon) on a free loopback port with a temporary
DAGSTER_HOME, from a folder whose .env names other data and another home, which the environment overrides; every asset but the fold audit's (`classifier_job`) materialized through the GraphQL API; a new model file re-materializes
the model-dependent assets by themselves (schedule -> observation -> automation) while the data
assets keep their materialization; Chromium finds the assets in the UI."""
import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from tests.helpers import SETTINGS, CHROMIUM, FLAGS, dagster_home, fold_audit, free_port, make_project, run_env, tiny_keras

pytestmark = pytest.mark.e2e  # the end-to-end tier (make test-fast leaves it out)


ROOT = Path(__file__).resolve().parents[1]
DATA = ["label_table", "train_val_split", "image_cache", "val_masks", "dark_image_counts"]
MODEL_DEPENDENT = ["val_predictions", "saliency_maps", "threshold_maps", "confusion_matrices", "mistakes",
                   "fp_class_distribution", "fn_class_distribution", "mask_attention", "label_issues",
                   "corrected_labels", "report_site"]


def _wait(predicate, timeout: float, what: str, every: float = 2.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture
def dev(small_dataset, tmp_path):
    home = dagster_home(tmp_path)
    model = tiny_keras(tmp_path / "model.keras")
    port = free_port()
    env = run_env(home, small_dataset, model, model_check_cron="* * * * *")
    # started as a user does, in a project folder whose .env names other data: the environment wins
    project = make_project(tmp_path / "project")
    (project / ".env").write_text(f"CLOUD_ASSETS_DATA_DIR={tmp_path / 'elsewhere'}\nCLOUD_ASSETS_MODEL_PATH={tmp_path / 'm.h5'}\n"
                                  f"DAGSTER_HOME={tmp_path / 'other-home'}\n")
    with webserver(["make", "-s", "-o", ".venv/.installed", "ui", f"UI_PORT={port}"], port, tmp_path / "dagster-dev.log",
                   cwd=project, env=env):
        with dg.instance_for_test(temp_dir=str(home)) as instance:
            yield port, instance, model


@contextlib.contextmanager
def webserver(command, port: int, log_path: Path, **popen):
    """`command` in its own process group until it answers on `port`; stopped (group) afterwards."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **popen)
        try:
            _wait(lambda: _up(port), 120, "the webserver")
            yield proc
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def _listening(port) -> set[str]:
    """The IPv4/IPv6 addresses a socket on `port` listens on (from /proc/net/tcp*)."""
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            host, hex_port = local.split(":")
            if int(hex_port, 16) == port and state == "0A":
                raw = bytes.fromhex(host)
                words = [raw[i:i + 4][::-1] for i in range(0, len(raw), 4)]  # little-endian 32-bit words
                addresses.add(socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, b"".join(words)))
    return addresses


def _up(port) -> bool:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2).status == 200
    except OSError:
        return False


def _latest(instance, key):
    record = instance.get_latest_materialization_event(dg.AssetKey(key))
    return record.run_id if record else None


def _observed_sha(instance):
    records = instance.fetch_observations(dg.AssetKey("model_file"), limit=1).records
    return records[0].asset_observation.tags.get("dagster/data_version") if records else None


def test_materialize_through_graphql_then_a_new_model_reruns_only_the_model_assets(dev, small_dataset, tmp_path):
    from dagster_graphql import DagsterGraphQLClient
    from playwright.sync_api import sync_playwright

    from cloud_assets.lib.files import sha256

    port, instance, model = dev
    assert _listening(port) == {"127.0.0.1"}  # `make ui` serves loopback only
    # the schedule observes the model file every minute; start once it has
    _wait(lambda: _observed_sha(instance) == sha256(model), 150, "the first observation of the model file")
    # what label_issues reads: the dataset's fold audit, placed in the store and reported to the instance
    fold_audit(small_dataset, tmp_path / "var")
    for name, keys in (("audit_folds", [None]), ("audit_inputs", [None]), ("audit_models", SETTINGS.fold_keys),
                       ("audit_relabels", [None]), ("audit_predictions", SETTINGS.fold_keys), ("audit_evidence", [None])):
        for key in keys:
            instance.report_runless_asset_event(dg.AssetMaterialization(name, partition=key))
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    run_id = client.submit_job_execution("classifier_job")
    status = _wait(lambda: (s := client.get_run_status(run_id)) in (dg.DagsterRunStatus.SUCCESS,
                                                                  dg.DagsterRunStatus.FAILURE) and s,
                   420, "the full materialization")
    assert status == dg.DagsterRunStatus.SUCCESS
    assert all(_latest(instance, k) == run_id for k in DATA + MODEL_DEPENDENT)

    tiny_keras(model)  # a new model file
    new_sha = sha256(model)
    _wait(lambda: _observed_sha(instance) == new_sha, 150, "the observation of the new model file")
    _wait(lambda: all(_latest(instance, k) not in (None, run_id) for k in MODEL_DEPENDENT), 420,
          "the model-dependent assets to re-materialize by themselves")
    assert all(_latest(instance, k) == run_id for k in DATA)
    latest = instance.get_latest_materialization_event(dg.AssetKey("val_predictions"))
    assert latest.asset_materialization.metadata["model_sha256"].value == new_sha

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1200})
        groups = {"data": DATA, "model": ["model_file", "val_predictions", "saliency_maps"],
                  "analysis": MODEL_DEPENDENT[2:-3], "audit": ["audit_models", "audit_evidence", "label_issues"], "review": ["label_review", "corrected_labels"],
                  "report": ["report_site"]}
        for group, names in groups.items():  # each group's asset graph
            page.goto(f"http://127.0.0.1:{port}/locations/cloud_assets.definitions/asset-groups/{group}")
            _wait(lambda: all(n in page.inner_text("body") for n in names), 60, f"the {group} asset graph", 1.0)
            if group == "model":
                page.screenshot(path=str(ROOT / "test-artifacts" / "dagster-asset-graph-model.png"))
        browser.close()
