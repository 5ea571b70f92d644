"""The fit of the label-issue ranking's weights (`bench/label_audit.py --fit`), kept out of the
production path, which only reads them (`lib.label_issues.error_probability`)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from cloud_assets.lib.label_issues import SIGNALS, signals, log_odds


def fit_weights(frame: pd.DataFrame, note: str) -> dict:
    """Fit the trees on a `rank` frame with a boolean `truth` column (injected errors); the result
    is what `label_issue_weights.json` holds, checked against scikit-learn's own predictions."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    weights = {"note": note}
    for state, labelled in (("labelled", 1), ("unlabelled", 0)):
        part = frame[frame["label"] == labelled]
        x = signals(part, state)
        model = HistGradientBoostingClassifier(max_iter=120, learning_rate=0.06, max_leaf_nodes=12,
                                               min_samples_leaf=40, monotonic_cst=list(SIGNALS[state].values()),
                                               random_state=0).fit(x, part["truth"].to_numpy())
        trees = []
        for (predictor,) in model._predictors:
            n = predictor.nodes
            trees.append({"feature": n["feature_idx"].tolist(), "threshold": n["num_threshold"].tolist(),
                          "left": n["left"].tolist(), "right": n["right"].tolist(),
                          "missing_left": n["missing_go_to_left"].astype(bool).tolist(),
                          "leaf": n["is_leaf"].astype(bool).tolist(), "value": n["value"].tolist()})
        weights[state] = {"signals": list(SIGNALS[state]), "baseline": float(model._baseline_prediction.ravel()[0]),
                          "trees": trees}
        ours = 1 / (1 + np.exp(-log_odds(weights[state], x)))
        assert np.allclose(ours, model.predict_proba(x)[:, 1], atol=1e-9), "the exported trees disagree"
    return weights
