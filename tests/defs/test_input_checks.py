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


def _duplicate_row(data, line):
    lines = (data / "train.csv").read_text().splitlines()
    return _rewrite_row(data, line + 1, lines[line - 1])


CSV_FAULTS = {
    "no_columns": (lambda d, n: (d / "train.csv").write_text("a,b\n1,2\n"), "missing column(s)", "train_csv_schema"),
    "empty": (lambda d, n: (d / "train.csv").write_text(""), "empty file; expected the header", "train_csv_schema"),
    "duplicate": (_duplicate_row, "duplicate of line", "train_csv_schema"),
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
    if fault not in ("no_columns", "empty"):
        assert f"line {line + (fault == 'duplicate')} " in text
    assert not checks(result)[check].passed
    assert message in checks(result)[check].metadata["details"].value
    assert not result.get_asset_materialization_events()  # nothing downstream ran or was stored
    _assert_previous_intact(store, before)


def _imwrite(path, image, ext=".jpg"):
    import cv2

    path.write_bytes(cv2.imencode(ext, image)[1].tobytes())


def _sixteen_bit_header(path):
    """A JPEG whose frame header declares 16-bit samples (libjpeg-turbo decodes 8-bit only)."""
    data = bytearray(path.read_bytes())
    data[data.find(b"\xff\xc0") + 4] = 16
    path.write_bytes(bytes(data))


def _cmyk(path):
    from PIL import Image

    Image.fromarray(np.full((350, 525, 3), 120, np.uint8)).convert("CMYK").save(path, format="JPEG")


IMAGE_FAULTS = {
    "missing": (lambda p: p.unlink(), "labelled image is missing"),
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "truncated"),
    "png_renamed": (lambda p: _imwrite(p, np.zeros((350, 525, 3), np.uint8), ".png"), "PNG; expected a JPEG"),
    "png_16bit_renamed": (lambda p: _imwrite(p, np.zeros((350, 525), np.uint16), ".png"), "PNG; expected a JPEG"),
    "jpeg_16bit": (_sixteen_bit_header, "16-bit samples; expected an 8-bit JPEG"),
    "zero_bytes": (lambda p: p.write_bytes(b""), "empty file"),
    "far_smaller": (lambda p: _imwrite(p, np.zeros((20, 30, 3), np.uint8)),
                    "size 20x30 is far smaller than the dataset's 350x525"),
    "far_larger": (lambda p: _imwrite(p, np.zeros((1500, 2250, 3), np.uint8)),
                   "size 1500x2250 is far larger than the dataset's 350x525"),
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


IMAGE_WARNINGS = {
    "other_size": (lambda p: _imwrite(p, np.full((100, 150, 3), 80, np.uint8)), "image_size",
                   "size 100x150, expected 350x525"),
    "grayscale": (lambda p: _imwrite(p, np.full((350, 525), 80, np.uint8)), "image_color",
                  "grayscale JPEG; expected 3-channel color"),
    "cmyk": (_cmyk, "image_color", "CMYK JPEG; expected 3-channel color"),
}


@pytest.mark.parametrize("fault", sorted(IMAGE_WARNINGS))
def test_image_warnings_still_cache(materialized, fault):
    data, var, store, _ = materialized
    damage, name, message = IMAGE_WARNINGS[fault]
    victim = sorted((data / "train_images").iterdir())[5]
    damage(victim)
    result = materialize(data, var)
    assert result.success
    check = checks(result)[name]
    assert not check.passed and check.severity.value == "WARN"
    assert f"{victim}: {message}" in check.metadata["details"].value


def test_dataset_folder_without_images(materialized):
    data, var, store, before = materialized
    for p in (data / "train_images").iterdir():
        p.unlink()
    result = materialize(data, var)
    assert not result.success
    assert f"{data / 'train_images'}: no readable .jpg images; expected the labelled images" in failure_message(result)
    _assert_previous_intact(store, before)


def test_dataset_folder_that_does_not_exist(tmp_path):
    result = materialize(tmp_path / "nowhere", tmp_path / "var")
    assert not result.success
    assert f"{tmp_path / 'nowhere'}: dataset folder does not exist" in failure_message(result)


def test_what_the_dataset_leaves_out_is_a_warning_naming_it(materialized):
    """A class row missing from train.csv, a train image it never names, no test_images/: the audit
    runs on what there is, and the check dataset_complete says what was left out."""
    data, var, store, _ = materialized
    lines = (data / "train.csv").read_text().splitlines()
    line = _first_labelled(data)
    image = lines[line - 1].split(",")[0].rpartition("_")[0]
    (data / "train.csv").write_text("\n".join(lines[:line - 1] + lines[line:]) + "\n")
    unlisted = sorted((data / "train_images").iterdir())[0].with_name("zzzzzzz.JPG")
    unlisted.write_bytes(sorted((data / "train_images").iterdir())[0].read_bytes())
    for p in (data / "test_images").iterdir():
        p.unlink()
    (data / "test_images").rmdir()
    result = materialize(data, var)
    assert result.success
    check = checks(result)["dataset_complete"]
    assert not check.passed and check.severity.value == "WARN"
    details = check.metadata["details"].value
    assert f"({image!r}): no row for" in details and f"{unlisted}: not in train.csv" in details
    assert f"{data / 'test_images'}: no such folder; the test split is empty" in details
