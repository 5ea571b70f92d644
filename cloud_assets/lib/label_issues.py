"""Rank likely label errors from two kinds of evidence about each (image, class) label:

- confident learning (cleanlab's multi-label functions): how plausible the label is given the
  classifier's out-of-sample probability;
- mask attention: where the classifier looked for the class, measured against the masks. A
  confident prediction whose Grad-CAM energy lies outside every mask suggests a missing label;
  inside another class's mask, a class confusion; a true label whose energy lies outside its own
  mask, a loose mask; energy on black no-data pixels, an artefact.

The combined score is 0.3 x the confident-learning score + 0.7 x the attention score, each in
[0, 1]; every signal's value is kept beside it. `bench/label_audit.py` scores both against the
synthetic dataset's injected errors.
"""
from __future__ import annotations

import contextlib
import functools
import warnings

import numpy as np
import pandas as pd

from cloud_assets.lib.attention import BOX_COLUMNS

def _labels_list(y_true: np.ndarray) -> list[list[int]]:
    return [list(np.flatnonzero(row)) for row in y_true]


def cleanlab_scores(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """float `(n, classes)` label quality per (image, class) in [0, 1]; low means a likely error."""
    from cleanlab.multilabel_classification.rank import get_label_quality_scores_per_class

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(get_label_quality_scores_per_class(_labels_list(y_true), y_pred), dtype=np.float64)


@contextlib.contextmanager
def _one_process():
    """cleanlab's dataset-level functions start a process pool whose workers expect `fork` to hand
    them module globals; Dagster's step processes use another start method (and forking them can
    hang). Their helpers take `n_jobs`: run them in this process."""
    from cleanlab.multilabel_classification import dataset

    saved = {name: getattr(dataset, name) for name in ("find_multilabel_issues_per_class", "find_label_issues")}
    try:
        for name, fn in saved.items():
            setattr(dataset, name, functools.partial(fn, n_jobs=1))
        yield
    finally:
        for name, fn in saved.items():
            setattr(dataset, name, fn)


def cleanlab_summary(y_true: np.ndarray, y_pred: np.ndarray, class_names) -> dict:
    """cleanlab's per-class issue counts, class ranking and overall health score."""
    from cleanlab.multilabel_classification import dataset, filter

    labels = _labels_list(y_true)
    with warnings.catch_warnings(), _one_process():
        warnings.simplefilter("ignore")
        per_class = filter.find_multilabel_issues_per_class(labels, y_pred, n_jobs=1)
        ranking = dataset.rank_classes_by_multilabel_quality(labels, y_pred, class_names=list(class_names))
        health = float(dataset.overall_multilabel_health_score(labels, y_pred))
    issues = np.asarray(per_class, dtype=bool)  # (n, classes)
    return {"issues": issues, "class_ranking": ranking, "health": health}


CLEANLAB_WEIGHT = 0.3  # the rest is the attention score
CONFUSION_WEIGHT = 0.8


def attention_score(label: np.ndarray, prob: np.ndarray, own: np.ndarray, other: np.ndarray,
                    outside: np.ndarray, nodata: np.ndarray, swap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(score in [0, 1], kind) per (image, class) from the label, the probability, the Grad-CAM
    shares and `swap`: for a labelled class, the strongest evidence that another, unlabelled class
    is what the classifier sees inside this class's mask (its probability x its energy share there)."""
    label = label.astype(bool)
    candidates = {
        # an unlabelled class the model sees, looking where no mask is
        "missing label": np.where(~label, prob * outside, 0.0),
        # an unlabelled class the model sees inside another class's mask: a swapped label, or the
        # model's own confusion between the two, so weaker evidence than energy where no mask is
        "class confusion": np.where(~label, CONFUSION_WEIGHT * prob * other, 0.0),
        # a labelled class the model does not see, or whose mask holds another class
        "spurious label": np.where(label, np.maximum(0.5 * (1 - prob) * (1 - own), swap), 0.0),
        # a labelled class the model sees, but not inside its mask
        "loose mask": np.where(label, prob * (other + outside), 0.0),
        "no-data artefact": prob * nodata,
    }
    names = list(candidates)
    stacked = np.stack([candidates[k] for k in names], axis=1)
    return stacked.max(axis=1), np.asarray(names, dtype=object)[stacked.argmax(axis=1)]


def swap_evidence(t: pd.DataFrame, label: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of the attention table `t`: (evidence, class) that an unlabelled class of the same
    image puts its Grad-CAM energy inside this row's class mask; 0 and '' where none does."""
    seen = pd.DataFrame({"index": t["index"], "target": t["other_class"],
                         "evidence": np.where(label == 0, prob * t["cam_other"], 0.0), "by": t["class"]})
    seen = seen[(seen["target"] != "") & (seen["evidence"] > 0)]
    best = seen.sort_values("evidence", ascending=False).drop_duplicates(["index", "target"])
    best = best.set_index(["index", "target"])
    keys = pd.MultiIndex.from_arrays([t["index"], t["class"]])
    return (best["evidence"].reindex(keys).fillna(0.0).to_numpy(),
            best["by"].reindex(keys).fillna("").to_numpy(dtype=object))


def rank(attention: pd.DataFrame, y_true: np.ndarray, y_pred: np.ndarray, class_names,
         cleanlab_issues: np.ndarray | None = None) -> pd.DataFrame:
    """One row per (image, class), most likely error first: `image`, `class`, `kind`, `other_class`,
    `score`, and the signals `label`, `probability`, `cleanlab`, `attention`, `swap`, `cam_own`,
    `cam_other`, `cam_outside`, `cam_nodata`, `pointing_hit`; `cleanlab_issue` (cleanlab's own
    per-class verdict) when `cleanlab_issues` `(n, classes)` is given."""
    t = attention.sort_values(["index", "class_index"]).reset_index(drop=True)
    idx, c = t["index"].to_numpy(), t["class_index"].to_numpy()
    label, prob = y_true[idx, c].astype(np.int8), y_pred[idx, c].astype(np.float64)
    quality = cleanlab_scores(y_true, y_pred)[idx, c]
    swap, swap_by = swap_evidence(t, label, prob)
    att, kind = attention_score(label, prob, t["cam_own"].to_numpy(), t["cam_other"].to_numpy(),
                                t["cam_outside"].to_numpy(), t["cam_nodata"].to_numpy(), swap)
    other = np.where(kind == "class confusion", t["other_class"], np.where(kind == "spurious label", swap_by, ""))
    out = pd.DataFrame({"image": t["image"], "class": t["class"], "index": idx, "kind": kind, "other_class": other,
                        "score": CLEANLAB_WEIGHT * (1 - quality) + (1 - CLEANLAB_WEIGHT) * att, "label": label,
                        "probability": prob, "cleanlab": 1 - quality, "attention": att, "swap": swap})
    for col in ("cam_own", "cam_other", "cam_outside", "cam_nodata", "pointing_hit", "mask_area", "cam_empty",
                "detail_empty", "box_iou", *BOX_COLUMNS):
        out[col] = t[col].to_numpy()
    if cleanlab_issues is not None:
        out["cleanlab_issue"] = cleanlab_issues[idx, c]
    return out.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


def injected_errors(manifest: pd.DataFrame, images) -> set[tuple[str, str]]:
    """The (image, class) labels a synth manifest made wrong, restricted to `images`."""
    keep = set(images)
    errors = set()
    for image, cls, kind, labelled_as in manifest[["image", "class", "kind", "labelled_as"]].itertuples(index=False):
        if image in keep:
            errors.add((image, cls))
            if kind == "swapped" and labelled_as:
                errors.add((image, labelled_as))
    return errors


def expected_hits(score: np.ndarray, truth: np.ndarray, n: int) -> float:
    """How many true errors the top `n` by `score` hold, ties broken at random (the expectation):
    a flag-style score (0/1, as the seed's FP set) gets no help from the order of its ties."""
    order = np.argsort(-score, kind="stable")
    s, t = score[order], truth[order]
    levels, starts = np.unique(-s, return_index=True)
    hits, taken = 0.0, 0
    for start, end in zip(starts, list(starts[1:]) + [len(s)]):
        size = end - start
        if taken + size <= n:
            hits, taken = hits + t[start:end].sum(), taken + size
        else:
            hits += t[start:end].sum() * (n - taken) / size
            break
    return float(hits)


def scores_against(ranked: pd.DataFrame, errors: set, score: str) -> dict:
    """precision at k (k = number of errors), recall at 2k (ties broken at random, in expectation)
    and AUROC of one score column."""
    from sklearn.metrics import roc_auc_score

    truth = np.array([(i, c) in errors for i, c in zip(ranked["image"], ranked["class"])])
    values = ranked[score].to_numpy(dtype=float)
    k = int(truth.sum())
    if not 0 < k < len(truth):
        return {"precision_at_k": float("nan"), "recall_at_2k": float("nan"), "auroc": float("nan"), "k": k}
    return {"precision_at_k": expected_hits(values, truth, k) / k,
            "recall_at_2k": expected_hits(values, truth, 2 * k) / k,
            "auroc": float(roc_auc_score(truth, values)), "k": k}
