"""The noise-model zoo: every kind does what it says to the clean labels, and the manifest says it."""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from cloud_assets.lib.data import labels, rle
from cloud_assets.synth import SynthConfig, synthesize
from cloud_assets.synth.noise import KINDS, MIXES, NoiseSpec, renoise

SHAPE = (70, 105)


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    """A tiny dataset where many classes come as two patches (so that `merged` has something to merge)."""
    out = tmp_path_factory.mktemp("twins")
    synthesize(out, SynthConfig(train=40, test=2, height=SHAPE[0], width=SHAPE[1], seed=4, workers=1, twin_rate=0.5),
               progress=lambda m: None)
    return out


def _clean(folder):
    return pd.read_csv(folder / "train_clean.csv", dtype=str, keep_default_na=False)


def _masks(rows):
    return {k: rle.decode(v, SHAPE) for k, v in zip(rows["Image_Label"], rows["EncodedPixels"])}


def _bbox(mask):
    ys, xs = np.nonzero(mask)
    return ys.min(), xs.min(), ys.max() + 1, xs.max() + 1


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_changes_exactly_the_labels_it_names(twins, kind):
    clean = _clean(twins)
    rows, manifest = renoise(clean, NoiseSpec.parse(f"{kind}=1"), 7, SHAPE)
    assert len(manifest) and set(manifest["kind"]) == {kind}
    before, after = _masks(clean), _masks(rows)
    named = {f"{i}_{c}" for i, c in zip(manifest["image"], manifest["class"])}
    named |= {f"{i}_{a}" for i, a, k in zip(manifest["image"], manifest["labelled_as"], manifest["kind"])
              if k == "swapped"}
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    assert changed <= named
    for image, cls, _, labelled_as, severity, detail in manifest.itertuples(index=False):
        old, new = before[f"{image}_{cls}"], after[f"{image}_{cls}"]
        if kind == "missing":
            assert old.any() and not new.any()
        elif kind == "spurious":
            assert not old.any() and new.any() and (new.sum() == np.prod(np.subtract(_bbox(new)[2:], _bbox(new)[:2])))
        elif kind == "swapped":
            targets = set(manifest.loc[manifest["image"] == image, "labelled_as"])
            assert (after[f"{image}_{labelled_as}"] >= old).all() and (cls in targets or not new.any())
        elif kind == "shifted":
            assert new.sum() <= old.sum() and (new & ~old).any() and 0.1 <= float(severity) <= 0.6
        elif kind == "wide":
            assert (new >= old).all() and new.sum() > old.sum() and detail in ("grown", "crowd")
        elif kind == "small":
            assert (new <= _fill_bbox(old)).all() and new.sum() < old.sum()
        elif kind == "merged":
            assert (new >= old).all() and new.sum() == np.prod(np.subtract(_bbox(new)[2:], _bbox(new)[:2]))
    # every image keeps a label
    labelled = rows.assign(image=rows["Image_Label"].str.rpartition("_")[0]).groupby("image")["EncodedPixels"]
    assert labelled.apply(lambda e: (e != "").any()).all()


def _fill_bbox(mask):
    out = np.zeros_like(mask)
    y0, x0, y1, x1 = _bbox(mask)
    out[y0:y1, x0:x1] = 1
    return out


def test_a_subset_gets_the_labels_a_full_renoise_gives_it(twins):
    clean = _clean(twins)
    spec = NoiseSpec.parse("all")
    full, full_manifest = renoise(clean, spec, 3, SHAPE)
    images = sorted(set(clean["Image_Label"].str.rpartition("_")[0]))[::3]
    part, part_manifest = renoise(clean, spec, 3, SHAPE, images=images)
    mine = part["Image_Label"].str.rpartition("_")[0].isin(images)
    assert part[mine].equals(full[mine])
    assert part[~mine].equals(clean.loc[~mine, ["Image_Label", "EncodedPixels"]])
    assert part_manifest.reset_index(drop=True).equals(
        full_manifest[full_manifest["image"].isin(images)].reset_index(drop=True))


def test_spec_parsing():
    assert NoiseSpec.parse("missing=0.1,wide=0.2:1.5-2").severity["wide"] == (1.5, 2.0)
    assert set(NoiseSpec.parse("crowd").rates) == {"wide", "merged", "shifted", "small"}
    assert set(MIXES) == {"classic", "boxes", "crowd", "all"}
    for bad, message in (("blurry=0.1", "kind=rate"), ("missing=lots", "expected a rate"),
                         ("missing=1.5", "must lie in"), ("missing=0.6,small=0.6", "add up to more than 1")):
        with pytest.raises(ValueError, match=message):
            NoiseSpec.parse(bad)


def test_renoise_cli_writes_a_dataset(twins, tmp_path):
    out = tmp_path / "renoised"
    run = subprocess.run([sys.executable, "-m", "cloud_assets.cli", "renoise", "--data", str(twins), "--out", str(out),
                          "--noise", "classic", "--seed", "2"], capture_output=True, text=True, check=True)
    assert "label errors" in run.stdout
    assert sorted(p.name for p in (out / "train_images").iterdir()) == \
        sorted(p.name for p in (twins / "train_images").iterdir())
    manifest = pd.read_csv(out / "label_noise.csv", keep_default_na=False)
    assert list(manifest.columns) == ["image", "class", "kind", "labelled_as", "severity", "detail"]
    assert set(manifest["kind"]) <= {"missing", "spurious", "swapped", "shifted"}
    assert labels.check_rows(labels.read_train_csv(out / "train.csv"), out / "train.csv",
                             ("Fish", "Flower", "Gravel", "Sugar"), SHAPE) == []
    bad = subprocess.run([sys.executable, "-m", "cloud_assets.cli", "renoise", "--data", str(tmp_path / "nothing"),
                          "--out", str(tmp_path / "x"), "--noise", "classic"], capture_output=True, text=True)
    assert bad.returncode == 2 and "train_clean.csv" in bad.stderr
