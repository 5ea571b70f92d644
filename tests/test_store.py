import os

import numpy as np
import pandas as pd
import pytest

from cloud_assets.lib.store import Store


def test_publish_replaces_atomically_and_removes_the_previous(tmp_path):
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
    assert not v1.path.exists()
    assert os.path.islink(tmp_path / "thing")


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
