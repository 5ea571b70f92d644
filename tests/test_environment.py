"""The CLOUD_ASSETS_* variables, as a user sets them for the `dagster` command: each one that points
nowhere, or at a file where a folder is expected (or the reverse), stops the run with a message
that names the variable's value and what was expected."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import dagster_home, free_port, run_env

pytestmark = pytest.mark.e2e  # the end-to-end tier (make test-fast leaves it out)

DAGSTER = str(Path(sys.executable).parent / "dagster")


def _start(folder, args, **env):
    full = {**run_env(dagster_home(folder), None, folder / "model.keras", inherit_settings=False), **env}
    return subprocess.Popen([DAGSTER, *args, "-m", "cloud_assets.definitions"], env=full, cwd=folder,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


LABELS = ["asset", "materialize", "--select", "label_table"]
OBSERVE = ["job", "execute", "-j", "observe_model_file"]


def test_variables_that_point_at_the_wrong_thing(tmp_path, small_dataset):
    a_file = tmp_path / "a-file.txt"
    a_file.write_text("not a folder")
    (tmp_path / "a-folder.keras").mkdir()
    data = {"CLOUD_ASSETS_DATA_DIR": str(small_dataset)}
    cases = {
        "data_dir_nowhere": (LABELS, {"CLOUD_ASSETS_DATA_DIR": str(tmp_path / "nowhere")},
                             f"{tmp_path / 'nowhere'}: dataset folder does not exist; dataset.data_dir (CLOUD_ASSETS_DATA_DIR) "
                             f"must be a folder"),
        "data_dir_is_a_file": (LABELS, {"CLOUD_ASSETS_DATA_DIR": str(a_file)},
                               f"{a_file}: is a file; dataset.data_dir (CLOUD_ASSETS_DATA_DIR) must be a folder"),
        "data_dir_unset": (LABELS, {}, "CLOUD_ASSETS_DATA_DIR"),
        "var_dir_is_a_file": (LABELS, {**data, "CLOUD_ASSETS_VAR_DIR": str(a_file)},
                              f"{a_file}: is a file; var.path (CLOUD_ASSETS_VAR_DIR) must be a folder"),
        "model_nowhere": (OBSERVE, data, f"{tmp_path / 'model_nowhere' / 'model.keras'}: model file not found; "
                                         f"model.path (CLOUD_ASSETS_MODEL_PATH) must be"),
        "model_is_a_folder": (OBSERVE, {**data, "CLOUD_ASSETS_MODEL_PATH": str(tmp_path / "a-folder.keras")},
                              f"{tmp_path / 'a-folder.keras'}: is a folder; model.path (CLOUD_ASSETS_MODEL_PATH) "
                              f"must be a .keras or .h5 file"),
    }
    procs = {name: _start(tmp_path / name, args, **env) for name, (args, env, _) in cases.items()}
    for name, proc in procs.items():
        out = proc.communicate(timeout=300)[0]
        message = cases[name][2]
        assert proc.returncode != 0, f"{name}: the command succeeded:\n{out[-2000:]}"
        assert message in out, f"{name}: {message!r} not in the output:\n{out[-3000:]}"


def test_launch_without_var_dir_writes_under_var_here_and_never_reads_the_log_folder_s_env(tmp_path, small_dataset):
    """`cloud-assets launch` started in a folder without CLOUD_ASSETS_VAR_DIR stores under ./var there (its
    default), wherever --log puts the log, and dg never loads a .env beside the log."""
    here, logs = tmp_path / "here", tmp_path / "project"
    here.mkdir()
    logs.mkdir()
    (logs / ".env").write_text(f"CLOUD_ASSETS_DATA_DIR={tmp_path / 'nowhere'}\n")
    env = run_env(dagster_home(tmp_path), small_dataset, var_dir=None)
    done = subprocess.run([str(Path(sys.executable).parent / "cloud-assets"), "launch", "--log", str(logs / "run.log"),
                           "--assets", "label_table"], cwd=here, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (here / "var" / "store" / "label_table").exists()
    assert (logs / "run.log").exists() and not (logs / "var").exists()


def test_ui_makes_relative_paths_absolute_from_where_it_started(tmp_path, small_dataset):
    """`cloud-assets ui` starts dagster dev in the var folder's ui/, every path variable made absolute
    from the folder it was started in, not from ui/ (read from the environment of the process it became)."""
    here = tmp_path / "here"
    shutil.copytree(small_dataset, here / "data")
    env = {**run_env(dagster_home(tmp_path), "data", var_dir=None), "CLOUD_ASSETS_REVIEW_PATH": "reviews/r.csv"}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "cloud-assets"), "ui", "--port", str(free_port())],
                            cwd=here, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60  # until cloud-assets has become dagster dev (execve)
        while [Path(a).name for a in Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode().split("\0")[1:3]] != [
                "dagster", "dev"]:  # python .../dagster dev ...
            assert time.monotonic() < deadline, "cloud-assets ui did not become dagster dev within 60 s"
            time.sleep(0.1)
        environ = dict(v.split("=", 1) for v in Path(f"/proc/{proc.pid}/environ").read_bytes().decode().split("\0") if v)
        cwd = Path(f"/proc/{proc.pid}/cwd").resolve()
    finally:  # read, not served: dagster dev and what it started so far go at once
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert cwd == here / "var" / "ui"
    assert environ["CLOUD_ASSETS_DATA_DIR"] == str(here / "data")
    assert environ["CLOUD_ASSETS_VAR_DIR"] == str(here / "var")
    assert environ["CLOUD_ASSETS_REVIEW_PATH"] == str(here / "reviews" / "r.csv")
