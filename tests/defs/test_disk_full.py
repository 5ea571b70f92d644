"""A full disk while an asset writes its arrays: the step fails with a message that says so, its
staging folder is removed, and the previous value stays readable. The disk is a small tmpfs,
mounted in a private mount namespace (`unshare`), so no privileges are needed."""
import json
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e  # the end-to-end tier (make test-fast leaves it out)

SCRIPT = r"""
import json, os, shutil, subprocess, sys
from pathlib import Path
sys.path.insert(0, os.getcwd())
from tests.helpers import failure_message, materialize
from cloud_assets.lib.store import Store

data, var = Path(sys.argv[1]), Path(sys.argv[2])
var.mkdir(parents=True, exist_ok=True)
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(var)], check=True)
out = {"first": materialize(data, var).success}
store = Store(var / "store")
before = {n: os.readlink(store.root / n) for n in os.listdir(store.root) if not n.startswith(".")}
free = shutil.disk_usage(var).free
with open(var / "ballast", "wb") as f:  # leave 1 MiB: the image arrays no longer fit
    f.write(b"\0" * (free - 2 ** 20))
result = materialize(data, var)
out.update(second=result.success, message=failure_message(result),
           staging=os.listdir(store.root / ".staging"),
           intact={n: os.readlink(store.root / n) == before[n] for n in before},
           readable=float(store.get("image_cache").array("val").astype("float64").sum()) > 0)
(var / "ballast").unlink()
out["third"] = materialize(data, var).success
print("RESULT " + json.dumps(out))
"""


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux's unshare")
def test_disk_full_while_writing_an_array(small_dataset, tmp_path):
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", sys.executable, "-c", SCRIPT,
                           str(small_dataset), str(tmp_path / "var")], cwd=root, capture_output=True, text=True,
                          timeout=600)
    lines = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
    assert lines, done.stdout[-3000:] + done.stderr[-3000:]
    out = json.loads(lines[-1].removeprefix("RESULT "))
    assert out["first"] and not out["second"] and out["third"]
    assert f"{tmp_path / 'var' / 'store'}: no space left on the device while writing 'image_cache'" in out["message"]
    assert "the previous value is kept" in out["message"]
    assert out["staging"] == []
    assert out["intact"]["image_cache"] and out["intact"]["dark_image_counts"] and out["readable"]
