"""A backfill of four shards over Celery: a real Redis on loopback, a worker on the `dagster` queue
and one on `gpu`, the Dagster daemon and webserver (`dg dev`), an instance on a real PostgreSQL
server (a team's: runs, events and the pool's slots in the database). The backfill makes
runs of two shards each (CLOUD_ASSETS_SHARDS_PER_RUN); their events show the shards computed at
overlapping times in different worker processes (the `dagster` worker has four), the GPU step on the
gpu worker, and every shard of every per-image asset materialized. (That shards give the unsharded
results, whatever runs them: tests/defs/test_shards.py.)"""
import dataclasses
from pathlib import Path
import shutil
import subprocess

import dagster as dg
from dagster._core.execution.backfill import BulkActionStatus
import pytest

from cloud_assets.synth import synthesize
from tests.conftest import SMALL
from tests.helpers import dagster_home, dg_run, free_port, graphql, open_instance, run_env, tiny_keras
from tests.test_celery import BIN, _start, _stop
from tests.test_ui_end_to_end import _up, _wait

pytestmark = pytest.mark.e2e  # the end-to-end tier (make test-fast leaves it out)

CPU_STEPS = {"image_cache", "val_masks", "mask_attention"}  # on the `dagster` worker; model_pass on `gpu`
PER_IMAGE = ["image_cache", "val_masks", "val_predictions", "saliency_maps", "mask_attention"]
LAUNCH = """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""


def _launch(env, *args, log):
    done = dg_run(env, "launch", *args, stdout=log, stderr=subprocess.STDOUT)
    assert done.returncode == 0, f"dg launch {' '.join(args)} failed; see {log.name}"


def _steps(instance, run_id) -> dict:
    """step key -> (start time, end time, pid) from the run's events."""
    out = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event and event.event_type in (dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS):
            start, end, pid = out.get(event.step_key, (None, None, None))
            if event.event_type == dg.DagsterEventType.STEP_START:
                start, pid = record.timestamp, event.pid
            else:
                end = record.timestamp
            out[event.step_key] = (start, end, pid)
    return out


@pytest.fixture
def large_images(tmp_path) -> Path:
    """The small dataset at four times the pixels: a shard's image_cache step lasts a few seconds,
    longer than the spread of the worker processes' start-up, so two runs' steps overlap whenever
    they are computed together."""
    out = tmp_path / "data"
    synthesize(out, dataclasses.replace(SMALL, height=2 * SMALL.height, width=2 * SMALL.width), progress=lambda m: None)
    return out


def test_a_backfill_spreads_the_shards_over_celery_workers(large_images, tmp_path, postgres_server):
    import redis as redis_client

    if not shutil.which("redis-server"):
        pytest.fail("redis-server is missing: `make test` installs Debian's redis-server")
    model = tiny_keras(tmp_path / "model.keras")
    local = {**run_env(tmp_path / "sharded" / "home", large_images, model, shards=4, postgres_url=postgres_server()),
             "VIRTUAL_ENV": str(BIN.parent)}
    home = dagster_home(tmp_path / "sharded", env=local)
    port, ui_port = free_port(), free_port()
    broker, backend = f"redis://127.0.0.1:{port}/0", f"redis://127.0.0.1:{port}/1"
    spread = {**local, "CLOUD_ASSETS_EXECUTOR": "celery", "CLOUD_ASSETS_SHARDS_PER_RUN": "2",
              "CLOUD_ASSETS_CELERY_BROKER": broker, "CLOUD_ASSETS_CELERY_BACKEND": backend}
    log = open(tmp_path / "services.log", "w")
    procs = [_start(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                    local, log)]
    try:
        # upstream of the shards, on this machine
        _launch(local, "--assets", "label_table,train_val_split", log=log)
        celery = [str(BIN / "celery"), "-A", "dagster_celery.app", "-b", broker, "--result-backend", backend, "worker"]
        gpu = _start([*celery, "-Q", "gpu", "--pool", "solo", "-n", "gpu@%h"], spread, log)
        procs += [gpu, subprocess.Popen([str(BIN / "dagster"), "dev", "-m", "cloud_assets.definitions", "--port",
                                         str(ui_port)], cwd=tmp_path, env=spread, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)]
        _wait(lambda: _up(ui_port), 120, "the webserver")
        answer = graphql(ui_port, LAUNCH, {"params": {
            "partitionNames": ["0", "1", "2", "3"], "assetSelection": [{"path": [a]} for a in PER_IMAGE]}})
        launched = answer["data"]["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", answer
        # both runs' first steps (image_cache and val_masks each) wait in the queue; the worker then
        # starts them together, one per process
        queue = redis_client.Redis.from_url(broker)

        def queued() -> int:  # kombu keeps a queue per priority: dagster, dagster\x06\x163, ...
            return sum(queue.llen(k) for k in queue.keys("dagster*") if queue.type(k) == b"list")

        _wait(lambda: queued() >= 4, 180, "both runs' first steps in the dagster queue", 0.5)
        procs.append(_start([*celery, "-Q", "dagster", "--pool", "prefork", "--concurrency", "4", "-n", "dagster@%h"],
                            spread, log))
        with open_instance(home, local) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            status = _wait(lambda: (s := instance.get_backfill(launched["backfillId"]).status) not in (
                BulkActionStatus.REQUESTED,) and s, 420, "the backfill")
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": launched["backfillId"]}))
            assert status == BulkActionStatus.COMPLETED_SUCCESS, [r.status for r in runs]
            steps = {r.run_id: _steps(instance, r.run_id) for r in runs}
            ranges = sorted(r.tags.get("dagster/asset_partition_range_start", "") for r in runs)
            shards = {a: set(instance.get_materialized_partitions(dg.AssetKey(a))) for a in PER_IMAGE}
        assert shards == {a: {"0", "1", "2", "3"} for a in PER_IMAGE}, shards  # every shard of every asset
        assert len(runs) == 2 and ranges == ["0", "2"], ranges
        # some step of one run and some step of the other at overlapping times in different worker
        # processes: the two runs' shards computed side by side (a single process could only interleave)
        first, second = ([v for k, v in s.items() if k in CPU_STEPS] for s in steps.values())
        assert any(a[0] < b[1] and b[0] < a[1] and a[2] != b[2] for a in first for b in second), steps
        assert {s["model_pass"][2] for s in steps.values()} == {gpu.pid}
        assert gpu.pid not in {s[k][2] for s in steps.values() for k in CPU_STEPS}
    finally:
        for proc in reversed(procs):
            _stop(proc)
        log.close()
