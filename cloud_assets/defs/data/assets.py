"""Data assets: labels, split, image cache, masks, dark images. None depends on the model."""

import os

import dagster as dg
import numpy as np
import pandas as pd

from cloud_assets.constants import ARRAY_BATCH
from cloud_assets.plumbing import checks
from cloud_assets.plumbing.sharding import Shard, Sharding, check_count
from cloud_assets.plumbing.metadata import md_table, progress_logger
from cloud_assets.defs.resources import DatasetResource, VarDir
from cloud_assets.lib import files
from cloud_assets.lib.data import dark, images, labels, rle
from cloud_assets.lib.data.labels import DatasetError, Problem
from cloud_assets.lib.progress import Progress
from cloud_assets.lib.data.dark import DarkImageCounts
from cloud_assets.lib.data.images import ImageCache
from cloud_assets.lib.data.labels import LabelTable, TrainValSplit
from cloud_assets.lib.data.rle import ValMasks
from cloud_assets.lib.store import Bundle, release
from cloud_assets.settings import Settings

LABEL_CHECKS = [
    checks.spec("label_table", "train_csv_schema", "train.csv has Image_Label,EncodedPixels; labels are "
                "'<image>_<class>' with a configured class, each once."),
    checks.spec("label_table", "rle_valid", "Every EncodedPixels is sorted, non-overlapping 'start length' "
                "pairs inside the image."),
    checks.spec("label_table", "dataset_complete", "Every image of train.csv has a row per class, every JPEG of "
                "train_images/ is in train.csv, and test_images/ has JPEGs (else the audit runs on what there is).",
                blocking=False),
]
IMAGE_CHECKS = [
    checks.spec("image_cache", "images_readable", "Every labelled and test image exists and is a complete JPEG."),
    checks.spec("image_cache", "image_size", "Every image has the dataset's size (the masks' RLE shape).",
                blocking=False),
    checks.spec("image_cache", "image_color", "Every image is a 3-channel color JPEG (gray and CMYK ones are "
                "read as BGR).", blocking=False),
]


SPLITS = ("train", "val", "test")


def _split_names(shard: Shard, dataset: DatasetResource, train_val_split: Bundle) -> dict:
    """split -> image names, in the unsharded order (read once per step)."""
    def read():
        split = TrainValSplit(train_val_split).split
        check_count(shard.count, len(split))
        return {**{s: list(split.loc[split["split"] == s, "image"]) for s in ("train", "val")},
                "test": dataset.test_images()}
    return shard.once("split names", read)


def _image_problems(context, shard: Shard, dataset: DatasetResource, var: VarDir, train_val_split: Bundle):
    paths = [dataset.image_dir(s) / n for s, names in _split_names(shard, dataset, train_val_split).items()
             for n in shard.select(names, s)]
    progress = Progress(len(paths), progress_logger(context, f"image_cache checks{shard.where}"))
    expected, problems = shard.once("original shape", dataset.original_shape), []
    for p in paths:
        problems += images.check_image(p, expected)
        progress.advance()
    return problems


def _image_cache_summary(facts: list, seconds: float) -> dict:
    counts = {s: sum(f[s] for f in facts) for s in SPLITS}
    h, w = facts[0]["size"]
    return {"result": {**{f"{s}_images": n for s, n in counts.items()}, "shape": f"(n, {h}, {w}, 3) uint8 BGR",
                       "images_per_second": round(sum(counts.values()) / max(seconds, 1e-9), 1),
                       "original_shape": "{}x{}".format(*facts[0]["original"])}}


def _val_masks_summary(facts: list, seconds: float) -> dict:
    n, classes, (h, w) = sum(f["images"] for f in facts), facts[0]["classes"], facts[0]["size"]
    per_class = pd.DataFrame({"class": classes, "images_with_mask": sum(f["with_mask"] for f in facts),
                              "mean_cover": np.round(sum(f["cover"] for f in facts) / max(n * h * w, 1), 3)})
    return {"result": {"shape": f"({len(classes)}, {n}, {h}, {w})", "dtype": "uint8", "per_class": md_table(per_class)}}


def build(settings: Settings, sharding: Sharding) -> list:
    """The data assets, partitioned and checked as `settings` says."""
    @dg.observable_source_asset(group_name="data")
    def raw_data(dataset: DatasetResource):
        """The dataset folder as the assets read it: train.csv's bytes, the files of train_images/ and
        test_images/ (names, sizes, modification times) and the settings that say how it is read and
        partitioned (a changed shard or fold count reuses partition keys, which Dagster's staleness alone
        would take as up to date); what reads it is stale when this data version changes (make run
        materializes only what is stale)."""
        root = dataset.root
        version = files.folder_version(root, ["train.csv"], ["train_images", "test_images"], {
            "classes": dataset.class_names, "input_size": dataset.input_size,
            "image_size": [dataset.image_height, dataset.image_width], "audit_predictions": dataset.audit_predictions,
            "shards": settings.shards, "audit_folds": settings.audit_folds})
        return dg.ObserveResult(data_version=dg.DataVersion(version), metadata={
            "path": dg.MetadataValue.path(str(root.resolve())),
            "train_images": sum(1 for _ in dataset.image_dir("train").glob("*")), "test_images": len(dataset.test_images())})

    @dg.asset(group_name="data", check_specs=LABEL_CHECKS, deps=[raw_data], **sharding.whole)
    def label_table(context: dg.AssetExecutionContext, dataset: DatasetResource):
        """One row per image of train.csv (an image whose rows are all empty is kept, with no class): its
        classes and a one-hot vector in the model's class order."""
        path = dataset.train_csv
        shape = dataset.original_shape()
        try:
            rows = labels.read_train_csv(path)
            problems = labels.check_rows(rows, path, dataset.class_names, shape)
        except DatasetError as e:
            problems = [Problem("train_csv_schema", str(path), str(e).removeprefix(f"{path}: "))]
        else:
            train_dir, test_dir = dataset.image_dir("train"), dataset.image_dir("test")
            left_out = labels.check_complete(rows, path, dataset.class_names, train_dir, images.jpeg_names(train_dir),
                                             test_dir, dataset.test_images())
            for p in left_out[:checks.MAX_LISTED]:
                context.log.warning(f"label_table: {p}")
            problems += left_out
        yield from checks.results(LABEL_CHECKS, problems)
        checks.raise_blocking(LABEL_CHECKS, problems)

        table = labels.label_table(rows, dataset.class_names)
        check_count(sharding.count, len(table))
        freq = pd.DataFrame({"class": dataset.class_names,
                             "images": [int(table[c].sum()) for c in dataset.class_names]})
        per_image = table["n_labels"].value_counts().sort_index().rename_axis("labels").reset_index(name="images")
        context.log.info(f"label_table: {len(table)} images, {int(table[dataset.class_names].to_numpy().sum())} labels")
        yield dg.Output(
            LabelTable.of(labels=table, rows=rows[["Image_Label", "EncodedPixels"]],
                          meta={"class_names": dataset.class_names, "original_shape": shape}),
            metadata={"images": len(table), "rows": len(rows), "class_frequencies": md_table(freq),
                      "labels_per_image": md_table(per_image)})

    @dg.asset(group_name="data", **sharding.whole)
    def train_val_split(label_table: Bundle):
        """The notebook's split: stratified by label combination, test_size 0.2, random_state 10."""
        table = LabelTable(label_table).labels
        train, val = labels.stratified_split(table)
        split = pd.DataFrame({"image": train + val, "split": ["train"] * len(train) + ["val"] * len(val)})
        return dg.Output(TrainValSplit.of(split=split), metadata={"train": len(train), "val": len(val)})

    @sharding.per_image(dg.asset, value_types={"result": ImageCache}, summarize=_image_cache_summary,
                        check=(IMAGE_CHECKS, _image_problems), group_name="data", check_specs=IMAGE_CHECKS,
                        code_version="2", deps=[raw_data])
    def image_cache(context: dg.AssetExecutionContext, shard: Shard, dataset: DatasetResource, var: VarDir,
                    train_val_split: Bundle):
        """Every image decoded once, resized (INTER_LINEAR) to the model input, uint8 BGR, per split;
        with each image's black fraction (the share of pixels whose channel 0 is 0)."""
        h, w = dataset.input_shape
        counts = {}
        with var.staging(context.asset_key) as staged:
            for s, names in _split_names(shard, dataset, train_val_split).items():
                ns = shard.select(names, s)
                out = ImageCache.images_part(s).new(staged, (len(ns), h, w, 3), np.uint8)
                images.cache_images([dataset.image_dir(s) / n for n in ns], out, (h, w),
                                    progress_logger(context, f"image_cache {s}{shard.where}"))
                out.flush()
                ImageCache.names_part(s).put(staged, pd.DataFrame({"image": ns, "black_fraction": dark.black_fraction(out)}))
                counts[s] = len(ns)
        return {"result": staged}, {**counts, "size": (h, w), "original": shard.once("original shape",
                                                                                     dataset.original_shape)}

    @sharding.per_image(dg.asset, value_types={"result": ValMasks}, summarize=_val_masks_summary,
                        group_name="data")
    def val_masks(context: dg.AssetExecutionContext, shard: Shard, dataset: DatasetResource, var: VarDir,
                  label_table: Bundle, train_val_split: Bundle):
        """uint8 `(classes, val images, h, w)` 0/1 masks, bit-identical to the notebook's `make_mask`."""
        encoded = shard.once("rows", lambda: LabelTable(label_table).rows.set_index("Image_Label")["EncodedPixels"])
        split = shard.once("split", lambda: TrainValSplit(train_val_split).split)
        check_count(shard.count, len(split))
        shape = tuple(LabelTable(label_table).meta["original_shape"])
        classes, chunk = dataset.class_names, ARRAY_BATCH
        with_mask, cover = np.zeros(len(classes), np.int64), np.zeros(len(classes))
        val = shard.select(list(split.loc[split["split"] == "val", "image"]), "val")
        with var.staging(context.asset_key) as staged:
            masks = ValMasks.masks.new(staged, (len(classes), len(val), *dataset.input_shape), np.uint8)
            for c, cls in enumerate(classes):
                rles = encoded.reindex([f"{img}_{cls}" for img in val]).tolist()
                for start in range(0, len(val), chunk):
                    part = rle.decode_resized(rles[start:start + chunk], shape, dataset.input_shape,
                                              workers=os.cpu_count() or 1)
                    masks[c, start:start + len(part)] = part
                    with_mask[c] += int(part.any(axis=(1, 2)).sum())
                    cover[c] += float(part.sum())
                    release(masks)
            masks.flush()
            ValMasks.images.put(staged, pd.DataFrame({"image": val}))
        context.log.info(f"val_masks{shard.where}: {len(val)} images")
        return {"result": staged}, {"images": len(val), "classes": classes, "size": dataset.input_shape,
                                    "with_mask": with_mask, "cover": cover}

    @dg.asset(group_name="data", code_version="2", **sharding.whole)
    def dark_image_counts(label_table: Bundle, image_cache, dataset: DatasetResource):
        """Per image black fraction; per class dark-image counts over train+val; the test count."""
        table = LabelTable(label_table).labels.set_index("image")
        frames = []
        pixels = int(np.prod(dataset.input_shape))
        for s in ("train", "val", "test"):
            names = ImageCache(image_cache).names(s)
            frames.append(pd.DataFrame({"image": names["image"], "split": s, "black_fraction": names["black_fraction"],
                                        "dark": dark.is_dark(names["black_fraction"].to_numpy(), pixels)}))
        per_image = pd.concat(frames, ignore_index=True)
        labelled = per_image[per_image["split"] != "test"]
        onehot = table.loc[labelled["image"], dataset.class_names].to_numpy()
        per_class = pd.DataFrame({"class": dataset.class_names,
                                  "dark_images": dark.class_counts(labelled["dark"].to_numpy(), onehot)})
        per_split = per_image.groupby("split", sort=False)["dark"].sum().astype(int).reset_index(name="dark_images")
        return dg.Output(DarkImageCounts.of(images=per_image, per_class=per_class, per_split=per_split),
                         metadata={"per_class": md_table(per_class), "per_split": md_table(per_split),
                                   "test_dark": int(per_image.loc[per_image["split"] == "test", "dark"].sum())})

    return [raw_data, label_table, train_val_split, image_cache, val_masks, dark_image_counts]
