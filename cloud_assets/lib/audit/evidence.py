"""Each label's out-of-sample evidence from the fold audit: for every (image, class) of train.csv,
what the audit model that never saw the image says of it.

- `audit_probability`, `audit_cleanlab`: the model's class probability, and how likely cleanlab
  finds the label wrong given it (1 - its multi-label label quality, per class, as for the classifier);
- `mask_quality`: cleanlab.segmentation's label quality score of the class's mask, binary (the mask
  against the pixels' probability of the class; masks of different classes overlap), a soft minimum
  over the pixels (Lad & Mueller 2023): low when some pixels' labels are confidently contradicted;
- `predicted_area`: the share of the image the model predicts the class on (probability >= 0.5);
- `outside_mass`: the share of the predicted probability mass that lies outside the labelled mask
  (a missing label: nearly all of it; a loose or shifted box: much of it); `region_outside`: the
  share of the predicted region (probability >= 0.5) outside it (a box drawn too small);
- `mask_area`: the share of the image the labelled mask covers (a box drawn too wide, or around two
  patches, is larger than the class's boxes usually are);
- `uncovered`: the share of the labelled mask where the predicted probability is below 0.2 (a box
  drawn too wide, or beside its pattern);
- `region_iou`: the overlap of the predicted region's box (the largest connected region at or above
  0.5) with the labelled mask (`lib.saliency.attention.box_iou`, as for the classifier's proposed box);
  `regions`: how many regions of at least 2% of the image the prediction has (a pattern drawn as
  one box over two patches: 2);
- `gap`: how deep the prediction dips between two parts of the labelled mask's box: along the box's
  columns, then its rows, each line's highest probability; 1 - the lowest of them over the lower of
  the highest on either side, the larger of the two directions (a box drawn around two patches: the
  band between them; 0 where the prediction has no dip);
- `mask_fit`: how well the labelled mask holds the prediction, read as a soft mask (the probability
  inside over the mask's area plus the probability outside, as `lib.saliency.attention.soft_iou`);
  `moved_box_gain`: how much better the mask's box holds it moved to where it holds it best
  (`lib.saliency.attention.moved_box`) than where it was drawn (a box drawn beside its pattern);
- `one_box_fit`, `two_box_gain`: how well one box holds the prediction within the labelled mask's box
  (`soft_iou` of the prediction's own box there), and how much better two boxes reaching the box's
  sides do (`lib.saliency.attention.split_in_two`): a box drawn around two patches holds two blobs,
  which one box fits poorly and two fit well, even where the prediction joins them and `gap` finds no
  dip; these four are 0 for an unlabelled class;
- `inside_other`, `other_class`: the largest share of the predicted mass that lies inside one other
  class's mask, and that class (a swapped label: the prediction sits inside the mask labelled as
  another class);
- `audit_box_*`: the predicted region's box (shares of the side);
- `class_cam_*`, `class_ggc_*`, `class_detail_empty`, `class_cam_box_iou`, `class_other`: with the
  class network, where its Grad-CAM and Guided Grad-CAM for the class fall, computed as the classifier's
  mask attention is (`lib.saliency.attention.attention_table`, at the audit size): the shares inside the
  class's mask (`own`), inside another's (`other`), outside every mask (`outside`), on no-data pixels
  (`nodata`); the mask's share without Grad-CAM (`class_cam_empty`) or guided-backprop detail; the
  overlap of Grad-CAM's box with the mask; the other class whose mask draws most of it. NaN without;
- `label_box_*`: the labelled mask's bounding box (shares of the side; NaN for an empty mask), which
  the refinement of the proposal reads (`lib.audit.proposals`);
- `audit_boxes`: the mask a fix proposes, as boxes like the annotators drew (`lib.saliency.attention.
  proposed_fix`: the labelled box moved where the prediction is, when that fits the prediction nearly
  as well as its own boxes; else one box per region of the prediction, cut at the level whose boxes
  overlap it most, so two patches get two; a label of several patches fixed one patch at a time), as
  text (`lib.saliency.attention.boxes_text`).
"""
from __future__ import annotations

import warnings

import cv2
import numpy as np
import pandas as pd

from cloud_assets.lib.saliency.attention import (attention_table, box_iou, box_shares, boxes_text, mask_bounds,
                                                 moved_box, proposed_box, proposed_boxes, proposed_fix, soft_iou,
                                                 split_in_two, within)
from cloud_assets.lib.audit.label_issues import cleanlab_scores
from cloud_assets.lib.audit.proposals import LABEL_BOX
from cloud_assets.lib.store import Table, Value

LOW = 0.2            # a predicted probability below this counts as "not the class"
REGION_LEVEL = 0.5   # the predicted region: pixels at or above this probability
MIN_REGION = 0.02    # regions smaller than this share of the image are not counted
AUDIT_BOX = ("audit_box_top", "audit_box_left", "audit_box_bottom", "audit_box_right")
# the class network's mask attention: its column here <- attention_table's
CLASS_ATTENTION = {"class_cam_own": "cam_own", "class_cam_other": "cam_other", "class_cam_outside": "cam_outside",
                   "class_cam_empty": "cam_empty", "class_ggc_own": "ggc_own", "class_ggc_other": "ggc_other",
                   "class_ggc_outside": "ggc_outside", "class_ggc_nodata": "ggc_nodata",
                   "class_detail_empty": "detail_empty", "class_cam_box_iou": "box_iou", "class_other": "other_class"}
COLUMNS = ["image", "class", "label", "audit_probability", "audit_cleanlab", "mask_quality", "predicted_area",
           "outside_mass", "region_outside", "mask_area", "uncovered", "region_iou", "regions", "gap", "mask_fit",
           "moved_box_gain", "one_box_fit", "two_box_gain", "inside_other",
           "other_class", *AUDIT_BOX, *LABEL_BOX, "audit_boxes", *CLASS_ATTENTION]


def _regions(prob: np.ndarray) -> int:
    n, _, stats, _ = cv2.connectedComponentsWithStats((prob >= REGION_LEVEL).astype(np.uint8), connectivity=8)
    return int((stats[1:, cv2.CC_STAT_AREA] >= MIN_REGION * prob.size).sum())


def _dip(profile: np.ndarray) -> float:
    """1 - the lowest value of `profile` between two higher ones, over the lower of those (0: no dip)."""
    wall = np.minimum(np.maximum.accumulate(profile), np.maximum.accumulate(profile[::-1])[::-1])
    return float(np.max(np.where(wall > 0, 1 - profile / np.maximum(wall, 1e-12), 0.0)))


def gap(prob: np.ndarray, own: np.ndarray) -> float:
    """The prediction's deepest dip across the box of the mask `own` `(h, w)` (`evidence`'s `gap`); 0 for
    an empty mask."""
    bounds = mask_bounds(own)
    if bounds is None:
        return 0.0
    inside = prob[bounds[0]:bounds[2], bounds[1]:bounds[3]]
    return max(_dip(inside.max(axis=0)), _dip(inside.max(axis=1)))


def fits(prob: np.ndarray, own: np.ndarray) -> tuple[float, float, float, float]:
    """(`mask_fit`, `moved_box_gain`, `one_box_fit`, `two_box_gain`) of `evidence` for the prediction
    `prob` and the mask `own` `(h, w)`: the mask's overlap with the prediction read as a soft mask; how
    much more its box overlaps it moved (`moved_box`) than in place; the `soft_iou` of the prediction's
    own box with the prediction within the mask's box, and how much more two boxes reach there
    (`split_in_two`; below 0 where one box fits better, or the box is too small to part). 0 for an
    empty mask; the last two 0 where nothing is predicted within its box."""
    bounds = mask_bounds(own)
    if bounds is None:
        return 0.0, 0.0, 0.0, 0.0
    held, total = float(prob[own].sum()), float(prob.sum())
    mask_fit = held / (own.sum() + total - held)
    moved = moved_box(prob, own)
    drawn = soft_iou([box_shares(bounds, own.shape)], prob)
    moved_gain = moved[1] - drawn if moved is not None else 0.0
    inside = within(prob, bounds)
    if inside.max() <= 0:
        return mask_fit, moved_gain, 0.0, 0.0
    one = soft_iou(proposed_boxes(inside, 0.0, most=1), inside)
    return mask_fit, moved_gain, one, split_in_two(prob, bounds)[1] - one


def mask_quality(masks: np.ndarray, pixels: np.ndarray, chunk: int = 512) -> np.ndarray:
    """float `(n,)`: cleanlab.segmentation's softmin label quality of each binary mask `(n, h, w)`
    given its pixels' probabilities of the class `(n, h, w)`, `chunk` images at a time."""
    from cleanlab.segmentation.rank import get_label_quality_scores

    out = np.empty(len(masks), np.float64)
    for start in range(0, len(masks), chunk):
        p = np.clip(np.asarray(pixels[start:start + chunk], np.float32), 1e-6, 1 - 1e-6)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores, _ = get_label_quality_scores(np.asarray(masks[start:start + chunk], np.int64),
                                                 np.stack([1 - p, p], axis=1), method="softmin", verbose=False)
        out[start:start + len(p)] = scores
    return out


def evidence(images, class_names, labels: np.ndarray, masks: np.ndarray, probs: np.ndarray,
             pixels: np.ndarray) -> pd.DataFrame:
    """One row per (image, class): `labels (n, classes)` 0/1, `masks (n, h, w, classes)` 0/1, the
    audit models' `probs (n, classes)` and `pixels (classes, n, h, w)`, all in `images`' order."""
    n, k = labels.shape
    quality = cleanlab_scores(labels, probs)
    rows = []
    for c, cls in enumerate(class_names):
        own = np.asarray(masks[..., c]).astype(bool)
        p = np.asarray(pixels[c], np.float32)
        seg = mask_quality(own, p)
        mass = p.sum(axis=(1, 2))
        outside = np.where(mass > 0, (p * ~own).sum(axis=(1, 2)) / np.maximum(mass, 1e-12), 0.0)
        region = p >= REGION_LEVEL
        predicted = region.mean(axis=(1, 2))
        region_outside = (region & ~own).sum(axis=(1, 2)) / np.maximum(region.sum(axis=(1, 2)), 1)
        area = own.sum(axis=(1, 2))
        uncovered = np.where(area > 0, ((p < LOW) & own).sum(axis=(1, 2)) / np.maximum(area, 1), 0.0)
        others = [d for d in range(k) if d != c]
        inside = np.stack([(p * masks[..., d]).sum(axis=(1, 2)) / np.maximum(mass, 1e-12) for d in others], axis=1)
        inside_other = inside.max(axis=1)
        other_class = np.where(inside_other > 0, np.asarray(class_names, dtype=object)[others][inside.argmax(axis=1)], "")
        for i in range(n):
            box = proposed_box(p[i], REGION_LEVEL)
            drawn = mask_bounds(own[i])
            rows.append((images[i], cls, int(labels[i, c]), float(probs[i, c]), 1 - float(quality[i, c]),
                         float(seg[i]), float(predicted[i]), float(outside[i]), float(region_outside[i]),
                         float(area[i]) / own[i].size, float(uncovered[i]),
                         box_iou(box, own[i]), _regions(p[i]), gap(p[i], own[i]), *fits(p[i], own[i]),
                         float(inside_other[i]),
                         other_class[i],
                         *(box if box is not None else (np.nan,) * 4),
                         *(box_shares(drawn, own[i].shape) if drawn is not None else (np.nan,) * 4),
                         boxes_text(proposed_fix(p[i], own[i], MIN_REGION)), *(np.nan,) * (len(CLASS_ATTENTION) - 1), ""))
    return pd.DataFrame(rows, columns=COLUMNS)


def joined(frames: list[pd.DataFrame], class_names) -> pd.DataFrame:
    """The folds' evidence `frames` as one table, by image and then class in the dataset's order."""
    table = pd.concat(frames, ignore_index=True)
    table["class"] = pd.Categorical(table["class"], categories=class_names)
    table = table.sort_values(["image", "class"], kind="stable").reset_index(drop=True)
    table["class"] = table["class"].astype(str)
    return table


def class_attention(images, class_names, masks: np.ndarray, pixels: np.ndarray, gradcam: np.ndarray,
                    guided_backprop: np.ndarray) -> pd.DataFrame:
    """`image`, `class` and the `CLASS_ATTENTION` columns per (image, class): where the class network's
    Grad-CAM `(classes, n, h', w')` falls on the `masks` `(n, h, w, classes)` at the audit size (uint8
    BGR `pixels` `(n, h, w, 3)` tell the no-data ones; `guided_backprop` `(n, h, w)`), computed as the
    classifier's mask attention is."""
    table = attention_table(gradcam, guided_backprop, np.moveaxis(np.asarray(masks), -1, 0), pixels, class_names,
                            images)
    return table[["image", "class", *CLASS_ATTENTION.values()]].rename(
        columns={v: k for k, v in CLASS_ATTENTION.items()})


class AuditEvidence(Value):
    """`audit_evidence`: every (image, class) label with the fold audit's evidence."""
    evidence = Table()
