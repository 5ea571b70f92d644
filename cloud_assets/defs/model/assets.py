"""The model file as a versioned input, and one pass of the model over the validation images."""
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from cloud_assets.plumbing.metadata import md_table, progress_logger
from cloud_assets.defs.automation.conditions import FOLLOWS_MODEL
from cloud_assets.plumbing.gpu import GPU_OP_TAGS, GPU_POOL
from cloud_assets.plumbing.sharding import Shard, Sharding
from cloud_assets.defs.resources import DatasetResource, ModelResource, VarDir
from cloud_assets.lib.classifier import model as model_lib
from cloud_assets.lib.files import sha256
from cloud_assets.lib.saliency import engine as saliency
from cloud_assets.lib.classifier import thresholds
from cloud_assets.lib.data.images import ImageCache
from cloud_assets.lib.data.labels import LabelTable
from cloud_assets.lib.classifier.model import ValPredictions
from cloud_assets.lib.saliency.engine import SaliencyMaps
from cloud_assets.lib.store import Bundle
from cloud_assets.settings import Settings


VAL_PREDICTIONS, SALIENCY_MAPS = dg.AssetKey("val_predictions"), dg.AssetKey("saliency_maps")


def _model_pass_summary(facts: list, seconds: float) -> dict:
    n, secs, first = sum(f["images"] for f in facts), sum(f["seconds"] for f in facts), facts[0]
    common = {"images": n, "model_sha256": first["digest"], "device": first["device"], "layer": first["layer"],
              "method": first["method"], "images_per_s": round(n / max(secs, 1e-9), 1),
              "seconds_per_image": round(secs / max(n, 1), 4)}
    y_true, y_pred = (np.concatenate([f[k] for f in facts]) for k in ("y_true", "y_pred"))
    aucs = thresholds.pr_auc(y_true, y_pred)  # the order of the images does not matter here
    table = pd.DataFrame({"class": first["classes"], "pr_auc": np.round(aucs, 4), "positives": y_true.sum(0)})
    return {"saliency_maps": common, "val_predictions": {
        **common, "mean_pr_auc": float(np.nanmean(aucs)), "pr_auc": md_table(table),
        **{f"pr_auc_{c}": float(a) for c, a in zip(first["classes"], aucs)}}}


def _saliency_maps(context, net, info, images, names, classes, device, digest, var, batch_size, report, positions,
                   method):
    """(probabilities, the `saliency_maps` value) from one guided saliency pass over `images`
    (`positions`: a shard's, in the unsharded order; None unsharded)."""
    engine = saliency.engine_for(net, info.gradcam_layer, method)
    context.log.info(f"model_pass: {engine.method.guided} for {len(classes)} classes, layer {info.gradcam_layer} "
                     f"({engine.layer_size[0]}x{engine.layer_size[1]})")
    with var.staging(SALIENCY_MAPS) as staged:
        y_pred = saliency.write_maps(staged, engine, images, batch_size, report, positions)
        SaliencyMaps.images.put(staged, names)
        SaliencyMaps.meta.put(staged, {"class_names": classes, "layer": info.gradcam_layer, "device": device,
                            "model_sha256": digest, "method": method})
    return y_pred, staged


def build(settings: Settings, sharding: Sharding) -> list:
    """The model file and the model's pass, with `settings`'s saliency method."""
    method = settings.saliency_method  # lib.saliency.methods: the notebook's Guided Grad-CAM by default

    @dg.observable_source_asset(group_name="model")
    def model_file(model: ModelResource):
        """The classifier file at CLOUD_ASSETS_MODEL_PATH; its data version is the file's SHA-256."""
        path = model.file()
        digest = sha256(path)
        stat = path.stat()
        return dg.ObserveResult(data_version=dg.DataVersion(digest), metadata={
            "path": dg.MetadataValue.path(str(path.resolve())), "sha256": digest,
            "size_mb": round(stat.st_size / 2 ** 20, 2),
            "modified": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stat.st_mtime))})

    @sharding.per_image(
        dg.multi_asset, summarize=_model_pass_summary,
        value_types={"val_predictions": ValPredictions, "saliency_maps": SaliencyMaps},
        pool=GPU_POOL, op_tags=GPU_OP_TAGS, can_subset=True, deps=[model_file],
        ins={"image_cache": dg.AssetIn(), "label_table": dg.AssetIn()},
        outs={
            "val_predictions": dg.AssetOut(
                group_name="model", automation_condition=FOLLOWS_MODEL, code_version="1", is_required=False,
                description="Probabilities and ground truth for every validation image (the notebook drops the last "
                            "partial batch)."),
            "saliency_maps": dg.AssetOut(
                group_name="model", automation_condition=FOLLOWS_MODEL, is_required=False,
                code_version="2" if method == saliency.DEFAULT else f"2-{method}",  # a new method re-runs the maps
                description="Grad-CAM (or CLOUD_ASSETS_SALIENCY_METHOD's map, recorded in `meta`) at its layer's "
                            "resolution `(classes, val images, h, w)` float32 and guided backprop `(val images, H, W)` "
                            "float16; `lib.saliency.engine.upsample` brings the map to the image's size as the notebook does, the "
                            "guided map is their product (`lib.saliency.engine.combine`)."),
        },
        internal_asset_deps={"val_predictions": {dg.AssetKey(k) for k in ("model_file", "image_cache", "label_table")},
                             "saliency_maps": {dg.AssetKey(k) for k in ("model_file", "image_cache")}})
    def model_pass(context: dg.AssetExecutionContext, shard: Shard, model: ModelResource, dataset: DatasetResource,
                   var: VarDir, image_cache, label_table: Bundle):
        """One pass of the model over the validation images: `val_predictions` and `saliency_maps`.

        The saliency pass computes the probabilities on its way (the same forward pass, bit for bit), so
        both assets cost one model load and one read of the images; `val_predictions` alone runs the
        forward pass only. Grad-CAM is kept at its layer's resolution (7x7 for a DenseNet at 224x224),
        float32; guided backprop at the image's, float16: three significant digits at every scale (the
        maps are mostly small values whose sums, the attention shares, uint8's fixed 1/255 step would
        round away). Both are written batch by batch into memory-mapped files while the next batch is
        computed, so memory does not grow with the number of images. Sharded, one step computes the
        shards of its partitions one after the other, with one model load.
        """
        device = shard.once("device", model_lib.configure_device)
        digest = shard.once("digest", lambda: sha256(Path(model.path)))
        net, info = shard.once("model", lambda: model.load(dataset))
        classes = list(dataset.class_names)
        cache = ImageCache(image_cache)
        images, names = cache.val, cache.val_names[["image"]]
        report = progress_logger(context, f"model_pass{shard.where}")
        context.log.info(f"model_pass{shard.where}: loaded {model.path} ({info.framework}, sha256 {digest[:12]}); "
                         f"{len(images)} images; Keras backend {device}")
        positions = shard.rows(image_cache)
        start = time.monotonic()
        out = {}
        if SALIENCY_MAPS in context.selected_asset_keys:
            y_pred, out["saliency_maps"] = _saliency_maps(context, net, info, images, names, classes, device, digest,
                                                          var, model.batch_size, report, positions, method)
        else:
            y_pred = model_lib.predict(net, images, model.batch_size, report, positions)
        secs = time.monotonic() - start
        labels = shard.once("labels", lambda: LabelTable(label_table).labels.set_index("image"))
        y_true = labels.loc[names["image"], classes].to_numpy().astype(np.int8)
        if VAL_PREDICTIONS in context.selected_asset_keys:
            out["val_predictions"] = ValPredictions.of(
                probabilities=y_pred, y_true=y_true, images=names,
                summary={"model_path": str(Path(model.path).resolve()), "model_sha256": digest, "device": device,
                         "framework": info.framework, "gradcam_layer": info.gradcam_layer})
        return out, {"images": len(images), "seconds": secs, "digest": digest, "device": device,
                     "layer": info.gradcam_layer, "classes": classes, "y_true": y_true, "y_pred": y_pred,
                     "method": method}

    return [model_file, model_pass]
