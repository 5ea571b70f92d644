"""A reviewer's decisions on the label-issue candidates (`label_review.csv`, written by the report's
Label issues page) and the corrected `train.csv` they give.

One row per reviewed candidate: `image,class,decision,new_class,score,kind,reviewed_at`, decision
`accept` or `reject`; a second row for one candidate is an error. The page also writes
`labels_sha256`, the version of the image's labels it showed: an accepted decision whose image's
labels have changed since is refused (files without the column are read as before). An accepted
candidate changes the labels by its kind:

| kind             | accept                                                                     |
|------------------|----------------------------------------------------------------------------|
| spurious label   | the label is removed; with `new_class`, its mask moves to that class       |
| class confusion  | the mask labelled `new_class` is this class's: it moves to this class      |
| missing label    | the class is added, its mask the boxes the audit model proposes            |
| loose mask       | the mask is replaced by the boxes the audit model proposes                 |
| no-data artefact | nothing: the classifier, not the label, is at fault                        |

Every decision speaks of the labels the page showed (train.csv as read), so any set of accepted
decisions applies together: the two halves of a swap exchange the two masks, the same move
accepted from both sides is made once, a missing label that a moved mask supplies takes that mask
rather than the proposal, a mask that moves to a class that has one already is merged with it
(their union), and a missing label accepted beside a loose mask or a removed label of the same image
takes its part of that mask: the box drawn along the mask's own edges that its proposal overlaps, or
the patches its proposal covers (the loose mask keeps the rest): a swap into a class labelled
already is undone with the annotator's drawing. The proposal is a box around each
region of the class that the fold audit's model, which never saw the image, predicts, cut at the
level whose boxes hold its prediction best (two
patches get two boxes, as rectangular as the annotators' own), or the labelled box moved where that
prediction is, when it holds it nearly as well, and within a label drawn as one box, the patches
reaching that box's sides (`lib.saliency.attention.proposed_fix`), drawn dashed
on the page; every proposed box written is listed in a side file so
that it can be redrawn by hand.

Corrections are data: every version written is kept in its own folder, named by the review's,
train.csv's and the corrections' own versions (`keep`), and a review that would give fewer label
changes than the latest corrections of the same train.csv is refused unless asked for (`loss`).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cloud_assets.lib.data import rle
from cloud_assets.lib.files import written_folder
from cloud_assets.lib.audit.kinds import CONFUSION, ISSUE_KINDS, LOOSE, MISSING, SPURIOUS
from cloud_assets.lib.saliency.attention import BOX_COLUMNS, box_mask, boxes_mask, drawn_box, parse_boxes
from cloud_assets.lib.data.labels import DatasetError, read_csv
from cloud_assets.lib.store import Document, Table, Value

COLUMNS = ("image", "class", "decision", "new_class", "score", "kind", "reviewed_at")
LABELS_SEEN = "labels_sha256"  # optional column: the image's labels as the page showed them (`labels_digest`)
DECISIONS = ("accept", "reject")
KINDS = ISSUE_KINDS
SHOWN_ERRORS = 20
SWAP_COVER = 0.85  # a missing label takes its box within a loose mask (`_parts_drawn`) when the two proposals
SWAP_GAIN = 0.1    # cover this share of the mask together, its own this share that the mask's own does not,
DRAWN_MATCH = 0.5  # and the box drawn along the mask's edges overlaps its proposal by this much


class ReviewError(DatasetError):
    """A review file that cannot be applied; the message names the file and each bad line, which
    `problems` lists as (where, what)."""

    def __init__(self, message: str, problems: Sequence[tuple[str, str]] = ()):
        super().__init__(message)
        self.problems = list(problems) or [(message.partition(": ")[0], message.partition(": ")[2])]


def read(path: Path, images, class_names) -> pd.DataFrame:
    """The decisions in `path`, checked against the dataset's `images` and `class_names`, with a
    `line` column (header = 1), one per (image, class). ReviewError lists every bad line: the file
    missing or a folder, not UTF-8 or CSV, a column missing, an unknown image or class, a decision or
    kind not allowed, a score that is not a number, a second decision for one candidate."""
    path = Path(path)
    if not path.exists():
        raise ReviewError(f"{path}: no review file; download it from the report's Label issues page "
                          f"('Download review') and place it here")
    df = read_csv(path, COLUMNS, ReviewError, optional=(LABELS_SEEN,))
    known_images, known_classes = set(images), set(class_names)
    problems: list[tuple[str, str]] = []
    first: dict[tuple[str, str], int] = {}
    for r in df.itertuples(index=False):
        where = f"{path} line {r.line}"
        if (r.image, r[1]) in first:
            problems.append((where, f"a second decision for {r.image} {r[1]} (the first is on line "
                                    f"{first[r.image, r[1]]}); keep one row per candidate"))
        first.setdefault((r.image, r[1]), r.line)
        if r.score and not _is_number(r.score):
            problems.append((where, f"score {r.score!r} is not a number"))
        if r.image not in known_images:
            problems.append((where, f"image {r.image!r} is not in the dataset's train.csv"))
        if r[1] not in known_classes:
            problems.append((where, f"class {r[1]!r} is not one of the dataset's classes ({', '.join(class_names)})"))
        if r.decision not in DECISIONS:
            problems.append((where, f"decision {r.decision!r} is not one of {', '.join(DECISIONS)}"))
        if r.new_class and r.new_class not in known_classes:
            problems.append((where, f"new_class {r.new_class!r} is not one of the dataset's classes"))
        elif r.new_class and r.new_class == r[1]:
            problems.append((where, f"new_class {r.new_class!r} is the label's own class; name the other class, "
                                    f"the one whose mask moves"))
        if r.kind not in KINDS:
            problems.append((where, f"kind {r.kind!r} is not one of {', '.join(KINDS)}"))
        elif r.decision == "accept" and r.kind == CONFUSION and not r.new_class:
            problems.append((where, "an accepted class confusion needs new_class, the class whose mask moves"))
    _raise(problems)
    return df


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _raise(problems: list[tuple[str, str]]) -> None:
    if problems:
        more = f"\n... and {len(problems) - SHOWN_ERRORS} more" if len(problems) > SHOWN_ERRORS else ""
        raise ReviewError(f"{len(problems)} problem(s) in the review; nothing was written:\n"
                          + "\n".join(f"{w}: {m}" for w, m in problems[:SHOWN_ERRORS]) + more, problems)


def labels_digest(enc: dict, image: str, class_names) -> str:
    """The version of `image`'s labels in `enc` (train.csv's `Image_Label -> EncodedPixels`), of those
    of `class_names` it has (a class without a row is one without a mask): 12 hex digits of the SHA-256
    of each mask's class and RLE, in class name order. The page writes it beside each decision
    (`labels_sha256`), so that a decision made on labels since redrawn is not applied."""
    masks = ((c, enc.get(f"{image}_{c}", "")) for c in sorted(class_names))
    text = "\n".join(f"{c} {m}" for c, m in masks if not rle.is_empty(m))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def accepted(issues: pd.DataFrame) -> pd.DataFrame:
    """Every candidate of `issues` (rows of `label_issues`) accepted as the page proposes it: its kind,
    and the other class of a class confusion or of a spurious label whose mask moves (`apply`'s
    decisions, one line each)."""
    return pd.DataFrame({"image": issues["image"].to_numpy(), "class": issues["class"].to_numpy(), "decision": "accept",
                         "new_class": np.where(issues["kind"].isin([CONFUSION, SPURIOUS]), issues["other_class"], ""),
                         "kind": issues["kind"].to_numpy(), "line": np.arange(2, len(issues) + 2)})


def apply_what_fits(train: pd.DataFrame, review: pd.DataFrame, issues: pd.DataFrame, shape: tuple[int, int],
                    path: Path) -> tuple[pd.DataFrame, int]:
    """(`apply`'s corrected rows for the decisions of `review` that apply, how many decisions did not and
    were left out: a missing label with no proposal, say)."""
    try:
        return apply(train, review, issues, shape, path)[0], 0
    except ReviewError as e:
        lines = {int(where.rpartition(" line ")[2]) for where, _ in e.problems}
        return apply(train, review[~review["line"].isin(lines)], issues, shape, path)[0], len(lines)


def images_of(train: pd.DataFrame) -> np.ndarray:
    """The images train.csv's rows `train` (`Image_Label`) name, each once: those a review may name."""
    return train["Image_Label"].str.rpartition("_")[0].unique()


class FewerChanges(ReviewError):
    """A review that would replace the latest corrections of train.csv by fewer label changes."""


def evaluate(path: Path, train: pd.DataFrame, issues: pd.DataFrame, class_names, shape: tuple[int, int],
             previous: dict | None, allow_fewer: bool = False):
    """What `corrected_labels` writes from the review at `path` (none there: no decision): (the decisions,
    the corrected rows, the changes, the proposed masks; `apply`), its images and classes those of
    train.csv's rows `train`. ReviewError naming the file's lines where it does not read or fit (`read`,
    `apply`); FewerChanges where it gives fewer label changes than the latest corrections `previous`
    (`latest`, `loss`), unless `allow_fewer`."""
    decisions = read(path, images_of(train), class_names) if Path(path).exists() else \
        pd.DataFrame(columns=[*COLUMNS, "line"])
    corrected, changes, proposed = apply(train, decisions, issues, shape, path)
    lost = None if allow_fewer else loss(path, decisions, len(changes), previous)
    if lost:
        raise FewerChanges(f"{path}: {lost}", [(str(path), lost)])
    return decisions, corrected, changes, proposed


def place(path: Path, train: pd.DataFrame, issues: pd.DataFrame | None, class_names, shape, previous: dict | None,
          to: Path, allow_fewer: bool = False) -> tuple[int, bool]:
    """Puts the review file `path` at `to` (where `corrected_labels` reads it; replaced whole, at once)
    once `corrected_labels` would apply it (`evaluate`; before the audit's first ranking `issues`, None,
    once it reads). Returns (how many decisions it holds, whether it was copied: not when `path` is
    `to`); ReviewError naming `path` and its lines, and `to` left as it was, when it would not."""
    if issues is None:
        decisions = read(path, images_of(train), class_names)
    else:
        decisions = evaluate(path, train, issues, class_names, shape, previous, allow_fewer)[0]
    if Path(path).resolve() == Path(to).resolve():
        return len(decisions), False
    staged = Path(to).with_name(f".{Path(to).name}.placing")
    shutil.copyfile(path, staged)
    os.replace(staged, to)
    return len(decisions), True


def _why(labels_seen: str) -> str:
    """What a decision that does not fit train.csv says of why: without the labels' version the page
    showed (an older page's file), that they may have changed since the review."""
    return "" if labels_seen else "; the label has changed since the review, or the decision was edited"


def apply(train: pd.DataFrame, review: pd.DataFrame, issues: pd.DataFrame, shape: tuple[int, int],
          path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(corrected train.csv rows `Image_Label,EncodedPixels` in the original order, the changes made
    `image,class,action,line`, the proposed masks `image,class,kind,box_top..box_right,line`, a row
    per box).

    `train` is train.csv as read (`Image_Label,EncodedPixels`), `issues` the `label_issues` table
    (for the proposals), `shape` the original images' (height, width), `path` the review file (named
    in errors). Every accepted decision speaks of the labels the page showed, train.csv as read, so
    that any set of them composes (`_compose`). ReviewError when one does not fit train.csv (it has
    changed since the review: its image's labels are not those the page showed, or the label is not
    there) or needs a mask the audit does not propose."""
    enc = dict(zip(train["Image_Label"], train["EncodedPixels"]))
    class_names = train["Image_Label"].str.rpartition("_")[2].unique()
    proposals = proposals_of(issues)
    accepted = review[review["decision"] == "accept"]
    seen = accepted[LABELS_SEEN] if LABELS_SEEN in accepted else pd.Series("", index=accepted.index)
    problems = []

    def labelled(image, cls):
        return not rle.is_empty(enc.get(f"{image}_{cls}", ""))

    for r, labels in zip(accepted.itertuples(index=False), seen):
        image, cls, where = r.image, r[1], f"{path} line {r.line}"
        rowless = [c for c in (cls, r.new_class) if c and f"{image}_{c}" not in enc]
        if rowless:
            problems.append((where, f"train.csv has no row for {image} {rowless[0]}, so the corrections cannot "
                                    f"hold it; add the row ({image}_{rowless[0]}, EncodedPixels empty)"))
        elif labels and labels != labels_digest(enc, image, class_names):
            problems.append((where, f"{image}'s labels have changed since the review (the page showed other "
                                    f"masks): decide {cls} again on the rebuilt report, or delete this line"))
        # past the labels' version the page showed, a decision that does not fit them was made so, not outdated
        elif r.kind in (SPURIOUS, LOOSE) and not labelled(image, cls):
            problems.append((where, f"{cls} is not labelled on {image}, so it has no mask to "
                                    f"{'remove' if r.kind == SPURIOUS else 'replace'}" + _why(labels)))
        elif r.kind == CONFUSION and not labelled(image, r.new_class):
            problems.append((where, f"{r.new_class} is not labelled on {image}, so it has no mask to move"
                                    + (_why(labels) or "; choose a class labelled there as new_class")))
        elif r.kind == MISSING and labelled(image, cls):
            problems.append((where, f"{cls} is labelled on {image} already, so it is not missing" + _why(labels)))
        elif r.kind in (MISSING, LOOSE) and not proposals.get((image, cls)):
            problems.append((where, f"no proposed mask for {image} {cls} (the audit model predicts no region "
                                    f"of the class there); draw the mask by hand"))
    _raise(problems)
    changes, proposed = [], []
    for image, decisions in accepted.groupby("image", sort=False):
        masks, made, boxes = _compose(image, decisions, enc, proposals, shape)
        for cls, mask in masks.items():
            enc[f"{image}_{cls}"] = rle.encode(mask) if mask.any() else ""
        changes += made
        proposed += boxes
    corrected = pd.DataFrame({"Image_Label": train["Image_Label"],
                              "EncodedPixels": [enc[k] for k in train["Image_Label"]]})
    changes = pd.DataFrame(changes, columns=["image", "class", "action", "line"]).drop_duplicates(
        ["image", "class", "action"]).sort_values("line", kind="stable").reset_index(drop=True)
    proposed = pd.DataFrame(proposed, columns=["image", "class", "kind", *BOX_COLUMNS, "line"])
    return corrected, changes, proposed.sort_values("line", kind="stable").reset_index(drop=True)


def after_accept(image: str, cls: str, kind: str, new_class: str, enc: dict, proposals: dict,
                 shape: tuple[int, int], decoded: dict | None = None) -> dict[str, np.ndarray]:
    """class -> its new mask, for every class that accepting one candidate (`image`, `cls`, `kind`,
    `new_class`) changes, as `apply` writes it (`enc`: train.csv's `Image_Label -> EncodedPixels`,
    `proposals` from `proposals_of`; `decoded`: class -> the image's mask already decoded, for the
    calls on one image)."""
    decision = pd.DataFrame([{"image": image, "class": cls, "kind": kind, "new_class": new_class, "line": 0}])
    return _compose(image, decision, enc, proposals, shape, decoded)[0]


def proposals_of(issues: pd.DataFrame) -> dict:
    """(image, class) -> the boxes a fix of that label proposes: the `proposal` column of
    `label_issues`, or its single box where a table has none."""
    if "proposal" in issues.columns:
        return {(i, c): parse_boxes(p) for i, c, p in zip(issues["image"], issues["class"], issues["proposal"])}
    boxes = issues[list(BOX_COLUMNS)].to_numpy(float)
    return {(i, c): [tuple(b)] if not np.isnan(b).any() else [] for i, c, b in zip(issues["image"], issues["class"], boxes)}


def _compose(image: str, decisions: pd.DataFrame, enc: dict, proposals: dict, shape: tuple[int, int],
             decoded: dict | None = None):
    """One image's accepted decisions, each read against the image's labels in train.csv, applied
    together: (the new mask of each class they touch, the changes, the proposed boxes written).

    A mask *moves* where a decision says it is another class's (a spurious label with a class, a
    class confusion; the two halves of a swap are two moves, which exchange the masks, and the same
    move accepted from both sides is made once); a spurious label without a class is *removed*. A
    class then holds its own mask unless it moved, was removed or is replaced by a loose mask's
    proposal, together with every mask that moves to it; a missing label gets the proposed boxes
    unless a mask moves to it (the annotator's own drawing of the pattern). A missing label accepted
    beside a loose mask takes its box within that mask, drawn along the mask's own edges, where the two
    proposals together explain the mask (`_parts_drawn`; the loose mask keeps its own box so drawn);
    else, beside a loose mask or a removed label, the patches of that mask (its connected parts) that
    its proposal covers at least half of (`_patches_taken`): a swap whose mask was merged into a class
    labelled already, or one read as a label removed and another added, keeps the annotator's
    drawing; a loose mask that gives patches away keeps the rest of its own (none: the proposal)."""
    moves: dict[str, dict[str, int]] = {}  # class -> the classes its mask moves to -> the decision's line
    removed: dict[str, int] = {}
    fixes = {}
    for r in decisions.itertuples(index=False):
        cls = r[1]
        if r.kind == SPURIOUS and r.new_class and r.new_class != cls:
            moves.setdefault(cls, {})[r.new_class] = r.line
        elif r.kind == SPURIOUS:
            removed[cls] = r.line
        elif r.kind == CONFUSION:
            moves.setdefault(r.new_class, {})[cls] = r.line
        elif r.kind in (MISSING, LOOSE):
            fixes[cls] = r
    original = {} if decoded is None else decoded

    def mask(cls):
        if cls not in original:
            original[cls] = rle.decode(enc.get(f"{image}_{cls}", ""), shape).astype(bool)
        return original[cls]

    arrivals = {t for targets in moves.values() for t in targets}
    touched = set(moves) | set(removed) | set(fixes) | arrivals
    proposed = {c: boxes_mask(proposals[(image, c)], shape).astype(bool) for c in fixes}
    loose = {c for c, r in fixes.items() if r.kind == LOOSE}
    missing = {c: proposed[c] for c, r in fixes.items() if r.kind == MISSING and c not in arrivals}
    parts, redrawn = _parts_drawn(missing, {c: (mask(c), proposed[c]) for c in sorted(loose) if c not in moves})
    taken = _patches_taken({c: p for c, p in missing.items() if c not in parts},
                           {c: (mask(c), proposed.get(c)) for c in sorted(set(removed) | loose)
                            if c not in moves and c not in redrawn})
    out, changes, boxes = {}, [], []
    for cls in sorted(touched):
        new = np.zeros(shape, bool)
        fix = fixes.get(cls)
        given = [part for patches in taken.values() for source, part in patches if source == cls]
        kept = mask(cls) & ~np.any(given, axis=0) if given else None
        if cls not in moves and cls not in removed and not (fix and fix.kind == LOOSE):
            new |= mask(cls)
        arrived = [source for source, targets in moves.items() if cls in targets]
        for source in arrived:
            new |= mask(source)
            changes.append((image, source, f"moved to {cls}", moves[source][cls]))
        if cls in removed and cls not in moves:
            changes.append((image, cls, "removed", removed[cls]))
        if fix is not None:
            if fix.kind == MISSING and arrived:
                changes.append((image, cls, f"added (the mask moved from {', '.join(arrived)})", fix.line))
            elif cls in taken:
                new |= np.any([part for _, part in taken[cls]], axis=0)
                sources = sorted({source for source, _ in taken[cls]})
                changes.append((image, cls, f"added (patches of the {', '.join(sources)} mask moved)", fix.line))
            elif cls in parts:
                new |= parts[cls][1]
                changes.append((image, cls, f"added (its box within the {parts[cls][0]} mask moved)", fix.line))
            elif cls in redrawn:
                new |= redrawn[cls]
                changes.append((image, cls, "mask replaced (its own box within it)", fix.line))
            elif kept is not None and kept.any():  # a loose mask whose patches another class took: the rest
                new |= kept
                changes.append((image, cls, "mask kept less the patches another class took", fix.line))
            else:
                new |= proposed[cls]
                changes.append((image, cls, "added (proposed box)" if fix.kind == MISSING
                                else "mask replaced (proposed box)", fix.line))
                boxes += [(image, cls, fix.kind, *box, fix.line) for box in proposals[(image, cls)]]
        out[cls] = new.astype(np.uint8)
    return out, changes, boxes


def _parts_drawn(proposed: dict[str, np.ndarray], givers: dict[str, tuple]) -> tuple[dict, dict]:
    """A swap into a class labelled already, the two drawings touching or not: (missing label ->
    (giving class, its part), giving class -> its own part).

    A missing label (`proposed`: class -> its proposal as a boolean mask) takes from a loose mask
    (`givers`: class -> (boolean mask, its own proposal as one)) the box drawn along that mask's own
    edges that overlaps its proposal most (`drawn_box`), within the mask, when the two proposals
    together cover at least `SWAP_COVER` of the mask, the missing label's covers at least `SWAP_GAIN`
    of it that the loose mask's own does not, and the box overlaps its proposal by `DRAWN_MATCH` or
    more: the annotator drew both patterns, and their drawing bounds them better than the proposals.
    The loose mask keeps its own box drawn the same way where one overlaps its proposal by
    `DRAWN_MATCH` (else its proposal)."""
    parts: dict[str, tuple] = {}
    redrawn: dict[str, np.ndarray] = {}
    for source, (own, own_proposal) in givers.items():
        area = own.sum()
        fits = {}
        for cls, box in proposed.items():
            if cls in parts or (own & (box | own_proposal)).sum() < SWAP_COVER * area \
                    or (own & box & ~own_proposal).sum() < SWAP_GAIN * area:
                continue
            drawn = drawn_box(own, box)
            if drawn is not None and drawn[1] >= DRAWN_MATCH:
                fits[cls] = drawn
        if not fits:
            continue
        best = max(fits, key=lambda cls: fits[cls][1])
        parts[best] = (source, own & box_mask(fits[best][0], own.shape).astype(bool))
        mine = drawn_box(own, own_proposal)
        redrawn[source] = (own & box_mask(mine[0], own.shape).astype(bool) if mine and mine[1] >= DRAWN_MATCH
                           else own_proposal)
    return parts, redrawn


def _patches_taken(proposed: dict[str, np.ndarray], givers: dict[str, tuple]) -> dict[str, list]:
    """Missing label -> [(giving class, patch)]: each connected part of a giver's mask (`givers`: class ->
    (boolean mask, its own proposal as one or None)) goes to the missing label (`proposed`: class -> its
    proposal as a boolean mask) whose proposal covers most of it, when that is at least half of it and
    more than the giver's own proposal covers (classes overlap: a patch both predict stays)."""
    import cv2

    taken: dict[str, list] = {}
    for source, (own, own_proposal) in givers.items():
        n, parts = cv2.connectedComponents(own.astype(np.uint8), connectivity=8)
        for k in range(1, n):
            part = parts == k
            cover = {cls: int((part & box).sum()) for cls, box in proposed.items() if cls != source}
            best = max(cover, key=cover.__getitem__, default=None)
            kept = 0 if own_proposal is None else int((part & own_proposal).sum())
            if best is not None and 2 * cover[best] >= part.sum() and cover[best] > kept:
                taken.setdefault(best, []).append((source, part))
    return taken


def progress(review: pd.DataFrame, candidates: pd.DataFrame) -> pd.DataFrame:
    """Per kind and class of the listed `candidates` (image, class, kind): how many are listed,
    reviewed, accepted and rejected."""
    merged = candidates[["image", "class", "kind"]].merge(review[["image", "class", "decision"]],
                                                          on=["image", "class"], how="left")
    merged["decision"] = merged["decision"].fillna("")
    return (merged.assign(listed=1, reviewed=merged["decision"] != "", accepted=merged["decision"] == "accept",
                          rejected=merged["decision"] == "reject")
            .groupby(["kind", "class"], sort=True)[["listed", "reviewed", "accepted", "rejected"]].sum()
            .astype(int).reset_index())


def version_name(review_sha256: str | None, train_sha256: str, corrected_sha256: str) -> str:
    """The name of a version of the corrections: the review file's, train.csv's and the written
    train_corrected.csv's versions (one review of one train.csv gives other corrections when the
    audit's proposals change: each is kept)."""
    return f"{review_sha256[:12] if review_sha256 else 'no-review'}-{train_sha256[:12]}-{corrected_sha256[:8]}"


CORRECTIONS = "corrections"  # under CLOUD_ASSETS_VAR_DIR: every version of the corrections (`keep`)


def latest(folder: Path, train_sha256: str) -> dict | None:
    """The summary of the latest corrections of train.csv version `train_sha256` kept in `folder`."""
    summaries = []
    for path in Path(folder).glob("[!.]*/summary.json"):  # not a version being written (`written_folder`)
        try:
            summaries.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # not one `keep` wrote
    return max((s for s in summaries if s.get("train_csv_sha256") == train_sha256 and "written_at" in s),
               key=lambda s: s["written_at"], default=None)


def keep(folder: Path, files: list[Path], review_path: Path, summary: dict) -> Path:
    """Write a version of the corrections, `folder/<summary['version']>/` (copies of `files`: the
    written train_corrected.csv and proposed_masks.csv; the review applied as label_review.csv;
    summary.json), whole or not at all."""
    final = Path(folder) / summary["version"]
    with written_folder(final) as tmp:
        for file in files:
            shutil.copyfile(file, tmp / Path(file).name)
        if Path(review_path).is_file():
            (tmp / "label_review.csv").write_bytes(Path(review_path).read_bytes())
        (tmp / "summary.json").write_text(json.dumps({**summary, "written_at": time.time()}, indent=1))
    return final


def loss(path: Path, decisions: pd.DataFrame, changes: int, previous: dict | None) -> str | None:
    """Why applying the review at `path` (its `decisions`, giving `changes` label changes) would
    replace the latest corrections of this train.csv (`previous`, from `latest`) by fewer: a review
    missing, naming no decision or giving fewer changes; None when it would not."""
    if previous is None or changes >= previous["changes"]:
        return None
    before = previous["changes"]
    what = ("there is no review file" if not Path(path).exists() else
            "the review names no decision" if decisions.empty else f"the review gives {changes} label changes")
    return f"{what}, fewer than the {before} label changes of the latest corrections ({previous['version']}), which stay"


class CorrectedLabels(Value):
    """`corrected_labels`: beside `train_corrected.csv` and `proposed_masks.csv`."""
    review = Table()     # the decisions applied
    changes = Table()    # the labels changed
    summary = Document()
