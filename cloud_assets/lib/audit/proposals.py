"""The boxes a fix proposes, refined.

The fold audit's proposal (`lib.audit.evidence`'s `audit_boxes`) is drawn from a prediction at the
audit size, trained on labels with errors in them: its edges are blurred, and a box cut from it is
too large or too small in ways its shape and the labelled mask's box tell. Regressors fitted on
tuning data (`cloud_assets.eval.weights.fit_proposal_sides`) read that geometry and move each side of
the proposal: per side, the offset of the clean mask's bounding box from the proposal's union box, as
a share of that box's height (top, bottom) or width (left, right). A proposal of several boxes moves
as one: each box mapped by the map that takes their union's box to the refined one.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from cloud_assets.lib.saliency.attention import boxes_text, parse_boxes

SIDES = ("top", "left", "bottom", "right")
# the labelled mask's bounding box (shares of the side), a column of the evidence per side
LABEL_BOX = tuple(f"label_box_{side}" for side in SIDES)
SPAN = {"top": "height", "left": "width", "bottom": "height", "right": "width"}


def union_box(text) -> tuple[float, float, float, float] | None:
    """The bounding box (shares of the side) of the boxes of a `proposal` cell; None for none."""
    boxes = parse_boxes(text)
    if not boxes:
        return None
    top, left, bottom, right = np.array(boxes, np.float64).T
    return float(top.min()), float(left.min()), float(bottom.max()), float(right.max())


def features(frame: pd.DataFrame) -> pd.DataFrame:
    """What the regressors read for each row of a `label_issues.labels_frame` frame: its proposal's
    union box (`SIDES`, `height`, `width`) and how many boxes it has; the labelled mask's box, each side
    as its offset from the union box's in the union box's height or width (NaN without a label). NaN
    for every column of a row without a proposal. (Not how much of its box the label fills: on
    synthetic data that tells the injected boxes from the clean masks, unions of jittered boxes, and so
    reads the noise model, not the labels.)"""
    union = np.array([union_box(text) or (np.nan,) * 4 for text in frame["proposal"]], np.float64).reshape(-1, 4)
    out = pd.DataFrame(union, columns=list(SIDES), index=frame.index)
    out["height"], out["width"] = out["bottom"] - out["top"], out["right"] - out["left"]
    out["boxes"] = [len(parse_boxes(text)) for text in frame["proposal"]]
    label = offsets(frame[list(LABEL_BOX)].set_axis(list(SIDES), axis=1), out)
    out[[f"label_{side}" for side in SIDES]] = label.to_numpy()
    out.loc[out["top"].isna(), :] = np.nan
    return out


def offsets(boxes: pd.DataFrame, x: pd.DataFrame) -> pd.DataFrame:
    """What the regressors learn: each side of `boxes` (columns `SIDES`, shares of the side) as its
    offset from the proposal's union box, in its height or width (`features` `x`)."""
    return pd.DataFrame({side: (boxes[side].to_numpy(np.float64) - x[side]) / x[SPAN[side]] for side in SIDES},
                        index=x.index)


def refined(frame: pd.DataFrame, regressors: dict) -> np.ndarray:
    """The `proposal` of each row of a `labels_frame` frame with its sides moved by `regressors` (side ->
    a regressor of its offset from `features`), as text; a row without a proposal, or whose refined box
    would be empty, keeps its own."""
    out = frame["proposal"].to_numpy(dtype=object).copy()
    x = features(frame)
    rows = np.flatnonzero(x["top"].notna().to_numpy())
    if not len(rows):
        return out
    x = x.iloc[rows]
    moved = {side: np.clip(x[side] + regressors[side].predict(x[list(regressors[side].feature_names_in_)])
                           * x[SPAN[side]], 0.0, 1.0).to_numpy() for side in SIDES}
    for k, row in enumerate(rows):
        top, left, bottom, right = (moved[side][k] for side in SIDES)
        if bottom <= top or right <= left:
            continue
        t0, l0 = x["top"].iat[k], x["left"].iat[k]
        sy, sx = (bottom - top) / x["height"].iat[k], (right - left) / x["width"].iat[k]
        out[row] = boxes_text([(top + (t - t0) * sy, left + (lft - l0) * sx, top + (b - t0) * sy, left + (r - l0) * sx)
                               for t, lft, b, r in parse_boxes(out[row])])
    return out
