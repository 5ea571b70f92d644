"""Per-class precision/recall level -> probability threshold, from each class's own PR curve.

The notebook's definitions, vectorised: for a precision level p the threshold is the lowest one
whose precision is >= p (`get_probability_for_precision_threshold`); for a recall level r it is
the highest one whose recall is >= r (`get_probability_for_recall_threshold`). The notebook computes
one curve, for a stale class index, and uses it for every class; here each class has its own.
A level that is never reached is NaN (the notebook raises IndexError), and so is every level of a
class without positives (scikit-learn would make up a recall for it).

The curve is the one the notebook's scikit-learn (0.21) returned: it stops at the highest threshold
that reaches full recall. scikit-learn 1.1 and later go on to the lowest score, where the precision
keeps falling towards the class's prevalence; with that curve a precision level at or below the
precision at full recall would map to a lower threshold than the notebook's (more false positives,
the same recall). `pr_curve` cuts the curve where the notebook's ended.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from cloud_assets.lib.store import Table, Value

LEVELS = np.arange(10, 100)  # percent


def pr_curve(y_true: np.ndarray, y_score: np.ndarray):
    """(precision, recall, thresholds) as the notebook's scikit-learn returned them: scikit-learn's
    `precision_recall_curve` from the highest threshold with full recall up (its warnings for a class
    with no positives silenced). The area under it is the same: the points cut all have recall 1."""
    from sklearn.metrics import precision_recall_curve

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        precision, recall, thresholds = precision_recall_curve(y_true, y_score)
    full = np.flatnonzero(recall[:len(thresholds)] >= 1)
    start = full[-1] if len(full) else 0
    return precision[start:], recall[start:], thresholds[start:]


def level_thresholds(precision, recall, thresholds, levels=LEVELS):
    """(probability for each precision level, probability for each recall level), NaN where never reached."""
    prec, rec = np.asarray(precision)[:len(thresholds)], np.asarray(recall)[:len(thresholds)]
    p_out = np.full(len(levels), np.nan)
    r_out = np.full(len(levels), np.nan)
    for j, level in enumerate(np.asarray(levels) / 100):
        hit = np.flatnonzero(prec >= level)
        if len(hit):
            p_out[j] = thresholds[hit[0]]
        hit = np.flatnonzero(rec >= level)
        if len(hit):
            r_out[j] = thresholds[hit[-1]]
    return p_out, r_out


def threshold_maps(y_true: np.ndarray, y_pred: np.ndarray, levels=LEVELS) -> pd.DataFrame:
    """Columns `class` (index), `kind` ('precision'|'recall'), `level` (percent), `probability`.

    `y_true` 0/1 and `y_pred` probabilities are `(images, classes)`.
    """
    frames = []
    for c in range(y_true.shape[1]):
        if y_true[:, c].any():
            precision, recall, thresholds = pr_curve(y_true[:, c], y_pred[:, c])
            p_out, r_out = level_thresholds(precision, recall, thresholds, levels)
        else:  # no positives: precision and recall are undefined, every level unreached
            p_out = r_out = np.full(len(levels), np.nan)
        for kind, probs in (("precision", p_out), ("recall", r_out)):
            frames.append(pd.DataFrame({"class": c, "kind": kind, "level": np.asarray(levels), "probability": probs}))
    return pd.concat(frames, ignore_index=True)


def probability_at(maps: pd.DataFrame, class_index: int, level: int, kind: str = "precision") -> float:
    row = maps[(maps["class"] == class_index) & (maps["kind"] == kind) & (maps["level"] == level)]
    if row.empty:
        raise KeyError(f"no {kind} level {level} for class {class_index}; levels are 10..99")
    return float(row["probability"].iloc[0])


def cut_at(maps: pd.DataFrame, n_classes: int, level: int) -> np.ndarray:
    """Every class's probability threshold at precision `level` (NaN where never reached)."""
    if not 10 <= level <= 99:
        raise ValueError(f"precision level {level} is outside 10..99")
    return np.array([probability_at(maps, c, level) for c in range(n_classes)])


def pr_auc(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Per-class area under the PR curve (`sklearn.metrics.auc(recall, precision)`), NaN without positives."""
    from sklearn.metrics import auc

    out = np.full(y_true.shape[1], np.nan)
    for c in range(y_true.shape[1]):
        if y_true[:, c].any():
            precision, recall, _ = pr_curve(y_true[:, c], y_pred[:, c])
            out[c] = auc(recall, precision)
    return out


class ThresholdMaps(Value):
    """`threshold_maps`."""
    maps = Table()   # class, kind (precision or recall), level, probability
