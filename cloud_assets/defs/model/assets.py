"""The model file as a versioned input, and the predictions on every validation image."""
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from cloud_assets.defs.metadata import md_table, progress_logger
from cloud_assets.defs.automation.conditions import FOLLOWS_MODEL
from cloud_assets.defs.gpu import GPU_OP_TAGS, GPU_POOL
from cloud_assets.defs.resources import DatasetResource, ModelResource, VarDir
from cloud_assets.lib import model as model_lib
from cloud_assets.lib import saliency
from cloud_assets.lib import thresholds
from cloud_assets.lib.store import Bundle, release


@dg.observable_source_asset(group_name="model")
def model_file(model: ModelResource):
    """The classifier file at CLOUD_ASSETS_MODEL_PATH; its data version is the file's SHA-256."""
    path = model_lib.check_path(model.path)
    digest = model_lib.sha256(path)
    stat = path.stat()
    return dg.ObserveResult(data_version=dg.DataVersion(digest), metadata={
        "path": dg.MetadataValue.path(str(path.resolve())), "sha256": digest,
        "size_mb": round(stat.st_size / 2 ** 20, 2),
        "modified": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stat.st_mtime))})


@dg.asset(group_name="model", pool=GPU_POOL, op_tags=GPU_OP_TAGS, deps=[model_file],
          automation_condition=FOLLOWS_MODEL, code_version="1")
def val_predictions(context: dg.AssetExecutionContext, model: ModelResource, dataset: DatasetResource,
                    image_cache: Bundle, label_table: Bundle):
    """Probabilities and ground truth for every validation image (the seed drops the last partial batch)."""
    device = model_lib.configure_tensorflow()
    context.log.info(f"val_predictions: TensorFlow computes on {device}")
    digest = model_lib.sha256(Path(model.path))
    net, info = model.load(dataset)
    context.log.info(f"val_predictions: loaded {model.path} ({info.framework}, sha256 {digest[:12]})")
    names = image_cache.table("val_names")
    classes = list(dataset.class_names)
    y_true = label_table.table("labels").set_index("image").loc[names["image"], classes].to_numpy().astype(np.int8)
    y_pred = model_lib.predict(net, image_cache.array("val"), model.batch_size,
                               progress_logger(context, "val_predictions"))
    aucs = thresholds.pr_auc(y_true, y_pred)
    table = pd.DataFrame({"class": classes, "pr_auc": np.round(aucs, 4), "positives": y_true.sum(0)})
    summary = {"model_path": str(Path(model.path).resolve()), "model_sha256": digest, "device": device,
               "framework": info.framework, "gradcam_layer": info.gradcam_layer,
               "pr_auc": dict(zip(classes, map(float, aucs)))}
    return dg.Output(
        {"probabilities": y_pred, "y_true": y_true, "images": names, "summary": summary},
        metadata={"images": len(y_pred), "model_sha256": digest, "device": device,
                  "mean_pr_auc": float(np.nanmean(aucs)), "pr_auc": md_table(table),
                  **{f"pr_auc_{c}": float(a) for c, a in zip(classes, aucs)}})


@dg.asset(group_name="model", pool=GPU_POOL, op_tags=GPU_OP_TAGS, deps=[model_file],
          automation_condition=FOLLOWS_MODEL, code_version="1")
def saliency_maps(context: dg.AssetExecutionContext, model: ModelResource, dataset: DatasetResource,
                  var: VarDir, image_cache: Bundle):
    """Grad-CAM `(classes, val images, H, W)` and guided backprop `(val images, H, W)`, float16.

    Guided Grad-CAM is their product (`lib.saliency.combine`). float16 keeps three
    significant digits at every scale: the maps are mostly small values whose sums (attention
    shares) uint8's fixed 1/255 step would round away; it halves float32's size. Written batch by
    batch into memory-mapped files, so memory does not grow with the number of images.
    """
    device = model_lib.configure_tensorflow()
    net, info = model.load(dataset)
    images = image_cache.array("val")
    n, h, w = images.shape[:3]
    classes = len(dataset.class_names)
    context.log.info(f"saliency_maps: {n} images x {classes} classes on {device}, layer {info.gradcam_layer}")
    with var.staging(context) as staged:
        cams = staged.new_array("gradcam", (classes, n, h, w), np.float16)
        guided = staged.new_array("guided_backprop", (n, h, w), np.float16)
        start = time.monotonic()
        for i, gb, cam, _ in saliency.iter_batches(net, images, info.gradcam_layer, model.batch_size,
                                                    progress_logger(context, "saliency_maps")):
            guided[i:i + len(gb)] = gb
            cams[:, i:i + len(gb)] = cam
            release(guided, cams)
        secs = time.monotonic() - start
        cams.flush()
        guided.flush()
        staged.put("images", image_cache.table("val_names"))
        staged.put("meta", {"class_names": list(dataset.class_names), "layer": info.gradcam_layer,
                            "device": device, "model_sha256": model_lib.sha256(Path(model.path))})
    return dg.Output(staged, metadata={
        "gradcam_shape": str(cams.shape), "guided_backprop_shape": str(guided.shape), "dtype": "float16",
        "storage_mb": round(staged.nbytes() / 2 ** 20, 1), "seconds_per_image": round(secs / max(n, 1), 4),
        "device": device, "layer": info.gradcam_layer})

