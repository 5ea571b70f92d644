"""The proposals drawn from a prediction sharpened by the image itself (`lib.audit.sharpen`)."""
import numpy as np
import pandas as pd

from cloud_assets.lib.audit import label_issues, proposals, sharpen
from cloud_assets.lib.saliency.attention import boxes_text, parse_boxes, proposed_fix
from tests.lib.audit.test_label_issues import _evidence

H, W = sharpen.SIZE
PATTERN = (32, 48, 96, 120)  # top, left, bottom, right at SIZE: a grainy pattern on a smooth background


def _image() -> np.ndarray:
    """uint8 BGR, twice SIZE: a grainy texture inside PATTERN, a smooth gradient around it."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:2 * H, 0:2 * W]
    grey = 90 + 30 * x / (2 * W)
    top, left, bottom, right = (2 * v for v in PATTERN)
    inside = (y >= top) & (y < bottom) & (x >= left) & (x < right)
    grey = np.where(inside, grey + rng.normal(0, 25, grey.shape), grey)
    return np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def _spread_prediction() -> np.ndarray:
    """At half of SIZE (the audit size): 1 over the pattern, spreading past it to the right and below,
    as a network trained on boxes drawn too wide predicts it."""
    top, left, bottom, right = (v // 2 for v in PATTERN)
    y, x = np.mgrid[0:H // 2, 0:W // 2]
    dy, dx = np.maximum(y - (bottom - 1), 0) + np.maximum(top - y, 0), np.maximum(x - (right - 1), 0) + np.maximum(left - x, 0)
    far_right = np.where(x >= right, 0.5, 1.0)  # it fades slowly past the right and bottom sides
    far_below = np.where(y >= bottom, 0.5, 1.0)
    return np.exp(-(dx * far_right / 6.0) ** 2 - (dy * far_below / 6.0) ** 2).astype(np.float32)


def _sides(boxes) -> np.ndarray:
    """The one box's sides in pixels of SIZE."""
    (box,) = boxes
    return np.array(box) * (H, W, H, W)


def test_the_image_pulls_a_spread_prediction_back_to_its_pattern():
    prob, empty = _spread_prediction(), np.zeros(sharpen.SIZE, bool)
    plain = _sides(proposed_fix(np.kron(prob, np.ones((2, 2), np.float32)), empty, sharpen.MIN_REGION))
    (sharp,) = sharpen.proposals(prob[None], ["a.jpg"], lambda name: _image(), empty[None])
    plain_off, sharp_off = np.abs(plain - PATTERN), np.abs(_sides(parse_boxes(sharp)) - PATTERN)
    assert (plain_off >= 10).all()  # the plain proposal spreads past every side
    assert (sharp_off < 0.75 * plain_off).all(), (plain_off, sharp_off)  # the image pulls each side back
    assert sharpen.proposals(prob[None], ["a.jpg"], lambda name: _image(), empty[None]) == [sharp]  # seeded: the same again


def test_a_prediction_without_sure_pixels_is_kept_as_it_is():
    feats = sharpen.features(_image())
    flat = np.full((H // 2, W // 2), 0.5, np.float32)  # everything its core: no background to learn from
    assert np.allclose(sharpen.sharpened(flat, feats), 1.0)
    assert not sharpen.sharpened(np.zeros((H // 2, W // 2), np.float32), feats).any()
    assert sharpen.proposals(np.zeros((1, H // 2, W // 2), np.float32), ["a.jpg"], lambda name: _image(),
                             np.zeros((1, H, W), np.uint8)) == [""]


def test_rank_draws_the_given_rows_proposals_anew_before_refining_them():
    evidence = _evidence([{"image": i, "class": "Fish", "label": 0, "audit_probability": p, "outside_mass": 1.0,
                           "audit_boxes": "0.1000 0.1000 0.5000 0.5000"} for i, p in (("a", 0.9), ("b", 0.6), ("c", 0.2))])
    new = boxes_text([(0.2, 0.2, 0.4, 0.4)])
    drawn = []

    def first_two(ranking):
        drawn.append(list(ranking["image"]))
        return pd.Series([new, new], index=ranking.index[:2])

    shipped = label_issues.load_trees(label_issues.trees_path())
    assert shipped[label_issues.SHARPENED]  # fast's regressors were fitted on proposals so drawn
    plain = {name: tree for name, tree in shipped.items() if name != "proposal_sides"}
    ranked = label_issues.rank(evidence, {}, None, plain, first_two)
    assert drawn == [list(ranked["image"])]  # given the ranking, most likely error first
    assert list(ranked["proposal"]) == [new, new, "0.1000 0.1000 0.5000 0.5000"]
    # trees fitted on the evidence's proposals keep them
    unsharpened = {name: tree for name, tree in plain.items() if name != label_issues.SHARPENED}
    kept = label_issues.rank(evidence, {}, None, unsharpened, first_two)
    assert list(kept["proposal"]) == ["0.1000 0.1000 0.5000 0.5000"] * 3 and len(drawn) == 1
    # with the regressors of the sides, the new proposals are the ones refined
    refined = label_issues.rank(evidence, {}, None, shipped, first_two)
    assert list(refined["proposal"][:2]) == list(proposals.refined(ranked.head(2), shipped["proposal_sides"]))
