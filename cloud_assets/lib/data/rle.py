"""Run-length masks as in the Kaggle clouds `train.csv`: 1-based `start length` pairs, column-major."""
from __future__ import annotations

import functools
import math
import re
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Sequence

import cv2
import numpy as np
from cloud_assets.lib.store import Array, Table, Value

ORIGINAL_SHAPE = (1400, 2100)


class RLEError(ValueError):
    """An `EncodedPixels` string that is not a valid mask for the given shape."""


def is_empty(rle) -> bool:
    return rle is None or (isinstance(rle, float) and math.isnan(rle)) or (isinstance(rle, str) and not rle.strip())


_ONLY_DIGITS = re.compile(r"[0-9\s]*")


def _fields(rle: str) -> np.ndarray:
    """The integers of an RLE string, parsed in C; a field that is not a number is named."""
    if not _ONLY_DIGITS.fullmatch(rle):
        bad = next(f for f in rle.split() if not _ONLY_DIGITS.fullmatch(f))
        raise RLEError(f"field {bad!r} is not a non-negative integer")
    return np.fromstring(rle, dtype=np.int64, sep=" ")


def parse(rle: str, shape: tuple[int, int] = ORIGINAL_SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """Validated `(starts, ends)` as 0-based int64 half-open runs, sorted and non-overlapping.

    Raises RLEError naming what is wrong: an odd number of fields, a field that is not a positive
    integer, a run outside the image, runs out of order or overlapping.
    """
    values = _fields(rle)
    if len(values) % 2:
        raise RLEError(f"odd number of fields ({len(values)}): expected 'start length' pairs")
    starts, lengths = values[0::2] - 1, values[1::2]
    n_pixels = shape[0] * shape[1]
    ends = starts + lengths
    if len(values) and (starts.min() < 0 or lengths.min() < 1):
        i = int(np.flatnonzero((starts < 0) | (lengths < 1))[0])
        raise RLEError(f"run {i + 1} ({starts[i] + 1} {lengths[i]}): starts are 1-based and lengths positive")
    if len(values) and ends.max() > n_pixels:
        i = int(np.flatnonzero(ends > n_pixels)[0])
        raise RLEError(f"run {i + 1} ({starts[i] + 1} {lengths[i]}) ends at pixel {ends[i]}, "
                       f"beyond the {shape[0]}x{shape[1]} image ({n_pixels} pixels)")
    if len(starts) > 1:
        unsorted = np.flatnonzero(starts[1:] < starts[:-1])
        if len(unsorted):
            i = int(unsorted[0]) + 1
            raise RLEError(f"run {i + 1} starts at {starts[i] + 1}, before run {i} ({starts[i - 1] + 1}): runs must be sorted")
        overlap = np.flatnonzero(starts[1:] < ends[:-1])
        if len(overlap):
            i = int(overlap[0]) + 1
            raise RLEError(f"run {i + 1} starts at {starts[i] + 1}, inside run {i} ({starts[i - 1] + 1} {lengths[i - 1]})")
    return starts, ends


def decode(rle: str, shape: tuple[int, int] = ORIGINAL_SHAPE) -> np.ndarray:
    """The notebook's `rle_decode`: uint8 `(h, w)` with 1 inside the mask; an empty RLE gives zeros."""
    flat: np.ndarray = np.zeros(shape[0] * shape[1], dtype=np.uint8)
    if not is_empty(rle):
        starts, ends = parse(rle, shape)
        # +1 at each start, -1 at each end, running sum marks the covered pixels
        edges = np.zeros(flat.size + 1, dtype=np.int8)
        edges[starts] += 1
        edges[ends] -= 1
        flat = (np.cumsum(edges[:-1], dtype=np.int8) > 0).astype(np.uint8)
    return flat.reshape(shape, order="F")


def encode(mask: np.ndarray) -> str:
    """Inverse of `decode`: the RLE string of a 2-D 0/1 mask ('' for an empty mask)."""
    flat = np.concatenate([[0], mask.ravel(order="F").astype(bool).view(np.uint8), [0]])
    change = np.flatnonzero(np.diff(flat))
    starts, ends = change[0::2], change[1::2]
    return " ".join(f"{s + 1} {e - s}" for s, e in zip(starts, ends))


def _source_taps(n_src: int, n_dst: int) -> tuple[np.ndarray, np.ndarray]:
    """The two source indices OpenCV's INTER_LINEAR reads for each output index."""
    scale = n_src / n_dst
    lo = np.floor((np.arange(n_dst) + 0.5) * scale - 0.5).astype(np.int64)
    lo = np.clip(lo, 0, n_src - 1)
    return lo, np.minimum(lo + 1, n_src - 1)


@functools.lru_cache(maxsize=8)
def _resize_table(shape: tuple[int, int], size: tuple[int, int]):
    """For a 0/1 mask, INTER_LINEAR output (y, x) depends only on the 2x2 source pixels it reads.

    When those 2x2 windows are disjoint (downscaling by 2 or more) the whole resize is a lookup
    of a 4-bit code per output pixel. The table is built by OpenCV itself, one full-size resize per
    code, so the result is bit-identical to `cv2.resize` whatever its rounding. Returns the table
    flattened as `[(x * oh + y) * 16 + code]`, and the column-major index of every tap in
    increasing order (x, dx, y, dy), or None when windows overlap.
    """
    (h, w), (oh, ow) = shape, size
    y0, y1 = _source_taps(h, oh)
    x0, x1 = _source_taps(w, ow)
    rows, cols = np.stack([y0, y1], 1).ravel(), np.stack([x0, x1], 1).ravel()
    if np.any(np.diff(rows) <= 0) or np.any(np.diff(cols) <= 0):
        return None
    table = np.empty((16, oh, ow), dtype=np.uint8)
    for code in range(16):
        img = np.zeros(shape, dtype=np.uint8)
        img[np.ix_(y0, x0)] = code & 1
        img[np.ix_(y0, x1)] = (code >> 1) & 1
        img[np.ix_(y1, x0)] = (code >> 2) & 1
        img[np.ix_(y1, x1)] = (code >> 3) & 1
        table[code] = cv2.resize(img, (ow, oh), interpolation=cv2.INTER_LINEAR)
    positions = (cols[:, None] * h + rows[None, :]).ravel()
    return np.ascontiguousarray(table.transpose(2, 1, 0)).ravel(), positions


@functools.lru_cache(maxsize=8)
def _code_base(oh: int, ow: int) -> np.ndarray:
    return (np.arange(ow * oh, dtype=np.intp) * 16).reshape(ow, oh)


def decode_resized(rles: Sequence, shape: tuple[int, int] = ORIGINAL_SHAPE,
                   size: tuple[int, int] = (224, 224), workers: int = 1) -> np.ndarray:
    """uint8 `(len(rles), size[0], size[1])`, each equal to the notebook's `make_mask`.

    That is `cv2.resize(decode(rle, shape), (size[1], size[0]))` with INTER_LINEAR; an empty or
    missing RLE gives zeros. Only the pixels the resize reads are decoded. `workers` threads
    share the masks (NumPy releases the GIL in the heavy calls).
    """
    oh, ow = size
    out = np.zeros((len(rles), oh, ow), dtype=np.uint8)
    lookup = _resize_table(tuple(shape), tuple(size))

    def one(k):
        rle = rles[k]
        if is_empty(rle):
            return
        if lookup is None:
            out[k] = cv2.resize(decode(rle, shape), (ow, oh), interpolation=cv2.INTER_LINEAR)
            return
        table, positions = lookup
        starts, ends = parse(rle, shape)
        # the taps each run covers are a contiguous index range [a, b): paint them
        a, b = np.searchsorted(positions, starts), np.searchsorted(positions, ends)
        a, b = a[b > a], b[b > a]
        taps = np.zeros(len(positions), np.uint8)
        if len(a):
            lengths = b - a
            offsets = np.repeat(a - np.cumsum(lengths) + lengths, lengths)
            taps[offsets + np.arange(len(offsets))] = 1
        # taps are laid out (x, dx, y, dy); a uint16 view reads both dy at once: dy0 + 256 * dy1
        pairs = taps.view("<u2").reshape(ow, 2, oh)
        both = pairs[:, 0, :] + (pairs[:, 1, :] << 1)          # dx0dy0 | dx1dy0 << 1 | (dy1 bits) << 8
        code = (both & 3) | (both >> 6)                           # 4-bit code: dx0dy0, dx1dy0, dx0dy1, dx1dy1
        out[k] = np.take(table, _code_base(oh, ow) + code).T

    if workers > 1 and len(rles) > 1:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, range(len(rles)), chunksize=32))
    else:
        for k in range(len(rles)):
            one(k)
    return out


class ValMasks(Value):
    """`val_masks`: the validation images' masks at the model input, as the notebook's make_mask."""
    masks = Array("val", axis=1)   # uint8 (classes, images, h, w)
    images = Table("val")          # image
