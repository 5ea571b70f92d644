"""The reviewer's decisions: read and checked line by line, applied to train.csv by kind, and the
corrected_labels asset's blocking checks (a bad review writes nothing; corrections are never replaced
by fewer unless the run config asks; every version is kept)."""
import shutil

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from cloud_assets import cli
from cloud_assets.eval import scoring
from cloud_assets.lib import review
from cloud_assets.lib.data import rle
from cloud_assets.lib.saliency.attention import BOX_COLUMNS, boxes_mask
from cloud_assets.defs.automation import definitions as automation
from cloud_assets.lib.store import Store
from tests.helpers import A, ANALYSIS, DATA_ASSETS, failure_message, materialize, tiny_keras, resources as project_resources

CLASSES = ["Fish", "Flower", "Sugar", "Gravel"]
SHAPE = (10, 20)


def _mask(rows, cols) -> str:
    m = np.zeros(SHAPE, np.uint8)
    m[rows, cols] = 1
    return rle.encode(m)


FISH_A, SUGAR_A, GRAVEL_B = _mask(slice(0, 4), slice(0, 5)), _mask(slice(5, 9), slice(10, 20)), _mask(slice(2, 8), slice(3, 9))
TRAIN = pd.DataFrame({"Image_Label": [f"{i}_{c}" for i in ("a.jpg", "b.jpg") for c in CLASSES],
                      "EncodedPixels": [FISH_A, "", SUGAR_A, "", "", "", "", GRAVEL_B]})
ISSUES = pd.DataFrame({"image": ["a.jpg", "a.jpg", "b.jpg", "b.jpg"], "class": ["Flower", "Sugar", "Fish", "Sugar"],
                       "kind": ["missing label", "loose mask", "missing label", "class confusion"],
                       **dict(zip(BOX_COLUMNS, np.array([[0.1, 0.5, 0.5, 1.0], [0.0, 0.0, 0.2, 0.25],
                                                         [np.nan] * 4, [0.0, 0.0, 1.0, 1.0]]).T))})


def _review(tmp_path, rows, name="label_review.csv"):
    path = tmp_path / name
    frame = pd.DataFrame(rows, columns=["image", "class", "decision", "new_class", "kind"])
    frame.assign(score="0.9", reviewed_at="2026-11-28T00:00:00Z")[list(review.COLUMNS)].to_csv(path, index=False)
    return path


def _apply(path):
    decisions = review.read(path, ["a.jpg", "b.jpg"], CLASSES)
    corrected, changes, proposed = review.apply(TRAIN, decisions, ISSUES, SHAPE, path)
    return corrected.set_index("Image_Label")["EncodedPixels"], changes, proposed


def test_each_kind_changes_the_labels_as_accepted(tmp_path):
    path = _review(tmp_path, [
        ("a.jpg", "Fish", "accept", "Gravel", "spurious label"),     # the Fish mask is Gravel's
        ("a.jpg", "Flower", "accept", "", "missing label"),          # Flower added: the proposed box
        ("a.jpg", "Sugar", "accept", "", "loose mask"),              # Sugar's mask replaced by the box
        ("b.jpg", "Sugar", "accept", "Gravel", "class confusion"),   # the Gravel mask is Sugar's
        ("b.jpg", "Fish", "reject", "", "missing label"),
    ])
    enc, changes, proposed = _apply(path)
    assert enc["a.jpg_Fish"] == "" and enc["a.jpg_Gravel"] == FISH_A
    flower = rle.decode(enc["a.jpg_Flower"], SHAPE)
    assert flower.sum() == 4 * 10 and flower[1:5, 10:20].all()       # rows 0.1-0.5 of 10, columns 0.5-1.0 of 20
    assert rle.decode(enc["a.jpg_Sugar"], SHAPE)[0:2, 0:5].all() and rle.decode(enc["a.jpg_Sugar"], SHAPE).sum() == 10
    assert enc["b.jpg_Gravel"] == "" and enc["b.jpg_Sugar"] == GRAVEL_B
    assert enc["b.jpg_Fish"] == ""                                   # rejected: unchanged
    assert list(changes["action"]) == ["moved to Gravel", "added (proposed box)", "mask replaced (proposed box)",
                                       "moved to Sugar"]
    assert list(zip(proposed["image"], proposed["class"])) == [("a.jpg", "Flower"), ("a.jpg", "Sugar")]


def test_every_candidate_accepted_as_proposed_applies_and_one_that_cannot_is_left_out(tmp_path):
    """What the second round of the fold audit does with its confident suspicions (`lib.audit.relabel`):
    each accepted as the page proposes it (its kind, and the other class of a confusion); a missing
    label the audit proposes no box for cannot apply, and is counted and left out, not the rest."""
    issues = ISSUES.assign(other_class=["", "", "", "Gravel"])
    decisions = review.accepted(issues)
    assert list(decisions["new_class"]) == ["", "", "", "Gravel"] and list(decisions["line"]) == [2, 3, 4, 5]
    with pytest.raises(review.ReviewError, match="line 4: no proposed mask for b.jpg Fish"):
        review.apply(TRAIN, decisions, issues, SHAPE, tmp_path / "all.csv")  # b.jpg's Fish: no proposed box
    corrected, left_out = review.apply_what_fits(TRAIN, decisions, issues, SHAPE, tmp_path / "all.csv")
    assert left_out == 1
    fitting = review.apply(TRAIN, decisions[decisions["image"] + decisions["class"] != "b.jpgFish"], issues, SHAPE,
                           tmp_path / "all.csv")[0]
    pd.testing.assert_frame_equal(corrected, fitting)
    enc = corrected.set_index("Image_Label")["EncodedPixels"]
    assert enc["b.jpg_Sugar"] == GRAVEL_B and enc["b.jpg_Fish"] == "" and enc["a.jpg_Flower"] != ""


def test_a_spurious_label_without_a_class_is_removed_and_a_move_merges(tmp_path):
    path = _review(tmp_path, [("a.jpg", "Sugar", "accept", "Fish", "spurious label"),
                              ("b.jpg", "Gravel", "accept", "", "spurious label")])
    enc, changes, _ = _apply(path)
    merged = rle.decode(enc["a.jpg_Fish"], SHAPE)
    assert merged.sum() == rle.decode(FISH_A, SHAPE).sum() + rle.decode(SUGAR_A, SHAPE).sum()
    assert enc["a.jpg_Sugar"] == "" and enc["b.jpg_Gravel"] == ""
    assert list(changes["action"]) == ["moved to Fish", "removed"]


# c.jpg: Fish and Sugar swapped, Flower missing (two patches), Gravel's box beside its pattern
C_FISH, C_SUGAR, C_GRAVEL = _mask(slice(0, 3), slice(0, 6)), _mask(slice(6, 10), slice(12, 20)), _mask(slice(0, 4), slice(14, 20))
C_TRAIN = pd.concat([TRAIN, pd.DataFrame({"Image_Label": [f"c.jpg_{c}" for c in CLASSES],
                                          "EncodedPixels": [C_FISH, "", C_SUGAR, C_GRAVEL]})], ignore_index=True)
C_ISSUES = pd.DataFrame({"image": ["c.jpg"] * 4, "class": CLASSES,
                         "kind": ["class confusion", "missing label", "class confusion", "loose mask"],
                         "proposal": ["", "0.0 0.0 0.2 0.25;0.6 0.5 1.0 0.75", "", "0.1 0.3 0.5 0.6"],
                         **{c: np.nan for c in BOX_COLUMNS}})
C_CANDIDATES = {"Fish": ("class confusion", "Sugar"), "Flower": ("missing label", ""),
                "Sugar": ("class confusion", "Fish"), "Gravel": ("loose mask", "")}


@pytest.mark.parametrize("subset", range(1, 16))
def test_every_combination_of_accepted_proposals_on_one_image_applies(tmp_path, subset):
    """The page's candidates of one image (both halves of a swap, a missing label, a loose mask), any
    of them accepted: nothing is refused and each accepted decision has its effect on c.jpg."""
    chosen = [c for k, c in enumerate(C_CANDIDATES) if subset >> k & 1]
    path = _review(tmp_path, [("c.jpg", c, "accept", C_CANDIDATES[c][1], C_CANDIDATES[c][0]) for c in chosen])
    decisions = review.read(path, ["a.jpg", "b.jpg", "c.jpg"], CLASSES)
    corrected, changes, proposed = review.apply(C_TRAIN, decisions, C_ISSUES, SHAPE, path)
    after = {c: rle.decode(e, SHAPE).astype(bool) for c, e in zip(CLASSES, corrected["EncodedPixels"].iloc[8:])}
    before = {c: rle.decode(e, SHAPE).astype(bool) for c, e in zip(CLASSES, C_TRAIN["EncodedPixels"].iloc[8:])}
    assert corrected["EncodedPixels"].iloc[:8].tolist() == TRAIN["EncodedPixels"].tolist()  # other images untouched
    if {"Fish", "Sugar"} <= set(chosen):       # the swap: the masks exchanged, once
        assert (after["Fish"] == before["Sugar"]).all() and (after["Sugar"] == before["Fish"]).all()
    elif "Fish" in chosen:                     # the Sugar mask is Fish's
        assert (after["Fish"] == (before["Fish"] | before["Sugar"])).all() and not after["Sugar"].any()
    elif "Sugar" in chosen:
        assert (after["Sugar"] == (before["Sugar"] | before["Fish"])).all() and not after["Fish"].any()
    if "Flower" in chosen:                     # two patches, two boxes
        assert after["Flower"].sum() == 2 * 5 + 4 * 5 and after["Flower"][0:2, 0:5].all() and after["Flower"][6:10, 10:15].all()
    if "Gravel" in chosen:
        assert (after["Gravel"] == boxes_mask([(0.1, 0.3, 0.5, 0.6)], SHAPE).astype(bool)).all()
    for c in set(CLASSES) - set(chosen) - ({"Fish", "Sugar"} if {"Fish", "Sugar"} & set(chosen) else set()):
        assert (after[c] == before[c]).all()
    assert len(proposed) == 2 * ("Flower" in chosen) + ("Gravel" in chosen)
    assert len(changes) == len(chosen)


def test_the_same_move_accepted_from_both_sides_is_made_once_and_a_moved_mask_supplies_a_missing_label(tmp_path):
    path = _review(tmp_path, [("c.jpg", "Sugar", "accept", "Fish", "spurious label"),   # Sugar's mask is Fish's
                              ("c.jpg", "Fish", "accept", "Sugar", "class confusion"),  # the same move, seen from Fish
                              ("c.jpg", "Gravel", "accept", "Flower", "spurious label"),
                              ("c.jpg", "Flower", "accept", "", "missing label")])
    decisions = review.read(path, ["a.jpg", "b.jpg", "c.jpg"], CLASSES)
    corrected, changes, proposed = review.apply(C_TRAIN, decisions, C_ISSUES, SHAPE, path)
    enc = corrected.set_index("Image_Label")["EncodedPixels"]
    fish = rle.decode(enc["c.jpg_Fish"], SHAPE)
    assert fish.sum() == rle.decode(C_FISH, SHAPE).sum() + rle.decode(C_SUGAR, SHAPE).sum() and enc["c.jpg_Sugar"] == ""
    assert enc["c.jpg_Flower"] == C_GRAVEL and enc["c.jpg_Gravel"] == "" and proposed.empty
    assert sorted(changes["action"]) == ["added (the mask moved from Gravel)", "moved to Fish", "moved to Flower"]


# d.jpg: Sugar's mask is two patches, the right one Flower's (a swap into a class labelled already);
# Gravel's box is a Fish pattern's
D_LEFT, D_RIGHT = (slice(0, 4), slice(0, 5)), (slice(6, 10), slice(12, 20))
D_SUGAR = np.zeros(SHAPE, np.uint8)
D_SUGAR[D_LEFT] = D_SUGAR[D_RIGHT] = 1
D_TRAIN = pd.concat([TRAIN, pd.DataFrame({"Image_Label": [f"d.jpg_{c}" for c in CLASSES],
                                          "EncodedPixels": ["", "", rle.encode(D_SUGAR), _mask(slice(0, 3), slice(8, 11))]})],
                    ignore_index=True)


@pytest.mark.parametrize("sugar_sees_the_right_patch", [False, True])
def test_a_missing_label_takes_the_patches_of_a_loose_or_removed_mask_that_its_proposal_covers(tmp_path,
                                                                                               sugar_sees_the_right_patch):
    """Flower's proposal covers Sugar's right patch: Flower takes that patch as drawn (not its proposed box)
    and Sugar keeps its left one, unless Sugar's own proposal covers the patch as much (classes overlap:
    then Flower gets its box and Sugar its proposal). Fish's proposal covers the removed Gravel box: Fish
    takes it."""
    sugar = "0.0 0.0 1.0 1.0" if sugar_sees_the_right_patch else "0.0 0.0 0.4 0.25"
    issues = pd.DataFrame({"image": ["d.jpg"] * 4, "class": CLASSES,
                           "kind": ["missing label", "missing label", "loose mask", "spurious label"],
                           "proposal": ["0.0 0.35 0.4 0.6", "0.5 0.55 1.0 1.0", sugar, ""],
                           **{c: np.nan for c in BOX_COLUMNS}})
    path = _review(tmp_path, [("d.jpg", "Fish", "accept", "", "missing label"),
                              ("d.jpg", "Flower", "accept", "", "missing label"),
                              ("d.jpg", "Sugar", "accept", "", "loose mask"),
                              ("d.jpg", "Gravel", "accept", "", "spurious label")])
    decisions = review.read(path, ["a.jpg", "b.jpg", "d.jpg"], CLASSES)
    corrected, changes, _ = review.apply(D_TRAIN, decisions, issues, SHAPE, path)
    after = {c: rle.decode(e, SHAPE).astype(bool) for c, e in zip(CLASSES, corrected["EncodedPixels"].iloc[8:])}
    left, right = np.zeros(SHAPE, bool), np.zeros(SHAPE, bool)
    left[D_LEFT], right[D_RIGHT] = True, True
    assert (after["Fish"] == rle.decode(D_TRAIN["EncodedPixels"].iloc[11], SHAPE).astype(bool)).all()
    assert not after["Gravel"].any()
    if sugar_sees_the_right_patch:
        assert (after["Flower"] == boxes_mask([(0.5, 0.55, 1.0, 1.0)], SHAPE).astype(bool)).all()
        assert after["Sugar"].all()
    else:
        assert (after["Flower"] == right).all() and (after["Sugar"] == left).all()
        assert "added (its box within the Sugar mask moved)" in set(changes["action"])


# e.jpg: Sugar's mask is its own box and Flower's, which overlap (one patch): a swap into a class
# labelled already whose two drawings touch
E_SUGAR, E_FLOWER = (slice(0, 6), slice(0, 10)), (slice(3, 10), slice(8, 20))
E_MASK = np.zeros(SHAPE, np.uint8)
E_MASK[E_SUGAR] = E_MASK[E_FLOWER] = 1
E_TRAIN = pd.concat([TRAIN, pd.DataFrame({"Image_Label": [f"e.jpg_{c}" for c in CLASSES],
                                          "EncodedPixels": ["", "", rle.encode(E_MASK), ""]})], ignore_index=True)


@pytest.mark.parametrize("sugar_proposal", ["0.0 0.0 0.6 0.45", "0.0 0.0 1.0 1.0"])
def test_a_missing_label_takes_its_box_within_a_loose_mask_drawn_along_the_masks_edges(tmp_path, sugar_proposal):
    """Flower's proposal and Sugar's each cover one of the two boxes Sugar's mask is drawn as: Flower
    takes its box as drawn and Sugar keeps its own, each drawn along the mask's edges (the proposals
    are a pixel short of them). Where Sugar's proposal covers the whole mask, Flower's adds nothing to
    it: each gets its proposal."""
    issues = pd.DataFrame({"image": ["e.jpg"] * 2, "class": ["Flower", "Sugar"], "kind": ["missing label", "loose mask"],
                           "proposal": ["0.3 0.45 1.0 1.0", sugar_proposal], **{c: np.nan for c in BOX_COLUMNS}})
    path = _review(tmp_path, [("e.jpg", "Flower", "accept", "", "missing label"),
                              ("e.jpg", "Sugar", "accept", "", "loose mask")])
    decisions = review.read(path, ["a.jpg", "b.jpg", "e.jpg"], CLASSES)
    corrected, changes, _ = review.apply(E_TRAIN, decisions, issues, SHAPE, path)
    after = {c: rle.decode(e, SHAPE).astype(bool) for c, e in zip(CLASSES, corrected["EncodedPixels"].iloc[8:])}
    if sugar_proposal == "0.0 0.0 0.6 0.45":
        flower, sugar = np.zeros(SHAPE, bool), np.zeros(SHAPE, bool)
        flower[E_FLOWER], sugar[E_SUGAR] = True, True
        assert (after["Flower"] == flower).all() and (after["Sugar"] == sugar).all()
        assert sorted(changes["action"]) == ["added (its box within the Sugar mask moved)",
                                             "mask replaced (its own box within it)"]
    else:
        assert (after["Flower"] == boxes_mask([(0.3, 0.45, 1.0, 1.0)], SHAPE).astype(bool)).all() and after["Sugar"].all()


def test_a_second_decision_for_one_candidate_is_refused_naming_both_lines(tmp_path):
    path = _review(tmp_path, [("a.jpg", "Fish", "accept", "", "spurious label"),
                              ("b.jpg", "Fish", "reject", "", "missing label"),
                              ("a.jpg", "Fish", "reject", "", "spurious label")])
    with pytest.raises(review.ReviewError, match="line 4: a second decision for a.jpg Fish \\(the first is on line 2\\)"):
        _apply(path)


@pytest.mark.parametrize("content,message", [
    (None, "is a folder; expected a CSV file"),
    ("image,class,decision,new_class,score,kind,reviewed_at\na.jpg,Fish,accept,,0.9,spurious label,t\n"
     "a.jpg,Sugar,reject,,0.8,loose mask,caf\xe9\n".encode("latin-1"), "line 3: byte 0xe9 is not UTF-8"),
    (b"image,class,decision\na.jpg,Fish,accept\n", "missing column\\(s\\) new_class, score, kind, reviewed_at"),
    (b"image,class,decision,new_class,score,kind,reviewed_at\na.jpg,Fish,accept,,high,spurious label,t\n",
     "line 2: score 'high' is not a number"),
    (b"image,class,decision,new_class,score,kind,reviewed_at\na.jpg,Fish,accept,,0.9,spurious label,t,EXTRA\n"
     b"a.jpg,Sugar,accept\n", "line 2 has 8 field\\(s\\), the header 7; line 3 has 3 field\\(s\\)"),
    (b"image;class;decision;new_class;score;kind;reviewed_at\n", "found \\['image;class;decision;new_class;score;"
     "kind;reviewed_at'\\] \\(its fields are separated by semicolons; save it comma-separated\\)"),
    (b"image,class,decision,new_class,score,kind,reviewed_at\n\"a.jpg,Fish,accept\n", "line 2: not a readable CSV"),
])
def test_a_damaged_review_file_is_named_with_its_line(tmp_path, content, message):
    path = tmp_path / "label_review.csv"
    path.mkdir() if content is None else path.write_bytes(content)
    with pytest.raises(review.ReviewError, match=message) as e:
        _apply(path)
    assert str(path) in str(e.value)


def test_lines_are_named_as_the_file_numbers_them(tmp_path):
    """Blank lines, a field quoted over two lines and Windows line ends do not shift the line named."""
    path = tmp_path / "label_review.csv"
    path.write_bytes(b"\xef\xbb\xbfimage,class,decision,new_class,score,kind,reviewed_at\r\n"
                     b"a.jpg,Fish,accept,,0.9,spurious label,\"seen\r\ntwice\"\r\n\r\n"
                     b"a.jpg,Fishh,accept,,0.9,spurious label,t\r\n")
    with pytest.raises(review.ReviewError, match="line 5: class 'Fishh' is not one of"):
        _apply(path)
    path.write_bytes(path.read_bytes().replace(b"Fishh", b"Sugar").replace(b"spurious label,t", b"loose mask,t"))
    assert list(review.read(path, ["a.jpg"], CLASSES)["line"]) == [2, 5]


def test_a_decision_on_labels_redrawn_since_the_review_is_refused(tmp_path):
    """The page writes the version of the image's labels it showed: a decision made before a mask of
    that image was redrawn is refused, one on an image unchanged applies; a file without the column
    (an older page's) is read as before."""
    enc = dict(zip(TRAIN["Image_Label"], TRAIN["EncodedPixels"]))
    seen = {i: review.labels_digest(enc, i, CLASSES) for i in ("a.jpg", "b.jpg")}
    path = _review(tmp_path, [("a.jpg", "Fish", "accept", "Gravel", "spurious label"),
                              ("b.jpg", "Sugar", "accept", "Gravel", "class confusion")])
    pd.read_csv(path, dtype=str).assign(labels_sha256=[seen["a.jpg"], seen["b.jpg"]]).to_csv(path, index=False)
    assert _apply(path)[0]["a.jpg_Gravel"] == FISH_A
    redrawn = TRAIN.assign(EncodedPixels=TRAIN["EncodedPixels"].where(TRAIN["Image_Label"] != "a.jpg_Fish", SUGAR_A))
    decisions = review.read(path, ["a.jpg", "b.jpg"], CLASSES)
    with pytest.raises(review.ReviewError, match="line 2: a.jpg's labels have changed since the review") as e:
        review.apply(redrawn, decisions, ISSUES, SHAPE, path)
    assert len(e.value.problems) == 1  # b.jpg's labels are those the page showed
    assert review.labels_digest(enc, "a.jpg", CLASSES[::-1]) == seen["a.jpg"] != seen["b.jpg"]
    # a class without a row is one without a mask: the page (the configured classes) and apply (train.csv's) agree
    without_gravel = TRAIN[~TRAIN["Image_Label"].str.endswith("_Gravel")]
    enc_without = dict(zip(without_gravel["Image_Label"], without_gravel["EncodedPixels"]))
    assert review.labels_digest(enc_without, "a.jpg", ["Fish", "Flower", "Sugar"]) == seen["a.jpg"]
    with pytest.raises(review.ReviewError, match="line 2: train.csv has no row for a.jpg Gravel, so the corrections "
                                                 "cannot hold it; add the row \\(a.jpg_Gravel, EncodedPixels empty\\)"):
        review.apply(without_gravel, decisions, ISSUES, SHAPE, path)
    older = _review(tmp_path, [("a.jpg", "Fish", "accept", "Gravel", "spurious label")], "older.csv")
    assert list(review.read(older, ["a.jpg"], CLASSES)["labels_sha256"]) == [""]
    assert review.apply(redrawn, review.read(older, ["a.jpg"], CLASSES), ISSUES, SHAPE, older)[0] is not None


def test_a_review_that_would_lose_corrections_is_named(tmp_path):
    empty = pd.DataFrame(columns=review.COLUMNS)
    some = pd.DataFrame([("a.jpg", "Fish", "accept", "", "", "spurious label", "")], columns=review.COLUMNS)
    previous = {"version": "abc-def", "changes": 4}
    missing, present = tmp_path / "missing.csv", _review(tmp_path, [])
    assert review.loss(missing, empty, 0, None) is None          # nothing corrected yet, nothing to lose
    assert review.loss(missing, empty, 0, {"version": "x", "changes": 0}) is None
    assert review.loss(missing, empty, 0, previous) == \
        "there is no review file, fewer than the 4 label changes of the latest corrections (abc-def), which stay"
    assert review.loss(present, empty, 0, previous).startswith("the review names no decision, fewer than the 4")
    assert review.loss(present, some, 3, previous).startswith("the review gives 3 label changes, fewer than the 4")
    assert review.loss(present, some, 4, previous) is None


def test_every_version_of_the_corrections_is_kept_and_the_latest_found(tmp_path):
    """One review of one train.csv gives other corrections once the audit's proposals change: both stay."""
    path = _review(tmp_path, [("a.jpg", "Fish", "accept", "", "spurious label")])
    folder = tmp_path / "corrections"
    written = tmp_path / "train_corrected.csv"
    TRAIN.to_csv(written, index=False)
    for review_sha, train_sha, corrected_sha, changes in (("1" * 64, "f" * 64, "a" * 64, 1), ("2" * 64, "f" * 64, "a" * 64, 2),
                                                          ("2" * 64, "f" * 64, "b" * 64, 2), (None, "e" * 64, "c" * 64, 0)):
        summary = {"version": review.version_name(review_sha, train_sha, corrected_sha), "train_csv_sha256": train_sha,
                   "changes": changes}
        review.keep(folder, [written], path, summary)
    assert sorted(p.name for p in folder.iterdir()) == [
        "111111111111-ffffffffffff-aaaaaaaa", "222222222222-ffffffffffff-aaaaaaaa", "222222222222-ffffffffffff-bbbbbbbb",
        "no-review-eeeeeeeeeeee-cccccccc"]
    assert review.latest(folder, "f" * 64)["version"] == "222222222222-ffffffffffff-bbbbbbbb"
    # a version being written, a folder another tool made, an unreadable summary: not the latest
    for name, text in ((".333333333333-ffffffffffff-cccccccc.0a1b2c3d.tmp", '{"train_csv_sha256": "' + "f" * 64
                        + '", "written_at": 9e9, "version": "x"}'), ("backup", '{"written_at": 9e9}'), ("torn", "{")):
        (folder / name).mkdir()
        (folder / name / "summary.json").write_text(text)
    assert review.latest(folder, "f" * 64)["version"] == "222222222222-ffffffffffff-bbbbbbbb"
    assert review.latest(folder, "0" * 64) is None
    assert (folder / "111111111111-ffffffffffff-aaaaaaaa" / "label_review.csv").read_bytes() == path.read_bytes()
    assert (folder / "111111111111-ffffffffffff-aaaaaaaa" / "train_corrected.csv").read_bytes() == written.read_bytes()


@pytest.mark.parametrize("row,message", [
    (("c.jpg", "Fish", "accept", "", "spurious label"), "line 2: image 'c.jpg' is not in the dataset"),
    (("a.jpg", "Cloud", "accept", "", "spurious label"), "line 2: class 'Cloud' is not one of"),
    (("a.jpg", "Fish", "maybe", "", "spurious label"), "line 2: decision 'maybe' is not one of accept, reject"),
    (("a.jpg", "Fish", "accept", "Cloud", "spurious label"), "line 2: new_class 'Cloud'"),
    (("a.jpg", "Fish", "accept", "Fish", "class confusion"), "line 2: new_class 'Fish' is the label's own class"),
    (("a.jpg", "Flower", "accept", "", "class confusion"), "line 2: an accepted class confusion needs new_class"),
])
def test_bad_rows_are_named_by_file_and_line(tmp_path, row, message):
    path = _review(tmp_path, [row])
    with pytest.raises(review.ReviewError, match=message) as e:
        _apply(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("row,message", [
    (("a.jpg", "Flower", "accept", "", "spurious label"), "Flower is not labelled on a.jpg"),
    (("b.jpg", "Fish", "accept", "", "missing label"), "no proposed mask for b.jpg Fish"),
    (("a.jpg", "Fish", "accept", "", "missing label"), "Fish is labelled on a.jpg already"),
    (("a.jpg", "Flower", "accept", "Gravel", "class confusion"), "Gravel is not labelled on a.jpg"),
])
def test_decisions_that_do_not_fit_the_labels_are_refused(tmp_path, row, message):
    """Without the labels' version the page showed, the labels may have changed since the review; with
    it, and the labels those the page showed, the decision itself does not fit them (a hand-edited row)."""
    path = _review(tmp_path, [("b.jpg", "Flower", "reject", "", "spurious label"), row])
    with pytest.raises(review.ReviewError, match=f"line 3: .*{message}") as e:
        _apply(path)
    assert "changed since the review" in str(e.value) or "no proposed mask" in message
    enc = dict(zip(TRAIN["Image_Label"], TRAIN["EncodedPixels"]))
    seen = [review.labels_digest(enc, image, CLASSES) for image in ("b.jpg", row[0])]
    pd.read_csv(path, dtype=str).assign(labels_sha256=seen).to_csv(path, index=False)
    with pytest.raises(review.ReviewError, match=f"line 3: .*{message}") as e:
        _apply(path)
    assert "changed since the review" not in str(e.value)
    if row[4] == "class confusion":
        assert "choose a class labelled there as new_class" in str(e.value)


def test_progress_and_the_matches_with_injected_errors():
    decisions = pd.DataFrame({"image": ["a.jpg", "b.jpg", "b.jpg"], "class": ["Flower", "Sugar", "Fish"],
                              "decision": ["accept", "accept", "reject"], "new_class": ["", "Gravel", ""]})
    table = review.progress(decisions, ISSUES).set_index(["kind", "class"])
    assert table.loc[("missing label", "Flower")].tolist() == [1, 1, 1, 0]
    assert table.loc[("missing label", "Fish")].tolist() == [1, 1, 0, 1]
    assert table.loc[("loose mask", "Sugar")].tolist() == [1, 0, 0, 0]
    manifest = pd.DataFrame({"image": ["a.jpg", "b.jpg", "b.jpg"], "class": ["Flower", "Sugar", "Fish"],
                             "kind": ["missing", "swapped", "missing"], "labelled_as": ["", "Gravel", ""]})
    decisions["kind"] = ["missing label", "loose mask", "missing label"]
    assert scoring.review_matches(decisions, manifest) == {
        "accepted": 2, "accepted_injected": 2, "accepted_injected_same_kind": 1, "rejected": 1,
        "rejected_injected": 1, "injected": 3}


@pytest.fixture(scope="module")
def audited(small_dataset, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("review")
    model = tiny_keras(tmp / "model.keras")
    result = materialize(small_dataset, tmp / "var", DATA_ASSETS + ANALYSIS, model)
    assert result.success, failure_message(result)
    return tmp, model


@pytest.mark.e2e
def test_without_a_review_train_corrected_is_train_csv(audited, small_dataset):
    tmp, _ = audited
    corrected = Store(tmp / "var" / "store").get("corrected_labels")
    assert (corrected.path / "train_corrected.csv").read_bytes() == (small_dataset / "train.csv").read_bytes()
    assert corrected.json("summary")["reviewed"] == 0


@pytest.mark.e2e
def test_a_bad_review_fails_the_blocking_check_and_writes_nothing(audited, small_dataset, tmp_path):
    tmp, model = audited
    before = (tmp / "var" / "store" / "corrected_labels").resolve()
    image = pd.read_csv(small_dataset / "train.csv")["Image_Label"][0].rpartition("_")[0]
    path = _review(tmp_path, [(image, "Fish", "reject", "", "spurious label"),
                              (image, "Fish", "acept", "", "spurious label")])
    result = materialize(small_dataset, tmp / "var", DATA_ASSETS + ANALYSIS, model, selection=["corrected_labels"],
                         review_path=str(path))
    assert not result.success
    assert f"{path} line 3: decision 'acept' is not one of accept, reject" in failure_message(result)
    checks = result.get_asset_check_evaluations()
    assert [(c.check_name, c.passed) for c in checks] == [("review_applies", False), ("keeps_corrections", True)]
    assert (tmp / "var" / "store" / "corrected_labels").resolve() == before


def _corrected(var) -> str:
    return (Store(var / "store").get("corrected_labels").path / "train_corrected.csv").read_text()


@pytest.mark.e2e
def test_corrections_are_never_replaced_by_fewer_unless_asked(audited, dataset_copy, tmp_path, monkeypatch, capsys):
    """A review path that is a folder, mistyped, empty or missing, and a review with fewer changes, each
    fail naming the path and keep the 4 corrections; allow_fewer_changes starts over; versions are kept."""
    tmp, model = audited
    var = tmp_path / "var"
    shutil.copytree(tmp / "var", var, symlinks=True)
    train = pd.read_csv(dataset_copy / "train.csv", keep_default_na=False)
    labelled = train[train["EncodedPixels"] != ""]["Image_Label"].str.rpartition("_").head(4)
    rows = [(image, cls, "accept", "", "spurious label") for image, cls in zip(labelled[0], labelled[2])]
    full, fewer = _review(tmp_path, rows), _review(tmp_path, rows[:2], "fewer.csv")
    empty = _review(tmp_path, [], "empty.csv")

    def run(path=None, **config):
        return materialize(dataset_copy, var, DATA_ASSETS + ANALYSIS, model, selection=["corrected_labels"],
                           review_path=str(path) if path else None,
                           run_config={"ops": {"corrected_labels": {"config": config}}})

    assert run(full).success
    four = _corrected(var)
    assert four != (dataset_copy / "train.csv").read_text()
    for path, message in [(tmp_path, "is a folder"), (tmp_path / "label_reveiw.csv", "there is no review file, fewer "
                                                                                      "than the 4 label changes"),
                          (empty, "the review names no decision"), (None, "there is no review file"),
                          (fewer, "the review gives 2 label changes, fewer than the 4")]:
        result = run(path)
        assert not result.success, path
        assert message in failure_message(result) and str(path or dataset_copy / "label_review.csv") in failure_message(result)
        assert _corrected(var) == four, path
    # make review REVIEW=FILE's first step (cloud-assets review) runs the same checks on the store before
    # it replaces the review there, so a refused file never takes the applied one's place
    monkeypatch.setenv("CLOUD_ASSETS_DATA_DIR", str(dataset_copy))
    monkeypatch.setenv("CLOUD_ASSETS_VAR_DIR", str(var))
    monkeypatch.setenv("CLOUD_ASSETS_REVIEW_PATH", str(full))
    applied = full.read_bytes()
    misfit = _review(tmp_path, [(rows[0][0], rows[0][1], "accept", "", "missing label")], "misfit.csv")
    for path, message in [(fewer, "the review gives 2 label changes, fewer than the 4"),
                          (misfit, f"{misfit} line 2: {rows[0][1]} is labelled on {rows[0][0]} already")]:
        assert cli.main(["review", str(path)]) == 2
        err = capsys.readouterr().err
        assert message in err and f"{full} is left as it was" in err, err
        assert full.read_bytes() == applied
    assert cli.main(["review", str(fewer), "--fewer"]) == 0 and full.read_bytes() == fewer.read_bytes()
    assert "checked as corrected_labels will apply it" in capsys.readouterr().out
    result = run(empty, allow_fewer_changes=True)  # asked for: start over
    assert result.success and _corrected(var) == (dataset_copy / "train.csv").read_text()
    versions = sorted((var / "corrections").iterdir())  # the first run's (no review), the review's, the empty one's
    assert len(versions) == 3 and [(v / "train_corrected.csv").read_text() == four for v in versions].count(True) == 1


def test_observing_a_damaged_review_fails_naming_the_file_and_line(small_dataset, tmp_path):
    path = tmp_path / "label_review.csv"
    path.write_bytes(b"image,class,decision,new_class,score,kind,reviewed_at\nx.jpg,Fish,accept,,0.9,\xff,t\n")
    defs = dg.Definitions(assets=[A.label_review], jobs=[automation.observe_label_review],
                          resources=project_resources(small_dataset, "", tmp_path / "var", review_path=str(path)))
    result = defs.resolve_job_def("observe_label_review").execute_in_process(raise_on_error=False)
    assert not result.success
    assert f"{path} line 2: byte 0xff is not UTF-8" in failure_message(result)


@pytest.mark.parametrize("cls", list(C_CANDIDATES))
def test_what_the_page_draws_for_a_candidate_is_what_apply_writes(tmp_path, cls):
    """`after_accept` (the Label issues page's before/after) gives, for one accepted candidate, the
    masks `apply` writes for it, and no other class."""
    kind, new_class = C_CANDIDATES[cls]
    path = _review(tmp_path, [("c.jpg", cls, "accept", new_class, kind)])
    corrected = review.apply(C_TRAIN, review.read(path, ["a.jpg", "b.jpg", "c.jpg"], CLASSES), C_ISSUES, SHAPE, path)[0]
    enc = dict(zip(C_TRAIN["Image_Label"], C_TRAIN["EncodedPixels"]))
    after = review.after_accept("c.jpg", cls, kind, new_class, enc, review.proposals_of(C_ISSUES), SHAPE)
    written = corrected.set_index("Image_Label")["EncodedPixels"]
    assert set(after) == {c for c in CLASSES if written[f"c.jpg_{c}"] != enc[f"c.jpg_{c}"]}
    for c, mask in after.items():
        assert (mask.astype(bool) == rle.decode(written[f"c.jpg_{c}"], SHAPE).astype(bool)).all()


def test_a_review_is_placed_only_once_it_applies(tmp_path):
    """`place` (cloud-assets review, make review REVIEW=FILE) puts the reviewer's file where
    corrected_labels reads it only when it would apply; else it names the file and its lines, and the
    review there stays as it was."""
    to = tmp_path / "data" / "label_review.csv"
    to.parent.mkdir()
    applied = _review(tmp_path / "data", [("a.jpg", "Fish", "accept", "Gravel", "spurious label")])
    before = applied.read_bytes()
    bad = _review(tmp_path, [("a.jpg", "Fish", "accept", "", "missing label")], name="bad.csv")
    with pytest.raises(review.ReviewError, match=f"{bad} line 2: Fish is labelled on a.jpg already"):
        review.place(bad, TRAIN, ISSUES, CLASSES, SHAPE, None, to)
    unknown = _review(tmp_path, [("z.jpg", "Fish", "accept", "", "spurious label")], name="unknown.csv")
    with pytest.raises(review.ReviewError, match=f"{unknown} line 2: image 'z.jpg' is not in the dataset"):
        review.place(unknown, TRAIN, None, CLASSES, SHAPE, None, to)  # before any ranking: read alone
    assert to.read_bytes() == before and sorted(p.name for p in to.parent.iterdir()) == ["label_review.csv"]
    good = _review(tmp_path, [("b.jpg", "Sugar", "accept", "Gravel", "class confusion"),
                              ("a.jpg", "Flower", "reject", "", "missing label")], name="good.csv")
    previous = {"changes": 2, "version": "v"}  # the latest corrections: 2 label changes
    with pytest.raises(review.FewerChanges, match=f"{good}: the review gives 1 label changes, fewer than the 2"):
        review.place(good, TRAIN, ISSUES, CLASSES, SHAPE, previous, to)
    assert to.read_bytes() == before
    assert review.place(good, TRAIN, ISSUES, CLASSES, SHAPE, previous, to, allow_fewer=True) == (2, True)
    assert to.read_bytes() == good.read_bytes() and sorted(p.name for p in to.parent.iterdir()) == ["label_review.csv"]
    assert review.place(to, TRAIN, ISSUES, CLASSES, SHAPE, None, to) == (2, False)  # the file already there
