"""The Makefile, as a user drives it: .env and the environment choose the dataset, each dataset gets
its own store, site and Dagster instance, and `make review REVIEW=FILE` puts the file where it is read."""
import pytest
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _make(folder: Path, *args, **env) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUD_ASSETS_", "DAGSTER_HOME", "MAKE"))}
    done = subprocess.run(["make", "-s", *args], cwd=folder, env={**clean, **env}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _where(folder: Path, **env) -> dict:
    return dict(line.split(":", 1)[0:1] + [line.split(":", 1)[1].strip()] for line in _make(folder, "where", **env).splitlines())


def test_each_dataset_has_its_own_var_folder_chosen_by_env_or_dot_env(tmp_path):
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    demo = _where(tmp_path)
    assert demo["Dataset"] == f"{tmp_path}/var/demo-data" and demo["Dagster home"] == f"{tmp_path}/var/dagster"
    assert demo["Report site"].startswith(f"{tmp_path}/var/site/index.html")

    (tmp_path / ".env").write_text("CLOUD_ASSETS_DATA_DIR=/data/clouds\nCLOUD_ASSETS_MODEL_PATH=/models/m.h5\n"
                                   "CLOUD_ASSETS_MODEL_CHECK_CRON=*/2 * * * *\n")
    own = _where(tmp_path)
    assert own["Dataset"] == "/data/clouds" and own["Model"] == "/models/m.h5"
    assert own["Assets"].startswith(f"{tmp_path}/var/datasets/clouds/store/")
    assert own["Dagster home"] == f"{tmp_path}/var/datasets/clouds/dagster"
    # the environment overrides .env
    other = _where(tmp_path, CLOUD_ASSETS_DATA_DIR="/data/other")
    assert other["Dataset"] == "/data/other" and other["Dagster home"] == f"{tmp_path}/var/datasets/other/dagster"
    # and the review goes where corrected_labels reads it
    commands = _make(tmp_path, "-n", "-o", "install", "review", "REVIEW=/home/me/Downloads/label_review.csv")
    assert 'install -m 644 "/home/me/Downloads/label_review.csv" "/data/clouds/label_review.csv"' in commands
    assert "CLOUD_ASSETS_MODEL_CHECK_CRON = */2 * * * *" in _make(tmp_path, "-p", "where")


def _runs(home: Path) -> list:
    from tests.helpers import open_instance

    with open_instance(home) as instance:
        return instance.get_runs()


@pytest.mark.e2e
def test_make_run_the_environment_over_dot_env_and_a_second_run_materializes_nothing(small_dataset, tmp_path):
    """A .env naming another dataset folder and the fold count; the environment names the dataset: make run
    runs the environment's dataset, with .env's fold count (a default the environment does not set), into
    that dataset's own folder; then again with nothing changed, only the sources are observed."""
    from tests.helpers import make_project, tiny_keras

    project = make_project(tmp_path / "project")
    (project / ".env").write_text(f"CLOUD_ASSETS_DATA_DIR={tmp_path / 'elsewhere'}\nCLOUD_ASSETS_AUDIT_FOLDS=2\n")
    env = {"CLOUD_ASSETS_DATA_DIR": str(small_dataset), "CLOUD_ASSETS_MODEL_PATH": str(tiny_keras(tmp_path / "m.keras"))}
    out = _make(project, "-o", ".venv/.installed", "run", **env)
    var = project / "var" / "datasets" / small_dataset.name
    assert f"Dataset:      {small_dataset}" in out and (var / "site" / "index.html").is_file(), out[-3000:]
    runs = _runs(var / "dagster")
    folds = {r.tags.get("dagster/asset_partition_range_end") for r in runs if "audit_models" in str(r.asset_selection)}
    assert folds == {"1"}, folds  # two folds, 0...1
    again = _make(project, "-o", ".venv/.installed", "run", **env)
    assert "every asset is up to date: nothing to materialize" in again, again[-3000:]
    assert [r.job_name for r in _runs(var / "dagster")[: -len(runs)]] == ["observe_sources"]
