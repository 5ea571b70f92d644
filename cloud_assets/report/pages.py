"""The report's generated pages, as Markdown with embedded charts and galleries."""
from __future__ import annotations

import dataclasses
import html
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from cloud_assets.constants import GALLERY, ISSUES_COUNTED, ISSUES_LISTED, ISSUES_SHOWN, MARK_LEVELS, SUMMARY_LEVELS
from cloud_assets.lib import mistakes as mistakes_lib
from cloud_assets.lib import review, saliency, thresholds
from cloud_assets.lib.attention import BOX_COLUMNS
from cloud_assets.lib.kinds import CONFUSION, SPURIOUS
from cloud_assets.lib.saliency_methods import DEFAULT, SaliencyMethod, method as saliency_method
from cloud_assets.report import charts, images



@dataclasses.dataclass
class ReportData:
    class_names: list[str]
    labels: pd.DataFrame            # label_table
    split: pd.DataFrame             # image, split
    test_images: list[str]
    val_images: list[str]
    y_true: np.ndarray
    y_pred: np.ndarray
    maps: pd.DataFrame
    confusion: pd.DataFrame
    mistakes: pd.DataFrame
    fp_distribution: pd.DataFrame
    fn_distribution: pd.DataFrame
    dark_images: pd.DataFrame
    dark_per_class: pd.DataFrame
    cache: dict                     # split -> uint8 (n, h, w, 3) images
    val_masks: np.ndarray           # (classes, n, h, w)
    gradcam: np.ndarray             # (classes, n, h, w) at the Grad-CAM layer's resolution
    method: SaliencyMethod          # the saliency method the maps were computed with
    guided_backprop: np.ndarray     # (n, h, w)
    data_dir: Path
    model: dict                     # path, sha256, modified, pr_auc {class: value}, device
    history: pd.DataFrame           # version, seen, class, pr_auc, fp
    precision_level: int
    issues: pd.DataFrame            # label_issues, most likely first
    health: float                   # cleanlab's overall multi-label health score
    review: pd.DataFrame            # corrected_labels: the reviewer's decisions (image, class, decision, ...)
    review_summary: dict            # corrected_labels: counts, and the matches with injected errors if known


class Page:
    """Markdown with charts: `chart()` returns the HTML that draws a Vega-Lite spec in place."""

    def __init__(self, name: str):
        self.name, self.parts, self._charts = name, [], 0

    def add(self, text: str) -> None:
        self.parts.append(text.strip("\n") + "\n")

    def chart(self, spec: dict) -> None:
        self._charts += 1
        div = f"chart-{Path(self.name).stem.lower()}-{self._charts}"
        payload = json.dumps(spec, separators=(",", ":"), sort_keys=True).replace("</", "<\\/")
        self.add(f'<div class="chart" id="{div}"></div>\n'
                 # the Vega bundle loads at the end of the body: draw once the document is parsed
                 f'<script>document.addEventListener("DOMContentLoaded", () => vegaEmbed("#{div}", {payload}, '
                 f'{{"actions": false, "renderer": "svg"}}));</script>')

    def text(self) -> str:
        return "\n".join(self.parts)


def esc(text) -> str:
    return html.escape(str(text), quote=True)


def table_md(df: pd.DataFrame) -> str:
    """A Markdown table whose cells are escaped (names come from the data)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(esc(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(esc(f"{v:.3f}" if isinstance(v, float) else v) for v in row) + " |")
    return "\n".join(lines)


def gallery(items: list[dict], css: str = "") -> str:
    """Thumbnails that open full size; `items` have thumb, full, caption, style ('tp'|'fp'|'dark'|'issue')
    and optionally `data` (data-* attributes, for filtering), `controls` (HTML below the caption) and
    `alt_thumb`/`alt_full` (a second view that a `.toggle-alt` checkbox of the page switches to)."""
    figures = []
    for it in items:
        data = "".join(f' data-{k}="{esc(v)}"' for k, v in it.get("data", {}).items())
        alt = (f' data-alt-src="{esc(it["alt_thumb"])}" data-alt-href="{esc(it["alt_full"])}"'
               if "alt_thumb" in it else "")
        figures.append(f'<figure class="thumb {it["style"]}"{data}><a href="{esc(it["full"])}" target="_blank">'
                       f'<img src="{esc(it["thumb"])}" alt="{esc(it["caption"])}" loading="eager"{alt}></a>'
                       f'<figcaption>{esc(it["caption"])}</figcaption>{it.get("controls", "")}</figure>')
    return f'<div class="gallery {css}">' + "".join(figures) + "</div>"


def _true_classes(data: ReportData, idx: int) -> list[str]:
    return [c for c, v in zip(data.class_names, data.y_true[idx]) if v]


def overview(data: ReportData, file: str) -> Page:
    page = Page(file)
    counts = data.split["split"].value_counts()
    onehot = data.labels[data.class_names]
    page.add("# Overview")
    page.add(f"Label audit of the **{len(data.labels)} images of train.csv** ({counts.get('train', 0)} train, "
             f"{counts.get('val', 0)} validation) and **{len(data.test_images)} test images**, through the "
             f"mistakes of the classifier below. Pages: "
             + ", ".join(f"[{esc(title)}]({esc(f)})" for title, f in pages_of(data.class_names)[1:]) + ". "
             f"True positives, false positives and negatives are taken at **{data.precision_level}% precision** "
             f"(the `mistakes` asset's configured `precision_level`).")
    page.add("## Findings")
    page.add("\n".join(f"- {esc(sentence)}" for sentence in findings(data)))
    page.add("## Dataset")
    freq = pd.DataFrame({"class": data.class_names, "images": onehot.sum().to_numpy()})
    page.chart(charts.bars(freq, "class", "images", "Images carrying each class", "class", "images",
                           sort=data.class_names))
    per_image = data.labels["n_labels"].value_counts().sort_index().rename_axis("labels").reset_index(name="images")
    per_image["labels"] = per_image["labels"].astype(str)
    page.chart(charts.bars(per_image, "labels", "images", "Labels per image", "labels on the image", "images"))
    page.add("## Model")
    m = data.model
    aucs = pd.DataFrame({"class": data.class_names, "pr_auc": [m["pr_auc"][c] for c in data.class_names]})
    page.add(table_md(pd.DataFrame({"": ["file", "SHA-256", "modified", "computed on", "mean PR-AUC"],
                                    "value": [m["path"], m["sha256"], m["modified"], m["device"],
                                              f"{np.nanmean(aucs['pr_auc']):.3f}"]})))
    page.chart(charts.bars(aucs, "class", "pr_auc", "Validation PR-AUC per class", "class", "PR-AUC",
                           sort=data.class_names))
    page.add(f"## What the false positives carry, at {data.precision_level}% precision")
    page.add("Rows: the class predicted wrongly; columns: the labels its false-positive images carry (an image can "
             "carry several); `of`: the false positives of the row's class.")
    page.add(table_md(fp_table(data)))
    page.add("## History across model versions")
    if data.history.empty:
        page.add("No earlier model has been audited.")
    else:
        n = data.history["version"].nunique()
        page.add(f"{n} model version{'s' if n > 1 else ''} seen by this Dagster instance, read from the "
                 f"materializations of `val_predictions` and `mistakes`.")
        page.chart(charts.history(data.history, "pr_auc", "Validation PR-AUC per model version", "PR-AUC"))
        fp = data.history.dropna(subset=["fp"])
        if len(fp):
            page.chart(charts.history(fp, "fp", f"False positives at {data.precision_level}% precision per "
                                      f"model version", "false positives"))
        wide = data.history.pivot_table(index=["version", "seen"], columns="class", values="pr_auc").reset_index()
        page.add(table_md(wide.round(3)))
    return page


def fp_table(data: ReportData) -> pd.DataFrame:
    """Class x true label: how many of each class's false positives carry each label."""
    d = data.fp_distribution
    wide = d.pivot(index="class", columns="true_class", values="images").reindex(
        index=data.class_names, columns=list(data.class_names) + ["(no label)"])
    wide["of"] = d.groupby("class")["of"].max().reindex(data.class_names)
    return wide.rename_axis(columns=None).reset_index()


def findings(data: ReportData) -> list[str]:
    """The report's conclusions, as sentences generated from the data (the notebook's closing notes)."""
    out = []
    for name in data.class_names:
        d = data.fp_distribution[data.fp_distribution["class"] == name]
        total = int(d["of"].max()) if len(d) else 0
        hidden = d[d["images"] > 0].sort_values("images", ascending=False, kind="stable")
        if total == 0:
            out.append(f"{name} has no false positives at {data.precision_level}% precision.")
            continue
        parts = [f"{row.true_class} {int(row.images)}" for row in hidden.head(3).itertuples()]
        out.append(f"Behind {name}'s {total} false positives at {data.precision_level}% precision: "
                   f"{', '.join(parts)} (images carrying each label).")
    dark = data.dark_images
    n_dark, n = int(dark["dark"].sum()), len(dark)
    if n_dark:
        where = dark[dark["dark"]].groupby("split").size().sort_values(ascending=False)
        per_class = data.dark_per_class.set_index("class")["dark_images"]
        share = per_class / max(per_class.sum(), 1)
        out.append(f"{n_dark} of {n} images ({n_dark / n:.1%}) are dark (a third or more black no-data pixels): "
                   + ", ".join(f"{int(k)} in {s}" for s, k in where.items())
                   + f"; among their labels, {share.idxmax()} is the most common ({share.max():.0%}).")
    else:
        out.append(f"None of the {n} images is dark.")
    top = data.issues.head(ISSUES_COUNTED)
    kinds = top["kind"].value_counts()
    out.append(f"Among the {len(top)} most likely label errors: "
               + ", ".join(f"{k} {int(v)}" for k, v in kinds.items())
               + f"; the most likely is {top['image'].iloc[0]} {top['class'].iloc[0]} ({top['kind'].iloc[0]}, "
                 f"score {top['score'].iloc[0]:.2f}). cleanlab's label health score: {data.health:.3f}.")
    if data.review_summary["reviewed"]:
        s = data.review_summary
        out.append(f"A review of {s['reviewed']} candidates accepted {s['accepted']}, changing {s['changes']} labels "
                   f"in train_corrected.csv.")
    return out


def _reading(data: ReportData, name: str, confusion_row: pd.Series) -> str:
    level = data.precision_level
    fp = data.fp_distribution[data.fp_distribution["class"] == name]
    fn = data.fn_distribution[data.fn_distribution["class"] == name]
    sentences = []
    if np.isnan(confusion_row["threshold"]):
        sentences.append(f"{level}% precision is never reached for {name}: no image is flagged at that level.")
    else:
        positives = int(confusion_row["tp"] + confusion_row["fn"])
        sentences.append(f"At {level}% precision (probability ≥ {confusion_row['threshold']:.3f}) the classifier "
                         f"finds {int(confusion_row['tp'])} of {positives} {name} images "
                         f"(recall {confusion_row['tp'] / max(positives, 1):.2f}).")
    for dist, word in ((fp, "false positives"), (fn, "false negatives")):
        total = int(dist["of"].max()) if len(dist) else 0
        others = dist[dist["true_class"] != name].sort_values("images", ascending=False, kind="stable")
        if total == 0:
            sentences.append(f"There are no {name} {word}.")
        elif others["images"].iloc[0] > 0:
            top = others.iloc[0]
            how = "mostly" if top["images"] * 2 > total else "most often"
            label = (f"{how} carry no label at all" if top["true_class"] == "(no label)"
                     else f"are {how} labelled {top['true_class']}")
            sentences.append(f"{name} {word} {label} ({int(top['images'])} of {total}).")
    return " ".join(sentences)


def confusion_at(data: ReportData, level: int) -> pd.DataFrame:
    """Every class's confusion row at precision `level`: `confusion_matrices`' own, or computed from
    the predictions and threshold maps when the asset was configured without that level."""
    table = data.confusion[data.confusion["level"] == level]
    if table.empty:
        table = mistakes_lib.confusion_table(data.y_true, data.y_pred, data.maps, [level], data.class_names)
    return table


def _levels(data: ReportData) -> list[int]:
    """The precision levels the report shows: those of `confusion_matrices` and the configured one."""
    return sorted({*map(int, data.confusion["level"].unique()), data.precision_level})


def class_page(data: ReportData, c: int, img_dir: Path, rng: np.random.Generator, file: str) -> Page:
    name = data.class_names[c]
    page = Page(file)
    level = data.precision_level
    page.add(f"# {esc(name)}")
    row = confusion_at(data, level).set_index("class").loc[name]
    page.add(f'<p class="reading">{esc(_reading(data, name, row))}</p>')

    page.add("## Precision-recall curve")
    precision, recall, thr = thresholds.pr_curve(data.y_true[:, c], data.y_pred[:, c])
    marks = []
    for lv in sorted({*MARK_LEVELS, level}):
        t = thresholds.probability_at(data.maps, c, lv)
        if not np.isnan(t):
            i = int(np.searchsorted(thr, t))
            marks.append({"level": f"{lv}%", "label": f"P{lv}", "threshold": t,
                          "precision": float(precision[i]), "recall": float(recall[i])})
    page.chart(charts.pr_curve(precision, recall, pd.DataFrame(marks, columns=["level", "label", "threshold",
                                                                               "precision", "recall"]), name))

    page.add("## Threshold maps")
    page.add(f"The probability at which {name} reaches each precision level (the lowest such threshold) and each "
             f"recall level (the highest), as the notebook's `class_precision_2_probability` and "
             f"`class_recall_2_probability`; a level never reached has no point.")
    own = data.maps[data.maps["class"] == c]
    page.chart(charts.threshold_map(own, name, _levels(data)))
    wide = own[own["level"].isin(sorted({*SUMMARY_LEVELS, level}))].pivot(index="level", columns="kind",
                                                                        values="probability")
    page.add(table_md(wide.reset_index().rename(columns={"precision": "at precision level",
                                                         "recall": "at recall level"})))

    page.add("## Confusion matrices")
    for lv in _levels(data):
        r = confusion_at(data, lv).set_index("class").loc[name]
        configured = " (the configured level)" if lv == level else ""
        page.add(f"### At {lv}% precision{configured}: probability ≥ {r['threshold']:.4f}"
                 if not np.isnan(r["threshold"]) else f"### At {lv}% precision{configured}: never reached")
        cells = pd.DataFrame({"true": ["the rest", "the rest", name, name], "predicted": ["the rest", name, "the rest", name],
                              "count": [r["tn"], r["fp"], r["fn"], r["tp"]],
                              "share": [r["tn_rate"], r["fp_rate"], r["fn_rate"], r["tp_rate"]]})
        page.chart(charts.confusion(cells, name, "count", f"{name} vs. the rest at {lv}%: counts", "d"))
        page.chart(charts.confusion(cells.fillna(0.0), name, "share", f"{name} vs. the rest at {lv}%: normalized by row", ".2f"))

    ms = data.mistakes[data.mistakes["class"] == name]
    masks_legend = ", ".join(f"{esc(n)}: {esc(color)}" for n, (_, color) in
                             zip(data.class_names, images.mask_colors(len(data.class_names))))
    page.add(f"## True positives at {level}% precision")
    page.add(f"{name} true positives with the {name} mask (yellow). "
             f'<label><input type="checkbox" class="toggle-alt"> show their {data.method.guided} for {esc(name)} instead'
             f"</label>, to compare where the classifier looks on images whose label it confirms. Click for the "
             f"full-size image.")
    page.add(_outcome_gallery(data, c, ms, "tp", img_dir, rng))
    page.add(f"## False positives at {level}% precision")
    page.add(f"{name} false positives with the classifier's {data.method.guided} for {name} (jet; red frame) and the "
             f"masks the image does carry outlined ({masks_legend}); the caption gives the probability.")
    page.add(_outcome_gallery(data, c, ms, "fp", img_dir, rng))

    page.add("## Which labels the mistakes carry")
    for dist, word in ((data.fp_distribution, "false positives"), (data.fn_distribution, "false negatives")):
        d = dist[dist["class"] == name]
        page.chart(charts.bars(d, "true_class", "images", f"True labels of {name} {word} (of {int(d['of'].max())})",
                               "true label", "images", sort=list(data.class_names) + ["(no label)"]))
    return page


def _outcome_gallery(data: ReportData, c: int, ms: pd.DataFrame, outcome: str, img_dir: Path,
                     rng: np.random.Generator) -> str:
    """Up to GALLERY sampled true (`outcome`='tp') or false ('fp') positives of class `c`."""
    name = data.class_names[c]
    rows = ms[ms["outcome"] == outcome]
    idx, probs = rows["index"].to_numpy(), dict(zip(rows["index"], rows["probability"]))
    if not len(idx):
        return f"No {esc(name)} {'true' if outcome == 'tp' else 'false'} positives at this level."
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
    return gallery(items)


def dark_page(data: ReportData, img_dir: Path, file: str) -> Page:
    page = Page(file)
    page.add("# Dark images")
    page.add("A dark image has at least a third of its pixels, at the model input size (the notebook's 224×224), "
             "with channel 0 (blue) equal to 0: "
             "black no-data bands.")
    page.chart(charts.pie(data.dark_per_class, "class", "dark_images",
                          "Classes of the dark images (train + val), share of their labels", sort=data.class_names))
    shares = data.dark_per_class[["class", "dark_images"]].copy()
    shares["share"] = (shares["dark_images"] / max(shares["dark_images"].sum(), 1)).map("{:.1%}".format)
    page.add(table_md(shares))
    per_split = data.dark_images.groupby("split", sort=False).agg(images=("dark", "size"), dark=("dark", "sum"))
    per_split = per_split.reset_index()
    page.chart(charts.bars(per_split, "split", "dark", "Dark images per split", "split", "dark images",
                           tooltip=["split:N", "dark:Q", "images:Q"], sort=["train", "val", "test"]))
    page.add(table_md(per_split))
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
    page.add("## Gallery")
    page.add(gallery(items) if items else "No dark images.")
    return page


def _review_progress(data: ReportData, top: pd.DataFrame) -> str:
    """What `corrected_labels` applied: decisions per kind and class of the listed candidates, and on a
    synthetic dataset how many accepted ones name an injected error."""
    s = data.review_summary
    if not s["reviewed"]:
        return (f"No review applied yet (`corrected_labels` found no decisions in `{esc(s['review_path'])}`). "
                f"The counter above counts the decisions made in this browser.")
    text = (f"From `{esc(s['review_path'])}`: {s['reviewed']} decisions, {s['accepted']} accepted and "
            f"{s['rejected']} rejected; {s['changes']} labels changed in `train_corrected.csv`, "
            f"{s['proposed_masks']} of them with a proposed box as mask.")
    injected = s.get("injected") or {}
    if injected:
        text += (f" Against the injected errors (`label_noise.csv`, {injected['injected']} errors): "
                 f"{injected['accepted_injected']} of the {injected['accepted']} accepted decisions name one, "
                 f"{injected['rejected_injected']} of the {injected['rejected']} rejected ones do.")
    table = review.progress(data.review, top)
    return text + "\n\n" + table_md(table[table["listed"] > 0])


REVIEW_HELP = (
    "Accept a candidate when the label is wrong as suggested, reject it when the label is right. Accepting "
    "removes a **spurious label** (or, with a class chosen, moves its mask to that class), moves the mask of "
    "the chosen class to the candidate's class for a **class confusion**, adds a **missing label** with the "
    "proposed box as its mask, and replaces a **loose mask** by the proposed box; a **no-data artefact** "
    "changes nothing. Keys: `a` accept, `r` reject, `n`/`j` next, `p`/`k` previous. Decisions stay in this "
    "browser; **Download review** writes `label_review.csv`: place it in the dataset folder and materialize "
    "`corrected_labels` for `train_corrected.csv` (see the README).")
CLASS_CHANGE = {SPURIOUS: "move mask to", CONFUSION: "mask of"}


def _review_controls(r: dict, class_names) -> str:
    """Accept / Reject buttons, and for a class change the proposed class (editable)."""
    html_ = '<button class="accept" type="button">Accept</button> <button class="reject" type="button">Reject</button>'
    if r["kind"] in CLASS_CHANGE:
        others = [c for c in class_names if c != r["class"]]
        blank = '<option value="">(remove)</option>' if r["kind"] == SPURIOUS else ""
        options = "".join(f'<option value="{esc(c)}"{" selected" if c == r["other_class"] else ""}>{esc(c)}</option>'
                          for c in others)
        html_ += f' <label>{CLASS_CHANGE[r["kind"]]} <select class="new-class">{blank}{options}</select></label>'
    return f'<div class="review-controls">{html_}</div>'


def _select(element_id: str, label: str, values) -> str:
    options = "".join(f'<option value="{esc(v)}">{esc(v)}</option>' for v in values)
    return f'<label>{label} <select id="{element_id}"><option value="">all</option>{options}</select></label>'


def label_issues_page(data: ReportData, img_dir: Path, file: str) -> Page:
    page = Page(file)
    page.add("# Label issues")
    page.add("Candidate label errors in the validation split, most likely first. Each (image, class) label is "
             "scored from confident learning (cleanlab: how plausible the label is given the classifier's "
             f"probability), **mask attention** (where the classifier's {data.method.cam} energy for the class falls: "
             "inside the class's mask, inside another class's mask, outside every mask, on no-data pixels) and "
             "**mask evidence** (how much of the mask holds none of it, and how well the box the classifier "
             "proposes matches the mask); the score estimates the probability that the label is wrong. "
             f"cleanlab's overall label health score: **{data.health:.3f}**. See [methods](methods.md).")
    top = data.issues.head(ISSUES_SHOWN)
    kinds = data.issues.head(ISSUES_COUNTED)["kind"].value_counts().rename_axis("kind").reset_index(name="labels")
    page.chart(charts.bars(kinds, "kind", "labels", f"Suspected kind among the {ISSUES_COUNTED} top candidates", "kind", "labels"))
    page.add("## Review")
    page.add(REVIEW_HELP)
    page.add(f'<div class="review-bar" id="review-bar" data-dataset="{esc(data.data_dir.resolve())}">'
             f'<span id="review-count"></span> <button id="review-download" type="button">Download review</button> '
             f'<button id="review-clear" type="button">Forget decisions</button></div>')
    page.add(f'<div class="filters">{_select("f-class", "Class", data.class_names)} '
             f'{_select("f-kind", "Kind", sorted(top["kind"].unique()))}</div>')
    items = []
    for k, r in enumerate(top.to_dict("records")):
        c, i = data.class_names.index(r["class"]), int(r["index"])
        small = data.cache["val"][i]
        full = images.original(data.data_dir / "train_images" / r["image"], small)
        masks = data.val_masks[:, i]
        box = np.array([r[k] for k in BOX_COLUMNS], float)
        cam = saliency.upsample(data.gradcam[c, i], small.shape[:2])
        thumb = images.proposed_box(images.masks_outline(images.saliency_overlay(small, cam, frame=False), masks), box)
        big = images.proposed_box(images.masks_outline(images.saliency_overlay(full, cam, frame=False), masks), box)
        t, f = images.write_pair(img_dir / "issues", f"issue_{k}", thumb, big)
        other = f" ({r['other_class']})" if r["other_class"] else ""
        caption = (f"#{k + 1} {r['image']} {r['class']}: {r['kind']}{other}; score {r['score']:.2f}, "
                   f"p={r['probability']:.2f}, labelled {'yes' if r['label'] else 'no'}; {data.method.cam} own "
                   f"{r['cam_own']:.0%} / other {r['cam_other']:.0%} / outside {r['cam_outside']:.0%} / "
                   f"no-data {r['cam_nodata']:.0%}")
        if r["label"]:
            caption += f"; mask without evidence {r['cam_empty']:.0%}, proposed box IoU {r['box_iou']:.2f}"
        items.append({"thumb": f"img/issues/{t}", "full": f"img/issues/{f}", "style": "issue", "caption": caption,
                      "data": {"image": r["image"], "class": r["class"], "kind": r["kind"], "score": f"{r['score']:.4f}"},
                      "controls": _review_controls(r, data.class_names)})
    page.add(f"{data.method.cam} of the class (jet) with every mask outlined (" + ", ".join(
        f"{esc(name)}: {esc(color)}" for name, (_, color) in zip(data.class_names,
                                                                images.mask_colors(len(data.class_names)))) +
        "); the box the classifier proposes for the class, dashed red, beside the labelled one (its outline).")
    page.add(gallery(items, "issues"))
    page.add("## Review progress")
    page.add(_review_progress(data, top))
    page.add(f"## Top {ISSUES_LISTED}")
    cols = ["image", "class", "kind", "other_class", "score", "probability", "label", "cleanlab", "attention_score",
            "mask_evidence", "cam_own", "cam_other", "cam_outside", "cam_nodata", "cam_empty", "box_iou"]
    page.add(table_md(data.issues.head(ISSUES_LISTED)[cols].round(3)))
    return page


@dataclasses.dataclass(frozen=True)
class Section:
    """One entry of the site's navigation: its pages' (title, file) for the dataset's classes, and
    how to build them (`None`: hand-written, from the site sources)."""
    title: str
    files: Callable[[list[str]], list[tuple[str, str]]]
    build: Callable[[ReportData, list[str], Path, np.random.Generator], list[Page]] | None = None


# the registry of report pages: what is generated, the navigation and the overview's links
SECTIONS = (
    Section("Overview", lambda classes: [("Overview", "index.md")],
            lambda data, files, img, rng: [overview(data, files[0])]),
    Section("Classes", lambda classes: [(c, f"classes/{c}.md") for c in classes],
            lambda data, files, img, rng: [class_page(data, c, img, rng, f) for c, f in enumerate(files)]),
    Section("Dark images", lambda classes: [("Dark images", "dark.md")],
            lambda data, files, img, rng: [dark_page(data, img, files[0])]),
    Section("Label issues", lambda classes: [("Label issues", "issues.md")],
            lambda data, files, img, rng: [label_issues_page(data, img, files[0])]),
    Section("Methods", lambda classes: [("Methods", "methods.md")]),
)


def pages_of(classes) -> list[tuple[str, str]]:
    """(title, file) of every page, in navigation order."""
    return [entry for section in SECTIONS for entry in section.files(list(classes))]


def navigation(classes) -> list[dict]:
    """MkDocs `nav`: a section of one page is a link, a section of several a group."""
    nav = []
    for section in SECTIONS:
        files = section.files(list(classes))
        nav.append({section.title: files[0][1]} if len(files) == 1 and files[0][0] == section.title
                   else {section.title: [{title: f} for title, f in files]})
    return nav


def generate(data: ReportData, img_dir: Path, rng: np.random.Generator, log=print) -> list[Page]:
    """Every generated page of the registry."""
    out = []
    for section in SECTIONS:
        if section.build is not None:
            log(f"report_site: {section.title}")
            out += section.build(data, [f for _, f in section.files(data.class_names)], img_dir, rng)
    return out


# the assets the report reads, as report_site's inputs
INPUTS = ("label_table", "train_val_split", "image_cache", "val_masks", "dark_image_counts", "val_predictions",
          "saliency_maps", "threshold_maps", "confusion_matrices", "mistakes", "fp_class_distribution",
          "fn_class_distribution", "label_issues", "corrected_labels")


def gather(inputs: dict, class_names, data_dir: Path, history: pd.DataFrame) -> ReportData:
    """ReportData from the materialized `INPUTS` (name -> Bundle)."""
    summary = inputs["val_predictions"].json("summary")
    model_path = Path(summary["model_path"])
    modified = (time.strftime("%Y-%m-%d %H:%M", time.gmtime(model_path.stat().st_mtime))
                if model_path.exists() else "?")
    cache, predictions, saliency_maps = inputs["image_cache"], inputs["val_predictions"], inputs["saliency_maps"]
    return ReportData(
        class_names=list(class_names), labels=inputs["label_table"].table("labels"),
        split=inputs["train_val_split"].table("split"), test_images=list(cache.table("test_names")["image"]),
        val_images=list(predictions.table("images")["image"]), y_true=predictions.array("y_true"),
        y_pred=predictions.array("probabilities"), maps=inputs["threshold_maps"].table("maps"),
        confusion=inputs["confusion_matrices"].table("matrices"), mistakes=inputs["mistakes"].table("mistakes"),
        fp_distribution=inputs["fp_class_distribution"].table("distribution"),
        fn_distribution=inputs["fn_class_distribution"].table("distribution"),
        dark_images=inputs["dark_image_counts"].table("images"),
        dark_per_class=inputs["dark_image_counts"].table("per_class"),
        cache={s: cache.array(s) for s in ("train", "val", "test")}, val_masks=inputs["val_masks"].array("masks"),
        gradcam=saliency_maps.array("gradcam"), guided_backprop=saliency_maps.array("guided_backprop"),
        method=saliency_method(saliency_maps.json("meta").get("method", DEFAULT)),
        data_dir=data_dir,
        model={"path": summary["model_path"], "sha256": summary["model_sha256"], "modified": modified,
               "device": summary["device"],
               "pr_auc": dict(zip(class_names, map(float, thresholds.pr_auc(predictions.array("y_true"),
                                                                            predictions.array("probabilities")))))},
        history=history, precision_level=int(inputs["mistakes"].json("level")["precision_level"]),
        issues=inputs["label_issues"].table("issues"),
        health=float(inputs["label_issues"].json("health")["overall_health_score"]),
        review=inputs["corrected_labels"].table("review"), review_summary=inputs["corrected_labels"].json("summary"))
