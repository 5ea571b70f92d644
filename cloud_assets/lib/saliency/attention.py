"""Where the classifier looked: the share of a saliency map's energy inside the class's own mask,
inside other classes' masks, outside every mask, and on black no-data pixels.

The four regions partition the image, in this order of precedence: no-data (channel 0 == 0, the
notebook's "dark" pixel), own mask, other classes' masks, outside. Shares sum to 1; a map with no
energy has every share 0.

For the mask itself: how much of it holds no evidence, by the class's Grad-CAM (`cam_empty`) and by
the image's fine structure in guided backprop (`detail_empty`), and the box the classifier proposes
for the class: around the largest region where its Grad-CAM exceeds half its maximum.
"""
from __future__ import annotations

import cv2
import numpy as np
import pandas as pd

from cloud_assets.lib.progress import Progress, ProgressCallback
from cloud_assets.lib.saliency.engine import upsample
from cloud_assets.lib.store import Table, Value, release

REGIONS = ("own", "other", "outside", "nodata")
EMPTY_LEVEL = 0.2      # evidence below this share of the map's maximum counts as none
BOX_LEVEL = 0.5        # the proposed box surrounds the largest region above this share of the maximum
DETAIL_SIGMA = 1 / 37  # guided backprop's structure is smoothed over this share of the image side
DRAWN_INSIDE = 0.9     # a box drawn along a mask's own edges lies at least this share within it
DRAWN_LINES = 24       # ... its sides on the longest lines of the mask's boundary, at most this many per axis
BOX_COLUMNS = ("box_top", "box_left", "box_bottom", "box_right")
COLUMNS = ["index", "image", "class", "class_index", *(f"cam_{r}" for r in REGIONS), *(f"ggc_{r}" for r in REGIONS),
           "pointing_hit", "other_class", "mask_area", "cam_empty", "detail_empty", *BOX_COLUMNS, "box_iou"]


def empty_share(evidence: np.ndarray, own: np.ndarray, level: float = EMPTY_LEVEL) -> np.ndarray:
    """float32 `(n,)`: the share of each `own` mask's pixels where `evidence` `(n, H, W)` (maximum 1)
    is below `level`; 0 for an empty mask."""
    own = own.astype(bool)
    area = own.sum(axis=(1, 2))
    empty = ((evidence < level) & own).sum(axis=(1, 2))
    return np.where(area > 0, empty / np.maximum(area, 1), 0.0).astype(np.float32)


def detail(guided_backprop: np.ndarray) -> np.ndarray:
    """float32 `(n, H, W)` in [0, 1]: where guided backprop departs from its neutral 0.5, smoothed,
    divided by each image's maximum: the image's structure that the classifier's features respond to."""
    out = np.abs(np.asarray(guided_backprop, np.float32) - 0.5)
    sigma = DETAIL_SIGMA * out.shape[1]
    out = np.stack([cv2.GaussianBlur(m, (0, 0), sigma) for m in out])
    top = out.max(axis=(1, 2), keepdims=True)
    return np.where(top > 0, out / np.maximum(top, 1e-12), 0.0).astype(np.float32)


def proposed_box(cam: np.ndarray, level: float = BOX_LEVEL) -> tuple[float, float, float, float] | None:
    """(top, left, bottom, right) as shares of the image side: the bounding box of the largest
    connected region of `cam` `(H, W)` at or above `level`; None for an empty map."""
    region = (cam >= level).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(region, connectivity=8)
    if n < 2:
        return None
    x, y, w, h, _ = stats[1 + int(stats[1:, cv2.CC_STAT_AREA].argmax())]
    H, W = cam.shape
    return y / H, x / W, (y + h) / H, (x + w) / W


PROPOSAL_LEVELS = np.linspace(0.1, 0.9, 17)  # the levels (shares of a map's maximum) a proposal is cut at
# a label's box moved is proposed when it overlaps the prediction this share as well as the prediction's
# own boxes (chosen on tuning dataset 10, every box drawn wrong fixed by its proposal 0.256 -> 0.285, shifted
# ones 0.38 -> 0.50; on tuning dataset 14 then 0.270 -> 0.315 and 0.41 -> 0.62)
MOVED_SHARE = 0.85


def _region_boxes(prob: np.ndarray, level: float, min_share: float, most: int) -> list[tuple[float, ...]]:
    n, _, stats, _ = cv2.connectedComponentsWithStats((prob >= level).astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    if not len(areas):
        return []
    H, W = prob.shape
    keep = [k for k in np.argsort(-areas, kind="stable")
            if k == areas.argmax() or (areas[k] >= min_share * prob.size and areas[k] >= areas.max() / 4)][:most]
    return [(stats[1 + k, 1] / H, stats[1 + k, 0] / W, (stats[1 + k, 1] + stats[1 + k, 3]) / H,
             (stats[1 + k, 0] + stats[1 + k, 2]) / W) for k in keep]


def soft_iou(boxes, prob: np.ndarray) -> float:
    """The overlap of the boxes' union with a probability map `(H, W)` read as a soft mask:
    the probability inside over the boxes' area plus the probability outside."""
    inside = boxes_mask(boxes, prob.shape).astype(bool)
    held = float(prob[inside].sum())
    return held / (inside.sum() + float(prob.sum()) - held)


def proposed_boxes(prob: np.ndarray, min_share: float, most: int = 3) -> list[tuple[float, ...]]:
    """The boxes a fix proposes from a probability map `(H, W)` (at most 1): around each connected
    region of the map at one level that covers at least `min_share` of the image and a quarter of the
    largest region, largest first, at most `most` (a pattern that is two patches gets two boxes, as
    the annotators drew them). The level, among `PROPOSAL_LEVELS` times the map's maximum, is the one
    whose boxes overlap the map most (`soft_iou`): the boxes most consistent with the prediction,
    however sharp or blurred it is. An empty list for an empty map."""
    top = float(prob.max())
    if top <= 0:
        return []
    prob = np.asarray(prob, np.float32)
    cuts = [boxes for f in PROPOSAL_LEVELS if (boxes := _region_boxes(prob, f * top, min_share, most))]
    return max(cuts, key=lambda boxes: soft_iou(boxes, prob))


def mask_bounds(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, left, bottom, right) in pixels, bottom and right exclusive: the bounding box of `mask`
    `(H, W)`; None for an empty mask."""
    ys, xs = np.nonzero(mask)
    if not len(ys):
        return None
    return int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1


def _integral(a: np.ndarray) -> np.ndarray:
    """The integral image of `a` `(H, W)`: `(H + 1, W + 1)` float64, entry (y, x) the sum of `a[:y, :x]`."""
    return np.pad(np.asarray(a, np.float64), ((1, 0), (1, 0))).cumsum(0).cumsum(1)


def _sums(ii: np.ndarray, top, left, bottom, right) -> np.ndarray:
    """The map's sum under each box (arrays of pixels, bottom and right exclusive; 0 when empty) from its
    `_integral`."""
    bottom, right = np.maximum(bottom, top), np.maximum(right, left)
    return ii[bottom, right] - ii[top, right] - ii[bottom, left] + ii[top, left]


def _edge_lines(mask: np.ndarray, axis: int, most: int) -> np.ndarray:
    """The lines along `axis` (0: rows, 1: columns; as pixel coordinates, a line between two pixels)
    where the boolean `mask`'s boundary runs, the `most` longest of them, in order."""
    crossings = np.diff(mask.astype(np.int8), axis=axis, prepend=0, append=0) != 0
    length = crossings.sum(axis=1 - axis)
    lines = np.nonzero(length)[0]
    return np.sort(lines[np.argsort(-length[lines], kind="stable")[:most]])


def drawn_box(mask: np.ndarray, target: np.ndarray, inside: float = DRAWN_INSIDE,
              most: int = DRAWN_LINES) -> tuple[tuple[float, float, float, float], float] | None:
    """The box drawn along the boolean `mask`'s own edges (each side on one of the `most` longest lines
    its boundary runs along, per axis) and lying at least `inside` within it that overlaps the boolean
    `target` most: (the box as shares of the side, its IoU with `target`); None when no such box lies
    within the mask. A mask drawn as a union of boxes holds each of them so."""
    ys, xs = _edge_lines(mask, 0, most), _edge_lines(mask, 1, most)
    if not len(ys):
        return None
    top, bottom = (v.ravel()[:, None] for v in np.meshgrid(ys, ys, indexing="ij"))
    left, right = (v.ravel()[None, :] for v in np.meshgrid(xs, xs, indexing="ij"))
    area = np.maximum(bottom - top, 0) * np.maximum(right - left, 0)
    within_mask = _sums(_integral(mask), top, left, bottom, right)
    overlap = _sums(_integral(target), top, left, bottom, right)
    iou = np.where((area > 0) & (within_mask >= inside * area),
                   overlap / np.maximum(area + target.sum() - overlap, 1), -1.0)
    k = np.unravel_index(int(np.argmax(iou)), iou.shape)
    if iou[k] < 0:
        return None
    pixels = int(top[k[0], 0]), int(left[0, k[1]]), int(bottom[k[0], 0]), int(right[0, k[1]])
    return box_shares(pixels, mask.shape), float(iou[k])


def moved_box(prob: np.ndarray, mask: np.ndarray) -> tuple[tuple[float, ...], float] | None:
    """(box, its `soft_iou` with `prob`): the bounding box of `mask` `(H, W)`, its size kept, moved to
    where it overlaps the probability map `prob` `(H, W)` most; None for an empty mask."""
    bounds = mask_bounds(mask)
    if bounds is None:
        return None
    H, W = prob.shape
    bh, bw = bounds[2] - bounds[0], bounds[3] - bounds[1]
    ii = _integral(prob)
    ys, xs = np.arange(H - bh + 1)[:, None], np.arange(W - bw + 1)[None, :]  # every place of the box
    held = _sums(ii, ys, xs, ys + bh, xs + bw)
    soft = held / (bh * bw + ii[-1, -1] - held)
    top, left = np.unravel_index(int(soft.argmax()), soft.shape)
    return (float(top / H), float(left / W), float((top + bh) / H), float((left + bw) / W)), float(soft[top, left])


# a proposal with at most this share of its area outside the labelled mask's box is cut to that box (chosen on
# tuning cells 10 and 14: of the accepted loose masks, 261 -> 288 of 648 proposals overlap the clean mask by
# 0.7, boxes drawn around two patches 15 -> 35 of 169; at 0.1, 274, at 0.3, 286)
INSIDE_SHARE = 0.2


def inside_label(boxes, mask: np.ndarray) -> list[tuple[float, ...]]:
    """`boxes` cut to the bounding box of `mask` `(H, W)` when at most INSIDE_SHARE of their area lies
    outside it: where the prediction lies within the annotator's box (a box drawn too wide, or around
    two patches), that box bounds the pattern better than the prediction's blurred edges do. Else, or
    for an empty mask, `boxes` as they are."""
    bounds = mask_bounds(mask)
    if bounds is None or not boxes:
        return list(boxes)
    label = box_shares(bounds, mask.shape)
    proposed = boxes_mask(boxes, mask.shape).astype(bool)
    if (proposed & ~box_mask(label, mask.shape).astype(bool)).sum() > INSIDE_SHARE * proposed.sum():
        return list(boxes)
    cut = [(max(t, label[0]), max(left, label[1]), min(b, label[2]), min(r, label[3])) for t, left, b, r in boxes]
    return [box for box in cut if box[2] > box[0] and box[3] > box[1]]


# a label is one drawn box when its mask fills at least this share of its bounding box
FILLED_SHARE = 0.9


def within(prob: np.ndarray, bounds) -> np.ndarray:
    """`prob` `(H, W)` as float32 with zeros outside the box `bounds` (top, left, bottom, right, pixels)."""
    top, left, bottom, right = bounds
    inside = np.zeros(prob.shape, np.float32)
    inside[top:bottom, left:right] = prob[top:bottom, left:right]
    return inside


def to_sides(boxes, bounds) -> list[tuple[int, ...]]:
    """Boxes `(top, left, bottom, right)` in pixels with their union's extremes moved to the sides of
    `bounds` (the topmost box's top to its top, and so on): the boxes of patches that an annotator's box
    drawn around them reaches on every side."""
    out = [list(box) for box in boxes]
    for side, pick in ((0, min), (1, min), (2, max), (3, max)):
        k = pick(range(len(out)), key=lambda i: out[i][side])
        out[k][side] = bounds[side]
    return [tuple(box) for box in out]


def split_in_two(prob: np.ndarray, bounds: tuple[int, int, int, int]) -> tuple[list[tuple[int, ...]], float]:
    """(two boxes in pixels, their `soft_iou` with `prob` within `bounds`): the two patches within a box
    `bounds` (top, left, bottom, right, pixels) that hold a probability map `(H, W)` best. Two disjoint
    boxes are parted by a line along one axis: for each such line, and each level of `PROPOSAL_LEVELS`
    times the map's maximum within the box, each side's box bounds the map at or above that level on
    that side, and the pair reaches the box's four sides (`to_sides`). ([], 0) when the map is empty."""
    y0, x0, y1, x1 = bounds
    inside = within(prob, bounds)
    top = float(inside.max())
    best: tuple[list[tuple[int, ...]], float] = ([], 0.0)
    if top <= 0:
        return best
    ii, total = _integral(inside), float(inside.sum())
    regions = [inside[y0:y1, x0:x1] >= level for level in PROPOSAL_LEVELS * top]
    for axis in (0, 1):  # parted by a line across the rows (0) or the columns (1) of the box
        n, m = (y1 - y0, x1 - x0) if axis == 0 else (x1 - x0, y1 - y0)
        if n < 4:
            continue
        cuts = np.arange(2, n - 1)  # the first side: rows [0, cut) of the box (its columns for axis 1)
        for region in regions:
            held = region if axis == 0 else region.T
            rows, cum = held.any(axis=1), held.cumsum(axis=0)
            first, second = cum[cuts - 1] > 0, (cum[-1] - cum[cuts - 1]) > 0  # (cuts, m): columns held
            both = first.any(axis=1) & second.any(axis=1)
            if not both.any():
                continue
            k = np.nonzero(both)[0]
            first, second, cut = first[k], second[k], cuts[k]
            bottom1 = np.maximum.accumulate(np.where(rows, np.arange(n), -1))[cut - 1] + 1
            top2 = np.minimum.accumulate(np.where(rows, np.arange(n), n)[::-1])[::-1][cut]
            left1, right1 = first.argmax(axis=1), m - first[:, ::-1].argmax(axis=1)
            left2, right2 = second.argmax(axis=1), m - second[:, ::-1].argmax(axis=1)
            # to_sides: the first box starts at the box's start, the second ends at its end; across, the
            # smaller left and the larger right reach the box's sides (the first box's on a tie)
            left1, left2 = np.where(left1 <= left2, 0, left1), np.where(left1 <= left2, left2, 0)
            right1, right2 = np.where(right1 >= right2, m, right1), np.where(right1 >= right2, right2, m)
            zero, end = np.zeros_like(cut), np.full_like(cut, n)
            boxes = [(zero, left1, bottom1, right1), (top2, left2, end, right2)]
            if axis == 1:
                boxes = [(bl, bt, br, bb) for bt, bl, bb, br in boxes]
            (t1, l1, b1, r1), (t2, l2, b2, r2) = [(bt + y0, bl + x0, bb + y0, br + x0) for bt, bl, bb, br in boxes]
            over = (np.maximum(t1, t2), np.maximum(l1, l2), np.minimum(b1, b2), np.minimum(r1, r2))
            mass = _sums(ii, t1, l1, b1, r1) + _sums(ii, t2, l2, b2, r2) - _sums(ii, *over)
            area = ((b1 - t1) * (r1 - l1) + (b2 - t2) * (r2 - l2)
                    - np.maximum(over[2] - over[0], 0) * np.maximum(over[3] - over[1], 0))
            soft = mass / (area + total - mass)
            j = int(soft.argmax())
            if soft[j] > best[1]:
                best = ([tuple(int(v[j]) for v in (t1, l1, b1, r1)), tuple(int(v[j]) for v in (t2, l2, b2, r2))],
                        float(soft[j]))
    return best


def within_drawn_box(prob: np.ndarray, mask: np.ndarray, boxes) -> list[tuple[float, ...]]:
    """`boxes` (shares of the side) as the patches of a box drawn around them: when the label's mask is
    one box (it fills FILLED_SHARE of its bounding box) and `boxes` lie within it, the annotator's box
    reaches the pattern on every side, so two or more boxes have their union's extremes moved to its
    sides (`to_sides`), and a single one becomes two (`split_in_two`) when two hold the prediction
    within the box better than it does. Else `boxes` as they are."""
    bounds = mask_bounds(mask)
    if bounds is None or not boxes or mask.sum() < FILLED_SHARE * (bounds[2] - bounds[0]) * (bounds[3] - bounds[1]):
        return list(boxes)
    pixels: list[tuple[int, ...]] = [box_pixels(box, mask.shape) for box in boxes]
    if any(p[0] < bounds[0] or p[1] < bounds[1] or p[2] > bounds[2] or p[3] > bounds[3] for p in pixels):
        return list(boxes)
    if len(pixels) == 1:
        two, soft = split_in_two(prob, bounds)
        if not two or soft <= soft_iou(boxes, within(prob, bounds)):
            return list(boxes)
        pixels = two
    return [box_shares(box, mask.shape) for box in to_sides(pixels, bounds)]


def proposed_fix(prob: np.ndarray, mask: np.ndarray, min_share: float) -> list[tuple[float, ...]]:
    """The boxes a fix of a label proposes from a probability map `(H, W)` and the label's mask: the
    mask's box moved where the prediction is (`moved_box`: a box drawn beside its pattern keeps the
    annotator's size), when it overlaps the map at least `MOVED_SHARE` times as well as the map's own
    boxes (`proposed_boxes`) do; else those; either cut to the label's box when it holds them
    (`inside_label`), and then read as the patches that box was drawn around (`within_drawn_box`).
    A mask of several patches (connected parts) is fixed one patch at a time (`one_patch_fixed`)."""
    prob = np.asarray(prob, np.float32)
    n, parts = cv2.connectedComponents(np.asarray(mask, np.uint8), connectivity=4)
    if n > 2:
        patches = [parts == k for k in range(1, n)]
        fixes = [one_patch_fixed(prob, patches, k, min_share) for k in range(len(patches))]
        return max(fixes, key=lambda boxes: soft_iou(boxes, prob))
    boxes = proposed_boxes(prob, min_share)
    moved = moved_box(prob, mask)
    if moved is not None and boxes and moved[1] >= MOVED_SHARE * soft_iou(boxes, prob):
        boxes = [moved[0]]
    return within_drawn_box(prob, mask, inside_label(boxes, mask))


def one_patch_fixed(prob: np.ndarray, patches: list[np.ndarray], k: int, min_share: float) -> list[tuple[float, ...]]:
    """The boxes of a label drawn as several `patches` (boolean masks `(H, W)`) with only patch `k` fixed:
    the others' boxes kept as drawn, and patch `k`'s `proposed_fix` from the probability map `prob`
    where those boxes do not already hold it. An annotator who drew one patch wrong drew the others
    right: of the fixes of each patch in turn, `proposed_fix` keeps the one whose boxes overlap the map most."""
    kept = [box_shares(b, prob.shape) for j, patch in enumerate(patches)
            if j != k and (b := mask_bounds(patch)) is not None]
    return kept + proposed_fix(prob * (1 - boxes_mask(kept, prob.shape)), patches[k], min_share)


def boxes_text(boxes) -> str:
    """Boxes as text, `top left bottom right` (shares of the side) joined by `;`: a table cell."""
    return ";".join(" ".join(f"{v:.4f}" for v in box) for box in boxes)


def parse_boxes(text) -> list[tuple[float, ...]]:
    """The boxes of `boxes_text`; none for an empty cell."""
    if not isinstance(text, str) or not text.strip():
        return []
    return [tuple(float(v) for v in part.split()) for part in text.split(";")]


def boxes_mask(boxes, shape) -> np.ndarray:
    """uint8 0/1 mask of `shape` (h, w) covering every box."""
    mask = np.zeros(shape[:2], np.uint8)
    for box in boxes:
        mask |= box_mask(box, shape)
    return mask


def box_pixels(box, shape) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) in pixels of an image of `shape` (h, w, ...), for a box given as
    shares of the side."""
    h, w = shape[:2]
    top, left, bottom, right = (int(round(v * n)) for v, n in zip(box, (h, w, h, w)))
    return top, left, bottom, right


def box_shares(pixels, shape) -> tuple[float, float, float, float]:
    """(top, left, bottom, right) as shares of the side of an image of `shape` (h, w, ...), for a box
    given in pixels: `box_pixels` the other way."""
    h, w = shape[:2]
    top, left, bottom, right = pixels
    return top / h, left / w, bottom / h, right / w


def box_mask(box, shape) -> np.ndarray:
    """uint8 0/1 mask of `shape` (h, w) covering a box given as shares of the side."""
    top, left, bottom, right = box_pixels(box, shape)
    mask = np.zeros(shape[:2], np.uint8)
    mask[top:bottom, left:right] = 1
    return mask


def box_iou(box, own: np.ndarray) -> float:
    """Intersection over union of a proposed box (shares of the side) and a mask `(H, W)`."""
    own = own.astype(bool)
    if box is None:
        return 0.0
    rect = box_mask(box, own.shape).astype(bool)
    union = (rect | own).sum()
    return float((rect & own).sum() / union) if union else 0.0


def shares(maps: np.ndarray, own: np.ndarray, other: np.ndarray, nodata: np.ndarray) -> np.ndarray:
    """float32 `(n, 4)` energy shares (own, other, outside, nodata) of non-negative `maps` `(n, H, W)`,
    with boolean `own`, `other` (union of the other classes' masks) and `nodata` of the same shape."""
    maps = np.asarray(maps, np.float32)
    nodata = nodata.astype(bool)
    own_r = own.astype(bool) & ~nodata
    other_r = other.astype(bool) & ~nodata & ~own_r
    total = maps.sum(axis=(1, 2))
    parts = np.stack([(maps * own_r).sum(axis=(1, 2)), (maps * other_r).sum(axis=(1, 2)),
                      (maps * nodata).sum(axis=(1, 2))], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        own_s, other_s, nodata_s = (np.where(total[:, None] > 0, parts / total[:, None], 0.0)).T
    outside = np.where(total > 0, np.clip(1 - own_s - other_s - nodata_s, 0, 1), 0.0)
    return np.stack([own_s, other_s, outside, nodata_s], axis=1).astype(np.float32)


def pointing_hit(maps: np.ndarray, own: np.ndarray) -> np.ndarray:
    """Pointing game: True where the map's maximum lies inside the own mask (False for an empty map)."""
    flat = maps.reshape(len(maps), -1)
    peak = flat.argmax(axis=1)
    return own.reshape(len(own), -1)[np.arange(len(own)), peak].astype(bool) & (flat.max(axis=1) > 0)


def top_other_class(maps: np.ndarray, masks: np.ndarray, c: int) -> np.ndarray:
    """Per image, the index of the other class whose mask holds most of the map's energy (-1: none)."""
    energy = np.stack([(maps * masks[k]).sum(axis=(1, 2)) if k != c else np.zeros(len(maps))
                       for k in range(len(masks))], axis=1)
    return np.where(energy.max(axis=1) > 0, energy.argmax(axis=1), -1)


def attention_table(gradcam: np.ndarray, guided_backprop: np.ndarray, masks: np.ndarray, images: np.ndarray,
                    class_names, image_names, batch: int = 64, report: ProgressCallback | None = None,
                    positions: np.ndarray | None = None) -> pd.DataFrame:
    """One row per (image, class): shares for Grad-CAM (`cam_*`) and Guided Grad-CAM (`ggc_*`),
    the Grad-CAM pointing-game hit, the other class whose mask draws most Grad-CAM energy, the
    mask's area (share of the image), its share without evidence (`cam_empty`, `detail_empty`), the
    proposed box (`box_top` ... `box_right`, shares of the side, NaN for an empty map) and its IoU
    with the mask (`box_iou`).

    `gradcam` `(classes, n, h, w)` at the Grad-CAM layer's resolution, `guided_backprop` `(n, H, W)`, `masks` `(classes, n, H, W)` 0/1,
    `images` uint8 BGR `(n, H, W, 3)` (no-data: channel 0 == 0). Processed in batches of images,
    memory-mapped inputs released after each: memory does not grow with n. `index` is the image's
    row, or its entry in `positions` (its row in the unsharded order, for a shard's images).
    """
    rows = []
    n = gradcam.shape[1]
    if n == 0:  # a shard without validation images
        return pd.DataFrame(columns=COLUMNS)
    progress = Progress(n, report)
    for start in range(0, n, batch):
        sl = slice(start, min(start + batch, n))
        m = masks[:, sl].astype(bool)
        nd = np.asarray(images[sl][..., 0]) == 0
        gb = np.asarray(guided_backprop[sl], np.float32)
        fine = detail(gb)
        for c, name in enumerate(class_names):
            cam = upsample(gradcam[c, sl], gb.shape[1:])
            other = np.zeros_like(m[c])
            for k in range(len(class_names)):
                if k != c:
                    other |= m[k]
            cam_s = shares(cam, m[c], other, nd)
            ggc_s = shares(cam * gb, m[c], other, nd)
            top = top_other_class(cam, m, c)
            index = np.arange(sl.start, sl.stop) if positions is None else np.asarray(positions)[sl]
            frame = pd.DataFrame({"index": index, "image": np.asarray(image_names)[sl],
                                  "class": name, "class_index": c})
            for j, region in enumerate(REGIONS):
                frame[f"cam_{region}"] = cam_s[:, j]
            for j, region in enumerate(REGIONS):
                frame[f"ggc_{region}"] = ggc_s[:, j]
            frame["pointing_hit"] = pointing_hit(cam, m[c])
            frame["other_class"] = [class_names[k] if k >= 0 else "" for k in top]
            frame["mask_area"] = m[c].mean(axis=(1, 2))
            frame["cam_empty"] = empty_share(cam, m[c])
            frame["detail_empty"] = empty_share(fine, m[c])
            boxes = [proposed_box(x) for x in cam]
            frame[list(BOX_COLUMNS)] = np.array([b if b else (np.nan,) * 4 for b in boxes], np.float64)
            frame["box_iou"] = [box_iou(b, o) for b, o in zip(boxes, m[c])]
            rows.append(frame)
        release(gradcam, guided_backprop, masks, images)
        progress.advance(sl.stop - sl.start)
    return pd.concat(rows, ignore_index=True).sort_values(["index", "class_index"]).reset_index(drop=True)


class MaskAttention(Value):
    """`mask_attention`: per validation image and class, the saliency energy's shares."""
    shares = Table()
