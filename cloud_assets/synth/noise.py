"""Re-noise a synthetic dataset's labels from its `train_clean.csv` with a chosen noise model.

A noise model is a set of kinds, each with a rate and, for the mask kinds, a severity range:

    missing   a present class left unlabelled                       rate per label
    spurious  a box of typical size for a class the image lacks      rate per absent (image, class)
    swapped   a label given to another class (any other), mask kept  rate per label
    shifted   the box moved by a share of its size                   rate per label, shift 0.1-0.6
    wide      the box grown about its centre, or the union of
              several jittered, grown boxes (crowd annotation)       rate per label, growth 1.2-2.5
    small     a box covering only part of the pattern                rate per label, side share 0.3-0.7
    merged    two patches of one class drawn as one box              rate per label that has two patches

A spec is a mix's name (`MIXES`) or `kind=rate[:lo-hi],...`, e.g. `missing=0.05,wide=0.06:1.5-2.5`.
Each label gets at most one kind. Each image draws from its own random stream (the seed and its
name), so re-noising a subset of the images gives those images the labels a full re-noise would.
"""
from __future__ import annotations

from typing import Any

import dataclasses
import os
import shutil
import zlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from cloud_assets.lib.data import rle
from cloud_assets.lib.audit.kinds import NOISE_KINDS

LABEL_KINDS = ("missing", "swapped", "shifted", "wide", "small")  # drawn from one uniform per label, in this order
KINDS = NOISE_KINDS  # lib.audit.kinds: what each is, and which issue kind finds it
SEVERITY = {"shifted": (0.1, 0.6), "wide": (1.2, 2.5), "small": (0.3, 0.7)}
MIXES = {
    # drops, boxes where no pattern is, swaps between any two classes, partly shifted boxes
    "classic": "missing=0.05,spurious=0.03,swapped=0.03,shifted=0.05",
    # boxes grown or shrunk beside drops, swaps and spurious boxes
    "boxes": "missing=0.03,spurious=0.02,swapped=0.02,wide=0.06:1.5-2.5,small=0.05:0.3-0.5",
    # what crowd annotation does to boxes: too wide, merged, shifted a little, too small
    "crowd": "wide=0.08,merged=0.5,shifted=0.04:0.1-0.35,small=0.03",
    # every kind at once
    "all": "missing=0.03,spurious=0.02,swapped=0.02,shifted=0.03,wide=0.04,small=0.03,merged=0.3",
}
MANIFEST_COLUMNS = ("image", "class", "kind", "labelled_as", "severity", "detail")


@dataclasses.dataclass(frozen=True)
class NoiseSpec:
    rates: dict          # kind -> rate
    severity: dict       # kind -> (lo, hi)

    @classmethod
    def parse(cls, text: str) -> "NoiseSpec":
        """A mix's name or `kind=rate[:lo-hi],...`; raises ValueError naming the bad part."""
        text = MIXES.get(text.strip(), text)
        rates, severity = {}, dict(SEVERITY)
        for part in filter(None, (p.strip() for p in text.split(","))):
            kind, sep, value = part.partition("=")
            if not sep or kind not in KINDS:
                raise ValueError(f"noise spec {text!r}: {part!r} is not kind=rate with a kind of {list(KINDS)} "
                                 f"(or name a mix: {list(MIXES)})")
            rate, _, rng = value.partition(":")
            try:
                rates[kind] = float(rate)
                if rng:
                    lo, hi = (float(v) for v in rng.split("-"))
                    severity[kind] = (lo, hi)
            except ValueError:
                raise ValueError(f"noise spec {text!r}: {part!r}: expected a rate like 0.05 and an optional "
                                 f"severity range like :0.1-0.6") from None
            if not 0 <= rates[kind] <= 1:
                raise ValueError(f"noise spec {text!r}: the rate of {kind} must lie in [0, 1]")
        if sum(rates.get(k, 0) for k in LABEL_KINDS) > 1:
            raise ValueError(f"noise spec {text!r}: the rates of {', '.join(LABEL_KINDS)} add up to more than 1")
        return cls(rates, severity)


def _components(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Bounding boxes `(y0, x0, y1, x1)` of the mask's connected patches, largest first."""
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=4)
    boxes = [(s[cv2.CC_STAT_AREA], (s[1], s[0], s[1] + s[3], s[0] + s[2])) for s in stats[1:n]]
    return [(int(y0), int(x0), int(y1), int(x1)) for _, (y0, x0, y1, x1) in sorted(boxes, key=lambda ab: -ab[0])]


def _clip(box, shape):
    h, w = shape
    y0, x0, y1, x1 = (int(round(v)) for v in box)
    y0, x0 = min(max(y0, 0), h - 1), min(max(x0, 0), w - 1)
    return y0, x0, max(min(y1, h), y0 + 1), max(min(x1, w), x0 + 1)


def _fill(shape, boxes) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    for y0, x0, y1, x1 in boxes:
        out[y0:y1, x0:x1] = 1
    return out


def _scaled(box, fy, fx, shape, dy=0.0, dx=0.0):
    y0, x0, y1, x1 = box
    cy, cx, hh, hw = (y0 + y1) / 2 + dy, (x0 + x1) / 2 + dx, (y1 - y0) * fy / 2, (x1 - x0) * fx / 2
    return _clip((cy - hh, cx - hw, cy + hh, cx + hw), shape)


def _shift(rng, mask, box, share, shape):
    """The patch moved by `share` of its size along one or both axes, towards the side with room."""
    y0, x0, y1, x1 = box
    h, w = shape
    axes = [(0,), (1,), (0, 1)][int(rng.integers(3))]
    d = [0, 0]
    for a, (lo, hi, size, full) in enumerate(((y0, y1, y1 - y0, h), (x0, x1, x1 - x0, w))):
        if a in axes:
            room_neg, room_pos = lo, full - hi
            sign = rng.choice([-1, 1]) if min(room_neg, room_pos) >= share * size else (1 if room_pos > room_neg else -1)
            d[a] = int(round(sign * share * size))
    patch = np.zeros(shape, np.uint8)
    patch[y0:y1, x0:x1] = mask[y0:y1, x0:x1]
    moved = np.zeros_like(patch)
    src = patch[max(0, -d[0]):h - max(0, d[0]), max(0, -d[1]):w - max(0, d[1])]
    moved[max(0, d[0]):max(0, d[0]) + src.shape[0], max(0, d[1]):max(0, d[1]) + src.shape[1]] = src
    out = mask.copy()
    out[y0:y1, x0:x1] = 0
    return out | moved


def _wide(rng, mask, box, growth, shape):
    """Grown about its centre, or (half the time) the union of 2-4 jittered boxes grown up to `growth`."""
    if rng.random() < 0.5:
        return mask | _fill(shape, [_scaled(box, growth, growth, shape)]), "grown"
    y0, x0, y1, x1 = box
    sigma = (growth - 1) / 4
    boxes = [_scaled(box, *rng.uniform(1, growth, 2), shape,
                     *(rng.normal(0, sigma, 2) * (y1 - y0, x1 - x0))) for _ in range(int(rng.integers(2, 5)))]
    return mask | _fill(shape, boxes), "crowd"


def _small(rng, mask, box, share, shape):
    y0, x0, y1, x1 = box
    bh, bw = max(1, int((y1 - y0) * share)), max(1, int((x1 - x0) * share))
    ny, nx = y0 + int(rng.integers(0, y1 - y0 - bh + 1)), x0 + int(rng.integers(0, x1 - x0 - bw + 1))
    out = mask.copy()
    out[y0:y1, x0:x1] = 0
    out[ny:ny + bh, nx:nx + bw] = 1
    return out


def _image_rng(seed: int, image: str):
    return np.random.default_rng([seed, zlib.crc32(image.encode())])


def renoise(clean: pd.DataFrame, spec: NoiseSpec, seed: int, shape: tuple[int, int],
            images=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train.csv rows, manifest) from clean `Image_Label,EncodedPixels` rows; only `images` (default:
    all) are re-noised, the rest keep their clean labels. `shape` is the images' (height, width)."""
    df = clean[["Image_Label", "EncodedPixels"]].copy()
    parts = df["Image_Label"].str.rpartition("_")
    df["image"], df["class"] = parts[0], parts[2]
    classes = list(dict.fromkeys(df["class"]))
    encoded = df.set_index(["image", "class"])["EncodedPixels"].to_dict()
    chosen = set(df["image"]) if images is None else set(images)
    sizes = _typical_sizes(encoded, shape)
    new, manifest = dict(encoded), []
    for image in dict.fromkeys(df["image"]):
        if image in chosen:
            rows = _renoise_image(_image_rng(seed, image), image, classes, encoded, spec, shape, sizes, new)
            manifest += rows
    df["EncodedPixels"] = [new[(i, c)] for i, c in zip(df["image"], df["class"])]
    return (df[["Image_Label", "EncodedPixels"]].reset_index(drop=True),
            pd.DataFrame(manifest, columns=list(MANIFEST_COLUMNS)))


def _typical_sizes(encoded: dict, shape, n: int = 200) -> np.ndarray:
    """(height, width) shares of the image of up to `n` clean patches: spurious boxes take these sizes."""
    sizes = []
    for enc in [e for e in encoded.values() if not rle.is_empty(e)][:n]:
        for y0, x0, y1, x1 in _components(rle.decode(enc, shape))[:1]:
            sizes.append(((y1 - y0) / shape[0], (x1 - x0) / shape[1]))
    return np.array(sizes or [(0.5, 0.45)])


def _renoise_image(rng, image, classes, encoded, spec, shape, sizes, new) -> list[tuple]:
    rate = spec.rates.get
    masks: dict[str, Any] = {c: rle.decode(encoded[(image, c)], shape) if not rle.is_empty(encoded.get((image, c), ""))
                             else None for c in classes}
    present = [c for c in classes if masks[c] is not None]
    out = dict(masks)
    manifest: list[tuple] = []
    swaps: list[tuple[str, str]] = []
    for c in present:
        boxes = _components(masks[c])
        u = rng.random()
        if len(boxes) > 1 and rng.random() < rate("merged", 0):
            merged = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
                      max(b[3] for b in boxes))
            out[c] = _fill(shape, [merged])
            manifest.append((image, c, "merged", c, float(len(boxes)), f"{len(boxes)} patches in one box"))
            continue
        edges = np.cumsum([rate(k, 0) for k in LABEL_KINDS])
        kind = LABEL_KINDS[int(np.searchsorted(edges, u, side="right"))] if u < edges[-1] else None
        if kind is None:
            continue
        box = boxes[int(rng.integers(len(boxes)))]
        lo, hi = spec.severity.get(kind, (0, 0))
        sev = float(rng.uniform(lo, hi))
        detail = ""
        if kind == "missing":
            out[c] = None
        elif kind == "swapped":
            swaps.append((c, str(rng.choice([k for k in classes if k != c]))))
            continue
        elif kind == "shifted":
            out[c] = _shift(rng, masks[c], box, sev, shape)
        elif kind == "wide":
            out[c], detail = _wide(rng, masks[c], box, sev, shape)
        elif kind == "small":
            out[c] = _small(rng, masks[c], box, sev, shape)
        manifest.append((image, c, kind, "" if kind == "missing" else c, round(sev, 3) if kind in SEVERITY else "",
                         detail))
    for c in classes:
        if masks[c] is None and rng.random() < rate("spurious", 0):
            bh, bw = sizes[int(rng.integers(len(sizes)))] * shape
            y0, x0 = rng.uniform(0, shape[0] - bh), rng.uniform(0, shape[1] - bw)
            out[c] = _fill(shape, [_clip((y0, x0, y0 + bh, x0 + bw), shape)])
            manifest.append((image, c, "spurious", c, "", ""))
    for a, _ in swaps:  # every swapped label leaves first, so that a chain a -> b -> c keeps a's mask in b
        out[a] = None
    for a, b in swaps:
        out[b] = masks[a] if out[b] is None else (out[b] | masks[a])
        manifest.append((image, a, "swapped", b, "", ""))
    if present and all(out[c] is None for c in classes):  # every image keeps a label: undo one drop
        keep = next(r for r in manifest if r[2] == "missing")
        out[keep[1]] = masks[keep[1]]
        manifest.remove(keep)
    for c in classes:
        new[(image, c)] = "" if out[c] is None else rle.encode(out[c])
    return manifest


def _link_tree(src: Path, dst: Path):
    """`dst` as a tree of hard links to `src`'s files (copies where the file system refuses links)."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.iterdir()):
        target = dst / f.name
        if target.exists():
            continue
        try:
            os.link(f, target)
        except OSError:
            shutil.copy2(f, target)


def renoise_dataset(data: str | Path, out: str | Path, spec: str, seed: int) -> pd.DataFrame:
    """Write `out`: `data`'s images (hard links), its `train_clean.csv`, and `train.csv` plus
    `label_noise.csv` re-noised by `spec`, whole or not at all. Returns the manifest."""
    from cloud_assets.lib.files import written_folder
    from cloud_assets.lib.data.images import jpeg_size
    from cloud_assets.synth.dataset import DATASET_FILES, write_csv

    data, out = Path(data), Path(out)
    clean_path = data / "train_clean.csv"
    if not clean_path.is_file():
        raise FileNotFoundError(f"{clean_path}: not found; renoise needs a synthetic dataset's clean labels "
                                f"(cloud-assets synth writes train_clean.csv)")
    if out.resolve() == data.resolve():
        raise ValueError(f"{out}: the output must be another folder than the dataset it re-noises")
    noise = NoiseSpec.parse(spec)
    clean = pd.read_csv(clean_path, dtype=str, keep_default_na=False)
    first = next((data / "train_images").glob("*.jpg"), None)
    if first is None:
        raise FileNotFoundError(f"{data / 'train_images'}: no .jpg images")
    shape = jpeg_size(first)
    rows, manifest = renoise(clean, noise, seed, shape)
    with written_folder(out, replaces=DATASET_FILES) as tmp:
        for split in ("train_images", "test_images"):
            if (data / split).is_dir():
                _link_tree(data / split, tmp / split)
        write_csv(tmp / "train_clean.csv", rows.columns, clean[list(rows.columns)].itertuples(index=False))
        write_csv(tmp / "train.csv", rows.columns, rows.itertuples(index=False))
        write_csv(tmp / "label_noise.csv", manifest.columns, manifest.itertuples(index=False))
    return manifest
