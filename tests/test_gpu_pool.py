"""The GPU pool on a real SQLite DAGSTER_HOME: the two GPU assets never run at the same time,
although nothing else orders them and the multiprocess executor runs independent steps at once."""
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from tests.test_model import _tiny_keras

ROOT = Path(__file__).resolve().parents[1]
GPU_ASSETS = ("val_predictions", "saliency_maps")


def _step_windows(instance, run_id):
    windows = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.step_key not in GPU_ASSETS:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            windows.setdefault(event.step_key, [None, None])[0] = record.timestamp
        if event.event_type == dg.DagsterEventType.STEP_SUCCESS:
            windows.setdefault(event.step_key, [None, None])[1] = record.timestamp
    return windows


def test_gpu_assets_never_overlap(small_dataset, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    model = _tiny_keras(tmp_path / "model.keras")
    env = {**os.environ, "DAGSTER_HOME": str(home), "CLOUD_ASSETS_DATA_DIR": str(small_dataset),
           "CLOUD_ASSETS_MODEL_PATH": str(model), "CLOUD_ASSETS_VAR_DIR": str(tmp_path / "var")}
    done = subprocess.run([str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m",
                           "cloud_assets.definitions", "--select",
                           "label_table,train_val_split,image_cache," + ",".join(GPU_ASSETS)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        runs = instance.get_runs()
        assert len(runs) == 1 and runs[0].status == dg.DagsterRunStatus.SUCCESS
        windows = _step_windows(instance, runs[0].run_id)
        (a_start, a_end), (b_start, b_end) = windows["val_predictions"], windows["saliency_maps"]
        assert a_end <= b_start or b_end <= a_start, windows
        assert instance.event_log_storage.get_concurrency_info("gpu").slot_count == 1
