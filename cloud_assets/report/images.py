"""Image overlays for the galleries: the class mask on true positives, Guided Grad-CAM (jet) on
false positives inside a red frame — the notebook's visual comparison."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from cloud_assets.constants import JPEG_QUALITY

FULL_WIDTH = 1050  # the "full size" view: the original image, at most this wide
MASK_BGR = np.array([60, 220, 255], np.float32)  # yellow
RED = (0, 0, 255)
# mask outline colours, one per class in the model's order (BGR, name); `mask_colors` extends them
BASE_COLORS = [((255, 255, 255), "white"), ((255, 0, 255), "magenta"), ((0, 255, 255), "yellow"),
               ((0, 255, 0), "green"), ((255, 128, 0), "azure"), ((0, 128, 255), "orange")]


def mask_colors(n: int) -> list[tuple[tuple[int, int, int], str]]:
    """(BGR, name) for `n` classes: the named base colours, then hues a golden angle apart."""
    out = BASE_COLORS[:n]
    for k in range(n - len(out)):
        hue = int(180 * ((0.1 + 0.618 * k) % 1))
        b, g, r = cv2.cvtColor(np.array([[[hue, 255, 255]]], np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
        out.append(((int(b), int(g), int(r)), f"hue {2 * hue}°"))
    return out


def _fit(img: np.ndarray, width: int) -> np.ndarray:
    h, w = img.shape[:2]
    return img if w <= width else cv2.resize(img, (width, round(h * width / w)), interpolation=cv2.INTER_AREA)


def fit_mask(mask: np.ndarray, shape) -> np.ndarray:
    """uint8 0/1 mask brought to `shape` (h, w) smoothly: INTER_LINEAR, then half-way (no blocks)."""
    if mask.shape[:2] == tuple(shape[:2]):
        return mask.astype(np.uint8)
    return (cv2.resize(mask.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR) >= 0.5).astype(np.uint8)


def mask_overlay(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """BGR uint8: the mask (0/1, any size) tinted over the image, with its outline."""
    m = fit_mask(mask, img.shape)
    out = img.astype(np.float32)
    out[m > 0] = 0.65 * out[m > 0] + 0.35 * MASK_BGR
    out = out.astype(np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, tuple(int(v) for v in MASK_BGR), max(1, img.shape[1] // 300))
    return out


def masks_outline(img: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """BGR uint8: every class's mask `(classes, h, w)` outlined in its colour."""
    out = img.copy()
    for m, (color, _) in zip(masks, mask_colors(len(masks))):
        m = fit_mask(m, img.shape)
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, color, max(1, img.shape[1] // 250))
    return out


# cv2's jet colour map as a table: the same colours as cv2.applyColorMap, which builds its table anew
# on every call (20 ms an image)
JET = cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(256, 1), cv2.COLORMAP_JET)[:, 0, :]


def saliency_overlay(img: np.ndarray, saliency: np.ndarray, frame: bool = True) -> np.ndarray:
    """BGR uint8: the saliency map (jet, scaled to its maximum) blended over the image, red frame."""
    s = cv2.resize(saliency.astype(np.float32), (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
    top = float(s.max())
    heat = JET[np.uint8(255 * np.clip(s / top if top > 0 else s, 0, 1))]
    out = cv2.addWeighted(img, 0.6, heat, 0.4, 0)
    if frame:
        t = max(2, img.shape[1] // 100)
        cv2.rectangle(out, (0, 0), (img.shape[1] - 1, img.shape[0] - 1), RED, t)
    return out


def hex_color(bgr) -> str:
    """`#rrggbb` of a BGR colour."""
    return "#{2:02x}{1:02x}{0:02x}".format(*bgr)


def outline_path(mask: np.ndarray, size) -> str:
    """SVG path data (`M x,y L ... Z`, in pixels of `size` (h, w)) outlining a 0/1 mask of any size,
    its corners simplified to within a pixel; empty for an empty mask."""
    m = fit_mask(mask, size)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    parts = []
    for c in contours:
        points = cv2.approxPolyDP(c, 1.0, True)[:, 0]
        parts.append("M" + " L".join(f"{x},{y}" for x, y in points) + " Z")
    return " ".join(parts)


HEAT_LEVELS = 32  # the overlays' shades: a third of the file of 256, and as smooth once the browser stretches it


def write_heat(path: Path, values: np.ndarray, scaled: bool = False) -> str:
    """Write a small RGBA PNG of `values` `(h, w)` (a probability; `scaled`: divided by its maximum)
    in jet colours, transparent where low, for the browser to stretch over an image; its name."""
    top = float(values.max()) if scaled else 1.0
    v = np.clip(values.astype(np.float32) / (top if top > 0 else 1.0), 0, 1)
    shade = np.round(v * (HEAT_LEVELS - 1)) / (HEAT_LEVELS - 1)
    rgba = np.dstack([JET[np.uint8(255 * shade)], np.uint8(200 * shade)])
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), rgba, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    return path.name


def write_plain(path: Path, img: np.ndarray) -> str:
    """Write the image as a JPEG (at most FULL_WIDTH wide, its aspect kept); its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), _fit(img, FULL_WIDTH), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return path.name


def write_pair(folder: Path, stem: str, thumb: np.ndarray, full: np.ndarray) -> tuple[str, str]:
    """Write `<stem>.jpg` (thumbnail) and `<stem>_full.jpg`; returns their names."""
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / f"{stem}.jpg"), thumb, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    cv2.imwrite(str(folder / f"{stem}_full.jpg"), _fit(full, FULL_WIDTH), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return f"{stem}.jpg", f"{stem}_full.jpg"


def original(path: Path, fallback: np.ndarray) -> np.ndarray:
    """The original image for the full-size view, or the cached one when the file is unreadable."""
    img = cv2.imread(str(path))
    return _fit(img, FULL_WIDTH) if img is not None else fallback
