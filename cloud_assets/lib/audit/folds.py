"""The audit's folds: every labelled image in one of K folds, stratified by its label combination.

The assignment is deterministic and sticky: an image keeps the fold it was given, whatever happens
to its labels later, so that a corrected label changes the training sets of the other folds only
(and retrains those, not all). Images without a fold yet (a new dataset, added images) are dealt
per label combination, each combination's images in the order of a hash of their names, each to
the fold that holds the fewest of that combination so far (ties: the fold with fewest images, then
the lowest); so every fold holds about 1/K of every combination, and the same images with the same
labels always get the same folds.
"""
from __future__ import annotations

import hashlib
import zlib

import numpy as np
import pandas as pd
from cloud_assets.lib.store import Document, Table, Value


def combination(onehot: np.ndarray, class_names) -> list[str]:
    """Each row's label combination as text ('Fish+Sugar'; '' for none)."""
    return ["+".join(c for c, v in zip(class_names, row) if v) for row in onehot]


def assign(images, combos, k: int, previous: dict[str, int] | None = None) -> np.ndarray:
    """int `(images,)`: the fold of each image. `previous` (image -> fold) is kept for the images it
    names, when it was made with the same `k`; the others are dealt as the module says."""
    if k < 2:
        raise ValueError(f"{k} folds: the audit needs at least 2 (each fold's model trains on the others)")
    images, combos = list(images), list(combos)
    previous = {i: f for i, f in (previous or {}).items() if 0 <= f < k}
    folds = np.array([previous.get(i, -1) for i in images], np.int64)
    index = {c: n for n, c in enumerate(sorted(set(combos)))}
    per_combo = np.zeros((len(index), k), np.int64)
    per_fold = np.zeros(k, np.int64)
    for f, c in zip(folds, combos):
        if f >= 0:
            per_combo[index[c], f] += 1
            per_fold[f] += 1
    new = [n for n in np.flatnonzero(folds < 0)]
    new.sort(key=lambda n: (combos[n], zlib.crc32(images[n].encode()), images[n]))
    for n in new:
        row = per_combo[index[combos[n]]]
        f = min(range(k), key=lambda j: (row[j], per_fold[j], j))
        folds[n] = f
        row[f] += 1
        per_fold[f] += 1
    return folds


def training_set(folds: pd.DataFrame, fold: int) -> tuple[np.ndarray, np.ndarray]:
    """(the rows of `folds` (image, fold) that fold `fold`'s model trains on, the rows it predicts)."""
    assigned = folds["fold"].to_numpy()
    return np.flatnonzero(assigned != fold), np.flatnonzero(assigned == fold)


def training_digest(table: pd.DataFrame, fold: int, columns) -> str:
    """SHA-256 of what fold `fold`'s model trains on: the name and `columns` (labels, and their masks'
    digests) of every image outside the fold, in name order. Equal digests, equal training sets."""
    rows = table[table["fold"] != fold].sort_values("image", kind="stable")
    h = hashlib.sha256()
    for values in rows[["image", *columns]].itertuples(index=False):
        h.update("\x1f".join(map(str, values)).encode() + b"\x1e")
    return h.hexdigest()


class AuditFolds(Value):
    """`audit_folds`."""
    folds = Table()        # image, fold, combination
    digests = Document()   # fold key -> its training set's digest
    meta = Document()      # folds
