"""The fold audit's second round: the labels that the first round's confident suspicions give.

The first round's fold U-Nets learn from train.csv's labels, errors included, and an error they
learn from blurs what they predict of the patterns like it. Each label the first round suspects
confidently (its `score`, from the first round's evidence alone, at least `CONFIDENT`) is corrected
for the second round as a reviewer who accepts it would correct it (`lib.review.apply`, the page's
own proposal), and each fold's U-Net is then trained further on the other folds' labels so
corrected (`lib.audit.network.Trainer`, from the first round's weights): the images of a fold are
still predicted by a model that never saw them or their labels. train.csv is not changed: only a
reviewer does that.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cloud_assets.lib import review
from cloud_assets.lib.audit import label_issues
from cloud_assets.lib.audit.kinds import NODATA
from cloud_assets.lib.data import rle
from cloud_assets.lib.store import Array, Document, Table, Value

# the first round's score from which a suspicion is corrected for the second round (on tuning datasets 10 and
# 14, cross-fitted: 0.87 of the labels corrected are errors)
CONFIDENT = 0.5


def relabel(evidence: pd.DataFrame, split: dict, trees: dict, rows: pd.DataFrame, shape: tuple[int, int],
            path: Path) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(train.csv's `rows` with the confident suspicions of the first round's `evidence`
    (`lib.audit.evidence`, ranked by `trees`, the first round's) corrected, those suspicions, how many of
    them could not be applied); `path` names the labels in errors."""
    ranked = label_issues.rank(evidence, split, None, trees)
    suspects = ranked[(ranked["score"] >= CONFIDENT) & (ranked["kind"] != NODATA)].reset_index(drop=True)
    corrected, left_out = review.apply_what_fits(rows, review.accepted(suspects), ranked, shape, path)
    return corrected, suspects, left_out


def corrected_masks(masks: np.ndarray, images, classes, rows: pd.DataFrame, corrected: pd.DataFrame,
                    shape: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """A copy of train.csv's `masks (n, h, w, classes)` at the audit `size` (`images` and `classes` in
    their order) with each label that `corrected` changes from `rows` (train.csv's, in the same order)
    decoded anew from its corrected EncodedPixels (images of `shape`)."""
    out, position = np.array(masks), {image: k for k, image in enumerate(images)}
    changed = corrected[corrected["EncodedPixels"].to_numpy() != rows["EncodedPixels"].to_numpy()]
    for label, encoded in zip(changed["Image_Label"], changed["EncodedPixels"]):
        image, _, cls = label.rpartition("_")
        out[position[image], ..., list(classes).index(cls)] = rle.decode_resized([encoded], shape, size)[0]
    return out


class AuditRelabels(Value):
    """`audit_relabels`: the second round's labels, in `audit_folds`' order, at the audit size."""
    masks = Array()          # uint8 (n, h, w, classes)
    labels = Array()         # uint8 (n, classes)
    evidence = Table()       # the first round's evidence (`lib.audit.evidence`), every (image, class)
    suspects = Table()       # the labels corrected: image, class, kind, other_class, score
    meta = Document()        # suspects, left_out, digests: per fold key, what its refit trains on
