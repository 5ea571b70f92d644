"""Rank likely label errors over every (image, class) label of train.csv.

The evidence about every label comes from the fold audit (`lib.audit.evidence`), whose model never
saw the image: confident learning on its class probability (cleanlab's multi-label functions), the
mask's quality given its per-pixel probabilities (cleanlab.segmentation), the predicted mass outside
the mask, the mask's share without prediction, the predicted region's box against the mask, a
prediction in two regions or dipping between two parts of the mask's box, and a prediction inside
another class's mask (a swap). With the class network (CLOUD_ASSETS_AUDIT_CLASS_NETWORK=densenet),
its mask attention too: where its Grad-CAM and Guided Grad-CAM for the class fall, the reference
notebook's method applied out of sample to every label.

Where the classifier being audited predicted the image out of sample (the validation split), its
own evidence is added: confident learning on its probability, and mask attention, where its
Grad-CAM energy for the class falls (inside the class's mask, inside another's, outside every mask,
on no-data pixels) and how well the box it proposes matches the mask. Elsewhere those signals are
missing (NaN), which the trees read as such.

The signals are combined by gradient-boosted trees (scikit-learn's HistGradientBoostingClassifier,
one for labelled and one for unlabelled classes), monotone in every signal whose direction is known,
fitted by `bench/label_audit.py --fit` on synthetic datasets and noise draws that the bench's
reported figures do not use, and stored with skops, one fit per audit profile
(`ranking_trees_<profile>.skops`). Their output, the
`score`, estimates the probability that the label is wrong; every signal's value is kept beside it.
"""
from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from cloud_assets.lib.saliency.attention import BOX_COLUMNS, parse_boxes
from cloud_assets.lib.audit import proposals
from cloud_assets.lib.audit.kinds import CONFUSION, LOOSE, MISSING, NODATA, SPURIOUS
from cloud_assets.lib.files import sha256
from cloud_assets.lib.store import Array, Document, Table, Value


def _labels_list(y_true: np.ndarray) -> list[list[int]]:
    return [list(np.flatnonzero(row)) for row in y_true]


def cleanlab_scores(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """float `(n, classes)` label quality per (image, class) in [0, 1]; low means a likely error."""
    from cleanlab.multilabel_classification.rank import get_label_quality_scores_per_class

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(get_label_quality_scores_per_class(_labels_list(y_true), y_pred), dtype=np.float64)


def cleanlab_summary(y_true: np.ndarray, y_pred: np.ndarray, class_names) -> dict:
    """cleanlab's per-class issues `(n, classes)`, its class ranking (with each class's estimated
    error rate among its labels) and overall health score.

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
    """(score in [0, 1], kind) per (image, class) from the label, the classifier's probability, the
    Grad-CAM shares, `swap` (for a labelled class, the strongest evidence that another, unlabelled
    class is what the classifier sees inside this class's mask: its probability x its energy share
    there) and `empty` (the share of the mask without Grad-CAM evidence)."""
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
    return _strongest(candidates)


SWAP_EVIDENCE = 0.2  # the least swap evidence (`audit_swap`) for which a spurious label's mask is moved, not removed


def audit_kind(label: np.ndarray, prob: np.ndarray, inside_other: np.ndarray, outside: np.ndarray,
               uncovered: np.ndarray, region_iou: np.ndarray, regions: np.ndarray,
               swap: np.ndarray, other_seen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(evidence in [0, 1], kind) per (image, class) from the fold audit's signals, as
    `attention_score` reads the classifier's: `swap` is, for a labelled class, the strongest evidence
    that an unlabelled class is predicted inside its mask; `other_seen`, for an unlabelled class,
    whether the model sees a region of the class whose mask holds its prediction. A labelled class the
    model sees a region of (`regions` > 0) is neither removed nor moved to another class: the class is
    there, so its mask is what is wrong, and the fix is a new mask. Likewise an unlabelled class inside
    a mask whose own class is seen is missing, not swapped with it: that label stands."""
    label, seen = label.astype(bool), regions > 0
    misplaced = np.maximum.reduce([outside, uncovered, 1 - region_iou, (regions > 1).astype(float)])
    absent = _strongest({MISSING: prob * (1 - inside_other),
                         CONFUSION: np.where(other_seen, 0.0, CONFUSION_WEIGHT * prob * inside_other)})
    present = _strongest({LOOSE: np.where(seen, np.maximum(prob, 1 - prob), prob) * misplaced,
                          SPURIOUS: np.where(seen, 0.0, np.maximum(1 - prob, swap))})
    return np.where(label, present[0], absent[0]), np.where(label, present[1], absent[1])


def _strongest(candidates: dict) -> tuple[np.ndarray, np.ndarray]:
    names = list(candidates)
    stacked = np.stack([candidates[k] for k in names], axis=1)
    return stacked.max(axis=1), np.asarray(names, dtype=object)[stacked.argmax(axis=1)]


def swap_evidence(images, classes, targets, strength: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row (image, class): (evidence, class) that another class of the same image, unlabelled,
    is seen inside this row's class mask; `targets` names, per row, the class whose mask holds the
    row's evidence, and `strength` is that evidence (0 on labelled rows). 0 and '' where none is."""
    seen = pd.DataFrame({"image": images, "target": targets, "evidence": strength, "by": classes})
    seen = seen[(seen["target"] != "") & (seen["evidence"] > 0)]
    best = seen.sort_values("evidence", ascending=False).drop_duplicates(["image", "target"])
    best = best.set_index(["image", "target"])
    keys = pd.MultiIndex.from_arrays([np.asarray(images), np.asarray(classes)])
    return (best["evidence"].reindex(keys).fillna(0.0).to_numpy(),
            best["by"].reindex(keys).fillna("").to_numpy(dtype=object))


CLASSIFIER_COLUMNS = ("probability", "cleanlab", "attention_score", "swap", "cam_own", "cam_other", "cam_outside",
                      "cam_nodata", "pointing_hit", "cam_empty", "detail_empty", "cam_box_iou")


def classifier_evidence(attention: pd.DataFrame, y_true: np.ndarray, y_pred: np.ndarray) -> pd.DataFrame:
    """The classifier's evidence per (image, class) of the split it predicted out of sample: the
    mask-attention table `attention` (`lib.saliency.attention.attention_table`), the labels and its
    probabilities `(n, classes)` in the table's `index` order. Columns `image`, `class`,
    `CLASSIFIER_COLUMNS` and `cam_kind` (what the attention suggests)."""
    t = attention.sort_values(["index", "class_index"]).reset_index(drop=True)
    idx, c = t["index"].to_numpy(), t["class_index"].to_numpy()
    label, prob = y_true[idx, c].astype(np.int8), y_pred[idx, c].astype(np.float64)
    swap, _ = swap_evidence(t["image"], t["class"], t["other_class"], np.where(label == 0, prob * t["cam_other"], 0.0))
    att, kind = attention_score(label, prob, t["cam_own"].to_numpy(), t["cam_other"].to_numpy(),
                                t["cam_outside"].to_numpy(), t["cam_nodata"].to_numpy(), swap,
                                t["cam_empty"].to_numpy())
    out = pd.DataFrame({"image": t["image"], "class": t["class"], "probability": prob,
                        "cleanlab": 1 - cleanlab_scores(y_true, y_pred)[idx, c], "attention_score": att,
                        "swap": swap, "cam_kind": kind, "cam_box_iou": t["box_iou"].to_numpy()})
    for col in ("cam_own", "cam_other", "cam_outside", "cam_nodata", "pointing_hit", "cam_empty", "detail_empty"):
        out[col] = t[col].to_numpy()
    return out


AUDIT_COLUMNS = ("audit_probability", "audit_cleanlab", "mask_quality", "outside_mass", "region_outside", "mask_area",
                 "uncovered", "region_iou", "regions", "gap", "mask_fit", "moved_box_gain", "one_box_fit", "two_box_gain",
                 "predicted_area", "inside_other", "audit_swap")
# the class network's mask attention (`lib.audit.evidence.class_attention`; NaN without it) and the swap it suggests
CLASS_NETWORK_COLUMNS = ("class_cam_own", "class_cam_other", "class_cam_outside", "class_cam_empty", "class_ggc_own",
                         "class_ggc_other", "class_ggc_outside", "class_ggc_nodata", "class_detail_empty",
                         "class_cam_box_iou", "class_swap")


def labels_frame(evidence: pd.DataFrame, split: dict, classifier: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (image, class) of the audit's `evidence` (`lib.audit.evidence.evidence`), in its
    order: `image`, `class`, `split` (from `split`: image -> train/val), `kind` (what the evidence
    suggests), `other_class`, `label`, the audit's signals `AUDIT_COLUMNS` and `CLASS_NETWORK_COLUMNS`, the classifier's
    `CLASSIFIER_COLUMNS` (from `classifier_evidence`; NaN where it has none), the predicted region's
    box `box_top` ... `box_right`, the labelled mask's box `label_box_*`, and `proposal`:
    the boxes a fix proposes (the audit's `audit_boxes`)."""
    e = evidence.reset_index(drop=True)
    label, prob = e["label"].to_numpy(np.int8), e["audit_probability"].to_numpy(np.float64)
    audit_swap, audit_swap_by = swap_evidence(e["image"], e["class"], e["other_class"],
                                              np.where(label == 0, prob * e["inside_other"], 0.0))
    out = pd.DataFrame({"image": e["image"], "class": e["class"], "split": e["image"].map(split).fillna(""),
                        "label": label})
    for col in AUDIT_COLUMNS[:-1]:
        out[col] = e[col].to_numpy()
    out["audit_swap"] = audit_swap
    for col in CLASS_NETWORK_COLUMNS[:-1]:
        out[col] = e[col].to_numpy(np.float64) if col in e else np.nan
    class_other = e["class_other"].fillna("") if "class_other" in e else pd.Series("", index=e.index)
    out["class_swap"], _ = swap_evidence(e["image"], e["class"], class_other,
                                         np.where(label == 0, prob * out["class_ggc_other"].fillna(0.0), 0.0))
    out.loc[out["class_cam_own"].isna(), "class_swap"] = np.nan
    regions = e.set_index(["image", "class"])["regions"]
    other_seen = regions.reindex(pd.MultiIndex.from_arrays([e["image"], e["other_class"]])).fillna(0).to_numpy() > 0
    _, kind = audit_kind(label, prob, e["inside_other"].to_numpy(), e["outside_mass"].to_numpy(),
                         e["uncovered"].to_numpy(), e["region_iou"].to_numpy(), e["regions"].to_numpy(), audit_swap,
                         other_seen)
    other = np.where(kind == CONFUSION, e["other_class"],
                     np.where((kind == SPURIOUS) & (audit_swap >= SWAP_EVIDENCE), audit_swap_by, ""))
    if classifier is None:
        out[list(CLASSIFIER_COLUMNS)] = np.nan
    else:
        joined = out[["image", "class"]].merge(classifier, on=["image", "class"], how="left")
        out[list(CLASSIFIER_COLUMNS)] = joined[list(CLASSIFIER_COLUMNS)].to_numpy(np.float64)
        kind = np.where(joined["cam_kind"].to_numpy(dtype=object) == NODATA, NODATA, kind)
    out.insert(3, "kind", kind)
    out.insert(4, "other_class", np.where(kind == NODATA, "", other))
    for col, audit_col in zip(BOX_COLUMNS, ("audit_box_top", "audit_box_left", "audit_box_bottom", "audit_box_right")):
        out[col] = e[audit_col].to_numpy()
    for col in proposals.LABEL_BOX:
        out[col] = e[col].to_numpy(np.float64) if col in e else np.nan
    out["proposal"] = e["audit_boxes"].to_numpy() if "audit_boxes" in e else ""
    return out


# in the final trees: their regressors of the proposal's sides were fitted on the proposals `lib.audit.sharpen`
# draws, which `rank` then draws for its first candidates (a profile whose trees lack it keeps the evidence's)
SHARPENED = "sharpened_proposals"


def rank(evidence: pd.DataFrame, split: dict, classifier: pd.DataFrame | None = None,
         trees: dict | None = None, sharpen: Callable[[pd.DataFrame], pd.Series] | None = None) -> pd.DataFrame:
    """`labels_frame` with `score` (the estimated probability that the label is wrong, from `trees`,
    the trees of an audit profile, by default the fast one's), most likely error first; with `sharpen`
    (the ranking -> the proposals it draws anew, by row: `lib.audit.sharpen`), those proposals in
    place of the evidence's where the trees' regressors were fitted on proposals so drawn (`SHARPENED`);
    where the trees hold regressors of the proposal's sides (`proposal_sides`), each `proposal` then
    refined by them (`lib.audit.proposals`)."""
    out = labels_frame(evidence, split, classifier)
    trees = trees or load_trees(trees_path())
    out.insert(5, "score", error_probability(out, trees))
    out = out.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    if sharpen is not None and trees.get(SHARPENED):
        drawn = sharpen(out)
        out.loc[drawn.index, "proposal"] = drawn
    if "proposal_sides" in trees:
        out["proposal"] = proposals.refined(out, trees["proposal_sides"])
    return out


# the signals the trees see, per label state, and the direction each may move the score (1 up, -1 down, 0 free)
SIGNALS = {
    "labelled": {"audit_cleanlab": 1, "audit_logit": 0, "mask_quality": -1, "outside_mass": 1, "region_outside": 1,
                 "mask_area": 0, "uncovered": 1, "region_iou": -1, "regions": 0, "gap": 1, "mask_fit": 0,
                 "moved_box_gain": 0, "one_box_fit": 0, "two_box_gain": 0, "predicted_area": 0, "audit_swap": 1,
                 "cleanlab": 1, "logit": 0, "cam_own": -1, "cam_other": 1, "cam_outside": 1, "cam_empty": 1,
                 "cam_box_iou": -1, "swap": 1, "class_ggc_own": -1, "class_ggc_other": 1, "class_ggc_outside": 1,
                 "class_detail_empty": 1, "class_cam_box_iou": -1, "class_swap": 1, "class_cam_own": -1,
                 "class_cam_other": 1, "class_cam_outside": 1, "class_cam_empty": 1},
    "unlabelled": {"audit_cleanlab": 1, "audit_logit": 1, "inside_other": 0, "predicted_area": 1,
                   "cleanlab": 1, "logit": 1, "cam_other": 1, "cam_outside": 1, "cam_nodata": 0,
                   "class_ggc_other": 1, "class_ggc_outside": 1, "class_ggc_nodata": 0, "class_cam_other": 1,
                   "class_cam_outside": 1},
}
STATES = {"labelled": 1, "unlabelled": 0}


def trees_path(profile: str = "fast", class_network: str = "unet", first_round: bool = False) -> Path:
    """The stored trees for the fold audit's `profile` (`lib.audit.network.PROFILES`) and class network
    (`CLASS_NETWORKS`): its signals, and so the trees that read them, differ with its resolution and networks;
    with `first_round`, those that rank the first round's evidence alone (`lib.audit.relabel`; the U-Net's)."""
    name = f"{profile}-first" if first_round else f"{profile}{'' if class_network == 'unet' else '-' + class_network}"
    return Path(__file__).with_name(f"ranking_trees_{name}.skops")


def trees_version(path: Path) -> str:
    """The stored trees' part of a code version: the first 8 hex digits of the file's SHA-256 ("none"
    where there is none), so that new trees rank again what the old ones ranked."""
    return sha256(path)[:8] if path.is_file() else "none"


# what the stored trees may hold besides scikit-learn's and Python's own trusted types
TRUSTED = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]


def _logit(p) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def signals(frame: pd.DataFrame, state: str, names=None) -> pd.DataFrame:
    """The `state`'s signals (`names`, by default every one of `SIGNALS`) of the rows of a `rank` frame,
    one column each, as the trees read them."""
    columns = {"audit_logit": _logit(frame["audit_probability"]), "logit": _logit(frame["probability"])}
    return pd.DataFrame({k: columns[k] if k in columns else frame[k].to_numpy(np.float64)
                         for k in (SIGNALS[state] if names is None else names)}, index=frame.index)


@functools.cache
def load_trees(path: Path) -> dict:
    """The stored trees: {"labelled": classifier, "unlabelled": classifier, "note": how they were fitted};
    FileNotFoundError naming the fitted ones where `path` (`trees_path`) has none."""
    import skops.io

    if not Path(path).is_file():
        fitted = sorted(p.stem.removeprefix("ranking_trees_") for p in Path(path).parent.glob("ranking_trees_*.skops"))
        raise FileNotFoundError(
            f"{Path(path).name}: the ranking has no trees for this audit profile and class network "
            f"(CLOUD_ASSETS_AUDIT_PROFILE, CLOUD_ASSETS_AUDIT_CLASS_NETWORK); it has them for {', '.join(fitted)} "
            f"(profile-class network); fit them on tuning data with bench/label_audit.py --fit --profile P "
            f"--class-network C")
    return skops.io.load(path, trusted=TRUSTED)


def error_probability(frame: pd.DataFrame, trees: dict | None = None) -> np.ndarray:
    """float64 `(rows,)`: the estimated probability that each label of a `rank` frame is wrong."""
    trees = trees or load_trees(trees_path())
    out = np.zeros(len(frame))
    for state, labelled in STATES.items():
        rows = (frame["label"] == labelled).to_numpy()
        if rows.any():
            tree = trees[state]  # it reads the signals it was fitted on
            out[rows] = tree.predict_proba(signals(frame[rows], state, list(tree.feature_names_in_)))[:, 1]
    return out


def _where(boxes) -> str:
    """Where the first of `boxes` (shares of the side) lies, in words: 'in the lower left'."""
    if not boxes:
        return "in the image"
    top, left, bottom, right = boxes[0]
    row = min(2, int(3 * (top + bottom) / 2))
    column = min(2, int(3 * (left + right) / 2))
    if column == 1:
        return ("at the top", "in the centre", "at the bottom")[row]
    side = ("left", "", "right")[column]
    return f"on the {side}" if row == 1 else f"in the {('upper', '', 'lower')[row]} {side}"


SUSPECT = 0.5  # a label whose score reaches this is one the audit suspects


def how_many_wrong(issues: pd.DataFrame) -> tuple[int, int]:
    """(the labels the audit suspects: score >= SUSPECT, the estimate of how many labels are wrong:
    the sum of the scores, each the probability that its label is wrong) of `rank`'s frame."""
    return int((issues["score"] >= SUSPECT).sum()), int(round(issues["score"].sum()))


def reason(r) -> str:
    """Why a candidate (a row of `rank`'s frame) is suspected, in one sentence, from its evidence."""
    cls, other, p = r["class"], r["other_class"], float(r["audit_probability"])
    if r["kind"] == MISSING:
        return f"{cls} is seen {_where(parse_boxes(r.get('proposal')))} (p {p:.2f}) but not labelled"
    if r["kind"] == CONFUSION:
        return (f"what the {other} mask holds looks like {cls} (p {p:.2f}): the two may be swapped" if other else
                f"{cls} is seen inside another class's mask (p {p:.2f}) but not labelled")
    if r["kind"] == SPURIOUS:
        if other:
            return f"the {cls} mask holds what looks like {other}, and {cls} is hardly seen (p {p:.2f})"
        return f"{cls} is labelled but hardly seen anywhere (p {p:.2f})"
    if r["kind"] == LOOSE:
        if r["regions"] >= 2 and r["uncovered"] >= r["outside_mass"]:
            return f"{cls} is seen as {int(r['regions'])} separate patches, with one box drawn around them"
        if r.get("gap", 0) >= 0.5 and r["uncovered"] >= r["outside_mass"]:
            return f"{cls} is seen in two parts of its box, with a gap between them"
        if r["outside_mass"] >= r["uncovered"]:
            return f"the {cls} box misses {r['outside_mass']:.0%} of where {cls} is seen"
        return f"{r['uncovered']:.0%} of the {cls} box shows no {cls}"
    return f"the classifier's evidence for {cls} lies on black no-data pixels, not on the clouds"


def accept_does(r) -> str:
    """What accepting a candidate (a row of `rank`'s frame) changes, in words (`lib.review.apply`)."""
    cls, other = r["class"], r["other_class"]
    return {MISSING: f"adds {cls}, its mask the dashed boxes",
            LOOSE: f"replaces the {cls} mask with the dashed boxes",
            SPURIOUS: f"moves the {cls} mask to {other}" if other else f"removes {cls}",
            CONFUSION: f"moves the {other} mask to {cls}" if other else f"adds {cls}",
            NODATA: "changes no label"}[r["kind"]]


class LabelIssues(Value):
    """`label_issues`: every label ranked, most likely wrong first."""
    issues = Table()
    class_ranking = Table()
    candidate_maps = Array()   # float16 (candidates, h, w): the audit's probability of the class
    health = Document()        # overall_health_score
