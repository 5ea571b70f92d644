import re

import cv2
import numpy as np
import pandas as pd
import pytest

from cloud_assets.lib.data import rle
from cloud_assets.lib.store import Store
from cloud_assets.eval import notebook
from cloud_assets.settings import SettingError, Settings
from tests.helpers import DATA_ASSETS, checks, failure_message, materialize


def test_data_assets_reproduce_the_notebook(small_dataset, tmp_path):
    result = materialize(small_dataset, tmp_path / "var")
    assert result.success
    assert all(c.passed for c in checks(result).values())
    store = Store(tmp_path / "var" / "store")
    split = store.get("train_val_split").table("split")
    val = list(split.loc[split["split"] == "val", "image"])
    cache = store.get("image_cache")
    assert list(cache.table("val_names")["image"]) == val
    val_imgs = cache.array("val")
    assert val_imgs.dtype == np.uint8 and val_imgs.shape == (len(val), 224, 224, 3)
    for i, name in enumerate(val):  # the notebook's get_img, before its /255
        ref = notebook.get_img(small_dataset / "train_images" / name)
        assert np.array_equal(val_imgs[i].astype(np.float32) / 255.0, ref)

    masks = store.get("val_masks").array("masks")
    df = pd.read_csv(small_dataset / "train.csv")
    assert masks.shape == (4, len(val), 224, 224)
    for c, cls in enumerate(["Fish", "Flower", "Sugar", "Gravel"]):
        for i, name in enumerate(val):
            assert np.array_equal(masks[c, i], notebook.make_mask(df, f"{name}_{cls}", (350, 525))), (cls, name)

    dark = store.get("dark_image_counts")
    table = store.get("label_table").table("labels").set_index("image")
    notebook_counts = [0] * 4
    for name in split["image"]:
        if notebook.is_dark(notebook.get_img(small_dataset / "train_images" / name)):
            for c in np.flatnonzero(table.loc[name, ["Fish", "Flower", "Sugar", "Gravel"]].to_numpy()):
                notebook_counts[c] += 1
    assert list(dark.table("per_class")["dark_images"]) == notebook_counts and sum(notebook_counts) > 0
    test_dark = sum(notebook.is_dark(notebook.get_img(p)) for p in (small_dataset / "test_images").glob("*.jpg"))
    per_split = dark.table("per_split").set_index("split")["dark_images"]
    assert per_split["test"] == test_dark

    meta = {e.asset_key.path[-1]: e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert "Fish" in meta["label_table"]["class_frequencies"].value
    assert meta["image_cache"]["val_images"].value == len(val)
    assert meta["val_masks"]["shape"].value == str(masks.shape)


def test_cloud_assets_input_size_sets_the_cache_and_mask_size(small_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("CLOUD_ASSETS_INPUT_SIZE", "96x144")  # height x width, not square
    result = materialize(small_dataset, tmp_path / "var", assets=DATA_ASSETS[:4])
    assert result.success
    store = Store(tmp_path / "var" / "store")
    names = list(store.get("image_cache").table("val_names")["image"])
    val_imgs = store.get("image_cache").array("val")
    assert val_imgs.shape == (len(names), 96, 144, 3)
    for i, name in enumerate(names[:5]):
        ref = cv2.resize(cv2.imread(str(small_dataset / "train_images" / name)), (144, 96))
        assert np.array_equal(val_imgs[i], ref)
    masks = store.get("val_masks").array("masks")
    assert masks.shape == (4, len(names), 96, 144)
    df = pd.read_csv(small_dataset / "train.csv").set_index("Image_Label")["EncodedPixels"]
    for c, cls in enumerate(["Fish", "Flower", "Sugar", "Gravel"]):
        for i, name in enumerate(names[:5]):
            ref = cv2.resize(rle.decode(df[f"{name}_{cls}"], (350, 525)), (144, 96))
            assert np.array_equal(masks[c, i], ref), (cls, name)

    monkeypatch.setenv("CLOUD_ASSETS_INPUT_SIZE", "96")  # fails the load, before any run
    with pytest.raises(SettingError, match=re.escape("CLOUD_ASSETS_INPUT_SIZE='96': expected HEIGHTxWIDTH, e.g. 224x224")):
        materialize(small_dataset, tmp_path / "var2", assets=DATA_ASSETS[:3])
    monkeypatch.delenv("CLOUD_ASSETS_INPUT_SIZE")  # as the launchpad's resource config may: the step that reads it
    result = materialize(small_dataset, tmp_path / "var2", assets=DATA_ASSETS[:3], settings=Settings().replace(input_size="96"))
    assert not result.success
    assert "dataset.input_size (CLOUD_ASSETS_INPUT_SIZE)='96': expected HEIGHTxWIDTH" in failure_message(result)
