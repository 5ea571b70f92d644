"""Celery with a real Redis on loopback and two workers (`dagster` and `gpu` queues): the graph
runs, and the run's events show the GPU steps on the gpu worker, the others on the default one."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from tests.helpers import dagster_home, free_port, run_env, tiny_keras

pytestmark = pytest.mark.e2e  # the end-to-end tier (make test-fast leaves it out)


ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GPU_STEPS = {"model_pass"}  # val_predictions and saliency_maps
CPU_STEPS = {"label_table", "train_val_split", "image_cache"}


def _start(cmd, env, log):
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc):
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def test_gpu_steps_run_on_the_gpu_worker(small_dataset, tmp_path):
    if not shutil.which("redis-server"):
        pytest.fail("redis-server is missing: `make test` installs Debian's redis-server")
    home = dagster_home(tmp_path)
    port = free_port()
    broker, backend = f"redis://127.0.0.1:{port}/0", f"redis://127.0.0.1:{port}/1"
    env = run_env(home, small_dataset, tiny_keras(tmp_path / "model.keras"), executor="celery",
                  celery_broker=broker, celery_backend=backend)
    log = open(tmp_path / "services.log", "w")
    redis = _start(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                   env, log)
    workers = {queue: _start([str(BIN / "celery"), "-A", "dagster_celery.app", "-b", broker, "--result-backend",
                              backend, "worker", "-Q", queue, "--pool", "solo", "-n", f"{queue}@%h"], env, log)
               for queue in ("dagster", "gpu")}
    try:
        time.sleep(5)
        select = ",".join(sorted(CPU_STEPS | {"val_predictions", "saliency_maps"}))  # model_pass's assets
        done = subprocess.run([str(BIN / "dagster"), "asset", "materialize", "-m", "cloud_assets.definitions",
                               "--select", select],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        with dg.instance_for_test(temp_dir=str(home)) as instance:
            run = instance.get_runs()[0]
            assert run.status == dg.DagsterRunStatus.SUCCESS
            pids = {r.dagster_event.step_key: r.dagster_event.pid for r in instance.all_logs(run.run_id)
                    if r.dagster_event and r.dagster_event.event_type == dg.DagsterEventType.STEP_START}
        assert {pids[s] for s in GPU_STEPS} == {workers["gpu"].pid}, pids
        assert {pids[s] for s in CPU_STEPS} == {workers["dagster"].pid}, pids
    finally:
        for proc in (*workers.values(), redis):
            _stop(proc)
        log.close()


def test_make_run_under_celery_submits_a_backfill_and_follows_it_to_the_end(small_dataset, tmp_path):
    """CLOUD_ASSETS_EXECUTOR=celery: make run submits what is stale as one backfill, which the Dagster
    daemon runs through Celery workers (the GPU steps on the gpu queue), says its progress and ends when the
    backfill does, while the daemon's schedules observe the sources every minute; a second make run finds
    everything up to date."""
    from tests.helpers import make_project
    from tests.test_makefile import _make, _runs

    project = make_project(tmp_path / "project")
    port = free_port()
    broker, backend = f"redis://127.0.0.1:{port}/0", f"redis://127.0.0.1:{port}/1"
    settings = {"CLOUD_ASSETS_DATA_DIR": str(small_dataset), "CLOUD_ASSETS_MODEL_PATH": str(tiny_keras(tmp_path / "m.keras")),
                "CLOUD_ASSETS_VAR_DIR": str(tmp_path / "var"), "DAGSTER_HOME": str(tmp_path / "var" / "dagster"),
                "CLOUD_ASSETS_EXECUTOR": "celery", "CLOUD_ASSETS_CELERY_BROKER": broker,
                "CLOUD_ASSETS_CELERY_BACKEND": backend, "CLOUD_ASSETS_AUDIT_FOLDS": "2", "CLOUD_ASSETS_MODEL_CHECK_CRON": "* * * * *"}
    _make(project, "-o", ".venv/.installed", "instance", **settings)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CLOUD_ASSETS_")}, **settings}
    log = open(tmp_path / "services.log", "w")
    celery = [str(BIN / "celery"), "-A", "dagster_celery.app", "-b", broker, "--result-backend", backend, "worker"]
    procs = [_start(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                    env, log),
             _start([*celery, "-Q", "gpu", "--pool", "solo", "-n", "gpu@%h"], env, log),
             _start([*celery, "-Q", "dagster", "--pool", "solo", "-n", "dagster@%h"], env, log),
             subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-m", "cloud_assets.definitions"], cwd=tmp_path,
                              env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)]
    try:
        out = _make(project, "-o", ".venv/.installed", "run", **settings)
        assert "backfill" in out and "completed success" in out, out[-3000:]
        assert (tmp_path / "var" / "site" / "index.html").is_file()
        # the backfill's runs all succeeded; beside them only make run's observation and what the daemon's
        # schedules started on their own (the observations every minute here; the last may still be running)
        runs = _runs(tmp_path / "var" / "dagster")
        described = [(r.job_name, r.status.value, r.tags) for r in runs]
        backfill = [r for r in runs if r.tags.get("dagster/backfill")]
        assert backfill and all(r.status == dg.DagsterRunStatus.SUCCESS for r in backfill), described
        others = [r for r in runs if r not in backfill and not r.tags.get("dagster/schedule_name")]
        assert [(r.job_name, r.status) for r in others] == [("observe_sources", dg.DagsterRunStatus.SUCCESS)], described
        again = _make(project, "-o", ".venv/.installed", "run", **settings)
        assert "every asset is up to date: nothing to materialize" in again, again[-3000:]
    finally:
        for proc in reversed(procs):
            _stop(proc)
        log.close()
