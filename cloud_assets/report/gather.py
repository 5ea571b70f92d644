"""What the report reads: the materialized assets it draws from (`INPUTS`), gathered into one
`ReportData`."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cloud_assets.lib.classifier import thresholds
from cloud_assets.lib.data.dark import DarkImageCounts
from cloud_assets.lib.data.images import ImageCache
from cloud_assets.lib.audit.label_issues import LabelIssues
from cloud_assets.lib.data.labels import LabelTable, TrainValSplit
from cloud_assets.lib.classifier.mistakes import ClassDistribution, ConfusionMatrices, Mistakes
from cloud_assets.lib.classifier.model import ValPredictions
from cloud_assets.lib.review import CorrectedLabels
from cloud_assets.lib.data.rle import ValMasks
from cloud_assets.lib.saliency.engine import SaliencyMaps
from cloud_assets.lib.classifier.thresholds import ThresholdMaps
from cloud_assets.lib.saliency.methods import DEFAULT, SaliencyMethod, method as saliency_method


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
    """ReportData from the materialized `INPUTS` (name -> Bundle, or Shards)."""
    labelled, split = LabelTable(inputs["label_table"]), TrainValSplit(inputs["train_val_split"])
    cache, predictions = ImageCache(inputs["image_cache"]), ValPredictions(inputs["val_predictions"])
    maps, mistakes = SaliencyMaps(inputs["saliency_maps"]), Mistakes(inputs["mistakes"])
    dark, issues = DarkImageCounts(inputs["dark_image_counts"]), LabelIssues(inputs["label_issues"])
    corrected, summary = CorrectedLabels(inputs["corrected_labels"]), predictions.summary
    model_path = Path(summary["model_path"])
    modified = (time.strftime("%Y-%m-%d %H:%M", time.gmtime(model_path.stat().st_mtime))
                if model_path.exists() else "?")
    y_true, y_pred = predictions.y_true, predictions.probabilities
    rows = labelled.rows
    return ReportData(
        class_names=list(class_names), labels=labelled.labels, split=split.split,
        test_images=list(cache.test_names["image"]), val_images=list(predictions.images["image"]), y_true=y_true,
        y_pred=y_pred, maps=ThresholdMaps(inputs["threshold_maps"]).maps,
        confusion=ConfusionMatrices(inputs["confusion_matrices"]).matrices, mistakes=mistakes.mistakes,
        fp_distribution=ClassDistribution(inputs["fp_class_distribution"]).distribution,
        fn_distribution=ClassDistribution(inputs["fn_class_distribution"]).distribution,
        dark_images=dark.images, dark_per_class=dark.per_class,
        cache={s: cache.images(s) for s in ("train", "val", "test")}, val_masks=ValMasks(inputs["val_masks"]).masks,
        gradcam=maps.gradcam, guided_backprop=maps.guided_backprop,
        method=saliency_method(maps.meta.get("method", DEFAULT)),
        data_dir=data_dir,
        model={"path": summary["model_path"], "sha256": summary["model_sha256"], "modified": modified,
               "device": summary["device"],
               "pr_auc": dict(zip(class_names, map(float, thresholds.pr_auc(y_true, y_pred))))},
        history=history, precision_level=int(mistakes.level["precision_level"]),
        issues=issues.issues, candidate_maps=issues.candidate_maps, class_ranking=issues.class_ranking,
        cache_rows={name: (s, k) for s in ("train", "val", "test") for k, name in enumerate(cache.names(s)["image"])},
        encoded=dict(zip(rows["Image_Label"], rows["EncodedPixels"])),
        original_shape=tuple(labelled.meta["original_shape"]),
        health=float(issues.health["overall_health_score"]),
        review=corrected.review, review_summary=corrected.summary)
