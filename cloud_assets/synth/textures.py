"""Cloud-pattern textures. Every field is float32 in [0, 1] over the whole image.

Scales follow Stevens et al. (2020) at about 1 km per pixel of a 1400x2100 image; `km` converts
kilometres to pixels at the size being rendered, so any resolution shows the same scene. The size
ranges overlap on purpose (Sugar's largest elements are Gravel's smallest; Fish filaments are made
of Gravel-like cells) so that the classes are confusable, as in the real labels.
"""
from __future__ import annotations

import cv2
import numpy as np


def smooth_noise(shape, scale_px: float, rng: np.random.Generator, aspect: float = 1.0) -> np.ndarray:
    """Zero-mean, unit-std noise with features about `scale_px` pixels wide (`aspect` stretches x)."""
    h, w = shape
    gh = max(2, int(round(h / scale_px)) + 2)
    gw = max(2, int(round(w / (scale_px * aspect))) + 2)
    coarse = rng.standard_normal((gh, gw)).astype(np.float32)
    field = np.asarray(cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC), np.float32)
    field -= field.mean()
    return field / (field.std() + 1e-6)


def _blobs(shape, centers, radii_px, values, blur_px) -> np.ndarray:
    canvas = np.zeros(shape, np.float32)
    for (x, y), r, v in zip(centers, radii_px, values):
        cv2.circle(canvas, (int(x), int(y)), max(1, int(r)), float(v), -1, lineType=cv2.LINE_AA)
    if blur_px > 0.3:
        canvas = cv2.GaussianBlur(canvas, (0, 0), blur_px)
    return canvas


def _normalise(field: np.ndarray) -> np.ndarray:
    top = np.percentile(field[::7, ::7], 99.5)
    return np.clip(field / (top + 1e-6), 0, 1)


def sugar(shape, km: float, rng) -> np.ndarray:
    """A dusting of very fine clouds, elements of a few km, patchy but without organisation."""
    h, w = shape
    element_km = rng.uniform(2.0, 7.0)
    density = rng.uniform(0.02, 0.05)
    dots = (rng.random(shape, dtype=np.float32) < density).astype(np.float32)
    field = cv2.GaussianBlur(dots, (0, 0), max(0.4, element_km * km / 2))
    patchiness = 0.55 + 0.45 * np.tanh(smooth_noise(shape, 120 * km, rng))
    return _normalise(field * patchiness)


def gravel(shape, km: float, rng) -> np.ndarray:
    """Cells of tens of km lined up along arcs and lines, with fainter scattered cells between."""
    h, w = shape
    cell_km = rng.uniform(10.0, 30.0)
    centers, radii, values = [], [], []
    for _ in range(int(rng.integers(28, 48))):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        radius = rng.uniform(80, 400) * km
        a0 = rng.uniform(0, 2 * np.pi)
        length = rng.uniform(0.6, 2.2)
        n = max(3, int(radius * length / (cell_km * km * 1.6)))
        for a in np.linspace(a0, a0 + length, n):
            jitter = rng.normal(0, cell_km * km * 0.4, 2)
            centers.append((cx + radius * np.cos(a) + jitter[0], cy + radius * np.sin(a) + jitter[1]))
            radii.append(rng.uniform(0.35, 0.6) * cell_km * km)
            values.append(rng.uniform(0.6, 1.0))
    n_scatter = int(w * h / (cell_km * km * 5) ** 2)
    for _ in range(n_scatter):
        centers.append((rng.uniform(0, w), rng.uniform(0, h)))
        radii.append(rng.uniform(0.25, 0.45) * cell_km * km)
        values.append(rng.uniform(0.25, 0.6))
    return _normalise(_blobs(shape, centers, radii, values, cell_km * km * 0.2))


def fish(shape, km: float, rng) -> np.ndarray:
    """A skeletal network of elongated filaments hundreds of km across, with clear gaps."""
    scale_km = rng.uniform(110, 200)
    aspect = rng.uniform(1.6, 2.6)
    # ridged noise: filaments along the zero-crossings of a smooth field, stretched along x
    base = smooth_noise(shape, scale_km * km, rng, aspect=aspect)
    width = rng.uniform(0.3, 0.5)
    ridges = np.exp(-(base / width) ** 2)
    # filaments built of Gravel-sized cells, one of the real data's confusions
    cells = cv2.GaussianBlur((rng.random(shape, dtype=np.float32) < 0.012).astype(np.float32),
                             (0, 0), rng.uniform(3, 8) * km)
    cells = _normalise(cells)
    return _normalise(ridges * (0.55 + 0.45 * cells))


def flower(shape, km: float, rng) -> np.ndarray:
    """Large stratiform cloud 'bouquets', tens to a couple of hundred km, well separated."""
    h, w = shape
    spacing = rng.uniform(170, 300) * km
    centers, radii, values = [], [], []
    for gy in np.arange(rng.uniform(0, spacing), h, spacing):
        for gx in np.arange(rng.uniform(0, spacing), w, spacing):
            if rng.random() < 0.2:
                continue
            j = rng.uniform(-0.2, 0.2, 2) * spacing
            centers.append((gx + j[0], gy + j[1]))
            radii.append(rng.uniform(0.18, 0.33) * spacing)
            values.append(rng.uniform(0.75, 1.0))
    field = _blobs(shape, centers, radii, values, 6 * km)
    # ragged edges and some internal structure, as stratiform decks have
    field *= 0.8 + 0.2 * np.tanh(smooth_noise(shape, 25 * km, rng))
    return _normalise(field)


TEXTURES = {"Fish": fish, "Flower": flower, "Gravel": gravel, "Sugar": sugar}
