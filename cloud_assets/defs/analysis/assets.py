"""The notebook's analysis of the classifier's mistakes: thresholds, confusion matrices, TP/FP/FN."""
import functools

import dagster as dg
import pandas as pd

from cloud_assets.constants import CONFUSION_LEVELS, PRECISION_LEVEL, SUMMARY_LEVELS
from cloud_assets.plumbing.metadata import md_table, progress_logger
from cloud_assets.defs.automation.conditions import FOLLOWS_MODEL
from cloud_assets.plumbing.sharding import Shard, Sharding
from cloud_assets.defs.resources import DatasetResource
from cloud_assets.lib.saliency import attention
from cloud_assets.lib.classifier import mistakes as mistakes_lib
from cloud_assets.lib.saliency import engine as saliency
from cloud_assets.lib.classifier import thresholds
from cloud_assets.lib.saliency.attention import MaskAttention
from cloud_assets.lib.data.images import ImageCache
from cloud_assets.lib.classifier.mistakes import ClassDistribution, ConfusionMatrices, Mistakes
from cloud_assets.lib.classifier.model import ValPredictions
from cloud_assets.lib.data.rle import ValMasks
from cloud_assets.lib.saliency.engine import SaliencyMaps
from cloud_assets.lib.store import Bundle
from cloud_assets.lib.classifier.thresholds import ThresholdMaps
from cloud_assets.settings import Settings

class PrecisionLevel(dg.Config):
    precision_level: int = PRECISION_LEVEL  # percent, 10..99: the FP/TP/FN sets are taken at this precision


class ConfusionLevels(dg.Config):
    precision_levels: list[int] = list(CONFUSION_LEVELS)  # besides PRECISION_LEVEL, always included


def _distribution(outcome: str, val_predictions, mistakes: Bundle, dataset: DatasetResource):
    table = mistakes_lib.distribution_table(ValPredictions(val_predictions).y_true, Mistakes(mistakes).mistakes,
                                            outcome, dataset.class_names)
    wide = table.pivot(index="class", columns="true_class", values="images").reindex(dataset.class_names)
    return dg.Output(ClassDistribution.of(distribution=table), metadata={"images_by_true_class": dg.MetadataValue.md(wide.to_markdown())})


def _attention_summary(facts: list, seconds: float) -> dict:
    table = pd.concat(facts)
    summary = table.groupby("class", sort=False)[["cam_own", "cam_other", "cam_outside", "cam_nodata"]].mean()
    return {"result": {"rows": len(table), "mean_gradcam_shares": dg.MetadataValue.md(summary.round(3).to_markdown())}}


def build(settings: Settings, sharding: Sharding) -> list:
    """The analysis of the classifier's mistakes."""
    # every analysis asset: in the analysis group, re-materialized when the model file changes
    analysis_asset = functools.partial(dg.asset, group_name="analysis", automation_condition=FOLLOWS_MODEL,
                                       **sharding.whole)

    @analysis_asset(code_version="1")
    def threshold_maps(val_predictions, dataset: DatasetResource):
        """Per class: precision level 10..99 -> probability, recall level 10..99 -> probability (NaN: never reached)."""
        predictions = ValPredictions(val_predictions)
        maps = thresholds.threshold_maps(predictions.y_true, predictions.probabilities)
        wide = maps[maps["level"].isin(SUMMARY_LEVELS)].copy()
        wide["class"] = [dataset.class_names[c] for c in wide["class"]]
        wide = wide.pivot_table(index=["class", "kind"], columns="level", values="probability", dropna=False)
        return dg.Output(ThresholdMaps.of(maps=maps), metadata={
            "levels": "10..99", "unreached": int(maps["probability"].isna().sum()),
            "selected_levels": dg.MetadataValue.md(wide.round(4).to_markdown())})

    @analysis_asset(code_version="1")
    def confusion_matrices(config: ConfusionLevels, val_predictions, threshold_maps: Bundle,
                           dataset: DatasetResource):
        """One-vs-rest `[[tn, fp], [fn, tp]]` per class at precision 90 and the configured levels, raw and row-normalized."""
        predictions = ValPredictions(val_predictions)
        y_true, y_pred = predictions.y_true, predictions.probabilities
        table = mistakes_lib.confusion_table(y_true, y_pred, ThresholdMaps(threshold_maps).maps,
                                             sorted({PRECISION_LEVEL, *config.precision_levels}), dataset.class_names)
        at90 = table[table["level"] == PRECISION_LEVEL].drop(columns="level").round(3)
        return dg.Output(ConfusionMatrices.of(matrices=table), metadata={
            "at_precision_90": md_table(at90), "levels": sorted({PRECISION_LEVEL, *config.precision_levels})})

    @analysis_asset(code_version="1")
    def mistakes(config: PrecisionLevel, val_predictions, threshold_maps: Bundle, saliency_maps,
                 dataset: DatasetResource):
        """TP / FP / FN validation images per class at the configured precision level (default 90), with
        `mean_guided_gradcam`: the image's mean Guided Grad-CAM for that class."""
        predictions, maps = ValPredictions(val_predictions), SaliencyMaps(saliency_maps)
        y_true, y_pred = predictions.y_true, predictions.probabilities
        cut = thresholds.cut_at(ThresholdMaps(threshold_maps).maps, len(dataset.class_names), config.precision_level)
        table = mistakes_lib.mistakes_table(y_true, y_pred, cut, dataset.class_names,
                                            predictions.images["image"])
        table["mean_guided_gradcam"] = saliency.mean_guided_gradcam(
            maps.gradcam, maps.guided_backprop,
            [dataset.class_names.index(c) for c in table["class"]], table["index"].to_numpy())
        counts = (table.groupby(["class", "outcome"]).size().unstack(fill_value=0)
                  .reindex(index=dataset.class_names, columns=["tp", "fp", "fn"], fill_value=0))
        return dg.Output(Mistakes.of(mistakes=table, level={"precision_level": config.precision_level,
                                                            "thresholds": dict(zip(dataset.class_names, cut))}),
                         metadata={"precision_level": config.precision_level,
                                   "counts": dg.MetadataValue.md(counts.to_markdown()),
                                   "model_sha256": predictions.summary["model_sha256"],
                                   **{f"fp_{c}": int(counts.loc[c, "fp"]) for c in dataset.class_names}})

    @analysis_asset(code_version="1")
    def fp_class_distribution(val_predictions, mistakes: Bundle, dataset: DatasetResource):
        """For each class, how many of its false-positive images carry each true label (the notebook's bar plots)."""
        return _distribution("fp", val_predictions, mistakes, dataset)

    @analysis_asset(code_version="1")
    def fn_class_distribution(val_predictions, mistakes: Bundle, dataset: DatasetResource):
        """For each class, how many of its false-negative images carry each true label."""
        return _distribution("fn", val_predictions, mistakes, dataset)

    @sharding.per_image(dg.asset, value_types={"result": MaskAttention}, summarize=_attention_summary,
                        group_name="analysis", automation_condition=FOLLOWS_MODEL, code_version="3")
    def mask_attention(context: dg.AssetExecutionContext, shard: Shard, saliency_maps, val_masks, image_cache,
                       dataset: DatasetResource):
        """Per validation image and class: the share of Grad-CAM and Guided Grad-CAM energy inside the
        class's mask, inside other classes' masks, outside every mask, on no-data pixels; pointing game."""
        maps = SaliencyMaps(saliency_maps)
        table = attention.attention_table(
            maps.gradcam, maps.guided_backprop, ValMasks(val_masks).masks, ImageCache(image_cache).val,
            dataset.class_names, maps.images["image"],
            report=progress_logger(context, f"mask_attention{shard.where}"), positions=shard.rows(image_cache))
        return {"result": MaskAttention.of(shares=table)}, table

    return [threshold_maps, confusion_matrices, mistakes, fp_class_distribution, fn_class_distribution, mask_attention]
