"""The GPU pool on a real SQLite DAGSTER_HOME: two runs started at once each compute val_predictions
and saliency_maps (one step, `model_pass`), and their GPU steps never run at the same time."""
import subprocess
import sys
from pathlib import Path

import dagster as dg

from tests.helpers import dagster_home, run_env, tiny_keras

GPU_STEP = "model_pass"


def _step_window(instance, run_id):
    window = [None, None]
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.step_key != GPU_STEP:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            window[0] = record.timestamp
        if event.event_type == dg.DagsterEventType.STEP_SUCCESS:
            window[1] = record.timestamp
    return window


def test_gpu_steps_of_two_runs_never_overlap(small_dataset, tmp_path):
    home = dagster_home(tmp_path)
    env = run_env(home, small_dataset, tiny_keras(tmp_path / "model.keras"))
    cmd = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "cloud_assets.definitions",
           "--select", "label_table,train_val_split,image_cache,val_predictions,saliency_maps"]
    # create the storage and the pool's limit (dagster.yaml's default) once: two runs that start on a new
    # instance race to create them, and both can pass before the limit exists
    instance = dg.DagsterInstance.from_config(str(home))
    instance.event_log_storage.initialize_concurrency_limit_to_default("gpu")
    instance.dispose()
    runs = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    for proc in runs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        records = instance.get_runs()
        assert len(records) == 2 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in records)
        (a_start, a_end), (b_start, b_end) = (_step_window(instance, r.run_id) for r in records)
        assert None not in (a_start, a_end, b_start, b_end)
        assert a_end <= b_start or b_end <= a_start, ((a_start, a_end), (b_start, b_end))
        assert instance.event_log_storage.get_concurrency_info("gpu").slot_count == 1
