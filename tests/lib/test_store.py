import os

import numpy as np
import pandas as pd
import pytest

from cloud_assets.lib.store import Store


def test_publish_replaces_atomically_keeps_the_replaced_value_and_removes_older_ones(tmp_path):
    store = Store(tmp_path)
    first = store.stage("thing")
    first.put("a", np.arange(5))
    first.put("t", pd.DataFrame({"x": [1, 2]}))
    first.put("meta", {"n": np.int64(2)})
    v1 = store.publish("thing", first)
    assert store.get("thing").array("a").tolist() == [0, 1, 2, 3, 4]
    assert store.get("thing").table("t")["x"].tolist() == [1, 2]
    assert store.get("thing").json("meta") == {"n": 2}

    second = store.stage("thing")
    arr = second.new_array("a", (3,), np.int16)
    arr[:] = 7
    arr.flush()
    store.publish("thing", second)
    assert store.get("thing").array("a").tolist() == [7, 7, 7]
    assert v1.array("a").tolist() == [0, 1, 2, 3, 4]  # a run that resolved it before can still read it
    assert os.path.islink(tmp_path / "thing")
    third = store.stage("thing")
    third.put("a", np.zeros(1))
    store.publish("thing", third)
    assert not v1.path.exists()
    assert len(list((tmp_path / ".versions").glob("thing__*"))) == 2


def test_an_abandoned_staging_bundle_never_shows(tmp_path):
    store = Store(tmp_path)
    good = store.stage("thing")
    good.put("a", np.ones(2))
    store.publish("thing", good)
    half = store.stage("thing")
    half.new_array("a", (10 ** 6,), np.float32)  # a run that dies here
    assert store.get("thing").array("a").tolist() == [1.0, 1.0]
    store.discard(half)
    assert not half.path.exists()


def test_missing_value_names_the_asset(tmp_path):
    with pytest.raises(FileNotFoundError, match="'val_masks' has not been materialized yet"):
        Store(tmp_path).get("val_masks")


def test_staging_left_by_a_dead_process_is_swept_and_a_live_ones_is_not(tmp_path):
    import subprocess
    import sys

    store = Store(tmp_path)
    code = ("import sys, time; from cloud_assets.lib.store import Store; "
            "b = Store(sys.argv[1]).stage('thing'); print(b.path, flush=True); time.sleep(float(sys.argv[2]))")
    live = subprocess.Popen([sys.executable, "-c", code, str(tmp_path), "60"], stdout=subprocess.PIPE, text=True)
    try:
        live_path = live.stdout.readline().strip()
        dead = subprocess.run([sys.executable, "-c", code, str(tmp_path), "0"], capture_output=True, text=True,
                              check=True).stdout.strip()
        assert os.path.isdir(dead) and os.path.isdir(live_path)
        mine = store.stage("other")
        assert not os.path.exists(dead) and os.path.isdir(live_path) and mine.path.is_dir()
    finally:
        live.kill()
        live.wait()
    store.stage("other")
    assert not os.path.exists(live_path)


def test_a_failure_while_staging_discards_the_folder(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(RuntimeError):
        with store.staging("thing") as staged:
            staged.put("a", np.ones(3))
            raise RuntimeError("boom")
    assert not staged.path.exists()


def test_a_value_declares_each_part_once_and_refuses_an_undeclared_one(tmp_path):
    from cloud_assets.lib.data.rle import ValMasks
    from cloud_assets.lib.store import Array, Table, Value

    class Example(Value):
        masks = Array("val", axis=1)
        images = Table("val")
        summary = Table()

    store = Store(tmp_path / "store")
    with store.staging("example") as staged:
        masks = Example.masks.new(staged, (2, 3, 4, 4), np.uint8)
        masks[:] = 1
        masks.flush()
        Example.images.put(staged, pd.DataFrame({"image": ["a", "b", "c"]}))
    value = Example(store.publish("example", staged))
    assert value.masks.shape == (2, 3, 4, 4) and list(value.images["image"]) == ["a", "b", "c"]
    assert Example.layout() == ({"masks": ("val", 1)}, {"images": "val"})  # what a sharded value is put together by
    assert ValMasks.layout() == Example.layout()
    with pytest.raises(KeyError, match="Example: no part named mask"):
        Example.of(mask=np.zeros(1))


def test_no_part_name_is_written_outside_its_value_declaration():
    """Assets and the report read and write every part through its declaration (`lib.store.Value`):
    a renamed part fails at import, not at run time in an end-to-end test."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "cloud_assets"
    found = [f"{path.relative_to(root)}:{n}: {line.strip()}" for path in root.rglob("*.py")
             if path.name not in ("store.py", "shards.py")
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if re.search(r"""\.(table|array|json|put|new_array)\(f?["']""", line)]
    assert not found, "\n".join(found)


def _publish_many(root, worker, count):
    store = Store(root)
    for i in range(count):
        with store.staging("value") as staged:
            staged.put("who", {"worker": worker, "i": i})
        store.publish("value", staged)
        with store._versions_locked():  # between two publishes (a reader racing two more may not find its
            assert (root / "value").exists()  # version): the name never points at a removed version


def test_two_processes_publishing_one_name_at_once_never_leave_it_dangling(tmp_path):
    """Two runs materializing the same asset at once: each publish switches the name and sweeps old
    versions; interleaved without a lock, one run's sweep removed the version the other had just
    published, leaving the name pointing at nothing."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_publish_many, args=(tmp_path, w, 100)) for w in range(3)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(600)
        assert p.exitcode == 0
    store = Store(tmp_path)
    assert store.get("value").json("who")["i"] == 99
    assert len(list((tmp_path / ".versions").glob("value__*"))) <= 2
