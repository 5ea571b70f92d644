"""Each bad input stops the run with a message naming the file and row or image, and leaves the
previous materialization in place."""
import os

import numpy as np
import pytest

from cloud_assets.lib.store import Store
from tests.helpers import checks, failure_message, materialize


def _rewrite_row(data, line, new):
    path = data / "train.csv"
    lines = path.read_text().splitlines()
    lines[line - 1] = new
    path.write_text("\n".join(lines) + "\n")
    return path


def _first_labelled(data):
    lines = (data / "train.csv").read_text().splitlines()
    return next(i for i, l in enumerate(lines, 1) if i > 1 and not l.endswith(","))


CSV_FAULTS = {
    "no_columns": (lambda d, n: (d / "train.csv").write_text("a,b\n1,2\n"), "missing column(s)", "train_csv_schema"),
    "no_class": (lambda d, n: _rewrite_row(d, n, "0000000.jpg,"), "must be '<image>_<class>'", "train_csv_schema"),
    "unknown_class": (lambda d, n: _rewrite_row(d, n, "0000000.jpg_Cumulus,"), "unknown class 'Cumulus'",
                      "train_csv_schema"),
    "odd_rle": (lambda d, n: _rewrite_row(d, n, "0000000.jpg_Fish,1 2 3"), "odd number of fields", "rle_valid"),
    "not_numbers": (lambda d, n: _rewrite_row(d, n, "0000000.jpg_Fish,1 two"), "not a non-negative integer",
                    "rle_valid"),
    "out_of_bounds": (lambda d, n: _rewrite_row(d, n, "0000000.jpg_Fish,183700 200"), "beyond the 350x525 image",
                      "rle_valid"),
    "overlapping": (lambda d, n: _rewrite_row(d, n, "0000000.jpg_Fish,1 10 5 10"), "inside run 1", "rle_valid"),
    "unsorted": (lambda d, n: _rewrite_row(d, n, "0000000.jpg_Fish,100 10 5 10"), "must be sorted", "rle_valid"),
}


@pytest.fixture
def materialized(dataset_copy, tmp_path):
    var = tmp_path / "var"
    assert materialize(dataset_copy, var).success
    store = Store(var / "store")
    before = {name: os.readlink(store.root / name) for name in os.listdir(store.root) if not name.startswith(".")}
    return dataset_copy, var, store, before


def _assert_previous_intact(store, before, failed=tuple(["label_table"])):
    """The failed asset and everything downstream of it still point at the previous values."""
    downstream = {"label_table": ["label_table", "train_val_split", "image_cache", "val_masks", "dark_image_counts"],
                  "image_cache": ["image_cache", "dark_image_counts"]}[failed[0]]
    assert {n: os.readlink(store.root / n) for n in downstream} == {n: before[n] for n in downstream}
    assert store.get("image_cache").array("val").shape[1:] == (224, 224, 3)
    assert len(store.get("label_table").table("labels"))


@pytest.mark.parametrize("fault", sorted(CSV_FAULTS))
def test_train_csv_faults(materialized, fault):
    data, var, store, before = materialized
    damage, message, check = CSV_FAULTS[fault]
    line = _first_labelled(data)
    damage(data, line)
    result = materialize(data, var)
    assert not result.success
    text = failure_message(result)
    assert message in text and str(data / "train.csv") in text
    if fault != "no_columns":
        assert f"line {line} " in text
    assert not checks(result)[check].passed
    assert message in checks(result)[check].metadata["details"].value
    assert not result.get_asset_materialization_events()  # nothing downstream ran or was stored
    _assert_previous_intact(store, before)


IMAGE_FAULTS = {
    "missing": (lambda p: p.unlink(), "labelled image is missing"),
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "truncated"),
    "png_renamed": (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100), "PNG; expected a JPEG"),
    "zero_bytes": (lambda p: p.write_bytes(b""), "empty file"),
}


@pytest.mark.parametrize("fault", sorted(IMAGE_FAULTS))
def test_image_faults(materialized, fault):
    data, var, store, before = materialized
    damage, message = IMAGE_FAULTS[fault]
    victim = sorted((data / "train_images").iterdir())[3]
    damage(victim)
    result = materialize(data, var)
    assert not result.success
    text = failure_message(result)
    assert message in text and str(victim) in text
    assert not checks(result)["images_readable"].passed
    _assert_previous_intact(store, before, failed=("image_cache",))


def test_unexpected_image_size_warns_and_still_caches(materialized):
    import cv2

    data, var, store, _ = materialized
    victim = sorted((data / "train_images").iterdir())[5]
    cv2.imwrite(str(victim), np.full((100, 150, 3), 80, np.uint8))
    result = materialize(data, var)
    assert result.success
    check = checks(result)["image_size"]
    assert not check.passed and check.severity.value == "WARN"
    assert f"{victim}: size 100x150, expected 350x525" in check.metadata["details"].value


def test_dataset_folder_that_does_not_exist(tmp_path):
    result = materialize(tmp_path / "nowhere", tmp_path / "var")
    assert not result.success
    assert f"{tmp_path / 'nowhere'}: dataset folder does not exist" in failure_message(result)
