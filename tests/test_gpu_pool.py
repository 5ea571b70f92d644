"""The GPU pool on a real instance, SQLite in DAGSTER_HOME and a PostgreSQL server: two runs started at
once on a new instance each compute val_predictions and saliency_maps (one step, `model_pass`), both
succeed, and their GPU steps never run at the same time."""
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from tests.helpers import dagster_home, open_instance, run_env, tiny_keras

pytestmark = pytest.mark.e2e  # the end-to-end tier (make test-fast leaves it out)

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


@pytest.mark.parametrize("storage", ["sqlite", "postgres"])
def test_gpu_steps_of_two_runs_never_overlap(storage, small_dataset, tmp_path, request):
    postgres = {"postgres_url": request.getfixturevalue("postgres_server")()} if storage == "postgres" else {}
    env = run_env(tmp_path / "home", small_dataset, tiny_keras(tmp_path / "model.keras"), **postgres)
    home = dagster_home(tmp_path, env=env)
    cmd = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "cloud_assets.definitions",
           "--select", "label_table,train_val_split,image_cache,val_predictions,saliency_maps"]
    # the instance's tables, once (two processes creating them at once collide), but not the pool's limit:
    # both runs create it as they meet it, at the same moment (Dagster's own creation fails one of them
    # on PostgreSQL; cloud_assets.instance's does not)
    with open_instance(home, env) as instance:
        assert instance.event_log_storage.get_pool_limits() == []
    runs = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    for proc in runs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    with open_instance(home, env) as instance:
        records = instance.get_runs()
        assert len(records) == 2 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in records)
        (a_start, a_end), (b_start, b_end) = (_step_window(instance, r.run_id) for r in records)
        assert None not in (a_start, a_end, b_start, b_end)
        assert a_end <= b_start or b_end <= a_start, ((a_start, a_end), (b_start, b_end))
        assert instance.event_log_storage.get_concurrency_info("gpu").slot_count == 1
        assert type(instance.run_storage).__name__ == {"sqlite": "SqliteRunStorage", "postgres": "PostgresRunStorage"}[storage]
