"""The report's generated sentences: conclusions drawn from the data (the notebook's closing notes),
in plain text; the templates escape them."""
from __future__ import annotations

import numpy as np
import pandas as pd

from cloud_assets.constants import ISSUES_COUNTED
from cloud_assets.lib.audit.label_issues import SUSPECT, how_many_wrong
from cloud_assets.report.gather import ReportData


def findings(data: ReportData) -> list[str]:
    """The overview's findings, one sentence each."""
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
    out.append(f"Among the {len(top)} most likely label errors of the {len(data.issues)} labels audited: "
               + ", ".join(f"{k} {int(v)}" for k, v in kinds.items())
               + f"; the most likely is {top['image'].iloc[0]} {top['class'].iloc[0]} ({top['kind'].iloc[0]}, "
                 f"score {top['score'].iloc[0]:.2f}).")
    suspected, expected = how_many_wrong(data.issues)
    n = len(data.issues)
    out.append(f"The audit suspects {suspected} labels ({suspected / n:.1%}: a score of {SUSPECT} or more, the "
               f"probability that the label is wrong) and estimates that about {expected} ({expected / n:.1%}) are "
               f"wrong, the sum of the scores. cleanlab's label health score, {data.health:.3f}, is the share of images "
               f"in which cleanlab, on the audit's class probabilities alone, suspects no label: not an error rate "
               f"(see Label issues).")
    if data.review_summary["reviewed"]:
        s = data.review_summary
        out.append(f"A review of {s['reviewed']} candidates accepted {s['accepted']}, changing {s['changes']} labels "
                   f"in train_corrected.csv.")
    return out


def class_reading(data: ReportData, name: str, confusion_row: pd.Series) -> str:
    """A class page's opening: what the classifier finds at the configured level, and what its false
    positives and negatives mostly carry."""
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


def review_progress(data: ReportData) -> str:
    """What `corrected_labels` applied."""
    s = data.review_summary
    if not s["reviewed"]:
        return (f"No review applied yet (`corrected_labels` found no decisions in `{s['review_path']}`). "
                f"The counter above counts the decisions made in this browser.")
    return (f"From `{s['review_path']}`: {s['reviewed']} decisions, {s['accepted']} accepted and "
            f"{s['rejected']} rejected; {s['changes']} labels changed in `train_corrected.csv`, "
            f"{s['proposed_masks']} of them with a proposed box as mask.")
