"""The package installed as a wheel (not editable) into a fresh environment, used from a folder
outside the repository: every asset materializes and the report site is built from the site
sources the wheel carries."""
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.helpers import dagster_home, fold_audit, run_env, tiny_keras

pytestmark = pytest.mark.e2e  # the end-to-end tier (make test-fast leaves it out)

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_installs_and_builds_the_site_outside_the_repository(small_dataset, tmp_path):
    # build from a copy, so that the checkout gets no build/ folder
    src = tmp_path / "src"
    for part in ("cloud_assets", "site"):
        shutil.copytree(ROOT / part, src / part, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    for part in ("pyproject.toml", "mkdocs.yml"):
        shutil.copy(ROOT / part, src / part)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(src)], check=True)
    wheel = next((tmp_path / "dist").glob("cloud_assets-*.whl"))

    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
                   check=True)
    # the dependencies come from this environment, after the new one's own site-packages (a path
    # line in a .pth file: the editable install's own .pth files there are not processed)
    site_packages = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                        capture_output=True, text=True, check=True).stdout.strip())
    (site_packages / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")

    work = tmp_path / "elsewhere"
    home = dagster_home(work)
    env = run_env(home, small_dataset, tiny_keras(work / "model.keras"), inherit_settings=False,
                  audit_folds=os.environ["CLOUD_ASSETS_AUDIT_FOLDS"])  # the tests' fold audit (conftest)
    env.pop("PYTHONPATH", None)
    where = subprocess.run([str(python), "-c", "import cloud_assets; print(cloud_assets.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(site_packages)), where
    for selection in ("not group:audit+", "label_issues+"):
        if selection == "label_issues+":
            fold_audit(small_dataset, work / "var")  # what label_issues reads (its fit ships in the wheel)
        run = subprocess.run([str(python), "-m", "dagster", "asset", "materialize", "-m", "cloud_assets.definitions",
                              "--select", selection], cwd=work, env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    built = work / "var" / "site"
    assert (built / "index.html").is_file() and (built / "methods.html").is_file()
    assert "Label issues" in (built / "index.html").read_text()
