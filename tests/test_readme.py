"""The README's getting-started blocks, run as written in a copy of the repository: Quick start,
Your own model and dataset (with make and without) and the Assets page's From Python or Jupyter. Only the example paths are
replaced (the data folder by a small dataset, the model file by a tiny model), the demo is made small
(DEMO_SIZE, DEMO_TRAIN), `make ui` and `make serve` run until they answer on their port, and
`make test` is this suite."""
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import ROOT, free_port, tiny_keras
from tests.test_makefile import _runs

README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"
# make ui and make serve run in the background until they answer, then stop; make test is this suite
MAKE = """
set -e
make() {
  case "$1" in
    test) echo "make test: the suite running this"; return 0 ;;
    ui|serve)
      local port; [ "$1" = ui ] && port=$UI_PORT || port=$SERVE_PORT
      # a job of its own (job control: its own process group), which, unlike a command sent to the
      # background without job control, does not ignore Ctrl-C
      set -m
      command make "$@" > "$LOGS/make-$1.log" 2>&1 &
      local pid=$! up= stopped=
      set +m
      for _ in $(seq 360); do
        if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \\
            "http://127.0.0.1:$port/" 2>/dev/null; then up=1; break; fi
        sleep 0.5
      done
      # as Ctrl-C; whatever is left after 60 s is killed (dagster dev stops its daemon and webserver
      # first: seconds, but more on a machine busy with other tests)
      kill -INT -- -"$pid"
      for _ in $(seq 120); do kill -0 "$pid" 2>/dev/null || { stopped=1; break; }; sleep 0.5; done
      kill -KILL -- -"$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
      [ -n "$up" ] || { echo "make $1 never answered on port $port"; return 1; }
      [ -n "$stopped" ] || { echo "make $1 did not stop on Ctrl-C within 60 s"; return 1; }
      echo "make $1 answered on port $port, then stopped on Ctrl-C" ;;
    *) command make "$@" ;;
  esac
}
"""


def _section(title: str, text: str = README) -> str:
    start = text.index(f" {title}\n")
    level = text.rfind("\n", 0, start) + 1
    hashes = text[level:start]
    end = re.search(rf"^#{{1,{len(hashes)}}} ", text[start:], re.M)
    return text[start: start + end.start() if end else None]


def _blocks(title: str, language: str, text: str = README) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", _section(title, text), re.S)


def _default_ctrl_c() -> None:
    # a suite started in the background of a shell without job control inherits Ctrl-C ignored, which
    # make ui's dagster dev would inherit in turn; a person's terminal delivers it
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _bash(script: str, cwd: Path, env: dict) -> str:
    """The script's output (stdout, then stderr)."""
    done = subprocess.run(["bash", "-c", MAKE + script], cwd=cwd, env=env, capture_output=True, text=True,
                          preexec_fn=_default_ctrl_c)
    assert done.returncode == 0, f"{script}\n--- stdout\n{done.stdout[-6000:]}\n--- stderr\n{done.stderr[-6000:]}"
    return done.stdout + done.stderr


@pytest.fixture
def repository(tmp_path) -> Path:
    """The files git tracks or would track (links as links), and this .venv, which counts as installed
    for the copy: its install files are dated before the venv's stamp (an install from the copy, by
    any make or sub-make, would point the shared venv's editable package at the copy)."""
    repo = tmp_path / "repo"
    for name in subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout.splitlines():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).is_symlink():
            (repo / name).symlink_to(os.readlink(ROOT / name))
        elif (ROOT / name).is_file():
            shutil.copy2(ROOT / name, repo / name)
    (repo / ".venv").symlink_to(ROOT / ".venv")
    for name in ("requirements.lock", "pyproject.toml"):
        os.utime(repo / name, (0, 0))
    return repo


@pytest.mark.e2e
@pytest.mark.timeout(1200)  # three runs of every asset (the demo, your own data with make and without)
def test_the_readme_getting_started_blocks_run_as_written(repository, small_dataset, tmp_path):
    home, logs = tmp_path / "home", tmp_path / "logs"
    logs.mkdir()
    stamp = (ROOT / ".venv" / ".installed").stat().st_mtime_ns
    (home / "Downloads").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUD_ASSETS_", "DAGSTER_HOME", "MAKE"))}
    env.update(HOME=str(home), LOGS=str(logs), UI_PORT=str(free_port()), SERVE_PORT=str(free_port()),
               DEMO_SIZE="--train 24 --test 4 --height 140 --width 210 --seed 1", DEMO_TRAIN="--epochs 1",
               CLOUD_ASSETS_AUDIT_FOLDS=os.environ["CLOUD_ASSETS_AUDIT_FOLDS"])  # the tests' fold count (conftest)

    # Quick start: the demo prints progress and where things are, not Dagster's DEBUG events
    quick = _blocks("Quick start", "bash")
    assert len(quick) == 1 and "make demo" in quick[0]
    out = _bash(quick[0], repository, env)
    assert (repository / "var" / "site" / "index.html").is_file()
    assert "make ui answered" in out and "Report site:" in out and "done report_site" in out
    assert "DEBUG" not in out and "STEP_START" not in out and "I0000" not in out, out
    assert "DEBUG" in (repository / "var" / "logs" / "dg-launch.log").read_text()  # kept in the log

    # Your own model and dataset: the README's example paths, replaced by a small dataset and a model
    data = tmp_path / "understanding_cloud_organization"
    shutil.copytree(small_dataset, data)
    model = tiny_keras(tmp_path / "classifier.keras")
    train = pd.read_csv(data / "train.csv", keep_default_na=False)
    image, _, cls = train[train["EncodedPixels"] != ""]["Image_Label"].iloc[0].rpartition("_")
    (home / "Downloads" / "label_review.csv").write_text(
        "image,class,decision,new_class,score,kind,reviewed_at\n"
        f"{image},{cls},accept,,0.9,spurious label,2026-12-01T00:00:00Z\n")
    own, without_make = _blocks("Your own model and dataset", "bash")

    def ours(block: str) -> str:
        block = block.replace("/data/understanding_cloud_organization", str(data))
        return re.sub(r"/models/\S+\.h5", str(model), block)

    out = _bash(ours(own), repository, env)
    var = repository / "var" / "datasets" / data.name
    assert f"Dagster home: {var}/dagster" in out
    assert "make ui answered" in out and "make serve answered" in out
    assert (data / "label_review.csv").is_file()
    corrected = pd.read_csv(var / "store" / "corrected_labels" / "train_corrected.csv", keep_default_na=False)
    assert corrected.set_index("Image_Label").loc[f"{image}_{cls}", "EncodedPixels"] == ""  # the accepted change
    assert (repository / "var" / "site" / "index.html").is_file()  # the demo's site is still there

    # the same run without make, on the same instance: every asset is up to date, only the sources observed
    runs = len(_runs(var / "dagster"))
    out = _bash(ours(without_make), repository, env)
    assert "every asset is up to date: nothing to materialize" in out, out[-3000:]
    assert [r.job_name for r in _runs(var / "dagster")[: -runs]] == ["observe_sources"]

    # From Python or Jupyter, on the instance of that dataset
    (notebook,) = _blocks("From Python or Jupyter", "python", (DOCS / "pages" / "assets.md").read_text())
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-c", notebook + "print(len(issues), cams.shape)"],
                          cwd=repository, env={**env, "DAGSTER_HOME": str(var / "dagster")}, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    count, _ = done.stdout.split(" ", 1)
    assert int(count) > 0
    assert (ROOT / ".venv" / ".installed").stat().st_mtime_ns == stamp  # the copy never reinstalled the venv


def test_the_readme_is_short_and_the_documentation_site_builds(tmp_path):
    """At most 250 lines; the rest in docs/pages/, every page in the nav, built --strict offline (make docs)."""
    assert len(README.splitlines()) <= 250
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "mkdocs"), "build", "--strict", "-f", str(DOCS / "mkdocs.yml"),
                           "-d", str(tmp_path / "docs")], capture_output=True, text=True,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    pages = {p.stem for p in (DOCS / "pages").glob("*.md")}
    assert {p.name for p in (tmp_path / "docs").iterdir() if (p / "index.html").is_file()} == pages - {"index"}
