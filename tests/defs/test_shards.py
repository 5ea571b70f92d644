"""Shards: the graph materialized in one run over four shards (`dg launch --partition-range`, as
`make demo` does) gives the unsharded run's results; a new model re-runs only the model's shards
(what follows them, once they are updated)."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from cloud_assets.lib import shards
from cloud_assets.lib.shards import Shards
from cloud_assets.lib.store import Store
from tests.helpers import dagster_home, dg_run, fold_audit, run_env, tiny_keras

pytestmark = pytest.mark.e2e  # the end-to-end tier (make test-fast leaves it out)

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PER_IMAGE = ("image_cache", "val_masks", "val_predictions", "saliency_maps", "mask_attention")


def _env(data, model, out: Path, n: int) -> dict:
    return {**run_env(dagster_home(out), data, model, shards=n), "VIRTUAL_ENV": str(BIN.parent)}


def _launch(env, n: int, log: Path):
    keys = shards.keys(n)
    extra = ["--partition-range", f"{keys[0]}...{keys[-1]}"] if n > 1 else []
    with open(log, "w") as f:
        done = dg_run(env, "launch", "--job", "observe_model_file", stdout=f, stderr=subprocess.STDOUT)
        assert done.returncode == 0, log.read_text()[-3000:]
        for selection, options in (("not group:audit+", extra), ("label_issues+", [])):
            if options == []:  # what label_issues reads: the dataset's fold audit
                fold_audit(env["CLOUD_ASSETS_DATA_DIR"], env["CLOUD_ASSETS_VAR_DIR"])
            done = dg_run(env, "launch", "--assets", selection, *options, stdout=f, stderr=subprocess.STDOUT)
            assert done.returncode == 0, log.read_text()[-3000:]


def _value(store: Store, name: str):
    parts = sorted(p.name for p in store.root.iterdir() if p.name.startswith(f"{name}@"))
    return Shards({p.split("@")[1]: store.get(p) for p in parts}) if parts else store.get(name)


def test_four_shards_give_the_unsharded_results_and_a_new_model_reruns_only_its_shards(small_dataset, tmp_path):
    model = tiny_keras(tmp_path / "model.keras")
    env1, env4 = _env(small_dataset, model, tmp_path / "one", 1), _env(small_dataset, model, tmp_path / "four", 4)
    _launch(env1, 1, tmp_path / "one.log")
    _launch(env4, 4, tmp_path / "four.log")
    one, four = Store(tmp_path / "one" / "var" / "store"), Store(tmp_path / "four" / "var" / "store")

    # each per-image asset is four values, each holding the images of its shard only
    for name in PER_IMAGE:
        assert not (one.root / f"{name}@0").exists() and [(four.root / f"{name}@{k}").exists() for k in "0123"] == [True] * 4
    for k in "0123":
        names = four.get(f"image_cache@{k}").table("val_names")["image"]
        assert (shards.assign(names, 4) == int(k)).all()

    # read whole, the shards are the unsharded values, bit for bit
    for name, arrays in (("image_cache", ("train", "val", "test")), ("val_masks", ("masks",)),
                         ("saliency_maps", ("guided_backprop", "gradcam")),
                         ("val_predictions", ("probabilities", "y_true"))):
        whole, sharded = one.get(name), _value(four, name)
        for a in arrays:
            u, v = whole.array(a), sharded.array(a)
            assert u.shape == v.shape and np.array_equal(np.asarray(u), np.asarray(v)), (name, a)
    assert _value(four, "val_predictions").table("images").equals(one.get("val_predictions").table("images"))

    # the dataset-wide assets: the same ranked label issues, mistakes, thresholds and counts
    for name, table in (("label_issues", "issues"), ("mistakes", "mistakes"), ("threshold_maps", "maps"),
                        ("confusion_matrices", "matrices"), ("dark_image_counts", "images"),
                        ("dark_image_counts", "per_class"), ("fp_class_distribution", "distribution"),
                        ("fn_class_distribution", "distribution")):
        assert one.get(name).table(table).equals(four.get(name).table(table)), name
    assert (tmp_path / "four" / "var" / "site" / "issues.html").exists()

    # a new model: the model's shards and what follows them, not the images or the masks
    tiny_keras(model)
    script = textwrap.dedent("""
        import json, os, dagster as dg
        from cloud_assets.definitions import build_defs
        from cloud_assets.settings import Settings
        defs = build_defs(Settings.from_env(os.environ))
        with dg.DagsterInstance.get() as instance:
            first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
            assert defs.resolve_job_def("observe_model_file").execute_in_process(instance=instance).success
            result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
            print(json.dumps({r.key.to_user_string(): sorted(r.true_subset.expensively_compute_partition_keys())
                              if r.true_subset.is_partitioned else [] for r in result.results
                              if result.get_num_requested(r.key)}))
        """)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env4, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    requested = json.loads(done.stdout.strip().splitlines()[-1])
    # every shard of the model's assets now; the dataset-wide ones follow once those are updated
    assert requested == {k: ["0", "1", "2", "3"] for k in ("val_predictions", "saliency_maps", "mask_attention")}


def test_shards_read_back_in_the_unsharded_order_in_memory_or_image_by_image(tmp_path, monkeypatch):
    import pandas as pd

    names = [f"{i:04d}.jpg" for i in range(23)]
    rng = np.random.default_rng(0)
    images, masks = rng.integers(0, 255, (23, 4, 5, 3), np.uint8), rng.integers(0, 2, (3, 23, 4, 5), np.uint8)
    store = Store(tmp_path)
    bundles = {}
    for key in shards.keys(3):
        subset, positions = shards.select(names, key, 3)
        with store.staging("x") as staged:
            staged.put("val", images[positions])
            staged.put("masks", masks[:, positions])
            staged.put("val_names", pd.DataFrame({"image": subset}))
            for name, value in shards.layout({"val": positions}, arrays={"val": ("val", 0), "masks": ("val", 1)},
                                             tables={"val_names": "val"}).items():
                staged.put(name, value)
        bundles[key] = store.publish(f"x@{key}", staged)
    whole = Shards(bundles)
    assert list(whole.table("val_names")["image"]) == names
    assert np.array_equal(whole.array("val"), images) and np.array_equal(whole.array("masks"), masks)
    monkeypatch.setattr(shards, "IN_MEMORY", 0)  # large arrays: indexed image by image
    val, m = whole.array("val"), whole.array("masks")
    assert val.shape == images.shape and m.shape == masks.shape
    assert all(np.array_equal(val[i], images[i]) and np.array_equal(m[:, i], masks[:, i]) and
               np.array_equal(m[2, i], masks[2, i]) for i in range(23))
