"""The Makefile, as a user drives it: .env and the environment choose the dataset, each dataset gets
its own store, site and Dagster instance, and `make review REVIEW=FILE` puts the file where it is read."""
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
    assert '.venv/bin/cloud-assets review "/home/me/Downloads/label_review.csv"' in commands
    assert "allow_fewer_changes" not in commands
    fewer = _make(tmp_path, "-n", "-o", "install", "review", "REVIEW=/home/me/Downloads/label_review.csv", "FEWER=1")
    assert """--config-json '{"ops": {"corrected_labels": {"config": {"allow_fewer_changes": true}}}}'""" in fewer
    assert "CLOUD_ASSETS_MODEL_CHECK_CRON = */2 * * * *" in _make(tmp_path, "-p", "where")


def test_demo_reads_no_dot_env(tmp_path):
    """`make demo` runs the demo whatever .env says: here a review file of another dataset's, which the
    demo's label_review observation would read."""
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / ".env").write_text("CLOUD_ASSETS_REVIEW_PATH=/data/clouds/label_review.csv\n"
                                   "CLOUD_ASSETS_AUDIT_PROFILE=strong\n")
    assert _where(tmp_path)["Review"].startswith("/data/clouds/label_review.csv")
    for name in ("requirements.lock", "pyproject.toml", ".venv/.installed"):  # installed, after what it needs
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).touch()
        os.utime(tmp_path / name, (1e9 + len(name.split("/")), 1e9 + len(name.split("/"))))
    demo = _make(tmp_path, "-n", "-o", f"{tmp_path}/var/demo-data/train.csv", "-o", f"{tmp_path}/var/demo-model.keras",
                 "demo")
    assert f'echo "Review:       {tmp_path}/var/demo-data/label_review.csv' in demo
    assert "strong" not in _make(tmp_path, "-n", "-p", "-o", f"{tmp_path}/var/demo-data/train.csv", "-o",
                                 f"{tmp_path}/var/demo-model.keras", "demo")


def _runs(home: Path) -> list:
    from tests.helpers import open_instance

    with open_instance(home) as instance:
        return instance.get_runs()


def test_clean_removes_var_but_the_kept_corrections(tmp_path):
    """Each version of the corrections holds the review it applied; the demo's dataset goes whole (the
    demo's label_review.csv is a copy `make review` placed there), so that `make demo` writes it anew."""
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    made = ["var/corrections/abc-def-01/train_corrected.csv", "var/corrections/abc-def-01/label_review.csv",
            "var/datasets/clouds/corrections/abc-fed-02/summary.json"]
    derived = ["var/store/label_issues/issues.parquet", "var/demo-data/train.csv", "var/demo-data/label_review.csv",
               "var/demo-model.keras", "var/datasets/clouds/site/index.html", "var/datasets/clouds/dagster/dagster.yaml"]
    for name in made + derived:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    out = _make(tmp_path, "clean")
    left = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "var").rglob("*") if p.is_file())
    assert left == sorted(made)
    assert not (tmp_path / "var" / "store").exists() and not (tmp_path / "var" / "demo-data").exists()
    assert not (tmp_path / "var" / "datasets" / "clouds" / "site").exists()
    assert out.split() == ["kept:", "var/corrections", "kept:", "var/datasets/clouds/corrections"]
    assert _make(tmp_path, "clean") and sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "var").rglob("*")
                                               if p.is_file()) == sorted(made)
