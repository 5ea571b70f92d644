"""Mask attention and the label-issue ranking on small hand-made cases."""
import numpy as np
import pandas as pd
import pytest

from cloud_assets.eval import scoring, weights as weights_lib
from cloud_assets.lib import attention, label_issues

CLASSES = ["Fish", "Flower", "Sugar", "Gravel"]


def _box(y0, x0, y1, x1, shape=(8, 8)):
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def test_shares_partition_the_energy():
    own, other = _box(0, 0, 4, 4), _box(4, 4, 8, 8)
    nodata = _box(0, 0, 2, 8)
    maps = np.zeros((4, 8, 8), np.float32)
    maps[0][own] = 1               # all on the own mask
    maps[1][_box(4, 0, 8, 4)] = 2  # all outside every mask
    maps[2][other] = 1             # all on the other mask
    maps[3][0, 5] = 1              # on no-data pixels (which take precedence)
    s = attention.shares(maps, np.stack([own] * 4), np.stack([other] * 4), np.stack([nodata] * 4))
    assert s.tolist()[0][0] == pytest.approx(0.5) and s[0][3] == pytest.approx(0.5)  # half of own is no-data
    assert s[1].tolist() == [0, 0, 1, 0] and s[2].tolist() == [0, 1, 0, 0] and s[3].tolist() == [0, 0, 0, 1]
    assert np.allclose(s.sum(axis=1), 1)
    assert attention.shares(np.zeros((1, 8, 8)), own[None], other[None], nodata[None]).tolist() == [[0, 0, 0, 0]]


def test_pointing_game():
    own = _box(0, 0, 4, 4)[None].repeat(2, 0)
    maps = np.zeros((2, 8, 8))
    maps[0, 1, 1], maps[1, 6, 6] = 1, 1
    assert attention.pointing_hit(maps, own).tolist() == [True, False]


def _case(energy_where: list[str], labels, probs):
    """Two images; class 0 (Fish) has Grad-CAM energy at `energy_where[i]` of image i."""
    n, shape = len(energy_where), (8, 8)
    masks = np.zeros((4, n, *shape), np.uint8)
    masks[1, :, 4:, 4:] = 1   # a Flower mask in every image
    masks[0, :, :4, :4] = np.asarray(labels)[:, 0, None, None]  # Fish mask where labelled
    cams = np.zeros((4, n, *shape), np.float32)
    for i, where in enumerate(energy_where):
        region = {"outside": (slice(4, 8), slice(0, 4)), "other_mask": (slice(4, 8), slice(4, 8)),
                  "own_mask": (slice(0, 4), slice(0, 4))}[where]
        cams[0, i][region] = 1.0
    table = attention.attention_table(cams, np.ones((n, *shape), np.float32), masks, np.ones((n, *shape, 3), np.uint8),
                                      CLASSES, [f"img{i}.jpg" for i in range(n)])
    return label_issues.rank(table, np.asarray(labels, np.int8), np.asarray(probs, np.float32), CLASSES)


def test_a_false_positive_looking_off_mask_outranks_one_looking_on_a_mask():
    labels = [[0, 1, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 1, 0, 1], [1, 1, 0, 1]]
    probs = [[0.95, 0.9, 0.1, 0.1], [0.95, 0.9, 0.1, 0.1], [0.9, 0.9, 0.1, 0.1], [0.1, 0.9, 0.9, 0.1],
             [0.1, 0.9, 0.1, 0.9], [0.9, 0.9, 0.1, 0.9]]
    ranked = _case(["outside", "other_mask", "own_mask", "outside", "outside", "own_mask"], labels, probs)
    fish = ranked[ranked["class"] == "Fish"].set_index("image")
    assert fish.loc["img0.jpg", "attention_score"] > fish.loc["img1.jpg", "attention_score"]
    assert fish.loc["img0.jpg", "kind"] == "missing label"
    assert fish.loc["img1.jpg", "kind"] == "class confusion" and fish.loc["img1.jpg", "other_class"] == "Flower"
    # a true positive looking at its own mask is the least suspicious Fish label
    assert fish.loc["img2.jpg", "score"] < min(fish.loc["img0.jpg", "score"], fish.loc["img1.jpg", "score"])
    assert ranked["score"].is_monotonic_decreasing and ranked["score"].between(0, 1).all()
    assert {"cleanlab", "attention_score", "mask_evidence", "probability", "cam_own", "cam_outside", "cam_empty",
            "box_iou", "box_top"} <= set(ranked.columns)


def test_mask_evidence_measures():
    own = _box(2, 2, 6, 6)[None]
    cam = np.zeros((1, 8, 8), np.float32)
    cam[0, 2:6, 2:4] = 1.0   # evidence in the left half of the mask only
    assert attention.empty_share(cam, own).tolist() == [0.5]
    assert attention.proposed_box(cam[0]) == (2 / 8, 2 / 8, 6 / 8, 4 / 8)
    assert attention.box_iou(attention.proposed_box(cam[0]), own[0]) == pytest.approx(0.5)
    assert attention.proposed_box(np.zeros((8, 8))) is None and attention.box_iou(None, own[0]) == 0.0
    # guided backprop's structure: neutral 0.5 everywhere but one spot
    gb = np.full((1, 74, 74), 0.5, np.float32)
    gb[0, 10, 60] = 1.0
    fine = attention.detail(gb)
    assert fine.max() == pytest.approx(1.0) and fine[0, 10, 60] == fine.max() and fine[0, 60, 10] == 0


def _frame(**signals):
    base = {"label": 1, "probability": 0.9, "cleanlab": 0.1, "cam_own": 0.6, "cam_other": 0.1, "cam_outside": 0.3,
            "cam_nodata": 0.0, "swap": 0.0, "mask_area": 0.25, "cam_empty": 0.1, "detail_empty": 0.1,
            "box_iou": 0.6, "attention_score": 0.3}
    return pd.DataFrame([{**base, **s} for s in signals.get("rows", [{}])])


def test_the_shipped_weights_rise_with_the_evidence_of_an_error():
    """The trees are monotone where the direction is known: a mask that holds less of the class's
    evidence, or a proposed box that overlaps it less, never looks more trustworthy."""
    emptier = label_issues.error_probability(_frame(rows=[{"cam_empty": v} for v in (0.0, 0.3, 0.6, 0.9)]))
    assert (np.diff(emptier) >= 0).all() and emptier[-1] > emptier[0]
    overlap = label_issues.error_probability(_frame(rows=[{"box_iou": v} for v in (0.9, 0.6, 0.3, 0.0)]))
    assert (np.diff(overlap) >= 0).all() and overlap[-1] > overlap[0]
    unseen = label_issues.error_probability(_frame(rows=[{"label": 0, "probability": p, "cleanlab": p,
                                                          "attention_score": p} for p in (0.05, 0.5, 0.95)]))
    assert (np.diff(unseen) >= 0).all() and unseen[-1] > 0.5 > unseen[0]


def test_fitted_trees_are_exported_exactly():
    rng = np.random.default_rng(0)
    rows = []
    for label in (0, 1):
        for _ in range(400):
            truth = rng.random() < 0.2
            rows.append({"label": label, "probability": rng.random(), "cleanlab": rng.random() * 0.5 + 0.5 * truth,
                         "cam_own": rng.random(), "cam_other": rng.random(), "cam_outside": rng.random(),
                         "cam_nodata": 0.0, "swap": 0.0, "mask_area": rng.random(),
                         "cam_empty": rng.random() * 0.5 + 0.5 * truth, "detail_empty": rng.random(),
                         "box_iou": rng.random(), "attention_score": rng.random(), "truth": truth})
    frame = pd.DataFrame(rows)
    weights = weights_lib.fit_weights(frame, "test")  # asserts equality with scikit-learn's predictions
    p = label_issues.error_probability(frame, weights)
    from sklearn.metrics import roc_auc_score
    assert roc_auc_score(frame["truth"], p) > 0.8


def test_cleanlab_summary_and_per_class_issues():
    rng = np.random.default_rng(0)
    y_true = (rng.random((80, 4)) < 0.5).astype(np.int8)
    y_pred = np.clip(y_true * 0.8 + rng.random((80, 4)) * 0.2, 0, 1).astype(np.float32)
    y_true[:4, 0] = 1 - y_true[:4, 0]  # four labels the model contradicts confidently
    summary = label_issues.cleanlab_summary(y_true, y_pred, CLASSES)
    assert summary["issues"].shape == (80, 4)
    assert summary["issues"][:4, 0].sum() >= 3 and summary["issues"][4:].mean() < 0.1
    assert 0 < summary["health"] < 1 and list(summary["class_ranking"]["Class Name"])[0] == "Fish"
    # counted as cleanlab 2.9's summary functions count (their process pool forks, which can hang a
    # process with threads, so they are not called): issues on a given label, on a missing one, and
    # the share of images without any issue
    issues, ranking = summary["issues"], summary["class_ranking"].set_index("Class Name")
    for c, name in enumerate(CLASSES):
        assert ranking.loc[name, "Label Issues"] == (issues[:, c] & (y_true[:, c] == 1)).sum()
        assert ranking.loc[name, "Inverse Label Issues"] == (issues[:, c] & (y_true[:, c] == 0)).sum()
        assert ranking.loc[name, "Label Quality Score"] == pytest.approx(1 - ranking.loc[name, "Label Issues"] / 80)
    assert summary["health"] == pytest.approx(1 - issues.any(axis=1).mean())
    assert summary["class_ranking"]["Label Quality Score"].is_monotonic_increasing


def test_injected_errors_and_scores():
    manifest = pd.DataFrame({"image": ["a", "b", "z"], "class": ["Fish", "Sugar", "Fish"],
                             "kind": ["missing", "swapped", "missing"], "labelled_as": ["", "Gravel", ""]})
    errors = scoring.injected_errors(manifest, ["a", "b"])
    assert errors == {("a", "Fish"), ("b", "Sugar"), ("b", "Gravel")}
    ranked = pd.DataFrame({"image": ["a", "b", "b", "c", "d", "e"], "class": ["Fish", "Sugar", "Gravel", "Fish",
                                                                              "Fish", "Fish"],
                           "perfect": [6, 5, 4, 3, 2, 1], "flag": [1, 1, 0, 1, 0, 0]})
    assert scoring.scores_against(ranked, errors, "perfect") == {"precision_at_k": 1.0, "recall_at_2k": 1.0,
                                                                      "auroc": 1.0, "k": 3}
    # a 0/1 flag gets the expectation over its ties, not the order of the rows
    got = scoring.scores_against(ranked, errors, "flag")
    assert got["precision_at_k"] == pytest.approx(2 / 3) and got["recall_at_2k"] == pytest.approx(1.0)
