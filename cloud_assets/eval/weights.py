"""The fit of the label-issue ranking's trees (`bench/label_audit.py --fit`), kept out of the
production path, which only reads them (`lib.audit.label_issues.error_probability`)."""
from __future__ import annotations

import pandas as pd

from cloud_assets.lib.audit import proposals
from cloud_assets.lib.audit.label_issues import SIGNALS, STATES, signals


def fit_trees(frame: pd.DataFrame, note: str) -> dict:
    """Fit one classifier per label state on a `rank` frame with a boolean `truth` column (injected
    errors); the result, with the regressors of `fit_proposal_sides` beside it for the final ranking, is
    what `ranking_trees_<profile>.skops` holds."""
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


# the bounding box of each label's clean mask (shares of the side; NaN where it is empty), per side
CLEAN_BOX = tuple(f"clean_box_{side}" for side in proposals.SIDES)


def fit_proposal_sides(frame: pd.DataFrame) -> dict:
    """side -> a regressor of its offset (`lib.audit.proposals.offsets`) from the proposal's
    `features`, fitted on the errors of a `rank` frame (`truth`) that have a clean mask (`CLEAN_BOX`) and
    a proposal: what a fix of an error should have drawn. Least absolute error, so that the many near
    misses, not the few proposals far off, set each side."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    x = proposals.features(frame)
    rows = frame["truth"].to_numpy(bool) & x["top"].notna().to_numpy() & frame[CLEAN_BOX[0]].notna().to_numpy()
    x = x[rows]
    y = proposals.offsets(frame.loc[rows, list(CLEAN_BOX)].set_axis(list(proposals.SIDES), axis=1), x)
    return {side: HistGradientBoostingRegressor(loss="absolute_error", max_iter=150, learning_rate=0.05,
                                                max_leaf_nodes=8, min_samples_leaf=30, random_state=0).fit(x, y[side])
            for side in proposals.SIDES}


def save_trees(trees: dict, path) -> None:
    import skops.io

    skops.io.dump(trees, path)
