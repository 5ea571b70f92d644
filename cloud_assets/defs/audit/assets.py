"""The audit of every label: every image of train.csv in one of K folds, one audit model per fold
trained on the other folds, then trained further on their labels as its first round's confident
suspicions correct them (the second round), each image's out-of-sample predictions from the model
that never saw it, each label's evidence drawn from them, and every label ranked (`label_issues`, which adds the
classifier's evidence where it predicted the image out of sample). The fold models do not depend on
the classifier being audited: a new model file re-runs only the ranking; a change of train.csv or
the images re-runs the rest."""
import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from cloud_assets.constants import ISSUES_LISTED, ISSUES_SHOWN, METADATA_ROWS
from cloud_assets.defs.automation.conditions import FOLLOWS_MODEL
from cloud_assets.plumbing.sharding import Sharding
from cloud_assets.plumbing.gpu import GPU_OP_TAGS, GPU_POOL
from cloud_assets.plumbing.metadata import md_table, progress_logger
from cloud_assets.defs.resources import DatasetResource, VarDir
from cloud_assets.lib.audit import network as audit, folds as folds_lib
from cloud_assets.lib.classifier import model as model_lib
from cloud_assets.lib.data import rle
from cloud_assets.lib.audit import evidence as audit_evidence_lib, relabel as relabel_lib, sharpen as sharpen_lib
from cloud_assets.lib.audit.relabel import AuditRelabels
from cloud_assets.lib.progress import Progress
from cloud_assets.lib.audit.network import AuditInputs, AuditModel, AuditPredictions, KeptModels
from cloud_assets.lib.audit import label_issues as label_issues_lib
from cloud_assets.lib.audit.evidence import AuditEvidence
from cloud_assets.lib.audit.label_issues import LabelIssues
from cloud_assets.lib.audit.folds import AuditFolds
from cloud_assets.lib.data.images import ImageCache
from cloud_assets.lib.classifier.model import ValPredictions
from cloud_assets.lib.data.labels import LabelTable, TrainValSplit
from cloud_assets.lib.saliency.attention import MaskAttention
from cloud_assets.lib.store import Bundle
from cloud_assets.settings import Settings


def code_version(settings: Settings, with_class_network: bool = True) -> str:
    """The audit assets' code version: a new size, profile, profile definition (its digest: a release
    that changes a profile's networks or training re-runs it) or class network re-runs them. Without the
    class network: the U-Nets' part, which names their kept models beside their training settings'
    digest, so without the profile's digest (a change of its class network's settings alone keeps them)."""
    size, profile, classes = settings.audit_shape, settings.profile, settings.class_network
    unets = f"6-{size[0]}x{size[1]}-{profile}"
    if not with_class_network:
        return unets
    return (f"{unets}-{audit.config_digest(audit.PROFILES[profile])[:6]}"
            + ("" if classes == "unet" else f"-{classes}"))


MODELS = "audit-models"  # under CLOUD_ASSETS_VAR_DIR: every fold model trained, by its training set


class AuditTraining(dg.Config):
    """How the fold models train (`lib.audit.network.TrainingConfig`), at the profile's size and widths
    (CLOUD_ASSETS_AUDIT_PROFILE, CLOUD_ASSETS_AUDIT_SIZE); unset, the profile's, which fit the demo's
    budget on its `fast` profile."""
    epochs: int | None = None
    patience: int | None = None
    batch_size: int = 32
    learning_rate: float = 2e-3
    seed: int = 0
    class_epochs: int | None = None   # the class network's (CLOUD_ASSETS_AUDIT_CLASS_NETWORK=densenet); unset: the profile's
    refit_epochs: int | None = None   # the second round's (`audit_predictions`); unset: the profile's

    def training(self, profile: str, size: tuple[int, int]) -> audit.TrainingConfig:
        p = audit.PROFILES[profile]
        return audit.TrainingConfig(size=size, widths=p.widths, epochs=self.epochs or p.epochs,
                                    patience=p.patience if self.patience is None else self.patience,
                                    batch_size=self.batch_size, learning_rate=self.learning_rate, decay=p.decay,
                                    flips=p.flips, seed=self.seed, texture=p.texture, dice_loss=p.dice_loss)

    def refit(self, profile: str, size: tuple[int, int]) -> audit.TrainingConfig:
        """The second round's: the U-Net's training (`training`) for the profile's `refit_epochs` from its
        `refit_rate` (`lib.audit.network.Trainer`)."""
        p = audit.PROFILES[profile]
        return dataclasses.replace(self.training(profile, size), epochs=self.refit_epochs or p.refit_epochs,
                                   learning_rate=p.refit_rate, patience=0)

    def class_training(self, profile: str, size: tuple[int, int]) -> audit.ClassConfig:
        return audit.ClassConfig(size=size, epochs=self.class_epochs or audit.PROFILES[profile].class_epochs,
                                 batch_size=self.batch_size, seed=self.seed)


def build(settings: Settings, sharding: Sharding) -> list:
    """The fold audit, with `settings`' folds, profile and size."""
    fold_count, profile, size = settings.audit_folds, settings.profile, settings.audit_shape
    widths = audit.PROFILES[profile].widths
    class_network = settings.class_network == "densenet"
    fold_keys = settings.fold_keys
    # every fold in one step on one machine; one fold per run where runs spread over GPU workers or pods
    fold_partitions: dict[str, Any] = {"partitions_def": dg.StaticPartitionsDefinition(fold_keys),
                                       "backfill_policy": dg.BackfillPolicy.multi_run(1) if sharding.spread
                                       else dg.BackfillPolicy.single_run()}
    code, unet_code = code_version(settings), code_version(settings, with_class_network=False)

    @dg.asset(group_name="audit", code_version="1", **sharding.whole)
    def audit_folds(context: dg.AssetExecutionContext, dataset: DatasetResource, var: VarDir, label_table: Bundle):
        """Every image of train.csv in one of CLOUD_ASSETS_AUDIT_FOLDS folds, stratified by its label
        combination (`lib.audit.folds`); an image keeps its fold across runs, so that a corrected label
        retrains the other folds' models only. With each fold's training digest: what its model trains on."""
        table = LabelTable(label_table).labels
        classes = dataset.class_names
        combos = folds_lib.combination(table[classes].to_numpy(), classes)
        previous = None
        if var.store.stored("audit_folds"):
            before = AuditFolds(var.store.get("audit_folds"))
            if before.meta["folds"] == fold_count:
                previous = dict(zip(before.folds["image"], before.folds["fold"]))
        assigned = folds_lib.assign(table["image"], combos, fold_count, previous)
        rows = LabelTable(label_table).rows
        parts = rows["Image_Label"].str.rpartition("_")
        masks = pd.DataFrame({"image": parts[0], "class": parts[2], "rle": rows["EncodedPixels"]}).pivot(
            index="image", columns="class", values="rle").reindex(index=table["image"], columns=classes).fillna("")
        out = pd.DataFrame({"image": table["image"], "fold": assigned, "combination": combos})
        with_masks = pd.concat([out, masks.reset_index(drop=True)], axis=1)
        digests = {key: folds_lib.training_digest(with_masks, f, classes) for f, key in enumerate(fold_keys)}
        counts = out.pivot_table(index="combination", columns="fold", values="image", aggfunc="count", fill_value=0)
        kept = sum(1 for i in table["image"] if previous and i in previous)
        context.log.info(f"audit_folds: {len(out)} images in {fold_count} folds ({kept} kept their fold)")
        return dg.Output(AuditFolds.of(folds=out, digests=digests, meta={"folds": fold_count}), metadata={
            "folds": fold_count, "images": len(out), "kept_their_fold": kept,
            "images_per_fold": md_table(out.groupby("fold").size().rename("images").reset_index()),
            "combinations_per_fold": md_table(counts.rename(columns=str).reset_index())})

    @dg.asset(group_name="audit", code_version=code, **sharding.whole)
    def audit_inputs(context: dg.AssetExecutionContext, dataset: DatasetResource, var: VarDir, label_table: Bundle,
                     image_cache):
        """What the audit models learn from, for every image of train.csv in `audit_folds`' order: uint8
        `images (n, h, w, 3)` BGR at CLOUD_ASSETS_AUDIT_SIZE (from the image cache) and their `texture`
        energy at that size at the profile's scales, measured on the image cache's pixels; uint8
        `masks (n, h, w, classes)` decoded from train.csv at that size, and `labels (n, classes)`; with the
        class network densenet, uint8 `class_images` at its size (the profile's share of the image cache's)."""
        labelled, cache = LabelTable(label_table), ImageCache(image_cache)
        table = labelled.labels
        classes, shape = dataset.class_names, tuple(labelled.meta["original_shape"])
        where = {}
        for split in ("train", "val"):
            names = cache.names(split)["image"]
            where.update({name: (split, k) for k, name in enumerate(names)})
        missing = [i for i in table["image"] if i not in where]
        if missing:
            raise ValueError(f"audit_inputs: {len(missing)} images of train.csv are not in image_cache (first: "
                             f"{missing[0]}); materialize image_cache again")
        encoded = labelled.rows.set_index("Image_Label")["EncodedPixels"]
        n, (h, w) = len(table), size
        progress = Progress(n, progress_logger(context, "audit_inputs"))
        split_images = {s: cache.images(s) for s in ("train", "val")}
        class_size = audit.PROFILES[profile].class_size(split_images["train"].shape[1:3])
        scales = audit.PROFILES[profile].texture
        with var.staging(context.asset_key) as staged:
            images = AuditInputs.images.new(staged, (n, h, w, 3), np.uint8)
            texture = AuditInputs.texture.new(staged, (n, h, w, len(scales)), np.uint8) if scales else None
            masks = AuditInputs.masks.new(staged, (n, h, w, len(classes)), np.uint8)
            class_images = AuditInputs.class_images.new(staged, (n, *class_size, 3), np.uint8) if class_network else None
            for start in range(0, n, 256):
                names = list(table["image"][start:start + 256])
                batch = np.stack([split_images[where[i][0]][where[i][1]] for i in names])
                images[start:start + len(names)] = audit.resize_images(batch, size)
                if texture is not None:
                    texture[start:start + len(names)] = audit.texture(batch, size, scales)
                if class_images is not None:
                    class_images[start:start + len(names)] = audit.resize_images(batch, class_size)
                for c, cls in enumerate(classes):
                    masks[start:start + len(names), ..., c] = rle.decode_resized(
                        [encoded.get(f"{i}_{cls}", "") for i in names], shape, size)
                progress.advance(len(names))
            for array in (images, texture, masks, class_images):
                if array is not None:
                    array.flush()
            AuditInputs.labels.put(staged, table[classes].to_numpy(np.uint8))
            AuditInputs.images_table.put(staged, table[["image"]])
        return dg.Output(staged, metadata={"images": n, "size": f"{h}x{w}", "classes": len(classes),
                                           "texture_scales": ", ".join(f"{v:g}" for v in scales) or "none",
                                           "class_network_size": "x".join(map(str, class_size)) if class_network
                                           else "none (the U-Net's head)"})

    @dg.asset(group_name="audit", code_version=code, pool=GPU_POOL, op_tags=GPU_OP_TAGS, **fold_partitions)
    def audit_models(context: dg.AssetExecutionContext, config: AuditTraining, dataset: DatasetResource, var: VarDir,
                     audit_inputs: Bundle, audit_folds: Bundle):
        """Per fold, a U-Net with an image-level head (`lib.audit.network`) trained from scratch on the images and
        current labels of the other folds; with CLOUD_ASSETS_AUDIT_CLASS_NETWORK=densenet, a class network
        beside it, trained on the same images at its own size. A model is kept under
        CLOUD_ASSETS_VAR_DIR/audit-models/ by its training set's digests (labels, masks and pixels) and
        settings as soon as it is trained: a run killed after some folds, or a label or image changed in one
        fold, trains only the folds whose training set has no model yet; a changed class network keeps the
        U-Nets. With CLOUD_ASSETS_AUDIT_PREDICTIONS nothing is trained: the predictions made elsewhere take
        the models' place."""
        # the ranking reads trees fitted for this profile and class network: none, and nothing is trained for it
        for first_round in (True, False):
            label_issues_lib.load_trees(label_issues_lib.trees_path(profile, settings.class_network, first_round))
        out, training = {}, config.training(profile, size)
        assignment = AuditFolds(audit_folds)
        folds, digests = assignment.folds, assignment.digests
        inputs = AuditInputs(audit_inputs)
        masks, labels = inputs.masks, inputs.labels
        if class_network and not inputs.has_class_images:
            raise ValueError("audit_models: audit_inputs holds no images at the class network's size (it was "
                             "materialized without CLOUD_ASSETS_AUDIT_CLASS_NETWORK=densenet); materialize "
                             "audit_inputs again")
        if inputs.texture_channels != len(training.texture):
            raise ValueError(f"audit_models: audit_inputs holds {inputs.texture_channels} texture channels, the "
                             f"{profile} profile's U-Net reads {len(training.texture)}; materialize audit_inputs again")
        class_training = config.class_training(profile, inputs.class_images.shape[1:3]) if class_network else None
        kept_models = KeptModels(Path(var.path) / MODELS)
        names = folds["image"].to_numpy()
        for key in context.partition_keys:
            fold = fold_keys.index(key)
            digest = digests[key]
            train_rows, held_out = folds_lib.training_set(folds, fold)
            meta = {"fold": key, "training_digest": digest, "training_images": len(train_rows),
                    "held_out_images": len(held_out), "profile": profile, "size": list(size), "widths": list(widths),
                    "texture": list(training.texture), "class_network": settings.class_network,
                    "training_config": audit.config_digest(training)}
            if dataset.audit_predictions:
                context.log.info(f"audit_models fold {key}: nothing trained; its predictions come from "
                                 f"{dataset.audit_predictions} (CLOUD_ASSETS_AUDIT_PREDICTIONS)")
                with var.staging(dg.AssetKey(f"audit_models@{key}")) as staged:
                    AuditModel.meta.put(staged, {**meta, "imported": dataset.audit_predictions})
                out[key] = staged
                continue

            def log(message: str, key: str = key) -> None:
                context.log.info(f"audit_models fold {key}: {message}")

            train_images = inputs.unet_images(train_rows)  # read once: for the digest and, when trained, for training
            pixels = audit.images_digest(train_images, names[train_rows])
            kept = kept_models.folder(digest, pixels, unet_code, training)
            meta["images_digest"] = pixels
            if KeptModels.has(kept):
                log(f"a U-Net of this training set and settings exists; keeping {kept}")
            else:
                log(f"training a U-Net on {len(train_rows)} images of the other folds ({model_lib.configure_device()})")
                trainer = audit.shared_trainer(labels.shape[1], training)  # the folds share its traced steps
                KeptModels.keep(kept, *trainer.train(train_images, masks[train_rows], labels[train_rows], log=log))
            kept_classes = None
            if class_training is not None:
                class_images = inputs.class_images[train_rows]
                kept_classes = kept_models.folder(digest, audit.images_digest(class_images, names[train_rows]),
                                                  f"{unet_code}-densenet", class_training)
                if KeptModels.has(kept_classes):
                    log(f"a class network of this training set and settings exists; keeping {kept_classes}")
                else:
                    h, w = class_training.size
                    log(f"training a class network at {h}x{w} on {len(train_rows)} images of the other folds")
                    class_trainer = audit.shared_class_trainer(labels.shape[1], class_training)
                    KeptModels.keep(kept_classes, *class_trainer.train(class_images, labels[train_rows], log=log))
                meta.update(class_size=list(class_training.size), class_epochs=len(KeptModels.history(kept_classes)))
            with var.staging(dg.AssetKey(f"audit_models@{key}")) as staged:
                shutil.copy(kept / AuditModel.FILE, staged.path / AuditModel.FILE)
                history = KeptModels.history(kept)
                meta["epochs"] = len(history)
                if kept_classes is not None:
                    shutil.copy(kept_classes / AuditModel.FILE, staged.path / AuditModel.CLASS_FILE)
                    history = pd.concat([history.assign(network="unet"),
                                         KeptModels.history(kept_classes).assign(network="densenet")], ignore_index=True)
                AuditModel.history.put(staged, history)
                AuditModel.meta.put(staged, meta)
            out[key] = staged
        return dg.Output(out, metadata={"folds": len(out), "class_network": settings.class_network})

    first_trees = label_issues_lib.trees_path(profile, first_round=True)

    @dg.asset(group_name="audit", code_version=f"{code}-{label_issues_lib.trees_version(first_trees)}", pool=GPU_POOL,
              op_tags=GPU_OP_TAGS, **sharding.whole)
    def audit_relabels(context: dg.AssetExecutionContext, dataset: DatasetResource, audit_models, audit_inputs: Bundle,
                       audit_folds: Bundle, label_table: Bundle, train_val_split: Bundle):
        """The second round's labels (`lib.audit.relabel`): each fold's images predicted by its first-round
        U-Net (`audit_models`), every label's evidence from those predictions, ranked by the first round's
        trees, and each label suspected with a score of at least `CONFIDENT` (0.5) corrected as its accepted
        proposal would correct it; the labels at the audit size, in `audit_folds`' order, with the first
        round's evidence and the labels corrected. train.csv is left as it is. With
        CLOUD_ASSETS_AUDIT_PREDICTIONS, train.csv's labels: there are no models to train further."""
        inputs, folds, classes = AuditInputs(audit_inputs), AuditFolds(audit_folds).folds, dataset.class_names
        labelled = LabelTable(label_table)
        shape, rows = tuple(labelled.meta["original_shape"]), labelled.rows[["Image_Label", "EncodedPixels"]]
        frames, models = [], audit.FoldModels()
        for key in fold_keys if not dataset.audit_predictions else []:
            _, held_out = folds_lib.training_set(folds, fold_keys.index(key))
            names = list(folds["image"].iloc[held_out])
            probs, pixels = audit.gathered(audit.predict(models(AuditModel(audit_models[key]).model_file),
                                                     inputs.unet_images(held_out)), len(names), len(classes), size)
            frames.append(audit_evidence_lib.evidence(names, classes, inputs.labels[held_out], inputs.masks[held_out],
                                                      probs, pixels))
            context.log.info(f"audit_relabels: fold {key}, {len(names)} images predicted by its first-round U-Net")
        if frames:
            evidence = audit_evidence_lib.joined(frames, classes)
            split = TrainValSplit(train_val_split).split
            corrected, suspects, left_out = relabel_lib.relabel(
                evidence, dict(zip(split["image"], split["split"])),
                label_issues_lib.load_trees(first_trees), rows, shape,
                Path(dataset.data_dir) / "train.csv")
            masks = relabel_lib.corrected_masks(inputs.masks, folds["image"], classes, rows, corrected, shape, size)
        else:
            evidence, suspects, left_out = pd.DataFrame(columns=audit_evidence_lib.COLUMNS), pd.DataFrame(), 0
            masks = np.asarray(inputs.masks)
        suspects = suspects.reindex(columns=["image", "class", "kind", "other_class", "score"])
        kinds = suspects["kind"].value_counts()
        context.log.info(f"audit_relabels: {len(suspects)} labels corrected for the second round "
                         f"({', '.join(f'{n} {k}' for k, n in kinds.items()) or 'none'}); {left_out} left out")
        meta = {"suspects": len(suspects), "left_out": left_out, "imported": dataset.audit_predictions or None}
        return dg.Output(AuditRelabels.of(masks=masks, labels=(masks.max(axis=(1, 2)) > 0).astype(np.uint8),
                                          evidence=evidence, suspects=suspects, meta=meta),
                         metadata={"corrected": len(suspects), "left_out": left_out,
                                   "corrected_per_kind": md_table(kinds.rename("labels").reset_index())})

    @dg.asset(group_name="audit", code_version=f"{code}-4", pool=GPU_POOL, op_tags=GPU_OP_TAGS, **fold_partitions)
    def audit_predictions(context: dg.AssetExecutionContext, config: AuditTraining, var: VarDir, audit_models,
                          audit_relabels: Bundle, audit_inputs: Bundle, audit_folds: Bundle):
        """Per fold, the second round (`lib.audit.relabel`): its first-round U-Net trained further on the
        other folds' images and the labels `audit_relabels` gives them (`lib.audit.network.Trainer`, the
        profile's `refit_epochs`), kept under CLOUD_ASSETS_VAR_DIR/audit-models/ by that training set and the
        model it starts from; then, for each of the fold's images, from the models that never saw it: each
        class's probability `(images, classes)` float32 (the class network's with
        CLOUD_ASSETS_AUDIT_CLASS_NETWORK=densenet, else the U-Net head's) and each pixel's `(classes, images,
        h, w)` float16 at the audit size (the U-Net's head and pixels averaged over the image's flips,
        `lib.audit.network.predict`), written batch by batch (memory flat in the number of images); with the
        class network, its Guided Grad-CAM too (`lib.audit.network.class_maps`). With
        CLOUD_ASSETS_AUDIT_PREDICTIONS, read from the predictions made elsewhere
        (`lib.audit.network.ImportedPredictions`)."""
        import hashlib

        out, models = {}, audit.FoldModels()
        inputs, relabels = AuditInputs(audit_inputs), AuditRelabels(audit_relabels)
        folds, classes = AuditFolds(audit_folds).folds, inputs.labels.shape[1]
        refit = config.refit(profile, size)
        kept_models = KeptModels(Path(var.path) / MODELS)
        for key in context.partition_keys:
            fold = fold_keys.index(key)
            train_rows, rows = folds_lib.training_set(folds, fold)
            names = list(folds["image"].iloc[rows])
            fold_model = AuditModel(audit_models[key])
            imported, class_probs, meta = fold_model.meta.get("imported"), None, {}
            if imported:
                batches = audit.ImportedPredictions(imported, classes).batches(names, size)
            else:
                masks, labels = relabels.masks[train_rows], relabels.labels[train_rows]
                first = fold_model.meta
                digest = hashlib.sha256("-".join([first["training_digest"], first["images_digest"],
                                                  first["training_config"]]).encode()
                                        + masks.tobytes() + labels.tobytes()).hexdigest()
                kept = kept_models.folder(digest, first["images_digest"], f"{unet_code}-refit", refit)
                corrected = int((masks != inputs.masks[train_rows]).any(axis=(1, 2)).sum())
                if KeptModels.has(kept):
                    context.log.info(f"audit_predictions fold {key}: a second-round U-Net of this training set and "
                                     f"settings exists; keeping {kept}")
                else:
                    import keras

                    context.log.info(f"audit_predictions fold {key}: training its U-Net {refit.epochs} epochs more on "
                                     f"{len(train_rows)} images of the other folds, their labels as the first round "
                                     f"corrects them")
                    def log(message: str, key: str = key) -> None:
                        context.log.info(f"audit_predictions fold {key}: second round: {message}")

                    refiner = audit.shared_trainer(classes, refit)  # the folds share its traced steps
                    KeptModels.keep(kept, *refiner.train(inputs.unet_images(train_rows), masks, labels, log,
                                                         start=keras.saving.load_model(fold_model.model_file,
                                                                                       compile=False)))
                history = KeptModels.history(kept)
                meta = {"refit_epochs": len(history), "refit_seconds": float(history["seconds"].sum()),
                        "refit_images": len(train_rows), "refit_corrected": corrected, "refit_kept": kept.name}
                context.log.info(f"audit_predictions fold {key}: second round on {len(train_rows)} images, {corrected} "
                                 f"of their labels corrected")
                batches = audit.predict(models(kept / AuditModel.FILE), inputs.unet_images(rows))
                if fold_model.meta.get("class_network") == "densenet":
                    class_probs, class_cams, class_guided = audit.class_maps(models(fold_model.class_model_file),
                                                                             inputs.class_images[rows], size)
            start_s = time.monotonic()
            with var.staging(dg.AssetKey(f"audit_predictions@{key}")) as staged:
                if class_probs is not None:
                    AuditPredictions.class_gradcam.put(staged, class_cams)
                    AuditPredictions.class_guided_backprop.put(staged, class_guided)
                probs = AuditPredictions.probabilities.new(staged, (len(rows), classes), np.float32)
                pixels = AuditPredictions.pixels.new(staged, (classes, len(rows), *size), np.float16)
                progress = Progress(len(rows), progress_logger(context, f"audit_predictions fold {key}"))
                for start, p, pix in batches:
                    probs[start:start + len(p)] = p if class_probs is None else class_probs[start:start + len(p)]
                    pixels[:, start:start + len(p)] = pix.transpose(1, 0, 2, 3)
                    progress.advance(len(p))
                probs.flush()
                pixels.flush()
                AuditPredictions.images.put(staged, pd.DataFrame({"image": names}))
                AuditPredictions.meta.put(staged, {"flips": 0 if imported else len(audit.PREDICT_FLIPS), **meta})
            out[key] = staged
            context.log.info(f"audit_predictions fold {key}: {len(rows)} images in {time.monotonic() - start_s:.1f}s")
        return dg.Output(out, metadata={"folds": len(out)})

    @dg.asset(group_name="audit", code_version=f"{code}-12", **sharding.whole)
    def audit_evidence(context: dg.AssetExecutionContext, dataset: DatasetResource, audit_predictions,
                       audit_inputs: Bundle, audit_folds: Bundle):
        """Every (image, class) label of train.csv with the fold audit's out-of-sample evidence
        (`lib.audit.evidence`): the class probability and cleanlab's label quality from the model that
        never saw the image, cleanlab.segmentation's quality of the mask, the predicted mass outside it,
        the mask's share without prediction, the predicted region's box and its overlap with the mask,
        how many regions the prediction has, and with the class network, where its Grad-CAM and Guided
        Grad-CAM fall (`class_cam_*`, `class_ggc_*`); the input of the ranking of every label."""
        folds = AuditFolds(audit_folds).folds
        position = {image: k for k, image in enumerate(folds["image"])}
        inputs, classes = AuditInputs(audit_inputs), dataset.class_names
        labels, masks = inputs.labels, inputs.masks
        frames = []
        for key in fold_keys:
            predictions = AuditPredictions(audit_predictions[key])
            images = list(predictions.images["image"])
            rows = np.array([position[i] for i in images], np.int64)
            frame = audit_evidence_lib.evidence(images, classes, labels[rows], masks[rows], predictions.probabilities,
                                                predictions.pixels)
            if predictions.has_class_maps:
                frame = frame.drop(columns=list(audit_evidence_lib.CLASS_ATTENTION)).merge(
                    audit_evidence_lib.class_attention(images, classes, masks[rows], inputs.images[rows],
                                                       predictions.class_gradcam, predictions.class_guided_backprop),
                    on=["image", "class"], how="left")
            frames.append(frame)
            context.log.info(f"audit_evidence: fold {key}, {len(images)} images")
        table = audit_evidence_lib.joined(frames, classes)
        per_class = table.groupby(["class", "label"], sort=False)[["audit_probability", "mask_quality",
                                                                   "outside_mass", "uncovered"]].mean().round(3)
        lowest = table[table["label"] == 1].nsmallest(10, "mask_quality")[["image", "class", "mask_quality",
                                                                              "outside_mass", "uncovered"]]
        return dg.Output(AuditEvidence.of(evidence=table), metadata={
            "labels": len(table), "labelled": int(table["label"].sum()),
            "mean_per_class_and_label": md_table(per_class.reset_index()),
            "lowest_mask_quality": md_table(lowest.round(3))})

    trees = label_issues_lib.trees_path(settings.profile, settings.class_network)

    @dg.asset(group_name="audit", automation_condition=FOLLOWS_MODEL,
              code_version=f"7-{settings.sharpened}-{label_issues_lib.trees_version(trees)}", **sharding.whole)
    def label_issues(context: dg.AssetExecutionContext, audit_evidence: Bundle, audit_predictions, audit_folds: Bundle,
                     mask_attention, val_predictions, train_val_split: Bundle, image_cache, label_table: Bundle,
                     dataset: DatasetResource):
        """Every (image, class) label of train.csv ranked as a candidate error, most likely first: image,
        class, split, suspected kind, score, each signal (the fold audit's for every label, the
        classifier's where it predicted the image out of sample: the validation split), the proposed
        boxes (the first CLOUD_ASSETS_SHARPENED candidates' drawn from their predictions sharpened by
        their images: `lib.audit.sharpen`; each side refined where the profile's trees hold regressors of
        it: `lib.audit.proposals`);
        cleanlab's class ranking (each class's estimated error rate) and health score on the audit's
        out-of-sample probabilities; and the audit's per-pixel probability of the class for the first
        ISSUES_SHOWN candidates, which the report draws."""
        evidence = AuditEvidence(audit_evidence).evidence
        classes = dataset.class_names
        predictions = ValPredictions(val_predictions)
        classifier = label_issues_lib.classifier_evidence(MaskAttention(mask_attention).shares, predictions.y_true,
                                                          predictions.probabilities)
        split = TrainValSplit(train_val_split).split

        def sharpen(ranking: pd.DataFrame) -> pd.Series:
            return sharpen_lib.sharpened_proposals(
                ranking.head(settings.sharpened), audit_predictions, audit_folds, image_cache, label_table, classes,
                settings.fold_keys, progress_logger(context, "label_issues: proposals sharpened", "candidates"))

        ranked = label_issues_lib.rank(evidence, dict(zip(split["image"], split["split"])), classifier,
                                       label_issues_lib.load_trees(trees), sharpen if settings.sharpened else None)
        wide = evidence.pivot(index="image", columns="class", values=["label", "audit_probability"])
        y_true, y_pred = wide["label"][classes].to_numpy(np.int8), wide["audit_probability"][classes].to_numpy()
        health = label_issues_lib.cleanlab_summary(y_true, y_pred, classes)
        issue = pd.DataFrame(health["issues"], index=wide.index, columns=classes).stack()
        ranked["cleanlab_issue"] = issue.reindex(pd.MultiIndex.from_arrays([ranked["image"], ranked["class"]])).to_numpy()
        maps = sharpen_lib.candidate_maps(ranked.head(ISSUES_SHOWN), audit_predictions, audit_folds, classes, settings.fold_keys)
        top = ranked.head(METADATA_ROWS)[["image", "class", "split", "kind", "other_class", "score", "audit_probability",
                                          "mask_quality"]]
        context.log.info(f"label_issues: {len(ranked)} labels of {len(wide)} images ranked "
                         f"({int((ranked['split'] == 'val').sum())} with the classifier's evidence too)")
        return dg.Output(LabelIssues.of(issues=ranked, class_ranking=health["class_ranking"], candidate_maps=maps,
                                        health={"overall_health_score": health["health"]}),
                         metadata={"labels": len(ranked), "images": len(wide),
                                   "top_candidates": md_table(top.round(3)),
                                   "cleanlab_health_score": health["health"],
                                   "cleanlab_error_rate_per_class": md_table(
                                       health["class_ranking"][["Class Name", "Label Issues", "Label Noise"]].round(4)),
                                   "kinds_in_top_50": dg.MetadataValue.md(
                                       ranked.head(ISSUES_LISTED)["kind"].value_counts().to_frame().to_markdown())})

    return [audit_folds, audit_inputs, audit_models, audit_relabels, audit_predictions, audit_evidence, label_issues]
