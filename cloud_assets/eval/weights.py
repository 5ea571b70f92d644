"""The fit of the label-issue ranking's trees (`bench/label_audit.py --fit`), kept out of the
production path, which only reads them (`lib.audit.label_issues.error_probability`)."""
from __future__ import annotations

import pandas as pd

from cloud_assets.lib.audit.label_issues import SIGNALS, STATES, signals


def fit_trees(frame: pd.DataFrame, note: str) -> dict:
    """Fit one classifier per label state on a `rank` frame with a boolean `truth` column (injected
    errors); the result is what `ranking_trees_<profile>.skops` holds."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    trees = {"note": note}
    for state, labelled in STATES.items():
        part = frame[frame["label"] == labelled]
        x = signals(part, state)
        x = x.loc[:, x.notna().any()]  # the signals this audit gives (the class network's only with it)
        trees[state] = HistGradientBoostingClassifier(
            max_iter=150, learning_rate=0.06, max_leaf_nodes=12, min_samples_leaf=40,
            monotonic_cst={k: SIGNALS[state][k] for k in x.columns}, random_state=0).fit(x, part["truth"].to_numpy())
    return trees


def save_trees(trees: dict, path) -> None:
    import skops.io

    skops.io.dump(trees, path)
