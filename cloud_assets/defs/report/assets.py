"""The report site, rebuilt from the materialized assets and Dagster's own event log."""
import time
from pathlib import Path

import dagster as dg
import pandas as pd

from cloud_assets.defs.automation.conditions import FOLLOWS_MODEL
from cloud_assets.defs.resources import DatasetResource, VarDir
from cloud_assets.lib.store import Bundle
from cloud_assets.report import pages, site

SITE_SOURCES = Path(__file__).resolve().parents[3] / "site"


def model_history(instance: dg.DagsterInstance, class_names) -> pd.DataFrame:
    """Per model version (SHA-256) and class: the latest PR-AUC and FP count recorded in the
    metadata of `val_predictions` and `mistakes` materializations."""
    rows = {}
    for key, fields in (("val_predictions", "pr_auc"), ("mistakes", "fp")):
        records = instance.fetch_materializations(dg.AssetKey(key), limit=10000, ascending=True).records
        for record in records:
            meta = record.asset_materialization.metadata
            if "model_sha256" not in meta:
                continue
            sha = meta["model_sha256"].value
            entry = rows.setdefault(sha, {"seen": record.timestamp})
            for c in class_names:
                if f"{fields}_{c}" in meta:
                    entry[(fields, c)] = meta[f"{fields}_{c}"].value
    out = []
    for sha, entry in sorted(rows.items(), key=lambda kv: kv[1]["seen"]):
        seen = time.strftime("%Y-%m-%d %H:%M", time.gmtime(entry["seen"]))
        for c in class_names:
            out.append({"version": sha[:12], "seen": seen, "class": c, "pr_auc": entry.get(("pr_auc", c)),
                        "fp": entry.get(("fp", c))})
    return pd.DataFrame(out, columns=["version", "seen", "class", "pr_auc", "fp"])


@dg.asset(group_name="report", automation_condition=FOLLOWS_MODEL, code_version="1")
def report_site(context: dg.AssetExecutionContext, dataset: DatasetResource, var: VarDir, label_table: Bundle,
                train_val_split: Bundle, image_cache: Bundle, val_masks: Bundle, dark_image_counts: Bundle,
                val_predictions: Bundle, saliency_maps: Bundle, threshold_maps: Bundle,
                confusion_matrices: Bundle, mistakes: Bundle, fp_class_distribution: Bundle,
                fn_class_distribution: Bundle, label_issues: Bundle):
    """The MkDocs report site, built with `--strict` beside the live one and swapped in atomically."""
    summary = val_predictions.json("summary")
    model_path = Path(summary["model_path"])
    modified = time.strftime("%Y-%m-%d %H:%M", time.gmtime(model_path.stat().st_mtime)) if model_path.exists() else "?"
    classes = list(dataset.class_names)
    data = pages.ReportData(
        class_names=classes, labels=label_table.table("labels"), split=train_val_split.table("split"),
        test_images=list(image_cache.table("test_names")["image"]),
        val_images=list(val_predictions.table("images")["image"]),
        y_true=val_predictions.array("y_true"), y_pred=val_predictions.array("probabilities"),
        maps=threshold_maps.table("maps"), confusion=confusion_matrices.table("matrices"),
        mistakes=mistakes.table("mistakes"), fp_distribution=fp_class_distribution.table("distribution"),
        fn_distribution=fn_class_distribution.table("distribution"),
        dark_images=dark_image_counts.table("images"), dark_per_class=dark_image_counts.table("per_class"),
        cache={s: image_cache.array(s) for s in ("train", "val", "test")}, val_masks=val_masks.array("masks"),
        gradcam=saliency_maps.array("gradcam"), guided_backprop=saliency_maps.array("guided_backprop"),
        data_dir=dataset.root,
        model={"path": summary["model_path"], "sha256": summary["model_sha256"], "modified": modified,
               "device": summary["device"], "pr_auc": summary["pr_auc"]},
        history=model_history(context.instance, classes),
        precision_level=int(mistakes.json("level")["precision_level"]),
        issues=label_issues.table("issues"), health=float(label_issues.json("health")["overall_health_score"]))
    built = site.build(data, SITE_SOURCES, Path(var.path), log=context.log.info)
    index = built.path / "index.html"
    context.log.info(f"report_site: built {index}")
    return dg.MaterializeResult(metadata={"index": dg.MetadataValue.url(index.resolve().as_uri()),
                                          "path": dg.MetadataValue.path(str(Path(var.path, "site", "index.html").resolve())),
                                          "pages": len(list(built.path.rglob("*.html")))})
