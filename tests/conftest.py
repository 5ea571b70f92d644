import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

# The tests' fold audit has two folds (the default is five) at a quarter of the fast profile's pixels, and
# label_issues sharpens the proposals of its first 20 candidates (the default is 1000): every test but
# test_audit and test_sharpen is about something else, and test_audit reads these from the settings.
# Set before tests.helpers builds the tests' settings from the environment (SETTINGS), and
# inherited by the runs the tests start (make run; the README's blocks take the fold count only and run the
# rest as a user would).
os.environ.setdefault("CLOUD_ASSETS_AUDIT_FOLDS", "2")
os.environ.setdefault("CLOUD_ASSETS_AUDIT_SIZE", "32x48")
os.environ.setdefault("CLOUD_ASSETS_SHARPENED", "20")

from cloud_assets.synth import SynthConfig, synthesize
from tests.helpers import free_port

SMALL = SynthConfig(train=48, test=8, height=350, width=525, seed=3, workers=1, dark_rate=0.08, band_rate=0.2)


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """A small synthetic dataset in the Kaggle layout, made once per test session (read-only)."""
    out = tmp_path_factory.mktemp("data") / "small"
    synthesize(out, SMALL, progress=lambda m: None)
    return out


@pytest.fixture
def dataset_copy(small_dataset, tmp_path) -> Path:
    """A private copy of the small dataset that a test may damage."""
    out = tmp_path / "data"
    shutil.copytree(small_dataset, out)
    return out


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    """A real PostgreSQL server (Debian's postgresql: initdb and pg_ctl) in a temporary folder,
    listening on loopback only, user `dagster` trusted; run as the `postgres` user when the tests run
    as root (initdb refuses root). Yields a function that creates a new database and returns its URL."""
    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not binaries:
        pytest.fail("PostgreSQL is missing: `make test` installs Debian's postgresql")
    bin_dir = binaries[-1].parent
    folder = Path(tempfile.mkdtemp(prefix="cloud-assets-pg-"))
    as_user = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()

    def run(*cmd):
        done = subprocess.run([*as_user, *cmd], capture_output=True, text=True)
        assert done.returncode == 0, f"{' '.join(cmd)}: {done.stdout}{done.stderr}"

    run(str(bin_dir / "initdb"), "-D", str(folder / "data"), "-U", "dagster", "--auth=trust", "-E", "UTF8")
    run(str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-l", str(folder / "server.log"), "-w", "start",
        "-o", f"-h 127.0.0.1 -p {port} -k {folder} -c max_connections=200")
    databases = iter(range(1, 1000))

    def new_database() -> str:
        name = f"dagster_{next(databases)}"
        run(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "dagster", name)
        return f"postgresql://dagster@127.0.0.1:{port}/{name}"

    try:
        yield new_database
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    """The files that run longest start first, so that two workers (`make test`: `-n 2 --dist loadfile
    --no-loadscope-reorder`) end together: the end-to-end files, those allowed the longest (their
    timeout mark) first, then the in-process ones. Each file's tests stay together and in order."""
    def allowed(item) -> float:
        mark = item.get_closest_marker("timeout")
        return mark.args[0] if mark and mark.args else 0

    longest: dict[str, tuple] = {}
    for item in items:
        e2e, seconds = longest.get(item.path, (False, 0))
        longest[item.path] = (e2e or item.get_closest_marker("e2e") is not None, max(seconds, allowed(item)))
    order = {path: (not e2e, -seconds) for path, (e2e, seconds) in longest.items()}
    items.sort(key=lambda item: order[item.path])
