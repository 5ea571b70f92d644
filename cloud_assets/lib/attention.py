"""Where the classifier looked: the share of a saliency map's energy inside the class's own mask,
inside other classes' masks, outside every mask, and on black no-data pixels.

The four regions partition the image, in this order of precedence: no-data (channel 0 == 0, the
seed's "dark" pixel), own mask, other classes' masks, outside. Shares sum to 1; a map with no
energy has every share 0.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from cloud_assets.lib.progress import Progress, Report
from cloud_assets.lib.store import release

REGIONS = ("own", "other", "outside", "nodata")


def shares(maps: np.ndarray, own: np.ndarray, other: np.ndarray, nodata: np.ndarray) -> np.ndarray:
    """float32 `(n, 4)` energy shares (own, other, outside, nodata) of non-negative `maps` `(n, H, W)`,
    with boolean `own`, `other` (union of the other classes' masks) and `nodata` of the same shape."""
    maps = np.asarray(maps, np.float32)
    nodata = nodata.astype(bool)
    own_r = own.astype(bool) & ~nodata
    other_r = other.astype(bool) & ~nodata & ~own_r
    total = maps.sum(axis=(1, 2))
    parts = np.stack([(maps * own_r).sum(axis=(1, 2)), (maps * other_r).sum(axis=(1, 2)),
                      (maps * nodata).sum(axis=(1, 2))], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        own_s, other_s, nodata_s = (np.where(total[:, None] > 0, parts / total[:, None], 0.0)).T
    outside = np.where(total > 0, np.clip(1 - own_s - other_s - nodata_s, 0, 1), 0.0)
    return np.stack([own_s, other_s, outside, nodata_s], axis=1).astype(np.float32)


def pointing_hit(maps: np.ndarray, own: np.ndarray) -> np.ndarray:
    """Pointing game: True where the map's maximum lies inside the own mask (False for an empty map)."""
    flat = maps.reshape(len(maps), -1)
    peak = flat.argmax(axis=1)
    return own.reshape(len(own), -1)[np.arange(len(own)), peak].astype(bool) & (flat.max(axis=1) > 0)


def top_other_class(maps: np.ndarray, masks: np.ndarray, c: int) -> np.ndarray:
    """Per image, the index of the other class whose mask holds most of the map's energy (-1: none)."""
    energy = np.stack([(maps * masks[k]).sum(axis=(1, 2)) if k != c else np.zeros(len(maps))
                       for k in range(len(masks))], axis=1)
    return np.where(energy.max(axis=1) > 0, energy.argmax(axis=1), -1)


def attention_table(gradcam: np.ndarray, guided_backprop: np.ndarray, masks: np.ndarray, images: np.ndarray,
                    class_names, image_names, batch: int = 64, report: Report | None = None) -> pd.DataFrame:
    """One row per (image, class): shares for Grad-CAM (`cam_*`) and Guided Grad-CAM (`ggc_*`),
    the Grad-CAM pointing-game hit, and the other class whose mask draws most Grad-CAM energy.

    `gradcam` `(classes, n, H, W)`, `guided_backprop` `(n, H, W)`, `masks` `(classes, n, H, W)` 0/1,
    `images` uint8 BGR `(n, H, W, 3)` (no-data: channel 0 == 0). Processed in batches of images,
    memory-mapped inputs released after each: memory does not grow with n.
    """
    rows = []
    n = gradcam.shape[1]
    progress = Progress(n, report)
    for start in range(0, n, batch):
        sl = slice(start, min(start + batch, n))
        m = masks[:, sl].astype(bool)
        nd = np.asarray(images[sl][..., 0]) == 0
        gb = np.asarray(guided_backprop[sl], np.float32)
        for c, name in enumerate(class_names):
            cam = np.asarray(gradcam[c, sl], np.float32)
            other = np.zeros_like(m[c])
            for k in range(len(class_names)):
                if k != c:
                    other |= m[k]
            cam_s = shares(cam, m[c], other, nd)
            ggc_s = shares(cam * gb, m[c], other, nd)
            top = top_other_class(cam, m, c)
            frame = pd.DataFrame({"index": np.arange(sl.start, sl.stop), "image": np.asarray(image_names)[sl],
                                  "class": name, "class_index": c})
            for j, region in enumerate(REGIONS):
                frame[f"cam_{region}"] = cam_s[:, j]
            for j, region in enumerate(REGIONS):
                frame[f"ggc_{region}"] = ggc_s[:, j]
            frame["pointing_hit"] = pointing_hit(cam, m[c])
            frame["other_class"] = [class_names[k] if k >= 0 else "" for k in top]
            rows.append(frame)
        release(gradcam, guided_backprop, masks, images)
        progress.advance(sl.stop - sl.start)
    return pd.concat(rows, ignore_index=True).sort_values(["index", "class_index"]).reset_index(drop=True)
