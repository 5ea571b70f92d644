"""One-vs-rest confusion matrices, TP/FP/FN sets and the classes behind them, at a precision level."""
from __future__ import annotations

import numpy as np
import pandas as pd
from cloud_assets.lib.store import Document, Table, Value


def binarize(y_pred: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """1 where `y_pred >= threshold` per class (the notebook's `np.where(... >= t, 1.0, 0.0)`);
    a NaN threshold (precision never reached) predicts nothing."""
    with np.errstate(invalid="ignore"):
        return (y_pred >= np.asarray(thresholds)[None, :]).astype(np.int8)


def confusion(y_true: np.ndarray, y_bin: np.ndarray) -> np.ndarray:
    """int64 `(classes, 2, 2)` one-vs-rest `[[tn, fp], [fn, tp]]`, as `multilabel_confusion_matrix`."""
    t, p = y_true.astype(bool), y_bin.astype(bool)
    tp = (t & p).sum(0)
    fp = (~t & p).sum(0)
    fn = (t & ~p).sum(0)
    tn = (~t & ~p).sum(0)
    return np.stack([np.stack([tn, fp], -1), np.stack([fn, tp], -1)], 1).astype(np.int64)


def normalize_rows(matrices: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (the notebook's normalize=True); NaN for an empty row."""
    sums = matrices.sum(axis=-1, keepdims=True).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sums > 0, matrices / sums, np.nan)


def confusion_table(y_true: np.ndarray, y_pred: np.ndarray, maps: pd.DataFrame, levels, class_names) -> pd.DataFrame:
    """One row per (class, precision level): `class`, `level`, `threshold` (from the threshold `maps`),
    `tn`, `fp`, `fn`, `tp` and their row-normalized `*_rate`s."""
    from cloud_assets.lib.classifier.thresholds import cut_at

    rows = []
    for level in levels:
        cut = cut_at(maps, len(class_names), level)
        matrices = confusion(y_true, binarize(y_pred, cut))
        normalized = normalize_rows(matrices)
        for c, name in enumerate(class_names):
            (tn, fp), (fn, tp) = matrices[c]
            (ntn, nfp), (nfn, ntp) = normalized[c]
            rows.append({"class": name, "level": level, "threshold": cut[c], "tn": tn, "fp": fp, "fn": fn, "tp": tp,
                         "tn_rate": ntn, "fp_rate": nfp, "fn_rate": nfn, "tp_rate": ntp})
    return pd.DataFrame(rows)


def outcome_indices(y_true_c: np.ndarray, y_pred_c: np.ndarray, threshold: float):
    """(tp, fp, fn) image indices for one class, as the notebook's `get_fp_tp_fn_indices`."""
    with np.errstate(invalid="ignore"):
        pred = y_pred_c >= threshold
    label = y_true_c == 1
    return (np.flatnonzero(label & pred), np.flatnonzero(~label & pred), np.flatnonzero(label & ~pred))


def class_distribution(y_true: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Per class, how many of the images `indices` carry it (the notebook's `barplot_per_classes`)."""
    return y_true[indices].sum(axis=0).astype(np.int64) if len(indices) else np.zeros(y_true.shape[1], np.int64)


def mistakes_table(y_true, y_pred, thresholds, class_names, images) -> pd.DataFrame:
    """Long table: `class`, `outcome` (tp|fp|fn), `index` (val image), `image`, `probability`."""
    frames = []
    for c, name in enumerate(class_names):
        for outcome, idx in zip(("tp", "fp", "fn"), outcome_indices(y_true[:, c], y_pred[:, c], thresholds[c])):
            frames.append(pd.DataFrame({"class": name, "outcome": outcome, "index": idx,
                                        "image": np.asarray(images, dtype=object)[idx],
                                        "probability": y_pred[idx, c].astype(np.float32)}))
    return pd.concat(frames, ignore_index=True)


def distribution_table(y_true, mistakes: pd.DataFrame, outcome: str, class_names) -> pd.DataFrame:
    """For each class, how many of its `outcome` ('fp'|'fn') images carry each true class,
    plus how many carry no label at all. Columns `class`, `true_class`, `images`, `of`."""
    rows = []
    for c, name in enumerate(class_names):
        idx = mistakes.loc[(mistakes["class"] == name) & (mistakes["outcome"] == outcome), "index"].to_numpy()
        counts = class_distribution(y_true, idx)
        unlabelled = int((y_true[idx].sum(axis=1) == 0).sum()) if len(idx) else 0
        for true_name, n in zip(list(class_names) + ["(no label)"], list(counts) + [unlabelled]):
            rows.append({"class": name, "true_class": true_name, "images": int(n), "of": len(idx)})
    return pd.DataFrame(rows)


class ConfusionMatrices(Value):
    """`confusion_matrices`."""
    matrices = Table()


class Mistakes(Value):
    """`mistakes`: TP / FP / FN validation images per class at a precision level."""
    mistakes = Table()
    level = Document()   # precision_level, thresholds


class ClassDistribution(Value):
    """`fp_class_distribution`, `fn_class_distribution`."""
    distribution = Table()
