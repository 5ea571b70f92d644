import pytest
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from cloud_assets.lib.data import labels, rle
from cloud_assets.synth import SynthConfig, synthesize
from cloud_assets.synth.dataset import CSV_CLASSES


def test_kaggle_layout(small_dataset):
    df = pd.read_csv(small_dataset / "train.csv", keep_default_na=False)
    assert list(df.columns) == ["Image_Label", "EncodedPixels"]
    images = df["Image_Label"].str.rpartition("_")[0]
    classes = df["Image_Label"].str.rpartition("_")[2]
    assert len(df) == 4 * 48 and list(classes[:4]) == list(CSV_CLASSES)
    assert (classes.to_numpy().reshape(-1, 4) == np.array(CSV_CLASSES)).all()
    names = sorted(p.name for p in (small_dataset / "train_images").iterdir())
    assert names == sorted(images.unique())
    assert all(re.fullmatch(r"[0-9a-f]{7}\.jpg", n) for n in names)
    assert len(list((small_dataset / "test_images").glob("*.jpg"))) == 8
    img = cv2.imread(str(small_dataset / "train_images" / names[0]))
    assert img.shape == (350, 525, 3)
    assert labels.check_rows(labels.read_train_csv(small_dataset / "train.csv"), small_dataset / "train.csv",
                             CSV_CLASSES, (350, 525)) == []
    # masks are unions of boxes: one run per column
    enc = next(e for e in df["EncodedPixels"] if e)
    starts, ends = rle.parse(enc, (350, 525))
    assert ((ends - starts) <= 350).all()


def test_noise_manifest_explains_every_difference_from_the_clean_labels(small_dataset):
    noisy = pd.read_csv(small_dataset / "train.csv", keep_default_na=False).set_index("Image_Label")["EncodedPixels"]
    clean = pd.read_csv(small_dataset / "train_clean.csv", keep_default_na=False).set_index("Image_Label")["EncodedPixels"]
    manifest = pd.read_csv(small_dataset / "label_noise.csv", keep_default_na=False)
    assert set(manifest["kind"]) <= {"missing", "swapped", "shifted"} and len(manifest)
    explained = set()
    for img, cls, kind, as_ in manifest.itertuples(index=False):
        explained.add(f"{img}_{cls}")
        if kind == "swapped":
            explained.add(f"{img}_{as_}")
        if kind == "missing":
            assert clean[f"{img}_{cls}"] != "" and f"{img}_{cls}" in noisy.index
    differs = set(noisy.index[noisy != clean])
    assert differs <= explained and differs


@pytest.mark.e2e
def test_deterministic_for_a_seed(tmp_path):
    """Whatever the worker count and the interpreter's string-hash seed (a set of names iterates in
    hash order): the same seed writes the same files."""
    a, b = tmp_path / "a", tmp_path / "b"
    for out, workers, hash_seed in ((a, "2", "1"), (b, "1", "2")):
        subprocess.run([sys.executable, "-m", "cloud_assets.cli", "synth", "--out", str(out), "--train", "6",
                        "--test", "2", "--height", "70", "--width", "105", "--seed", "9", "--workers", workers],
                       check=True, capture_output=True, env={**os.environ, "PYTHONHASHSEED": hash_seed})
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


def _features(path: Path):
    im = cv2.resize(cv2.imread(str(path)), (224, 224)).astype(np.float32)
    colour = np.r_[im.mean((0, 1)), im.std((0, 1))]
    gray, prev, texture = im.mean(2), im.mean(2), []
    for sigma in (0.7, 1.5, 3, 6, 12):  # band-pass energy per scale
        blurred = cv2.GaussianBlur(gray, (0, 0), sigma)
        band, prev = prev - blurred, blurred
        texture += [np.abs(band).mean(), np.sqrt((band ** 2).mean()), np.percentile(np.abs(band), 90)]
    return colour, np.array(texture)


@pytest.mark.e2e
def test_classes_are_told_apart_by_texture_not_colour(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    synthesize(tmp_path, SynthConfig(train=240, test=0, height=350, width=525, seed=11), progress=lambda m: None)
    table = labels.label_table(labels.read_train_csv(tmp_path / "train_clean.csv"), CSV_CLASSES)
    feats = [_features(tmp_path / "train_images" / n) for n in table["image"]]

    def mean_auc(X):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        return np.mean([cross_val_score(model, X, table[c], cv=4, scoring="roc_auc").mean() for c in CSV_CLASSES])

    colour = mean_auc(np.array([f[0] for f in feats]))
    texture = mean_auc(np.array([f[1] for f in feats]))
    assert colour < 0.75, colour          # channel means and stds: little better than chance
    assert texture > colour + 0.15, (colour, texture)


def test_full_size_images_have_real_jpeg_sizes(tmp_path):
    summary = synthesize(tmp_path, SynthConfig(train=3, test=1, seed=1, workers=1), progress=lambda m: None)
    assert cv2.imread(str(next((tmp_path / "train_images").iterdir()))).shape == (1400, 2100, 3)
    assert 250 <= summary["mean_jpeg_kb"] <= 600


def test_boxes_rle_equals_encoding_the_mask():
    from cloud_assets.synth.dataset import boxes_rle

    rng = np.random.default_rng(4)
    for shape in [(30, 40), (350, 525)]:
        for _ in range(50):
            boxes = []
            for _ in range(rng.integers(1, 4)):
                y0, x0 = rng.integers(0, shape[0] - 1), rng.integers(0, shape[1] - 1)
                boxes.append((y0, x0, rng.integers(y0 + 1, shape[0] + 1), rng.integers(x0 + 1, shape[1] + 1)))
            if rng.random() < 0.2:
                boxes.append((0, 3, shape[0], 9))  # full-height columns: runs that join up
            mask = np.zeros(shape, np.uint8)
            for y0, x0, y1, x1 in boxes:
                mask[y0:y1, x0:x1] = 1
            assert boxes_rle(boxes, shape) == rle.encode(mask)
