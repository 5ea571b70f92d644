"""A ranking of labels scored against the label errors injected into a synthetic dataset
(`label_noise.csv`): precision at k, recall at 2k and AUROC."""
from __future__ import annotations

import numpy as np
import pandas as pd


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
