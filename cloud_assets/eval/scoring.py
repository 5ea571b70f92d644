"""A ranking of labels, and a reviewer's decisions, scored against the label errors injected into a
synthetic dataset (`label_noise.csv`): precision at k, recall at 2k and AUROC; decisions that name
an injected error."""
from __future__ import annotations

import numpy as np
import pandas as pd

from cloud_assets.lib.audit.kinds import ISSUE_OF_NOISE


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
    a flag-style score (0/1, as the notebook's FP set) gets no help from the order of its ties."""
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
    and AUROC of one score column; a label the score has no value for (NaN: the classifier's signals
    outside the validation split) ranks below every label it has one for."""
    from sklearn.metrics import roc_auc_score

    truth = np.array([(i, c) in errors for i, c in zip(ranked["image"], ranked["class"])])
    values = ranked[score].to_numpy(dtype=float)
    if np.isnan(values).any():
        values = np.where(np.isnan(values), np.nanmin(values, initial=0.0) - 1.0, values)
    k = int(truth.sum())
    if not 0 < k < len(truth):
        return {"precision_at_k": float("nan"), "recall_at_2k": float("nan"), "auroc": float("nan"), "k": k}
    return {"precision_at_k": expected_hits(values, truth, k) / k,
            "recall_at_2k": expected_hits(values, truth, 2 * k) / k,
            "auroc": float(roc_auc_score(truth, values)), "k": k}


def review_matches(review: pd.DataFrame, manifest: pd.DataFrame) -> dict:
    """On a synthetic dataset: of the accepted decisions, how many name an injected error
    (`label_noise.csv`: image, class, kind, labelled_as; a swap counts from either class), and how
    many of those with the issue kind that undoes it (`lib.audit.kinds.ISSUE_OF_NOISE`)."""
    accepted = review[review["decision"] == "accept"]
    injected = {(i, c): ISSUE_OF_NOISE.get(k, "") for i, c, k in zip(manifest["image"], manifest["class"],
                                                                     manifest["kind"])}
    injected |= {(i, c): ISSUE_OF_NOISE.get(k, "") for i, c, k in
                 zip(manifest["image"], manifest.get("labelled_as", pd.Series(dtype=str)), manifest["kind"])
                 if isinstance(c, str) and c}
    named = [injected.get((i, c)) or injected.get((i, n)) for i, c, n in
             zip(accepted["image"], accepted["class"], accepted["new_class"])]
    hits = sum(1 for k in named if k is not None)
    same_kind = sum(k == kind for k, kind in zip(named, accepted["kind"]))
    rejected = review[review["decision"] == "reject"]
    missed = sum((i, c) in injected for i, c in zip(rejected["image"], rejected["class"]))
    return {"accepted": len(accepted), "accepted_injected": int(hits), "accepted_injected_same_kind": int(same_kind),
            "rejected": len(rejected), "rejected_injected": int(missed), "injected": len(manifest)}
