"""Mask attention and the label-issue ranking on small hand-made cases."""
import numpy as np
import pandas as pd
import pytest

from cloud_assets.eval import scoring, weights as weights_lib
from cloud_assets.lib.saliency import attention
from cloud_assets.lib.audit import label_issues, network as audit_lib

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
    return label_issues.classifier_evidence(table, np.asarray(labels, np.int8), np.asarray(probs, np.float32))


def test_the_classifier_looking_off_mask_is_stronger_evidence_than_looking_on_a_mask():
    labels = [[0, 1, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 1, 0, 1], [1, 1, 0, 1]]
    probs = [[0.95, 0.9, 0.1, 0.1], [0.95, 0.9, 0.1, 0.1], [0.9, 0.9, 0.1, 0.1], [0.1, 0.9, 0.9, 0.1],
             [0.1, 0.9, 0.1, 0.9], [0.9, 0.9, 0.1, 0.9]]
    evidence = _case(["outside", "other_mask", "own_mask", "outside", "outside", "own_mask"], labels, probs)
    fish = evidence[evidence["class"] == "Fish"].set_index("image")
    assert fish.loc["img0.jpg", "attention_score"] > fish.loc["img1.jpg", "attention_score"]
    assert fish.loc["img0.jpg", "cam_kind"] == "missing label" and fish.loc["img1.jpg", "cam_kind"] == "class confusion"
    # the Flower label of image 1 holds what the classifier sees of Fish: swap evidence
    flower = evidence[evidence["class"] == "Flower"].set_index("image")
    assert flower.loc["img1.jpg", "swap"] > 0 and flower.loc["img0.jpg", "swap"] == 0
    assert set(label_issues.CLASSIFIER_COLUMNS) <= set(evidence.columns)


def _evidence(rows):
    """An audit_evidence table: one correct label per row's image unless the row says otherwise."""
    base = {"label": 1, "audit_probability": 0.9, "audit_cleanlab": 0.05, "mask_quality": 0.9, "predicted_area": 0.2,
            "outside_mass": 0.1, "region_outside": 0.05, "mask_area": 0.2, "uncovered": 0.05, "region_iou": 0.8,
            "regions": 1, "gap": 0.0, "mask_fit": 0.7, "moved_box_gain": 0.0, "one_box_fit": 0.9, "two_box_gain": 0.0,
            "inside_other": 0.0, "other_class": "",
            "audit_box_top": 0.1, "audit_box_left": 0.2, "audit_box_bottom": 0.5, "audit_box_right": 0.6}
    return pd.DataFrame([{**base, **r} for r in rows])


def test_every_label_gets_a_kind_and_a_proposed_box_from_the_audit():
    evidence = _evidence([
        {"image": "a", "class": "Fish", "label": 0, "audit_probability": 0.95, "outside_mass": 1.0},    # missing
        {"image": "b", "class": "Fish", "label": 0, "audit_probability": 0.95, "inside_other": 0.9,
         "other_class": "Flower"},                                                                         # swapped
        {"image": "b", "class": "Flower", "audit_probability": 0.05, "mask_quality": 0.01, "regions": 0},  # its partner
        {"image": "c", "class": "Sugar", "outside_mass": 0.7, "uncovered": 0.6, "region_iou": 0.2},     # loose
        {"image": "d", "class": "Gravel", "audit_probability": 0.02, "mask_quality": 0.0, "regions": 0,
         "predicted_area": 0.0},                                                                          # spurious
        # a low probability, but a region of the class is seen beside the mask: the mask is wrong, not the label
        {"image": "e", "class": "Gravel", "audit_probability": 0.3, "outside_mass": 0.8, "region_iou": 0.0},
        # hardly seen, and the image shows an unlabelled class, though not inside this mask: removed, not moved
        {"image": "f", "class": "Sugar", "audit_probability": 0.03, "mask_quality": 0.0, "regions": 0},
        {"image": "f", "class": "Fish", "label": 0, "audit_probability": 0.6, "outside_mass": 1.0},
        # an unlabelled class seen inside the mask of a class that is seen too: missing, that label stands
        {"image": "g", "class": "Fish", "label": 0, "audit_probability": 0.9, "inside_other": 0.8, "other_class": "Sugar"},
        {"image": "g", "class": "Sugar"},
        # a labelled class that is seen, its big box holding an unlabelled class: its mask is wrong, not its class
        {"image": "h", "class": "Gravel", "audit_probability": 0.7, "uncovered": 0.5, "mask_area": 0.6},
        {"image": "h", "class": "Flower", "label": 0, "audit_probability": 0.8, "inside_other": 0.9,
         "other_class": "Gravel"},
        # an unlabelled class barely inside a mask hardly seen: too weak to move it (SWAP_EVIDENCE)
        {"image": "i", "class": "Sugar", "audit_probability": 0.05, "regions": 0},
        {"image": "i", "class": "Fish", "label": 0, "audit_probability": 0.6, "inside_other": 0.2, "other_class": "Sugar"},
    ])
    split = {image: "train" for image in evidence["image"]} | {"b": "val"}
    frame = label_issues.labels_frame(evidence, split).set_index(["image", "class"])
    assert frame.loc[("a", "Fish"), "kind"] == "missing label"
    assert frame.loc[("b", "Fish"), "kind"] == "class confusion" and frame.loc[("b", "Fish"), "other_class"] == "Flower"
    assert frame.loc[("b", "Flower"), "kind"] == "spurious label" and frame.loc[("b", "Flower"), "other_class"] == "Fish"
    assert frame.loc[("b", "Flower"), "audit_swap"] == pytest.approx(0.95 * 0.9)
    assert frame.loc[("c", "Sugar"), "kind"] == "loose mask" and frame.loc[("d", "Gravel"), "kind"] == "spurious label"
    assert frame.loc[("e", "Gravel"), "kind"] == "loose mask"
    assert frame.loc[("d", "Gravel"), "other_class"] == ""  # nothing else seen there: removed, not moved
    assert frame.loc[("f", "Sugar"), "kind"] == "spurious label" and frame.loc[("f", "Sugar"), "other_class"] == ""
    assert frame.loc[("g", "Fish"), "kind"] == "missing label" and frame.loc[("g", "Fish"), "other_class"] == ""
    assert frame.loc[("h", "Gravel"), "audit_swap"] > label_issues.SWAP_EVIDENCE
    assert frame.loc[("h", "Gravel"), "kind"] == "loose mask" and frame.loc[("h", "Flower"), "kind"] == "missing label"
    assert frame.loc[("i", "Sugar"), "audit_swap"] == pytest.approx(0.12)
    assert frame.loc[("i", "Sugar"), "kind"] == "spurious label" and frame.loc[("i", "Sugar"), "other_class"] == ""
    assert list(frame["split"]) == ["train", "val", "val"] + ["train"] * 11
    assert frame[["box_top", "box_left", "box_bottom", "box_right"]].iloc[0].tolist() == [0.1, 0.2, 0.5, 0.6]
    assert frame["probability"].isna().all()  # no classifier evidence given: missing, not zero
    ranked = label_issues.rank(evidence, {})
    assert ranked["score"].is_monotonic_decreasing and ranked["score"].between(0, 1).all()


def test_a_fix_proposes_a_box_per_region_of_the_prediction():
    prob = np.zeros((20, 40), np.float32)
    prob[2:8, 2:12] = 0.9      # two patches of the class
    prob[12:18, 25:37] = 0.8
    prob[0, 39] = 0.9          # a speck: under 2% of the image
    boxes = attention.proposed_boxes(prob, 0.02)
    assert boxes == [(12 / 20, 25 / 40, 18 / 20, 37 / 40), (2 / 20, 2 / 40, 8 / 20, 12 / 40)]
    assert attention.parse_boxes(attention.boxes_text(boxes)) == boxes and attention.parse_boxes("") == []
    assert attention.boxes_mask(boxes, (20, 40)).sum() == 6 * 10 + 6 * 12
    # at half the map's maximum, however confident the map; an empty map proposes nothing
    assert attention.proposed_boxes(prob * 0.4, 0.02) == boxes
    assert attention.proposed_boxes(np.zeros((20, 40)), 0.02) == []


def test_a_box_drawn_beside_its_pattern_is_moved_onto_it_at_its_size():
    prob = np.zeros((20, 40), np.float32)
    prob[4:12, 20:32] = 0.9                  # the pattern, seen
    prob[4:12, 32:34] = 0.3                  # and a fringe the labelled size leaves out
    beside = np.zeros((20, 40), bool)
    beside[6:14, 10:22] = True               # the labelled box: its size, beside it
    box, soft = attention.moved_box(prob, beside)
    assert box == (4 / 20, 20 / 40, 12 / 20, 32 / 40) and soft == pytest.approx(86.4 / (96 + 91.2 - 86.4))
    assert attention.proposed_fix(prob, beside, 0.02) == [box]
    # a box three times too wide, moved, holds the prediction far worse than the prediction's own box
    wide = np.zeros((20, 40), bool)
    wide[2:18, 2:38] = True
    assert attention.proposed_fix(prob, wide, 0.02) == attention.proposed_boxes(prob, 0.02)
    # no label: the prediction's boxes; nothing predicted: nothing proposed
    assert attention.proposed_fix(prob, np.zeros((20, 40), bool), 0.02) == attention.proposed_boxes(prob, 0.02)
    assert attention.moved_box(prob, np.zeros((20, 40), bool)) is None
    assert attention.proposed_fix(np.zeros((20, 40)), beside, 0.02) == []


def test_a_label_of_several_patches_is_fixed_one_patch_at_a_time():
    """Two patches labelled, the second drawn beside its pattern: the first is kept as drawn and the
    second moved onto its pattern, though the prediction alone would join the two into one region."""
    prob = np.zeros((24, 48), np.float32)
    prob[4:12, 4:20] = prob[10:18, 18:34] = 0.9   # two patterns, touching: one region
    label = np.zeros((24, 48), bool)
    label[4:12, 4:20] = label[14:22, 30:46] = True  # the first right, the second shifted down and right
    assert len(attention.proposed_boxes(prob, 0.02)) == 1
    assert attention.proposed_fix(prob, label, 0.02) == [(4 / 24, 4 / 48, 12 / 24, 20 / 48),
                                                         (10 / 24, 18 / 48, 18 / 24, 34 / 48)]
    patches = [label & (np.arange(24)[:, None] < 13), label & (np.arange(24)[:, None] >= 13)]
    assert attention.one_patch_fixed(prob, patches, 1, 0.02) == attention.proposed_fix(prob, label, 0.02)
    kept_second = attention.one_patch_fixed(prob, patches, 0, 0.02)  # fixing the first instead keeps the wrong one
    assert kept_second[0] == (14 / 24, 30 / 48, 22 / 24, 46 / 48)


def test_a_proposal_the_labelled_box_holds_is_cut_to_it():
    """Two patches under one box: the prediction bleeds a little past the box, which bounds them; a
    prediction mostly outside the box is left as it is."""
    label = np.zeros((20, 40), bool)
    label[4:16, 4:36] = True
    bleeding = [(3 / 20, 4 / 40, 15 / 20, 14 / 40), (5 / 20, 24 / 40, 17 / 20, 36 / 40)]  # 22 of 264 pixels outside
    assert attention.inside_label(bleeding, label) == [(4 / 20, 4 / 40, 15 / 20, 14 / 40),
                                                       (5 / 20, 24 / 40, 16 / 20, 36 / 40)]
    beside = [(0.0, 0.0, 10 / 20, 10 / 40)]  # 64 of 100 pixels outside
    assert attention.inside_label(beside, label) == beside
    assert attention.inside_label(bleeding, np.zeros((20, 40), bool)) == bleeding
    prob = np.zeros((20, 40), np.float32)
    prob[3:17, 4:14] = prob[3:17, 24:36] = 0.9
    assert attention.proposed_fix(prob, label, 0.02) == [(4 / 20, 24 / 40, 16 / 20, 36 / 40),
                                                         (4 / 20, 4 / 40, 16 / 20, 14 / 40)]


def test_a_box_drawn_around_two_patches_is_proposed_as_the_patches_reaching_its_sides():
    """An annotator's box drawn around two patches reaches them on every side: a prediction seen as one
    region (two patches meeting at a corner) is split in two, and two patches seen short of the box's
    sides are stretched to them; a box drawn wide around one patch keeps the prediction's box."""
    label = np.zeros((24, 48), bool)
    label[4:20, 4:44] = True
    prob = np.zeros((24, 48), np.float32)
    prob[4:12, 4:24] = prob[12:20, 24:44] = 0.9  # one region: its box would be the drawn box itself
    assert attention.inside_label(attention.proposed_boxes(prob, 0.02), label) == [(4 / 24, 4 / 48, 20 / 24, 44 / 48)]
    assert attention.proposed_fix(prob, label, 0.02) == [(4 / 24, 4 / 48, 12 / 24, 24 / 48),
                                                         (12 / 24, 24 / 48, 20 / 24, 44 / 48)]
    short = np.zeros((24, 48), np.float32)
    short[5:11, 6:22] = short[13:19, 26:42] = 0.9
    assert sorted(attention.proposed_fix(short, label, 0.02)) == [(4 / 24, 4 / 48, 11 / 24, 22 / 48),
                                                                  (13 / 24, 26 / 48, 20 / 24, 44 / 48)]
    one = np.zeros((24, 48), np.float32)
    one[6:14, 10:26] = 0.9
    assert attention.proposed_fix(one, label, 0.02) == attention.proposed_boxes(one, 0.02)
    not_a_box = np.zeros((24, 48), bool)  # two patches, the second drawn short: fixed one patch at a time
    not_a_box[4:12, 4:24] = not_a_box[12:20, 30:44] = True
    assert attention.proposed_fix(prob, not_a_box, 0.02) == [(4 / 24, 4 / 48, 12 / 24, 24 / 48),
                                                             (12 / 24, 24 / 48, 20 / 24, 44 / 48)]
    assert attention.split_in_two(np.zeros((24, 48), np.float32), (4, 4, 20, 44)) == ([], 0.0)


def test_a_box_drawn_along_a_masks_own_edges_is_the_drawn_box_a_target_overlaps_most():
    """A mask drawn as two overlapping boxes: a target a pixel short of either gives that box, as
    shares of the side; a ragged edge keeps only the longest lines of the boundary."""
    mask = np.zeros((40, 60), bool)
    mask[0:20, 0:30] = mask[12:40, 24:60] = True
    first, second = np.zeros_like(mask), np.zeros_like(mask)
    first[1:19, 1:29], second[13:39, 25:59] = True, True
    assert attention.drawn_box(mask, first) == ((0.0, 0.0, 0.5, 0.5), pytest.approx(18 * 28 / (20 * 30)))
    assert attention.drawn_box(mask, second)[0] == (0.3, 0.4, 1.0, 1.0)
    ragged = mask.copy()
    ragged[0, 1::2] = False  # a ragged top edge: 15 short lines across it
    assert attention.drawn_box(ragged, first, most=4)[0] == (0.0, 0.0, 0.5, 0.5)
    assert attention.drawn_box(np.zeros_like(mask), first) is None


def test_a_proposal_is_cut_where_its_boxes_hold_the_prediction_best():
    prob = np.zeros((20, 40), np.float32)
    prob[2:13, 2:13] = 0.45    # a pattern seen at 0.45 around a confident core:
    prob[5:10, 5:10] = 1.0     # half the maximum would propose the core alone
    assert attention.proposed_boxes(prob, 0.02) == [(2 / 20, 2 / 40, 13 / 20, 13 / 40)]
    assert attention.soft_iou([(2 / 20, 2 / 40, 13 / 20, 13 / 40)], prob) == pytest.approx(68.2 / 121, rel=1e-4)
    assert attention.soft_iou([(5 / 20, 5 / 40, 10 / 20, 10 / 40)], prob) == pytest.approx(25 / 68.2, rel=1e-4)


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


def _frame(rows):
    evidence = _evidence([{"image": f"i{k}", "class": "Fish", **r} for k, r in enumerate(rows)])
    return label_issues.labels_frame(evidence, {})


def test_the_shipped_model_rises_with_the_evidence_of_an_error():
    """The trees are monotone where the direction is known: a mask the audit model contradicts more,
    or whose predicted box overlaps it less, never looks more trustworthy; an unlabelled class the
    audit model sees more surely looks more likely missing."""
    worse = label_issues.error_probability(_frame([{"mask_quality": v} for v in (0.9, 0.5, 0.2, 0.0)]))
    assert (np.diff(worse) >= 0).all() and worse[-1] > worse[0]
    overlap = label_issues.error_probability(_frame([{"region_iou": v} for v in (0.9, 0.6, 0.3, 0.0)]))
    assert (np.diff(overlap) >= 0).all()
    unseen = label_issues.error_probability(_frame([{"label": 0, "audit_probability": p, "audit_cleanlab": p,
                                                     "predicted_area": p / 4, "outside_mass": 1.0}
                                                    for p in (0.02, 0.5, 0.98)]))
    assert (np.diff(unseen) >= 0).all() and unseen[-1] > 0.5 > unseen[0]
    for profile in audit_lib.PROFILES:  # each audit profile's trees are shipped, fitted by the bench on its signals,
        for first_round in (False, True):  # and its first round's, which choose the second round's labels
            note = label_issues.load_trees(label_issues.trees_path(profile, first_round=first_round))["note"]
            assert "fitted by bench/label_audit.py --fit" in note and f"--profile {profile}" in note
    dense = label_issues.load_trees(label_issues.trees_path("fast", "densenet"))["note"]  # and the class network's
    assert "--profile fast --class-network densenet" in dense


def test_fitted_trees_are_stored_and_read_back_by_skops(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for label in (0, 1):
        for _ in range(400):
            truth = rng.random() < 0.2
            rows.append({"label": label, "audit_probability": rng.random(),
                         "audit_cleanlab": rng.random() * 0.5 + 0.5 * truth, "mask_quality": rng.random(),
                         "outside_mass": rng.random() * 0.5 + 0.5 * truth, "uncovered": rng.random(),
                         "region_outside": rng.random(), "mask_area": rng.random(),
                         "region_iou": rng.random(), "regions": int(rng.integers(0, 3)), "gap": rng.random(),
                         "predicted_area": rng.random(),
                         "inside_other": rng.random(), "truth": truth})
    frame = _frame(rows)
    frame["truth"] = [r["truth"] for r in rows]
    seen = frame.index % 5 == 0  # the classifier's evidence on a fifth (the validation split)
    for col in label_issues.CLASSIFIER_COLUMNS:
        frame.loc[seen, col] = rng.random(int(seen.sum()))
    trees = weights_lib.fit_trees(frame, "test")
    weights_lib.save_trees(trees, tmp_path / "trees.skops")
    again = label_issues.load_trees(tmp_path / "trees.skops")
    with pytest.raises(FileNotFoundError, match="ranking_trees_strong-densenet.skops: .* it has them for fast"):
        label_issues.load_trees(label_issues.trees_path("strong", "densenet"))  # none fitted: the error names those there are
    p = label_issues.error_probability(frame, again)
    assert np.array_equal(p, label_issues.error_probability(frame, trees)) and again["note"] == "test"
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


def test_each_candidate_has_its_reason_in_one_sentence_and_what_accept_changes():
    base = {"class": "Fish", "other_class": "", "audit_probability": 0.93, "outside_mass": 0.0, "uncovered": 0.0,
            "regions": 1, "proposal": "0.6 0.0 1.0 0.3"}
    missing = {**base, "kind": "missing label"}
    assert label_issues.reason(missing) == "Fish is seen in the lower left (p 0.93) but not labelled"
    assert label_issues.accept_does(missing) == "adds Fish, its mask the dashed boxes"
    assert label_issues.reason({**missing, "proposal": "0.3 0.4 0.6 0.6"}) == "Fish is seen in the centre (p 0.93) but not labelled"
    assert label_issues.reason({**missing, "proposal": "0.0 0.4 0.3 0.6"}).startswith("Fish is seen at the top")
    swap = {**base, "kind": "class confusion", "other_class": "Flower"}
    assert label_issues.reason(swap) == "what the Flower mask holds looks like Fish (p 0.93): the two may be swapped"
    assert label_issues.accept_does(swap) == "moves the Flower mask to Fish"
    spurious = {**base, "kind": "spurious label", "audit_probability": 0.04}
    assert label_issues.reason(spurious) == "Fish is labelled but hardly seen anywhere (p 0.04)"
    assert label_issues.accept_does(spurious) == "removes Fish"
    assert label_issues.accept_does({**spurious, "other_class": "Sugar"}) == "moves the Fish mask to Sugar"
    assert label_issues.reason({**spurious, "other_class": "Sugar"}) == (
        "the Fish mask holds what looks like Sugar, and Fish is hardly seen (p 0.04)")
    loose = {**base, "kind": "loose mask", "outside_mass": 0.81, "uncovered": 0.3}
    assert label_issues.reason(loose) == "the Fish box misses 81% of where Fish is seen"
    assert label_issues.reason({**loose, "outside_mass": 0.1}) == "30% of the Fish box shows no Fish"
    assert label_issues.reason({**loose, "outside_mass": 0.1, "regions": 2}).startswith("Fish is seen as 2 separate patches")
    assert label_issues.reason({**loose, "outside_mass": 0.1, "gap": 0.75}) == (
        "Fish is seen in two parts of its box, with a gap between them")
    assert label_issues.accept_does(loose) == "replaces the Fish mask with the dashed boxes"
