"""The model file as a versioned input, and one pass of the model over the validation images."""
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from cloud_assets.defs.metadata import md_table, progress_logger
from cloud_assets.defs.automation.conditions import FOLLOWS_MODEL
from cloud_assets.defs.gpu import GPU_OP_TAGS, GPU_POOL
from cloud_assets.defs import settings, shards
from cloud_assets.defs.resources import DatasetResource, ModelResource, VarDir
from cloud_assets.lib import model as model_lib
from cloud_assets.lib import saliency
from cloud_assets.lib import shards as shards_lib
from cloud_assets.lib import thresholds
from cloud_assets.lib.store import Bundle


@dg.observable_source_asset(group_name="model")
def model_file(model: ModelResource):
    """The classifier file at CLOUD_ASSETS_MODEL_PATH; its data version is the file's SHA-256."""
    path = model.file()
    digest = model_lib.sha256(path)
    stat = path.stat()
    return dg.ObserveResult(data_version=dg.DataVersion(digest), metadata={
        "path": dg.MetadataValue.path(str(path.resolve())), "sha256": digest,
        "size_mb": round(stat.st_size / 2 ** 20, 2),
        "modified": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stat.st_mtime))})


VAL_PREDICTIONS, SALIENCY_MAPS = dg.AssetKey("val_predictions"), dg.AssetKey("saliency_maps")
METHOD = settings.load_time(settings.SALIENCY_METHOD)  # lib.saliency_methods: the notebook's Guided Grad-CAM by default


@dg.multi_asset(
    pool=GPU_POOL, op_tags=GPU_OP_TAGS, can_subset=True, deps=[model_file],
    ins={"image_cache": dg.AssetIn(), "label_table": dg.AssetIn()}, **shards.PER_IMAGE,
    outs={
        "val_predictions": dg.AssetOut(
            group_name="model", automation_condition=FOLLOWS_MODEL, code_version="1", is_required=False,
            description="Probabilities and ground truth for every validation image (the seed drops the last "
                        "partial batch)."),
        "saliency_maps": dg.AssetOut(
            group_name="model", automation_condition=FOLLOWS_MODEL, is_required=False,
            code_version="2" if METHOD == saliency.DEFAULT else f"2-{METHOD}",  # a new method re-runs the maps
            description="Grad-CAM (or CLOUD_ASSETS_SALIENCY_METHOD's map, recorded in `meta`) at its layer's "
                        "resolution `(classes, val images, h, w)` float32 and guided backprop `(val images, H, W)` "
                        "float16; `lib.saliency.upsample` brings the map to the image's size as the seed does, the "
                        "guided map is their product (`lib.saliency.combine`)."),
    },
    internal_asset_deps={"val_predictions": {dg.AssetKey(k) for k in ("model_file", "image_cache", "label_table")},
                         "saliency_maps": {dg.AssetKey(k) for k in ("model_file", "image_cache")}})
def model_pass(context: dg.AssetExecutionContext, model: ModelResource, dataset: DatasetResource, var: VarDir,
               image_cache, label_table: Bundle):
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
    device = model_lib.configure_device()
    digest = model_lib.sha256(Path(model.path))
    net, info = model.load(dataset)
    classes = list(dataset.class_names)
    onehot = label_table.table("labels").set_index("image")
    predictions, maps, metadata = {}, {}, {}
    for key in shards.shard_keys(context):
        cache = shards.shard(image_cache, key)
        images, names = cache.array("val"), cache.table("val_names")[["image"]]
        where = f" shard {key}" if key is not None else ""
        report = progress_logger(context, f"model_pass{where}")
        context.log.info(f"model_pass{where}: loaded {model.path} ({info.framework}, sha256 {digest[:12]}); "
                         f"{len(images)} images; Keras backend {device}")
        positions = shards.positions(cache, key)
        start = time.monotonic()
        if SALIENCY_MAPS in context.selected_asset_keys:
            y_pred, maps[key] = _saliency_maps(context, net, info, images, names, classes, device, digest, var,
                                               model.batch_size, report, positions)
        else:
            y_pred = model_lib.predict(net, images, model.batch_size, report, positions)
        secs = time.monotonic() - start
        metadata[key] = {"images": len(images), "seconds": secs}
        y_true = onehot.loc[names["image"], classes].to_numpy().astype(np.int8)
        predictions[key] = {"probabilities": y_pred, "y_true": y_true, "images": names,
                            "summary": {"model_path": str(Path(model.path).resolve()), "model_sha256": digest,
                                        "device": device, "framework": info.framework,
                                        "gradcam_layer": info.gradcam_layer}}
        if positions is not None:
            predictions[key].update(shards_lib.layout({"val": positions}, arrays={"probabilities": ("val", 0),
                                                                         "y_true": ("val", 0)},
                                                      tables={"images": "val"}))
    n, secs = sum(m["images"] for m in metadata.values()), sum(m["seconds"] for m in metadata.values())
    common = {"images": n, "model_sha256": digest, "device": device, "layer": info.gradcam_layer, "method": METHOD,
              "images_per_s": round(n / max(secs, 1e-9), 1), "seconds_per_image": round(secs / max(n, 1), 4)}
    if SALIENCY_MAPS in context.selected_asset_keys:
        yield dg.Output(shards.pack(maps), output_name="saliency_maps", metadata=common)
    if VAL_PREDICTIONS in context.selected_asset_keys:
        y_true = np.concatenate([p["y_true"] for p in predictions.values()])
        y_pred = np.concatenate([p["probabilities"] for p in predictions.values()])
        aucs = thresholds.pr_auc(y_true, y_pred)  # the order of the images does not matter here
        table = pd.DataFrame({"class": classes, "pr_auc": np.round(aucs, 4), "positives": y_true.sum(0)})
        yield dg.Output(shards.pack(predictions), output_name="val_predictions", metadata={
            **common, "mean_pr_auc": float(np.nanmean(aucs)), "pr_auc": md_table(table),
            **{f"pr_auc_{c}": float(a) for c, a in zip(classes, aucs)}})


def _saliency_maps(context, net, info, images, names, classes, device, digest, var, batch_size, report, positions):
    """(probabilities, the `saliency_maps` value) from one guided Grad-CAM pass over `images`
    (`positions`: a shard's, in the unsharded order; None unsharded)."""
    engine = saliency.engine_for(net, info.gradcam_layer, METHOD)
    context.log.info(f"model_pass: {engine.method.guided} for {len(classes)} classes, layer {info.gradcam_layer} "
                     f"({engine.layer_size[0]}x{engine.layer_size[1]})")
    with var.staging(SALIENCY_MAPS) as staged:
        y_pred = saliency.write_maps(staged, engine, images, batch_size, report, positions)
        staged.put("images", names)
        staged.put("meta", {"class_names": classes, "layer": info.gradcam_layer, "device": device,
                            "model_sha256": digest, "method": METHOD})
        if positions is not None:
            shards_lib.describe(staged, {"val": positions}, arrays={"gradcam": ("val", 1), "guided_backprop": ("val", 0)},
                                tables={"images": "val"})
    return y_pred, staged
