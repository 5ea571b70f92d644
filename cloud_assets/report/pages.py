"""The report's generated pages: each builder draws its page's charts and images and renders its
Jinja2 template (`templates/`, autoescaped) with them."""
from __future__ import annotations

import dataclasses
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from cloud_assets.constants import GALLERY, ISSUES_COUNTED, ISSUES_LISTED, ISSUES_SHOWN, MARK_LEVELS, SUMMARY_LEVELS
from cloud_assets.lib.classifier import mistakes as mistakes_lib
from cloud_assets.lib import review
from cloud_assets.lib.data import rle
from cloud_assets.lib.saliency import engine as saliency
from cloud_assets.lib.classifier import thresholds
from cloud_assets.lib.audit.label_issues import SUSPECT, accept_does, how_many_wrong, reason
from cloud_assets.lib.audit.kinds import CONFUSION, SPURIOUS
from cloud_assets.report import charts, images, prose
from cloud_assets.report.gather import ReportData


@dataclasses.dataclass(frozen=True)
class Page:
    name: str   # its file in the site, e.g. classes/Fish.md
    text: str   # Markdown with HTML blocks


@functools.cache
def _templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("cloud_assets.report", "templates"), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined)
    env.policies["json.dumps_kwargs"] = {"sort_keys": True, "separators": (",", ":")}
    return env


def render(template: str, file: str, **context) -> Page:
    """`templates/<template>` rendered with `context` as the page `file`."""
    return Page(file, _templates().get_template(template).render(**context))


class Charts:
    """Ids for a page's charts: chart-<page>-1, -2, ... in the order they are made."""

    def __init__(self, file: str):
        self.stem, self.count = Path(file).stem.lower(), 0

    def __call__(self, spec: dict) -> dict:
        self.count += 1
        return {"id": f"chart-{self.stem}-{self.count}", "spec": spec}


def table(df: pd.DataFrame) -> dict:
    """A table's header and rows as text (floats to 3 decimals), for the `table` macro."""
    rows = [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in df.itertuples(index=False)]
    return {"columns": [str(c) for c in df.columns], "rows": rows}


def _colors(data: ReportData) -> list[tuple[str, str]]:
    """(class, colour name) of the mask outlines."""
    return [(name, color) for name, (_, color) in zip(data.class_names, images.mask_colors(len(data.class_names)))]


def _true_classes(data: ReportData, idx: int) -> list[str]:
    return [c for c, v in zip(data.class_names, data.y_true[idx]) if v]


def overview(data: ReportData, file: str, links: list[tuple[str, str]]) -> Page:
    chart = Charts(file)
    counts = data.split["split"].value_counts()
    freq = pd.DataFrame({"class": data.class_names, "images": data.labels[data.class_names].sum().to_numpy()})
    per_image = data.labels["n_labels"].value_counts().sort_index().rename_axis("labels").reset_index(name="images")
    per_image["labels"] = per_image["labels"].astype(str)
    m = data.model
    aucs = pd.DataFrame({"class": data.class_names, "pr_auc": [m["pr_auc"][c] for c in data.class_names]})
    context = dict(
        images=len(data.labels), train=counts.get("train", 0), val=counts.get("val", 0), test=len(data.test_images),
        links=links, level=data.precision_level, findings=prose.findings(data),
        frequency=chart(charts.bars(freq, "class", "images", "Images carrying each class", "class", "images",
                                    sort=data.class_names)),
        labels_per_image=chart(charts.bars(per_image, "labels", "images", "Labels per image", "labels on the image",
                                           "images")),
        model=table(pd.DataFrame({"": ["file", "SHA-256", "modified", "computed on", "mean PR-AUC"],
                                  "value": [m["path"], m["sha256"], m["modified"], m["device"],
                                            f"{np.nanmean(aucs['pr_auc']):.3f}"]})),
        pr_auc=chart(charts.bars(aucs, "class", "pr_auc", "Validation PR-AUC per class", "class", "PR-AUC",
                                 sort=data.class_names)),
        fp_table=table(fp_table(data)), history=None)
    if not data.history.empty:
        fp = data.history.dropna(subset=["fp"])
        wide = data.history.pivot_table(index=["version", "seen"], columns="class", values="pr_auc").reset_index()
        context["history"] = dict(
            versions=data.history["version"].nunique(),
            pr_auc=chart(charts.history(data.history, "pr_auc", "Validation PR-AUC per model version", "PR-AUC")),
            fp=chart(charts.history(fp, "fp", f"False positives at {data.precision_level}% precision per model "
                                    f"version", "false positives")) if len(fp) else None,
            table=table(wide.round(3)))
    return render("overview.md.j2", file, **context)


def fp_table(data: ReportData) -> pd.DataFrame:
    """Class x true label: how many of each class's false positives carry each label."""
    d = data.fp_distribution
    wide = d.pivot(index="class", columns="true_class", values="images").reindex(
        index=data.class_names, columns=list(data.class_names) + ["(no label)"])
    wide["of"] = d.groupby("class")["of"].max().reindex(data.class_names)
    return wide.rename_axis(columns=None).reset_index()


def confusion_at(data: ReportData, level: int) -> pd.DataFrame:
    """Every class's confusion row at precision `level`: `confusion_matrices`' own, or computed from
    the predictions and threshold maps when the asset was configured without that level."""
    table_ = data.confusion[data.confusion["level"] == level]
    if table_.empty:
        table_ = mistakes_lib.confusion_table(data.y_true, data.y_pred, data.maps, [level], data.class_names)
    return table_


def _levels(data: ReportData) -> list[int]:
    """The precision levels the report shows: those of `confusion_matrices` and the configured one."""
    return sorted({*map(int, data.confusion["level"].unique()), data.precision_level})


def class_page(data: ReportData, c: int, img_dir: Path, rng: np.random.Generator, file: str) -> Page:
    name, level, chart = data.class_names[c], data.precision_level, Charts(file)
    row = confusion_at(data, level).set_index("class").loc[name]
    reading = prose.class_reading(data, name, row)
    precision, recall, thr = thresholds.pr_curve(data.y_true[:, c], data.y_pred[:, c])
    marks = []
    for lv in sorted({*MARK_LEVELS, level}):
        t = thresholds.probability_at(data.maps, c, lv)
        if not np.isnan(t):
            i = int(np.searchsorted(thr, t))
            marks.append({"level": f"{lv}%", "label": f"P{lv}", "threshold": t,
                          "precision": float(precision[i]), "recall": float(recall[i])})
    pr = chart(charts.pr_curve(precision, recall, pd.DataFrame(marks, columns=["level", "label", "threshold",
                                                                               "precision", "recall"]), name))
    own = data.maps[data.maps["class"] == c]
    threshold_map = chart(charts.threshold_map(own, name, _levels(data)))
    wide = own[own["level"].isin(sorted({*SUMMARY_LEVELS, level}))].pivot(index="level", columns="kind",
                                                                        values="probability")
    confusion = []
    for lv in _levels(data):
        r = confusion_at(data, lv).set_index("class").loc[name]
        cells = pd.DataFrame({"true": ["the rest", "the rest", name, name], "predicted": ["the rest", name, "the rest", name],
                              "count": [r["tn"], r["fp"], r["fn"], r["tp"]],
                              "share": [r["tn_rate"], r["fp_rate"], r["fn_rate"], r["tp_rate"]]})
        confusion.append(dict(
            level=lv, configured=lv == level, threshold=None if np.isnan(r["threshold"]) else float(r["threshold"]),
            counts=chart(charts.confusion(cells, name, "count", f"{name} vs. the rest at {lv}%: counts", "d")),
            shares=chart(charts.confusion(cells.fillna(0.0), name, "share",
                                          f"{name} vs. the rest at {lv}%: normalized by row", ".2f"))))
    ms = data.mistakes[data.mistakes["class"] == name]
    tp, fp = (_outcome_gallery(data, c, ms, outcome, img_dir, rng) for outcome in ("tp", "fp"))
    carried = []
    for dist, word in ((data.fp_distribution, "false positives"), (data.fn_distribution, "false negatives")):
        d = dist[dist["class"] == name]
        carried.append(chart(charts.bars(d, "true_class", "images", f"True labels of {name} {word} (of {int(d['of'].max())})",
                                         "true label", "images", sort=list(data.class_names) + ["(no label)"])))
    return render("class.md.j2", file, name=name, level=level, reading=reading, pr_curve=pr,
                  threshold_map=threshold_map,
                  threshold_table=table(wide.reset_index().rename(columns={"precision": "at precision level",
                                                                           "recall": "at recall level"})),
                  confusion=confusion, method=data.method, tp=tp, fp=fp, colors=_colors(data), carried=carried)


def _outcome_gallery(data: ReportData, c: int, ms: pd.DataFrame, outcome: str, img_dir: Path,
                     rng: np.random.Generator) -> list[dict]:
    """Up to GALLERY sampled true (`outcome`='tp') or false ('fp') positives of class `c`."""
    name = data.class_names[c]
    rows = ms[ms["outcome"] == outcome]
    idx, probs = rows["index"].to_numpy(), dict(zip(rows["index"], rows["probability"]))
    if not len(idx):
        return []
    items = []
    for k, i in enumerate(np.sort(rng.choice(idx, min(GALLERY, len(idx)), replace=False))):
        img_name = data.val_images[i]
        small = data.cache["val"][i]
        full = images.original(data.data_dir / "train_images" / img_name, small)
        ggc = saliency.combine(data.gradcam[c, i], data.guided_backprop[i])
        caption = f"{img_name} ({', '.join(_true_classes(data, i)) or 'no label'}); p={probs[i]:.3f}"
        item = {"style": outcome, "caption": caption}
        if outcome == "tp":
            mask = data.val_masks[c, i]
            t, f = images.write_pair(img_dir / name, f"tp_{k}", images.mask_overlay(small, mask),
                                     images.mask_overlay(full, mask))
            at, af = images.write_pair(img_dir / name, f"tp_{k}_ggc", images.saliency_overlay(small, ggc, frame=False),
                                       images.saliency_overlay(full, ggc, frame=False))
            item.update(alt_thumb=f"../img/{name}/{at}", alt_full=f"../img/{name}/{af}")
        else:
            masks = data.val_masks[:, i]
            t, f = images.write_pair(img_dir / name, f"fp_{k}", images.masks_outline(images.saliency_overlay(small, ggc), masks),
                                     images.masks_outline(images.saliency_overlay(full, ggc), masks))
        items.append({**item, "thumb": f"../img/{name}/{t}", "full": f"../img/{name}/{f}"})
    return items


def dark_page(data: ReportData, img_dir: Path, file: str) -> Page:
    chart = Charts(file)
    shares = data.dark_per_class[["class", "dark_images"]].copy()
    shares["share"] = (shares["dark_images"] / max(shares["dark_images"].sum(), 1)).map("{:.1%}".format)
    per_split = data.dark_images.groupby("split", sort=False).agg(images=("dark", "size"), dark=("dark", "sum"))
    per_split = per_split.reset_index()
    rows = data.dark_images.assign(row=data.dark_images.groupby("split").cumcount())  # row in its split's cache
    labels = data.labels.set_index("image")["classes"]
    items = []
    for k, r in enumerate(rows[rows["dark"]].itertuples(index=False)):
        small = data.cache[r.split][r.row]
        folder = "test_images" if r.split == "test" else "train_images"
        full = images.original(data.data_dir / folder / r.image, small)
        t, f = images.write_pair(img_dir / "dark", f"dark_{k}", small, full)
        classes = "test" if r.split == "test" else (labels.get(r.image, "") or "no label")
        items.append({"thumb": f"img/dark/{t}", "full": f"img/dark/{f}", "style": "dark",
                      "caption": f"{r.image} ({classes}; {r.black_fraction:.0%} black)"})
    return render("dark.md.j2", file,
                  pie=chart(charts.pie(data.dark_per_class, "class", "dark_images",
                                       "Classes of the dark images (train + val), share of their labels",
                                       sort=data.class_names)),
                  shares=table(shares),
                  per_split=chart(charts.bars(per_split, "split", "dark", "Dark images per split", "split",
                                              "dark images", tooltip=["split:N", "dark:Q", "images:Q"],
                                              sort=["train", "val", "test"])),
                  per_split_table=table(per_split), gallery=items)


CLASS_CHANGE = {SPURIOUS: "move mask to", CONFUSION: "mask of"}  # the review's class menu, per kind


def _review_controls(r: dict, class_names, labelled: list[str]) -> dict:
    """What the Accept / Reject controls of candidate `r` offer, on an image whose `labelled` classes
    have a mask: for a class change, the classes (a class confusion's, those with a mask to move)."""
    if r["kind"] not in CLASS_CHANGE:
        return {"change": None}
    others = labelled if r["kind"] == CONFUSION else class_names
    return {"change": CLASS_CHANGE[r["kind"]], "removable": r["kind"] == SPURIOUS, "proposed": r["other_class"],
            "others": [c for c in others if c != r["class"]]}


def _option_values(controls: dict) -> list[str]:
    """The values of a candidate's class menu (`_review_controls`); one empty value without a menu."""
    if not controls["change"]:
        return [""]
    return [""] * controls["removable"] + controls["others"]


def _label_words(classes) -> str:
    return ", ".join(classes) or "none"


def _issue_card(data: ReportData, img_dir: Path, records: list[dict], ranks: list[int], proposals: dict) -> dict:
    """One image's card on the Label issues page: the plain image (written), every class's mask
    outlined, and per candidate what Accept changes (for each class its menu offers): the masks that
    go and come, drawn, and the image's labels before and after, in words; its overlays (the audit's
    probability, the classifier's Grad-CAM on validation images) written as small PNGs."""
    image = records[0]["image"]
    split, row = data.cache_rows[image]
    plain = images.original(data.data_dir / "train_images" / image, data.cache[split][row])
    name = images.write_plain(img_dir / "issues" / f"image_{ranks[0]}.jpg", plain)
    size = plain.shape[:2]
    enc = {f"{image}_{c}": data.encoded.get(f"{image}_{c}", "") for c in data.class_names}
    decoded = {c: rle.decode(enc[f"{image}_{c}"], data.original_shape).astype(bool) for c in data.class_names}
    now = {c: images.fit_mask(decoded[c], size) for c in data.class_names}
    colors = {c: images.hex_color(bgr) for c, (bgr, _) in zip(data.class_names, images.mask_colors(len(data.class_names)))}
    labelled = [c for c in data.class_names if not rle.is_empty(enc[f"{image}_{c}"])]
    drawn = {c: images.outline_path(now[c], size) for c in labelled}
    outlines = [{"color": colors[c], "path": drawn[c]} for c in labelled]
    candidates = []
    for k, r in zip(ranks, records):
        options, controls = [], _review_controls(r, data.class_names, labelled)
        for value in _option_values(controls):
            after = review.after_accept(image, r["class"], r["kind"], value, enc, proposals, data.original_shape,
                                        decoded)
            goes, comes = [], []
            for c, mask in after.items():
                new = images.fit_mask(mask, size)
                if np.array_equal(new, now[c]):
                    continue
                if c in drawn:
                    goes.append(drawn[c])
                if new.any():
                    comes.append({"color": colors[c], "path": images.outline_path(new, size)})
            classes = [c for c in data.class_names if (after[c].any() if c in after else now[c].any())]
            words = (f"Labels {_label_words(labelled)} → {_label_words(classes)}." if classes != labelled else
                     f"Labels {_label_words(labelled)}, unchanged; " + ("the masks change." if goes or comes
                                                                       else "no mask changes."))
            options.append({"value": value, "goes": goes, "comes": comes, "words": words})
        heat = images.write_heat(img_dir / "issues" / f"heat_{k}.png", data.candidate_maps[k])
        cam = None
        if split == "val":
            cam = images.write_heat(img_dir / "issues" / f"cam_{k}.png", data.gradcam[data.class_names.index(r["class"]), row],
                                    scaled=True)
        candidates.append({"record": r, "rank": k, "options": options, "review": controls, "heat": f"img/issues/{heat}",
                           "cam": f"img/issues/{cam}" if cam else None})
    return {"image": image, "split": split, "src": f"img/issues/{name}", "width": size[1], "height": size[0],
            "outlines": outlines, "candidates": candidates}


def _numbers(r: dict, cam: str) -> str:
    """The evidence behind candidate `r`'s sentence, as numbers."""
    other = f" ({r['other_class']})" if r["other_class"] else ""
    numbers = (f"{r['kind']}{other}; score {r['score']:.2f}, labelled {'yes' if r['label'] else 'no'}; audit "
               f"p={r['audit_probability']:.2f}, predicted outside the mask {r['outside_mass']:.0%}")
    if r["label"]:
        numbers += (f", mask quality {r['mask_quality']:.2f}, mask without prediction {r['uncovered']:.0%}, "
                    f"predicted box IoU {r['region_iou']:.2f}, dip across the box {r['gap']:.2f}, "
                    f"two boxes fit it better by {r['two_box_gain']:+.2f}")
    if not np.isnan(r["probability"]):
        numbers += (f"; classifier p={r['probability']:.2f}, {cam} own {r['cam_own']:.0%} / other "
                    f"{r['cam_other']:.0%} / outside {r['cam_outside']:.0%}")
    return numbers


def label_issues_page(data: ReportData, img_dir: Path, file: str) -> Page:
    chart = Charts(file)
    top = data.issues.head(ISSUES_SHOWN)
    kinds = data.issues.head(ISSUES_COUNTED)["kind"].value_counts().rename_axis("kind").reset_index(name="labels")
    records = top.to_dict("records")
    proposals = review.proposals_of(top)
    by_image: dict[str, list[int]] = {}
    for k, r in enumerate(records):  # most likely first: an image's card ranks by its best candidate
        by_image.setdefault(r["image"], []).append(k)

    def draw(ranks: list[int]) -> dict:
        return _issue_card(data, img_dir, [records[k] for k in ranks], ranks, proposals)

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # OpenCV's reading, drawing and encoding free the GIL
        cards = list(pool.map(draw, by_image.values()))
    for card in cards:
        for c in card["candidates"]:
            r = c.pop("record")
            c["caption"] = f"#{c['rank'] + 1} {r['image']} {r['class']} ({card['split']}): {reason(r)}. Accept {accept_does(r)}."
            c["numbers"] = _numbers(r, data.method.cam)
            c["data"] = {"image": r["image"], "class": r["class"], "kind": r["kind"], "split": card["split"],
                         "score": f"{r['score']:.4f}",
                         "labels": review.labels_digest(data.encoded, r["image"], data.class_names)}
    progress = review.progress(data.review, top) if data.review_summary["reviewed"] else None
    # the review last applied, which a browser holding no decisions for the dataset starts from
    columns = [c for c in (*review.COLUMNS, review.LABELS_SEEN) if c in data.review]
    applied = {f"{r['image']}|{r['class']}": {c: "" if pd.isna(r[c]) else str(r[c]) for c in columns}
               for r in data.review[columns].to_dict("records")}
    cols = ["image", "class", "split", "kind", "other_class", "score", "label", "audit_probability", "audit_cleanlab",
            "mask_quality", "outside_mass", "uncovered", "region_iou", "regions", "gap", "two_box_gain", "probability",
            "cleanlab", "attention_score"]
    per_split = data.issues.groupby("split").agg(labels=("label", "size"), labelled=("label", "sum"),
                                                 images=("image", "nunique")).reset_index()
    error_rates = data.class_ranking[["Class Name", "Label Issues", "Label Noise"]].rename(columns={
        "Class Name": "class", "Label Issues": "labels cleanlab finds wrong",
        "Label Noise": "estimated error rate (share of images)"})
    return render("issues.md.j2", file, method=data.method, health=data.health,
                  wrong=how_many_wrong(data.issues), suspect=SUSPECT,
                  kinds=chart(charts.bars(kinds, "kind", "labels", f"Suspected kind among the {ISSUES_COUNTED} top "
                                          f"candidates", "kind", "labels")),
                  audited=len(data.issues), audited_images=data.issues["image"].nunique(), shown=len(top),
                  per_split=table(per_split), error_rates=table(error_rates.round(4)),
                  dataset=str(data.data_dir.resolve()), applied=applied, class_names=data.class_names,
                  kind_names=sorted(top["kind"].unique()), split_names=sorted(top["split"].unique()),
                  colors=_colors(data), cards=cards, shown_images=len(cards), progress=prose.review_progress(data),
                  progress_table=table(progress[progress["listed"] > 0]) if progress is not None else None,
                  listed=ISSUES_LISTED, top=table(data.issues.head(ISSUES_LISTED)[cols].round(3)))
