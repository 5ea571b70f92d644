"""The refinement of the boxes a fix proposes (`lib.audit.proposals`) and the fit of its regressors."""
import numpy as np
import pandas as pd
import pytest

from cloud_assets.eval import weights
from cloud_assets.lib.audit import proposals
from cloud_assets.lib.saliency.attention import boxes_text, parse_boxes


class Offset:
    """A regressor that predicts one offset for every row."""
    feature_names_in_ = np.array(["top", "height"])

    def __init__(self, value):
        self.value = value

    def predict(self, x):
        return np.full(len(x), self.value)


def _frame(proposal, label_box=(np.nan,) * 4):
    row = {"proposal": proposal, **dict(zip(proposals.LABEL_BOX, label_box))}
    return pd.DataFrame([row])


def test_the_features_are_the_proposal_union_box_and_the_label_box_around_it():
    x = proposals.features(pd.concat([_frame("0.2 0.1 0.6 0.3;0.3 0.5 0.8 0.9", (0.1, 0.1, 0.6, 0.9)),
                                      _frame("")], ignore_index=True))
    first = x.iloc[0]
    assert first[list(proposals.SIDES)].tolist() == pytest.approx([0.2, 0.1, 0.8, 0.9])
    assert first["height"] == pytest.approx(0.6) and first["width"] == pytest.approx(0.8) and first["boxes"] == 2
    # the label's sides as offsets from the union's, in its height and width
    assert [first[f"label_{s}"] for s in proposals.SIDES] == pytest.approx([-0.1 / 0.6, 0, -0.2 / 0.6, 0])
    assert x.iloc[1].isna().all()  # no proposal: nothing to read


def test_refined_moves_each_side_and_maps_several_boxes_as_one():
    grow = {"top": Offset(-0.25), "left": Offset(0.0), "bottom": Offset(0.25), "right": Offset(0.0)}
    frame = pd.concat([_frame("0.2 0.1 0.6 0.5"), _frame("0.2 0.1 0.4 0.3;0.4 0.3 0.6 0.5"), _frame("")],
                      ignore_index=True)
    out = proposals.refined(frame, grow)
    assert parse_boxes(out[0]) == [pytest.approx((0.1, 0.1, 0.7, 0.5))]  # a quarter of its height each way
    # two boxes stretched with their union: each one's share of the union kept
    assert parse_boxes(out[1]) == [pytest.approx((0.1, 0.1, 0.4, 0.3)), pytest.approx((0.4, 0.3, 0.7, 0.5))]
    assert out[2] == ""
    # a refinement that would leave no box keeps the proposal as it was; sides stay within the image
    collapse = {**grow, "top": Offset(2.0)}
    assert proposals.refined(frame.iloc[:1], collapse)[0] == "0.2 0.1 0.6 0.5"
    edge = proposals.refined(_frame("0.05 0.1 0.95 0.5"), grow)[0]
    assert parse_boxes(edge) == [pytest.approx((0.0, 0.1, 1.0, 0.5))]


def test_the_fitted_regressors_learn_how_far_the_proposals_miss_and_mend_them():
    """Proposals drawn a fifth too wide on every side of the clean box (blurred edges), from labels
    shifted at random: the regressors learn the margin, and the refined proposals overlap the clean
    boxes better than the proposals did; rows that are not errors or have no clean mask are not learnt."""
    rng = np.random.default_rng(0)
    n = 600
    top, left = rng.uniform(0.05, 0.4, n), rng.uniform(0.05, 0.4, n)
    height, width = rng.uniform(0.2, 0.5, n), rng.uniform(0.2, 0.5, n)
    clean = np.stack([top, left, top + height, left + width], axis=1)
    margin = 0.2 * np.stack([-height, -width, height, width], axis=1) + rng.normal(0, 0.01, (n, 4))
    drawn = clean + margin
    shift = rng.uniform(-0.1, 0.1, (n, 2))
    label = clean + np.concatenate([shift, shift], axis=1)
    frame = pd.DataFrame({"proposal": [boxes_text([box]) for box in drawn],
                          **dict(zip(proposals.LABEL_BOX, label.T)), **dict(zip(weights.CLEAN_BOX, clean.T)),
                          "truth": True})
    frame.loc[n - 50:, "truth"] = False           # not errors: left out, however far off their boxes are
    frame.loc[n - 50:, list(weights.CLEAN_BOX)] = 0.0
    frame.loc[:20, list(weights.CLEAN_BOX)] = np.nan  # an error without a clean mask (a spurious label)
    regressors = weights.fit_proposal_sides(frame)
    test = frame.iloc[100:200]
    out = proposals.refined(test, regressors)

    def iou(a, b):
        h = max(min(a[2], b[2]) - max(a[0], b[0]), 0) * max(min(a[3], b[3]) - max(a[1], b[1]), 0)
        return h / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - h)

    before = np.array([iou(d, c) for d, c in zip(drawn[100:200], clean[100:200])])
    after = np.array([iou(parse_boxes(t)[0], c) for t, c in zip(out, clean[100:200])])
    assert before.mean() < 0.6 and after.mean() > 0.9


def test_the_ranking_refines_the_proposals_with_the_trees_regressors_and_the_first_round_does_not():
    """`fast`'s shipped trees hold regressors of the proposal's sides; its first round's (which draw the
    second round's labels) and a ranking whose trees hold none keep the proposals as drawn."""
    from cloud_assets.lib.audit import label_issues

    shipped = label_issues.load_trees(label_issues.trees_path("fast"))
    assert set(shipped["proposal_sides"]) == set(proposals.SIDES)
    assert "proposal_sides" not in label_issues.load_trees(label_issues.trees_path("fast", first_round=True))
    evidence = pd.DataFrame([{"image": "a", "class": "Fish", "label": 1, "audit_probability": 0.9, "audit_cleanlab": 0.1,
                              "mask_quality": 0.3, "predicted_area": 0.2, "outside_mass": 0.5, "region_outside": 0.4,
                              "mask_area": 0.3, "uncovered": 0.3, "region_iou": 0.4, "regions": 1, "gap": 0.0,
                              "mask_fit": 0.4, "moved_box_gain": 0.0, "one_box_fit": 0.8, "two_box_gain": 0.0,
                              "inside_other": 0.0, "other_class": "", "audit_box_top": 0.2, "audit_box_left": 0.2,
                              "audit_box_bottom": 0.6, "audit_box_right": 0.6, "label_box_top": 0.1,
                              "label_box_left": 0.1, "label_box_bottom": 0.7, "label_box_right": 0.7,
                              "audit_boxes": "0.2000 0.2000 0.6000 0.6000"}])
    plain = {k: v for k, v in shipped.items() if k != "proposal_sides"}
    assert label_issues.rank(evidence, {"a": "train"}, None, plain)["proposal"][0] == "0.2000 0.2000 0.6000 0.6000"
    grow = {side: Offset(0.25 if side in ("bottom", "right") else -0.25) for side in proposals.SIDES}
    refined = label_issues.rank(evidence, {"a": "train"}, None, {**plain, "proposal_sides": grow})["proposal"][0]
    assert parse_boxes(refined) == [pytest.approx((0.1, 0.1, 0.7, 0.7))]
    assert label_issues.rank(evidence, {"a": "train"}, None, shipped)["proposal"][0] != "0.2000 0.2000 0.6000 0.6000"
