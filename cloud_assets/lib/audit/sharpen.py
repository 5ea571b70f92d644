"""A candidate's proposal drawn from its prediction sharpened by the image itself.

The fold audit's prediction is made at the audit size by a network trained on labels with errors in
them, so its edges are blurred over several of the image's pixels. The image tells where its own
pattern ends: each candidate's prediction, upsampled to `SIZE`, names the pixels it is sure of (its
core, at least `CORE` of its maximum, and its background, at most `BACKGROUND`), a linear classifier
learns from them what that pattern looks like in this image (its colours and texture energy at four
scales, each also averaged around the pixel: `features`), and its probability, averaged with the
prediction (`MIX`), is the map the proposal is drawn from (`lib.saliency.attention.proposed_fix`, as
the evidence draws it from the plain prediction). The settings were chosen on the tuning cells of the
label audit's grid (its Label audit page).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np
import pandas as pd

from cloud_assets.lib.audit.evidence import MIN_REGION
from cloud_assets.lib.audit.folds import AuditFolds
from cloud_assets.lib.audit.network import AuditPredictions
from cloud_assets.lib.data import rle
from cloud_assets.lib.data.images import ImageCache
from cloud_assets.lib.data.labels import LabelTable
from cloud_assets.lib.progress import Progress
from cloud_assets.lib.saliency.attention import boxes_text, proposed_fix
from cloud_assets.lib.store import Bundle

SIZE = (128, 192)     # (h, w) the sharpened map is drawn at: twice the `fast` audit size
SCALES = (1.0, 2.0, 4.0, 8.0)  # the texture energy's scales (sigmas, in pixels of the image as given)
CONTEXT = (1.5, 4.0)  # each feature also averaged around the pixel (Gaussian sigmas, in pixels of SIZE)
CORE, BACKGROUND = 0.9, 0.1  # shares of the prediction's maximum: the pixels the classifier learns from
MIX = 0.4             # the classifier's share of the sharpened map (the rest: the prediction)
SOLVER = "newton-cholesky"  # the regression's solver: twice as fast here as lbfgs, to the same optimum
SAMPLES = 6000        # at most this many of those pixels, drawn at random (seeded)
MIN_PIXELS = 20       # fewer core or background pixels than this: the prediction as it is


def features(image: np.ndarray, size: tuple[int, int] = SIZE) -> np.ndarray:
    """float32 `(h * w, features)`, standardised over the image: per pixel of `size`, the uint8 BGR
    `image`'s colours and texture energy (the absolute difference between its grey level and its
    Gaussian blur, at `SCALES`), averaged over the pixels it covers, then each of those averaged around
    the pixel at `CONTEXT`."""
    grey = cv2.cvtColor(np.asarray(image), cv2.COLOR_BGR2GRAY).astype(np.float32)
    shrink = (size[1], size[0])
    channels = [cv2.resize(np.asarray(image, np.float32), shrink, interpolation=cv2.INTER_AREA)]
    channels += [cv2.resize(np.abs(grey - cv2.GaussianBlur(grey, (0, 0), s)), shrink,
                            interpolation=cv2.INTER_AREA)[..., None] for s in SCALES]
    pixel = np.concatenate(channels, axis=2)
    out = np.concatenate([pixel] + [cv2.GaussianBlur(pixel, (0, 0), s) for s in CONTEXT], axis=2)
    out = out.reshape(-1, out.shape[-1])
    return ((out - out.mean(axis=0)) / (out.std(axis=0) + 1e-6)).astype(np.float32)


def sharpened(prob: np.ndarray, feats: np.ndarray, size: tuple[int, int] = SIZE) -> np.ndarray:
    """float32 `size`: the probability map `prob` (any size) upsampled and sharpened by the image's
    `features`; the upsampled map, as a share of its maximum, where it has too few sure pixels."""
    from sklearn.linear_model import LogisticRegression

    up = cv2.resize(np.asarray(prob, np.float32), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    top = float(up.max())
    if top <= 0:
        return up
    core, background = (up >= CORE * top).ravel(), (up <= BACKGROUND * top).ravel()
    if core.sum() < MIN_PIXELS or background.sum() < MIN_PIXELS:
        return up / top
    x = np.concatenate([feats[core], feats[background]])
    y = np.concatenate([np.ones(core.sum()), np.zeros(background.sum())])
    if len(x) > SAMPLES:
        pick = np.random.default_rng(0).choice(len(x), SAMPLES, replace=False)
        x, y = x[pick], y[pick]
    learnt = LogisticRegression(solver=SOLVER, max_iter=300).fit(x, y).predict_proba(feats)[:, 1].reshape(size)
    return (MIX * learnt + (1 - MIX) * up / top).astype(np.float32)


def proposals(maps: np.ndarray, names: Sequence[str], image_of: Callable[[str], np.ndarray], masks: np.ndarray,
              advance: Callable[[], None] = lambda: None) -> list[str]:
    """The proposal (`boxes_text`) of each candidate `k`: `proposed_fix` of its prediction `maps[k]`
    sharpened by its image `image_of(names[k])` (uint8 BGR; read and described once per image), against
    its label's mask `masks[k]` (0/1 at `SIZE`); `advance` is called after each."""
    out = [""] * len(maps)
    by_image: dict[str, list[int]] = {}
    for k, name in enumerate(names):
        by_image.setdefault(name, []).append(k)
    for name, rows in by_image.items():
        feats = features(image_of(name))
        for k in rows:
            out[k] = boxes_text(proposed_fix(sharpened(maps[k], feats), masks[k].astype(bool), MIN_REGION))
            advance()
    return out


def candidate_maps(candidates: pd.DataFrame, audit_predictions, audit_folds: Bundle, classes, fold_keys) -> np.ndarray:
    """float16 `(candidates, h, w)`: each candidate's class probability per pixel, from the audit
    model of its image's fold."""
    folds = AuditFolds(audit_folds).folds
    fold = dict(zip(folds["image"], folds["fold"]))
    predictions = {key: AuditPredictions(p) for key, p in audit_predictions.items()}
    rows = {key: {i: k for k, i in enumerate(p.images["image"])} for key, p in predictions.items()}
    out = []
    for image, cls in zip(candidates["image"], candidates["class"]):
        key = fold_keys[fold[image]]
        out.append(predictions[key].pixels[classes.index(cls), rows[key][image]])
    return np.stack(out) if out else np.zeros((0, 1, 1), np.float16)


def sharpened_proposals(candidates: pd.DataFrame, audit_predictions, audit_folds: Bundle, image_cache,
                        label_table: Bundle, classes, fold_keys, report=None) -> pd.Series:
    """The proposals of `candidates` (rows of a ranking: image, class), by row, each drawn from its
    prediction sharpened by its image (`proposals`; `image_cache` whole or in shards);
    `report(done, total, seconds)` their progress."""
    maps = candidate_maps(candidates, audit_predictions, audit_folds, classes, fold_keys)
    cache = ImageCache(image_cache)
    where = {image: (split, k) for split in ("train", "val") for k, image in enumerate(cache.names(split)["image"])}
    split_images = {split: cache.images(split) for split in ("train", "val")}
    labelled = LabelTable(label_table)
    encoded = labelled.rows.set_index("Image_Label")["EncodedPixels"]
    names = list(candidates["image"])
    masks = rle.decode_resized([encoded[f"{i}_{c}"] for i, c in zip(names, candidates["class"])],
                               tuple(labelled.meta["original_shape"]), SIZE)

    def image_of(name: str) -> np.ndarray:
        split, row = where[name]
        return np.asarray(split_images[split][row])

    progress = Progress(len(names), report)
    return pd.Series(proposals(maps, names, image_of, masks, progress.advance), index=candidates.index,
                     dtype=object)
