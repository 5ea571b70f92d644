"""Rank likely label errors from the evidence about each (image, class) label:

- confident learning (cleanlab's multi-label functions): how plausible the label is given the
  classifier's out-of-sample probability;
- mask attention: where the classifier looked for the class, measured against the masks. A
  confident prediction whose Grad-CAM energy lies outside every mask suggests a missing label;
  inside another class's mask, a class confusion; a true label whose energy lies outside its own
  mask, or whose mask holds none of it, a loose mask; energy on black no-data pixels, an artefact;
- mask evidence: how well the box the classifier proposes for a labelled class matches the mask.

The signals are combined by a small ensemble of decision trees (`label_issue_weights.json`),
monotone in every signal where the direction is known, fitted by `bench/label_audit.py --fit` on
synthetic datasets and noise draws that the bench's reported figures do not use. Its output, the
`score`, estimates the probability that the label is wrong; every signal's value is kept beside it.
"""
from __future__ import annotations

import functools
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from cloud_assets.lib.attention import BOX_COLUMNS
from cloud_assets.lib.kinds import CONFUSION, LOOSE, MISSING, NODATA, SPURIOUS


def _labels_list(y_true: np.ndarray) -> list[list[int]]:
    return [list(np.flatnonzero(row)) for row in y_true]


def cleanlab_scores(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """float `(n, classes)` label quality per (image, class) in [0, 1]; low means a likely error."""
    from cleanlab.multilabel_classification.rank import get_label_quality_scores_per_class

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(get_label_quality_scores_per_class(_labels_list(y_true), y_pred), dtype=np.float64)


def cleanlab_summary(y_true: np.ndarray, y_pred: np.ndarray, class_names) -> dict:
    """cleanlab's per-class issues `(n, classes)`, its class ranking and overall health score.

    cleanlab's summary functions (`rank_classes_by_multilabel_quality`,
    `overall_multilabel_health_score`) start a process pool whose workers expect `fork`, which
    Dagster's step processes do not use; they only count the per-class issues, which are found here
    in this process (`n_jobs=1`) and counted as cleanlab 2.9 counts them."""
    from cleanlab.multilabel_classification import filter

    labels = _labels_list(y_true)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        issues = np.asarray(filter.find_multilabel_issues_per_class(labels, y_pred, n_jobs=1), dtype=bool)
    n = len(y_true)
    given, inverse = (issues & (y_true == 1)).sum(axis=0), (issues & (y_true == 0)).sum(axis=0)
    ranking = pd.DataFrame({"Class Name": list(class_names), "Class Index": np.arange(len(class_names)),
                            "Label Issues": given, "Inverse Label Issues": inverse, "Label Noise": given / n,
                            "Inverse Label Noise": inverse / n, "Label Quality Score": 1 - given / n})
    ranking = ranking.sort_values("Label Quality Score", kind="stable").reset_index(drop=True)
    return {"issues": issues, "class_ranking": ranking, "health": float(1 - issues.any(axis=1).mean())}


CONFUSION_WEIGHT = 0.8


def attention_score(label: np.ndarray, prob: np.ndarray, own: np.ndarray, other: np.ndarray,
                    outside: np.ndarray, nodata: np.ndarray, swap: np.ndarray,
                    empty: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(score in [0, 1], kind) per (image, class) from the label, the probability, the Grad-CAM
    shares, `swap` (for a labelled class, the strongest evidence that another, unlabelled class is
    what the classifier sees inside this class's mask: its probability x its energy share there)
    and `empty` (the share of the mask without Grad-CAM evidence)."""
    label = label.astype(bool)
    candidates = {
        # an unlabelled class the model sees, looking where no mask is
        MISSING: np.where(~label, prob * outside, 0.0),
        # an unlabelled class the model sees inside another class's mask: a swapped label, or the
        # model's own confusion between the two, so weaker evidence than energy where no mask is
        CONFUSION: np.where(~label, CONFUSION_WEIGHT * prob * other, 0.0),
        # a labelled class the model does not see, or whose mask holds another class
        SPURIOUS: np.where(label, np.maximum(0.5 * (1 - prob) * (1 - own), swap), 0.0),
        # a labelled class the model sees, but not inside its mask, or a mask that holds none of it
        LOOSE: np.where(label, prob * np.maximum(other + outside, empty), 0.0),
        NODATA: prob * nodata,
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
    `score` (the estimated probability that the label is wrong), and the signals `label`,
    `probability`, `cleanlab`, `attention_score`, `mask_evidence`, `swap`, `cam_own`, `cam_other`,
    `cam_outside`, `cam_nodata`, `pointing_hit`, `mask_area`, `cam_empty`, `detail_empty`, `box_iou`
    and the proposed box `box_top` ... `box_right`; `cleanlab_issue` (cleanlab's own per-class
    verdict) when `cleanlab_issues` `(n, classes)` is given."""
    t = attention.sort_values(["index", "class_index"]).reset_index(drop=True)
    idx, c = t["index"].to_numpy(), t["class_index"].to_numpy()
    label, prob = y_true[idx, c].astype(np.int8), y_pred[idx, c].astype(np.float64)
    quality = cleanlab_scores(y_true, y_pred)[idx, c]
    swap, swap_by = swap_evidence(t, label, prob)
    att, kind = attention_score(label, prob, t["cam_own"].to_numpy(), t["cam_other"].to_numpy(),
                                t["cam_outside"].to_numpy(), t["cam_nodata"].to_numpy(), swap,
                                t["cam_empty"].to_numpy())
    other = np.where(kind == CONFUSION, t["other_class"], np.where(kind == SPURIOUS, swap_by, ""))
    out = pd.DataFrame({"image": t["image"], "class": t["class"], "index": idx, "kind": kind, "other_class": other,
                        "label": label, "probability": prob, "cleanlab": 1 - quality, "attention_score": att,
                        "mask_evidence": np.where(label == 1, prob * (1 - t["box_iou"].to_numpy()), 0.0),
                        "swap": swap})
    for col in ("cam_own", "cam_other", "cam_outside", "cam_nodata", "pointing_hit", "mask_area", "cam_empty",
                "detail_empty", "box_iou", *BOX_COLUMNS):
        out[col] = t[col].to_numpy()
    out.insert(5, "score", error_probability(out))
    if cleanlab_issues is not None:
        out["cleanlab_issue"] = cleanlab_issues[idx, c]
    return out.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


# the signals the trees see, per label state, and the direction each may move the score (1 up, -1 down, 0 free)
SIGNALS = {
    "labelled": {"cleanlab": 1, "logit": 0, "cam_own": -1, "cam_other": 1, "cam_outside": 1, "cam_nodata": 1,
                 "swap": 1, "mask_area": 0, "cam_empty": 1, "detail_empty": 1, "box_iou": -1, "attention_score": 1},
    "unlabelled": {"cleanlab": 1, "logit": 1, "cam_other": 1, "cam_outside": 1, "cam_nodata": 1, "attention_score": 1},
}
WEIGHTS_PATH = Path(__file__).with_name("label_issue_weights.json")


def signals(frame: pd.DataFrame, state: str) -> np.ndarray:
    p = np.clip(frame["probability"].to_numpy(np.float64), 1e-6, 1 - 1e-6)
    columns = {**{k: frame[k].to_numpy(np.float64) for k in SIGNALS[state] if k != "logit"},
               "logit": np.log(p / (1 - p))}
    return np.stack([columns[k] for k in SIGNALS[state]], axis=1)


@functools.cache
def _weights() -> dict:
    return json.loads(WEIGHTS_PATH.read_text())


def log_odds(model: dict, x: np.ndarray) -> np.ndarray:
    """The ensemble's log-odds for rows `x`: its baseline plus the value of the leaf each tree sends a row to."""
    raw = np.full(len(x), model["baseline"])
    rows = np.arange(len(x))
    for tree in model["trees"]:
        t = {k: np.asarray(v) for k, v in tree.items()}
        node = np.zeros(len(x), np.int64)
        while not t["leaf"][node].all():
            value = x[rows, t["feature"][node]]
            left = np.where(np.isnan(value), t["missing_left"][node], value <= t["threshold"][node])
            node = np.where(t["leaf"][node], node, np.where(left, t["left"][node], t["right"][node]))
        raw += t["value"][node]
    return raw


def error_probability(frame: pd.DataFrame, weights: dict | None = None) -> np.ndarray:
    """float64 `(rows,)`: the estimated probability that each label of a `rank` frame is wrong."""
    weights = weights or _weights()
    out = np.zeros(len(frame))
    for state, labelled in (("labelled", 1), ("unlabelled", 0)):
        rows = (frame["label"] == labelled).to_numpy()
        if rows.any():
            out[rows] = 1 / (1 + np.exp(-log_odds(weights[state], signals(frame[rows], state))))
    return out
