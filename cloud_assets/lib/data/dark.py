"""Dark (no-data) images, the notebook's definition: at least a third of the model-size image's
pixels have channel 0 (blue, in OpenCV's BGR) exactly 0."""
from __future__ import annotations

import numpy as np

from cloud_assets.constants import ARRAY_BATCH
from cloud_assets.lib.store import Table, Value, release

DARK_SHARE = 1 / 3


def black_fraction(images: np.ndarray, batch: int = ARRAY_BATCH) -> np.ndarray:
    """float32 `(n,)`: share of pixels whose channel 0 is 0, for uint8 `(n, h, w, 3)` images."""
    out = np.empty(len(images), np.float32)
    for i in range(0, len(images), batch):
        out[i:i + batch] = (images[i:i + batch, :, :, 0] == 0).mean(axis=(1, 2))
        release(images)
    return out


def is_dark(fraction: np.ndarray, n_pixels: int) -> np.ndarray:
    """The notebook's test `np.sum(img[:, :, 0] == 0) >= h * w / 3`, from the black fraction."""
    return np.round(fraction * n_pixels) >= n_pixels * DARK_SHARE


def class_counts(dark: np.ndarray, onehot: np.ndarray) -> np.ndarray:
    """Per class, how many dark images carry it (the notebook's pie chart)."""
    return onehot[dark].sum(axis=0).astype(np.int64)


class DarkImageCounts(Value):
    """`dark_image_counts`."""
    images = Table()      # image, split, black_fraction, dark
    per_class = Table()   # class, dark_images
    per_split = Table()   # split, dark_images
