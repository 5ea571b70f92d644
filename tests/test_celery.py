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
import yaml

from tests.helpers import dagster_home, free_port, run_env, tiny_keras


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
    env = run_env(home, small_dataset, tiny_keras(tmp_path / "model.keras"), executor="celery")
    log = open(tmp_path / "services.log", "w")
    redis = _start(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                   env, log)
    workers = {queue: _start([str(BIN / "celery"), "-A", "dagster_celery.app", "-b", broker, "--result-backend",
                              backend, "worker", "-Q", queue, "--pool", "solo", "-n", f"{queue}@%h"], env, log)
               for queue in ("dagster", "gpu")}
    try:
        time.sleep(5)
        run_config = tmp_path / "run_config.yaml"
        config = yaml.safe_load((ROOT / "deploy" / "celery" / "run_config.yaml").read_text())
        config["execution"]["config"].update(broker=broker, backend=backend)
        run_config.write_text(yaml.safe_dump(config))
        select = ",".join(sorted(CPU_STEPS | {"val_predictions", "saliency_maps"}))  # model_pass's assets
        done = subprocess.run([str(BIN / "dagster"), "asset", "materialize", "-m", "cloud_assets.definitions",
                               "--select", select, "-c", str(run_config)],
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
