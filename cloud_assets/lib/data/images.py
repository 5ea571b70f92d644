"""Decode each image once: OpenCV BGR, resized with INTER_LINEAR to the model input, uint8."""
from __future__ import annotations

import os
import re
import struct
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from cloud_assets.lib.data.labels import DatasetError, Problem
from cloud_assets.lib.progress import Progress, ProgressCallback
from cloud_assets.lib.store import Array, Table, Value, release


def jpeg_names(folder: Path) -> list[str]:
    """The names of the JPEG files in `folder` (.jpg or .jpeg, in any case), sorted; none when it is
    not a folder."""
    folder = Path(folder)
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg")) if folder.is_dir() else []


def jpeg_header(path: Path) -> tuple[int, int, int, int]:
    """(height, width, bits per sample, components) from a JPEG's frame header, read by Pillow
    without decoding the image; DatasetError if the file is not a JPEG."""
    from PIL import JpegImagePlugin

    with open(path, "rb") as f:
        head = f.read(4)
        if head[:2] != b"\xff\xd8":
            kind = "empty file" if not head else "PNG" if head == b"\x89PNG" else "not a JPEG"
            raise DatasetError(f"{path}: {kind}; expected a JPEG image (starting FF D8)")
        f.seek(0)
        try:
            with JpegImagePlugin.JpegImageFile(f) as im:
                return im.height, im.width, 8, len(im.getbands())
        except SyntaxError as e:  # Pillow opens 8-bit JPEGs only and says how many bits it found
            bits = re.search(r"cannot handle (\d+)-bit", str(e))
            if bits:
                return 0, 0, int(bits.group(1)), 0
            raise DatasetError(f"{path}: corrupt JPEG header ({e})") from None
        except (OSError, struct.error, IndexError) as e:
            raise DatasetError(f"{path}: JPEG header ends before the frame size (truncated file?) ({e})") from None


def jpeg_size(path: Path) -> tuple[int, int]:
    """(height, width) from a JPEG's header without decoding it; DatasetError if not a JPEG."""
    return jpeg_header(path)[:2]


# beyond these factors per side an image is not a differently sized copy of the dataset's images
# (it would be upsampled from almost nothing, or decoding it would take gigabytes): refused
TOO_SMALL, TOO_LARGE = 1 / 8, 4


def check_image(path: Path, expected: tuple[int, int] | None) -> list[Problem]:
    """Problems with one image file without decoding it: missing, not a JPEG, truncated, not 8-bit,
    far from the expected size (`images_readable`); gray or CMYK (`image_color`, read as BGR);
    another size (`image_size`)."""
    if not path.is_file():
        return [Problem("images_readable", str(path), "labelled image is missing")]
    try:
        h, w, bits, components = jpeg_header(path)
    except DatasetError as e:
        return [Problem("images_readable", str(path), str(e).removeprefix(f"{path}: "))]
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 2))
        if f.read(2) != b"\xff\xd9":
            return [Problem("images_readable", str(path), "JPEG has no end marker (truncated file)")]
    if bits != 8:
        return [Problem("images_readable", str(path), f"{bits}-bit samples; expected an 8-bit JPEG")]
    problems = []
    if expected and (h, w) != tuple(expected):
        eh, ew = expected
        ratio = max(h / eh, w / ew) if h > eh or w > ew else min(h / eh, w / ew)
        if not TOO_SMALL <= ratio <= TOO_LARGE:
            return [Problem("images_readable", str(path),
                            f"size {h}x{w} is far {'larger' if ratio > 1 else 'smaller'} than the dataset's "
                            f"{eh}x{ew}; expected an image of that size")]
        problems.append(Problem("image_size", str(path), f"size {h}x{w}, expected {eh}x{ew}"))
    if components != 3:
        kind = {1: "grayscale", 4: "CMYK"}.get(components, f"{components}-channel")
        problems.append(Problem("image_color", str(path), f"{kind} JPEG; expected 3-channel color "
                                                          f"(read as BGR by OpenCV)"))
    return problems


def parse_size(text: str) -> tuple[int, int]:
    """`"HEIGHTxWIDTH"` (e.g. `"224x224"`) -> `(height, width)`; ValueError otherwise."""
    h, sep, w = text.strip().lower().partition("x")
    if not (sep and h.isdigit() and w.isdigit() and int(h) > 0 and int(w) > 0):
        raise ValueError(f"{text!r}: expected HEIGHTxWIDTH in pixels, e.g. 224x224")
    return int(h), int(w)


def load_image(path: Path, size: tuple[int, int]) -> np.ndarray:
    """uint8 BGR `(size[0], size[1], 3)`: the notebook's `cv2.resize(cv2.imread(path), ...)`, before /255."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(f"{path}: OpenCV cannot decode this image; expected a JPEG")
    return cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def cache_images(paths: Sequence[Path], out: np.ndarray, size: tuple[int, int],
                 report: ProgressCallback | None = None, workers: int | None = None) -> None:
    """Decode `paths` into `out[i]` (uint8 `(n, h, w, 3)`, e.g. a memmap) with a thread per core.

    OpenCV releases the GIL while decoding and resizing, so threads use every core. A memory-mapped
    `out` is released every 64 images: resident memory does not grow with the number of images.
    """
    progress = Progress(len(paths), report)

    def one(i):
        out[i] = load_image(paths[i], size)

    with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
        for i, _ in enumerate(pool.map(one, range(len(paths)))):
            progress.advance()
            if i % 64 == 63:
                release(out)


class ImageCache(Value):
    """`image_cache`: every image decoded once, per split; each split's names and black fractions."""
    train, val, test = Array("train"), Array("val"), Array("test")  # uint8 (n, h, w, 3) BGR
    train_names, val_names, test_names = Table("train"), Table("val"), Table("test")  # image, black_fraction

    def images(self, split: str) -> np.ndarray:
        return getattr(self, split)

    def names(self, split: str) -> pd.DataFrame:
        return getattr(self, f"{split}_names")

    @classmethod
    def images_part(cls, split: str) -> Array:
        return getattr(cls, split)

    @classmethod
    def names_part(cls, split: str) -> Table:
        return getattr(cls, f"{split}_names")
