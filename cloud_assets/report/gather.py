"""What the report reads: the materialized assets it draws from (`INPUTS`), gathered into one
`ReportData`."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cloud_assets.lib import thresholds
from cloud_assets.lib.saliency_methods import DEFAULT, SaliencyMethod, method as saliency_method


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
    issues: pd.DataFrame            # label_issues, most likely first: every label of train.csv
    candidate_maps: np.ndarray      # label_issues: the audit's probability of the class per pixel, first candidates
    class_ranking: pd.DataFrame     # label_issues: cleanlab's estimated error rate per class
    cache_rows: dict                # image -> (split, row in image_cache's array of that split)
    encoded: dict                   # train.csv: Image_Label -> EncodedPixels
    original_shape: tuple           # the images' (height, width)
    health: float                   # cleanlab's overall multi-label health score
    review: pd.DataFrame            # corrected_labels: the reviewer's decisions (image, class, decision, ...)
    review_summary: dict            # corrected_labels: what was applied (counts, the review's path)


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
        issues=inputs["label_issues"].table("issues"), candidate_maps=inputs["label_issues"].array("candidate_maps"),
        class_ranking=inputs["label_issues"].table("class_ranking"),
        cache_rows={name: (s, k) for s in ("train", "val", "test")
                    for k, name in enumerate(cache.table(f"{s}_names")["image"])},
        encoded=dict(zip(inputs["label_table"].table("rows")["Image_Label"],
                         inputs["label_table"].table("rows")["EncodedPixels"])),
        original_shape=tuple(inputs["label_table"].json("meta")["original_shape"]),
        health=float(inputs["label_issues"].json("health")["overall_health_score"]),
        review=inputs["corrected_labels"].table("review"), review_summary=inputs["corrected_labels"].json("summary"))
