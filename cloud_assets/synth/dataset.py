"""Write a synthetic dataset in the Kaggle layout, with a manifest of the label errors injected.

    DIR/train.csv          Image_Label,EncodedPixels; 4 rows per image (Fish, Flower, Gravel, Sugar)
    DIR/train_images/*.jpg DIR/test_images/*.jpg  (7 hex characters, like the real names)
    DIR/label_noise.csv    image,class,kind,labelled_as  - every injected error
    DIR/train_clean.csv    train.csv as it would be without the injected errors

Frequencies follow the real data (DESIGN.md): images carrying Sugar/Gravel/Fish/Flower about
68/53/50/43 %, labels per image 1/2/3/4 about 24/43/28/5 %. Each pattern is an irregular,
soft-edged region of texture filling most of its box; its mask is the union of 1-3 boxes drawn
around that box by "labellers" who each miss a little, so a mask covers its region only roughly.
"""
from __future__ import annotations

from typing import Any

import contextlib
import csv
import dataclasses
import functools
import logging
import multiprocessing
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from cloud_assets.lib.files import written_folder
from cloud_assets.synth import textures

log = logging.getLogger(__name__)

DATASET_FILES = {"train.csv", "train_clean.csv", "label_noise.csv", "train_images", "test_images"}  # what synth writes
CSV_CLASSES = ("Fish", "Flower", "Gravel", "Sugar")  # the row order within an image in train.csv
CLASS_WEIGHT = {"Fish": 0.50, "Flower": 0.43, "Gravel": 0.53, "Sugar": 0.68}
LABELS_PER_IMAGE = ((1, 0.243), (2, 0.428), (3, 0.281), (4, 0.048))
IRREGULARITY = 0.3  # how far a pattern's outline wanders from the ellipse in its box (0: an ellipse)
CONFUSABLE = {"Gravel": ("Sugar", "Fish"), "Sugar": ("Gravel",), "Fish": ("Gravel",), "Flower": ("Sugar",)}


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    train: int = 5546
    test: int = 3698
    height: int = 1400
    width: int = 2100
    seed: int = 0
    missing_rate: float = 0.05   # share of present patterns left unlabelled
    swap_rate: float = 0.02      # share of labels given to a confusable class instead
    shift_rate: float = 0.01     # share of masks drawn beside their pattern
    band_rate: float = 0.06      # share of images with a black no-data band
    dark_rate: float = 0.01      # share of images whose band covers at least a third
    twin_rate: float = 0.0       # share of patterns drawn as two separate patches of their class
    quality: int = 90            # JPEG quality
    workers: int = 0             # 0: one per core


@dataclasses.dataclass
class Pattern:
    cls: str
    box: tuple[int, int, int, int]          # y0, x0, y1, x1 of the texture
    clean_boxes: list[tuple[int, int, int, int]]   # the labellers' boxes around the pattern
    mask_boxes: list[tuple[int, int, int, int]]    # the boxes in train.csv (shifted ones differ)
    labelled_as: str | None                  # None: left unlabelled
    noise: str | None = None                 # missing / swapped / shifted


@dataclasses.dataclass
class ImageSpec:
    name: str
    split: str
    patterns: list[Pattern]
    band: tuple[str, float] | None           # (edge, fraction) of a black no-data band
    seed: int


def _hex_names(n: int, rng) -> list[str]:
    names: set[str] = set()
    while len(names) < n:
        names.update(f"{v:07x}.jpg" for v in rng.integers(0, 16 ** 7, n - len(names)))
    ordered = sorted(names)  # a set iterates in string-hash order, which changes with every interpreter
    return [ordered[i] for i in rng.permutation(len(ordered))]


def _box(rng, h, w):
    bh, bw = int(h * rng.uniform(0.25, 0.75)), int(w * rng.uniform(0.2, 0.7))
    y0, x0 = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
    return y0, x0, y0 + bh, x0 + bw


def _twin_boxes(rng, h, w):
    """Two boxes of one class, side by side with a gap, for two patches of a pattern."""
    if rng.random() < 0.5:  # left and right
        bw, gap = int(w * rng.uniform(0.15, 0.3)), int(w * rng.uniform(0.05, 0.15))
        bh = int(h * rng.uniform(0.25, 0.6))
        x0 = int(rng.integers(0, max(1, w - 2 * bw - gap)))
        ys = rng.integers(0, h - bh + 1, 2)
        return [(int(ys[0]), x0, int(ys[0]) + bh, x0 + bw), (int(ys[1]), x0 + bw + gap, int(ys[1]) + bh, x0 + 2 * bw + gap)]
    bh, gap = int(h * rng.uniform(0.15, 0.3)), int(h * rng.uniform(0.05, 0.15))
    bw = int(w * rng.uniform(0.2, 0.55))
    y0 = int(rng.integers(0, max(1, h - 2 * bh - gap)))
    xs = rng.integers(0, w - bw + 1, 2)
    return [(y0, int(xs[0]), y0 + bh, int(xs[0]) + bw), (y0 + bh + gap, int(xs[1]), y0 + 2 * bh + gap, int(xs[1]) + bw)]


def _labeller_boxes(rng, box, h, w, shift=False):
    y0, x0, y1, x1 = box
    bh, bw = y1 - y0, x1 - x0
    if shift:  # a box drawn beside the pattern
        dy, dx = rng.choice([-1, 1], 2) * rng.uniform(0.35, 0.6, 2) * (bh, bw)
        return [_clip((y0 + dy, x0 + dx, y1 + dy, x1 + dx), h, w)]
    out = []
    for _ in range(int(rng.integers(1, 4))):
        j = rng.normal(0, 0.06, 4) * (bh, bw, bh, bw)
        out.append(_clip((y0 + j[0], x0 + j[1], y1 + j[2], x1 + j[3]), h, w))
    return out


def _clip(b, h, w):
    y0, x0, y1, x1 = (int(round(v)) for v in b)
    y0, y1 = sorted((min(max(y0, 0), h - 2), min(max(y1, 1), h)))
    x0, x1 = sorted((min(max(x0, 0), w - 2), min(max(x1, 1), w)))
    return y0, x0, max(y1, y0 + 1), max(x1, x0 + 1)


def plan(cfg: SynthConfig) -> list[ImageSpec]:
    """Every image's patterns, labels, noise and band, decided up front from the seed."""
    rng = np.random.default_rng(cfg.seed)
    names = _hex_names(cfg.train + cfg.test, rng)
    counts, probs = zip(*LABELS_PER_IMAGE)
    specs = []
    for i, name in enumerate(names):
        split = "train" if i < cfg.train else "test"
        k = int(rng.choice(counts, p=probs))
        w = np.array([CLASS_WEIGHT[c] for c in CSV_CLASSES])
        classes = rng.choice(CSV_CLASSES, size=k, replace=False, p=w / w.sum())
        patterns = []
        for cls in classes:
            box = _box(rng, cfg.height, cfg.width)
            noise: str | None = None
            labelled: str | None = str(cls)
            if split == "train":
                u = rng.random()
                if u < cfg.missing_rate:
                    noise, labelled = "missing", None
                elif u < cfg.missing_rate + cfg.swap_rate:
                    noise, labelled = "swapped", str(rng.choice(CONFUSABLE[cls]))
                elif u < cfg.missing_rate + cfg.swap_rate + cfg.shift_rate:
                    noise = "shifted"
            # drawn only when asked for, so that a dataset without twins keeps its seed's random stream
            if noise is None and cfg.twin_rate > 0 and rng.random() < cfg.twin_rate:
                for twin in _twin_boxes(rng, cfg.height, cfg.width):
                    clean = _labeller_boxes(rng, twin, cfg.height, cfg.width)
                    patterns.append(Pattern(str(cls), twin, clean, clean, labelled, None))
                continue
            clean = _labeller_boxes(rng, box, cfg.height, cfg.width)
            drawn = _labeller_boxes(rng, box, cfg.height, cfg.width, shift=True) if noise == "shifted" else clean
            patterns.append(Pattern(str(cls), box, clean, drawn, labelled, noise))
        if split == "train" and all(p.labelled_as is None for p in patterns):
            patterns[0].labelled_as, patterns[0].noise = patterns[0].cls, None  # every image keeps a label
        has_fish = any(p.cls == "Fish" for p in patterns)
        band = None
        u = rng.random()
        # no-data bands are twice as likely over Fish, the bias the reference notebook found
        scale = 2.0 if has_fish else 0.7
        if u < cfg.dark_rate * scale:
            band = (str(rng.choice(["top", "bottom", "left", "right"])), float(rng.uniform(0.4, 0.6)))
        elif u < cfg.band_rate * scale:
            band = (str(rng.choice(["top", "bottom", "left", "right"])), float(rng.uniform(0.03, 0.25)))
        specs.append(ImageSpec(name, split, patterns, band, int(rng.integers(0, 2 ** 63))))
    return specs


def _region(shape, box, feather_px, rng):
    """The pattern's area as a 0..1 field: an irregular region that fills most of its box and is cut
    by it (an ellipse inscribed in the box whose outline wanders with smooth noise, so that it bulges
    to the box's edges in places and falls short in others), its edges feathered over `feather_px`.
    Drawn at 1/8 size (cheap); the labellers' boxes are drawn around the box, so a mask covers the
    region only roughly, as the real annotators' boxes do."""
    h, w = shape
    sh, sw = max(2, h // 8), max(2, w // 8)
    y0, x0, y1, x1 = box
    ys, xs = y0 * sh // h, x0 * sw // w
    ye, xe = max(ys + 1, y1 * sh // h), max(xs + 1, x1 * sw // w)
    bh, bw = ye - ys, xe - xs
    ny, nx = np.meshgrid((np.arange(bh) + 0.5) / bh * 2 - 1, (np.arange(bw) + 0.5) / bw * 2 - 1, indexing="ij")
    wobble = textures.smooth_noise((bh, bw), max(2.0, min(bh, bw) / 3), rng)
    small = np.zeros((sh, sw), np.float32)
    small[ys:ye, xs:xe] = np.hypot(ny, nx) + IRREGULARITY * wobble < 1.05
    small = cv2.GaussianBlur(small, (0, 0), max(0.5, feather_px / 8))
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


@functools.lru_cache(maxsize=2)
def _sensor_noise(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One frame of Gaussian sensor noise (sigma 2.5) as saturating uint8 +/- parts, made once."""
    noise = np.random.default_rng(12345).normal(0, 2.5, (height, width)).round()
    pos, neg = np.clip(noise, 0, 255).astype(np.uint8), np.clip(-noise, 0, 255).astype(np.uint8)
    return cv2.merge([pos] * 3), cv2.merge([neg] * 3)


def render(spec: ImageSpec, height: int, width: int) -> np.ndarray:
    """The BGR uint8 image of one spec: dark ocean, faint clutter, each pattern in its box.

    Cloud fields are drawn at no more than 1050 px wide (finer than Sugar's elements at that
    size) and upsampled; sensor noise is added at full size.
    """
    rng = np.random.default_rng(spec.seed)
    f = min(1.0, 1050 / width)
    shape = (int(round(height * f)), int(round(width * f)))
    km = shape[1] / 2100
    ocean = np.array([rng.uniform(40, 70), rng.uniform(28, 45), rng.uniform(15, 30)], np.float32)
    # unorganised haze and specks everywhere, so that cloud amount alone says little
    cloud = 0.08 * np.clip(textures.smooth_noise(shape, 300 * km, rng) + 0.5, 0, None)
    for p in spec.patterns:
        # brightness and cover drawn from one distribution for every class: only texture tells them apart
        field = textures.TEXTURES[p.cls](shape, km, rng) * rng.uniform(0.55, 0.95)
        box = tuple(int(round(v * f)) for v in p.box)
        cloud = np.maximum(cloud, field * _region(shape, box, 25 * km, rng))
    cloud = np.maximum(cloud, textures.sugar(shape, km, rng) * 0.12)[..., None]
    sun = 1 + 0.08 * textures.smooth_noise(shape, 700 * km, rng)[..., None]
    white = np.array([235, 238, 240], np.float32)
    img: np.ndarray = np.clip((ocean * sun) * (1 - cloud) + white * cloud, 0, 255).astype(np.uint8)
    if f < 1:
        img = cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)
    # sensor noise: one cached frame, rolled by a random offset per image
    pos, neg = _sensor_noise(height, width)
    dy, dx = int(rng.integers(height)), int(rng.integers(width))
    img = cv2.subtract(cv2.add(img, np.roll(pos, (dy, dx), (0, 1))), np.roll(neg, (dx % height, dy % width), (0, 1)))
    if spec.band:
        edge, frac = spec.band
        n = int((height if edge in ("top", "bottom") else width) * frac)
        band: dict[str, Any] = {"top": np.s_[:n], "bottom": np.s_[height - n:], "left": np.s_[:, :n],
                                "right": np.s_[:, width - n:]}
        img[band[edge]] = 0
    return img


def boxes_rle(boxes, shape) -> str:
    """RLE of the union of boxes `(y0, x0, y1, x1)`, equal to `rle.encode` of their mask, without the mask."""
    h, w = shape
    edges = sorted({0, w, *(b[1] for b in boxes), *(b[3] for b in boxes)})
    starts, lengths = [], []
    for c0, c1 in zip(edges[:-1], edges[1:]):  # columns between box edges share their row runs
        rows = sorted((y0, y1) for y0, x0, y1, x1 in boxes if x0 <= c0 and c1 <= x1)
        merged: list[list[int]] = []
        for y0, y1 in rows:
            if merged and y0 <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], y1)
            else:
                merged.append([y0, y1])
        cols = np.arange(c0, c1)
        for y0, y1 in merged:
            starts.append(cols * h + y0)
            lengths.append(np.full(len(cols), y1 - y0))
    if not starts:
        return ""
    starts, lengths = np.concatenate(starts), np.concatenate(lengths)
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], starts[order] + lengths[order]
    # a run that ends where the next starts (full-height columns) is one run, as encode() writes it
    keep = np.r_[True, starts[1:] != ends[:-1]]
    run_id = np.cumsum(keep) - 1
    run_starts = starts[keep]
    run_ends = np.zeros(len(run_starts), np.int64)
    np.maximum.at(run_ends, run_id, ends)
    return " ".join(f"{a + 1} {b - a}" for a, b in zip(run_starts, run_ends))


def label_rows(specs: list[ImageSpec], shape, clean: bool = False) -> list[tuple[str, str]]:
    """train.csv rows: 4 per train image in CSV_CLASSES order; `clean` ignores the injected noise."""
    rows = []
    for s in specs:
        if s.split != "train":
            continue
        boxes: dict[str, list] = {c: [] for c in CSV_CLASSES}
        for p in s.patterns:
            if clean:
                boxes[p.cls] += p.clean_boxes
            elif p.labelled_as:
                boxes[p.labelled_as] += p.mask_boxes
        for c in CSV_CLASSES:
            rows.append((f"{s.name}_{c}", boxes_rle(boxes[c], shape) if boxes[c] else ""))
    return rows


def noise_rows(specs: list[ImageSpec]) -> list[tuple[str, str, str, str]]:
    return [(s.name, p.cls, p.noise, p.labelled_as or "") for s in specs for p in s.patterns if p.noise]


def _write_image(job):
    spec, folder, height, width, quality = job
    img = render(spec, height, width)
    path = Path(folder) / spec.name
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    tmp = path.with_suffix(".jpg.tmp")
    tmp.write_bytes(buf.tobytes())
    os.replace(tmp, path)
    return len(buf)


def write_csv(path: Path, header, rows):
    """A CSV file of `header` and `rows`, written under a temporary name and renamed."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(tmp, path)


def synthesize(out: str | Path, cfg: SynthConfig = SynthConfig(), progress=print) -> dict:
    """Write the dataset to `out`, whole or not at all (a dataset written before is replaced only at
    the end; a folder holding anything else is refused); returns counts. Uses every core; reports
    progress every few seconds."""
    with written_folder(Path(out), replaces=DATASET_FILES) as tmp:
        progress(f"synth: writing {cfg.train} train + {cfg.test} test images at {cfg.height}x{cfg.width} to {out}")
        return _synthesize(tmp, cfg, progress)


def _synthesize(out: Path, cfg: SynthConfig, progress) -> dict:
    specs = plan(cfg)
    shape = (cfg.height, cfg.width)
    for split in ("train", "test"):
        (out / f"{split}_images").mkdir(parents=True, exist_ok=True)
    write_csv(out / "train.csv", ("Image_Label", "EncodedPixels"), label_rows(specs, shape))
    write_csv(out / "train_clean.csv", ("Image_Label", "EncodedPixels"), label_rows(specs, shape, clean=True))
    write_csv(out / "label_noise.csv", ("image", "class", "kind", "labelled_as"), noise_rows(specs))
    jobs = [(s, out / f"{s.split}_images", cfg.height, cfg.width, cfg.quality) for s in specs]
    workers = cfg.workers or os.cpu_count() or 1
    start, last, total_bytes = time.monotonic(), 0.0, 0
    with contextlib.ExitStack() as stack:
        sizes: Iterator[int]
        if workers == 1:
            sizes = map(_write_image, jobs)
        else:
            # fresh interpreters (forking a process that has threads, TensorFlow's or a test runner's,
            # can hang), shut down by sentinels rather than signals, and an error, not a hang, if a
            # worker dies
            spawn = multiprocessing.get_context("spawn")
            pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=spawn))
            sizes = pool.map(_write_image, jobs, chunksize=4)
        for done, size in enumerate(sizes, 1):
            total_bytes += size
            now = time.monotonic()
            if now - last > 5 or done == len(jobs):
                last = now
                rate = done / (now - start)
                progress(f"synth: {done}/{len(jobs)} images, {rate:.1f}/s, ETA {(len(jobs) - done) / rate:.0f}s")
    return {"train": cfg.train, "test": cfg.test, "noisy_labels": len(noise_rows(specs)),
            "mean_jpeg_kb": total_bytes / max(1, len(jobs)) / 1024, "seconds": time.monotonic() - start}
