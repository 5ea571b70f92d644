"""Decode each image once: OpenCV BGR, resized with INTER_LINEAR to the model input, uint8."""
from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from cloud_assets.lib.labels import DatasetError, Problem

# Start-of-frame markers that carry the image size (baseline, progressive, ...), not DHT/JPG/DAC
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_size(path: Path) -> tuple[int, int]:
    """(height, width) from a JPEG's header without decoding it; DatasetError if not a JPEG."""
    with open(path, "rb") as f:
        data = f.read(65536)
        if data[:2] != b"\xff\xd8":
            kind = "empty file" if not data else "PNG" if data[:4] == b"\x89PNG" else "not a JPEG"
            raise DatasetError(f"{path}: {kind}; expected a JPEG image (starting FF D8)")
        i = 2
        while True:
            while i + 9 > len(data):
                more = f.read(65536)
                if not more:
                    raise DatasetError(f"{path}: JPEG header ends before the frame size (truncated file?)")
                data += more
            if data[i] != 0xFF:
                raise DatasetError(f"{path}: corrupt JPEG header at byte {i}")
            marker = data[i + 1]
            if marker in _SOF:
                h, w = struct.unpack(">HH", data[i + 5:i + 9])
                return h, w
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]


def check_image(path: Path, expected: tuple[int, int] | None) -> list[Problem]:
    """Problems with one image file without decoding it: missing, not a JPEG, truncated, size."""
    if not path.is_file():
        return [Problem("images_readable", str(path), "labelled image is missing")]
    try:
        size = jpeg_size(path)
    except DatasetError as e:
        return [Problem("images_readable", str(path), str(e).removeprefix(f"{path}: "))]
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 2))
        if f.read(2) != b"\xff\xd9":
            return [Problem("images_readable", str(path), "JPEG has no end marker (truncated file)")]
    if expected and size != tuple(expected):
        return [Problem("image_size", str(path), f"size {size[0]}x{size[1]}, expected {expected[0]}x{expected[1]}")]
    return []


def load_image(path: Path, size: tuple[int, int]) -> np.ndarray:
    """uint8 BGR `(size[0], size[1], 3)`: the seed's `cv2.resize(cv2.imread(path), ...)`, before /255."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(f"{path}: OpenCV cannot decode this image; expected a JPEG")
    return cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def cache_images(paths: Sequence[Path], out: np.ndarray, size: tuple[int, int],
                 progress: Callable[[int, int, float], None] | None = None, workers: int | None = None,
                 every_s: float = 5.0) -> None:
    """Decode `paths` into `out[i]` (uint8 `(n, h, w, 3)`, e.g. a memmap) with a thread per core.

    OpenCV releases the GIL while decoding and resizing, so threads use every core. `progress(done,
    total, seconds)` is called at most every `every_s` seconds and at the end.
    """
    start, last = time.monotonic(), 0.0

    def one(i):
        out[i] = load_image(paths[i], size)

    with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
        for done, _ in enumerate(pool.map(one, range(len(paths))), 1):
            now = time.monotonic()
            if progress and (now - last >= every_s or done == len(paths)):
                last = now
                progress(done, len(paths), now - start)
