"""The audit models, one set per fold, trained from scratch on the images and current labels of the
other folds, so that every labelled image gets out-of-sample evidence from models that never saw it:
a small U-Net with an image-level head, giving each pixel's probability of each class (one sigmoid
per class and pixel: the classes' masks overlap) and each class's probability; and, with the class
network `densenet` (CLOUD_ASSETS_AUDIT_CLASS_NETWORK), a small DenseNet-BC at the classifier's input
size (the profile's share of it) whose class probabilities take the place of the U-Net head's (the
Label audit page has the figures: with the texture channels the U-Net's head tells the classes apart
about as well, at well under half the cost).

Keras 3, so it trains on TensorFlow and on JAX. Inputs are the image cache's BGR images scaled by
1/255 and resized to the network's size, beside their texture energy (`texture`) for the U-Net;
targets the masks at that size and the image's labels. The epoch with the best loss on a share of the
training folds' images is kept; fixed seeds.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from cloud_assets.lib.store import Array, Document, Table, Value


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    size: tuple[int, int]                         # height x width (CLOUD_ASSETS_AUDIT_SIZE)
    widths: tuple[int, ...] = (24, 48, 64, 96)   # filters per U-Net level, the last the bottleneck
    epochs: int = 8
    patience: int = 0                             # stop after this many epochs without a better held-out
    #                                               loss; 0: every epoch runs
    batch_size: int = 32
    learning_rate: float = 2e-3
    decay: bool = True                            # the learning rate's cosine decay over the epochs
    flips: bool = True                            # each image flipped at random with its masks, each axis
    held_out: float = 0.1                         # share of the training images whose loss picks the epoch kept
    seed: int = 0
    texture: tuple[float, ...] = ()               # the texture channels read beside the image (`texture`): their scales
    dice_loss: bool = False                       # the pixels' loss: cross-entropy, plus 1 - soft Dice (`bce_dice`)

    @property
    def channels(self) -> int:
        """What the U-Net reads per pixel: the image's 3 colours and its texture channels."""
        return 3 + len(self.texture)


@dataclasses.dataclass(frozen=True)
class ClassConfig:
    """How a class network trains: like the demo classifier (random flips, Adam with a cosine decay
    over the epochs), the epoch with the best loss on `held_out` of the training images kept."""
    size: tuple[int, int]                         # height x width: the classifier's input size x the profile's share
    epochs: int = 8
    batch_size: int = 32
    learning_rate: float = 2e-3
    held_out: float = 0.1
    seed: int = 0


CLASS_NETWORKS = ("unet", "densenet")  # CLOUD_ASSETS_AUDIT_CLASS_NETWORK: whose class probabilities the audit uses


TEXTURE_SCALES = (1.0, 2.0, 4.0, 8.0)  # the profiles' texture channels, in pixels of the image cache

# the audit's named sizes. fast: the CPU's, within the demo's budget, the U-Net trained like the class
# network (cosine decay, random flips; on a tuning dataset, the class head's AUROC against the
# clean labels of a held-out fold: 0.866 with 10 epochs at a constant rate, early stopping and no flips,
# 0.920 with 6 epochs of this recipe, 0.943 with 10), reading the images' texture energy beside their
# colours (on tuning datasets 10 and 14, one fold each: the class head's AUROC 0.928 -> 0.985 on 14, the
# mean Dice against the clean masks 0.683 -> 0.821 on 10 and 0.657 -> 0.818 on 14), which makes its head
# a better class evidence than the class network at 112x112 at half the cost, its pixels' loss the
# cross-entropy plus a soft Dice (`bce_dice`; on tuning datasets 10 and 14, one fold each, the proposal's
# box overlapping the clean mask by 0.7: 0.475 -> 0.519 and 0.520 -> 0.562), for 16 epochs (on tuning
# dataset 10, fold 0, against the clean labels of the fold, 8 -> 12 -> 16 -> 24 epochs: mean Dice 0.795 ->
# 0.859 -> 0.861 -> 0.873, the predicted region's boxes overlapping the clean mask by 0.7 0.497 -> 0.553 ->
# 0.539 -> 0.527, the class head's AUROC 0.986 -> 0.992 -> 0.994 -> 0.995; on 14, 8 -> 12 -> 16: 0.854 ->
# 0.860 -> 0.875, 0.593 -> 0.608 -> 0.638, 0.994 -> 0.994 -> 0.995; twice 8 epochs' time); strong: fast's
# network and recipe at twice the resolution (on tuning dataset 10, fold 0: mean Dice at 64x96 0.861 ->
# 0.883, the predicted region's boxes overlapping the clean mask by 0.7 0.539 -> 0.603, the class head's
# AUROC 0.994 -> 0.999, at 3.8 times the training time on a CPU).
# The second round: each U-Net trained 4 epochs more from a learning rate of 5e-4 on the labels that the first
# round's confident suspicions correct (on tuning dataset 10, fold 0, against the fold's clean labels: mean Dice
# 0.861 -> 0.877, the predicted region's boxes overlapping the clean mask by 0.7 0.539 -> 0.569, the class
# head's AUROC 0.994 -> 0.997, for a quarter of the training's time; a new U-Net trained 16 epochs on them: 0.879,
# 0.563, 0.996; trained further from 2e-3: 0.864, 0.541, 0.996; on the clean labels: 0.877, 0.597, 0.997).
# The class network: at half the classifier's input size for 8 epochs on a CPU (about 65 s a fold on
# 1,000 images here), at the full size for 20 where a GPU makes that cheap
@dataclasses.dataclass(frozen=True)
class Profile:
    size: tuple[int, int]
    widths: tuple[int, ...]
    epochs: int = 8            # the U-Net's, as TrainingConfig's
    patience: int = 0
    decay: bool = True
    flips: bool = True
    class_share: float = 0.5   # of each side of the classifier's input size
    class_epochs: int = 8
    class_network: str = "unet"  # the default one (CLOUD_ASSETS_AUDIT_CLASS_NETWORK unset): trees are fitted for it
    texture: tuple[float, ...] = TEXTURE_SCALES  # the U-Net's texture channels (`texture`)
    dice_loss: bool = False    # as TrainingConfig's
    refit_epochs: int = 4      # the second round (`lib.audit.relabel`): each fold's U-Net trained this many epochs
    refit_rate: float = 5e-4   # more, from this learning rate, on the other folds' labels as the first round corrects them

    def class_size(self, input_size) -> tuple[int, int]:
        """The class network's (height, width) at this profile, for a classifier of `input_size`: its
        share of each side, at least 32."""
        h, w = (max(32, int(round(side * self.class_share))) for side in input_size)
        return h, w


PROFILES = {"fast": Profile((64, 96), (24, 48, 64, 96), epochs=16, dice_loss=True),
            "strong": Profile((128, 192), (24, 48, 64, 96), epochs=16, dice_loss=True, class_share=1.0, class_epochs=20)}


def default_profile() -> str:
    """'strong' where an NVIDIA GPU is visible to this machine (/proc/driver/nvidia/gpus), else 'fast';
    found without importing a framework (the definitions load it)."""
    gpus = Path("/proc/driver/nvidia/gpus")
    return "strong" if gpus.is_dir() and any(gpus.iterdir()) else "fast"


def config_digest(config) -> str:
    """12 hex digits that change with any training setting (a model is kept per setting)."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(dataclasses.asdict(config), sort_keys=True).encode()).hexdigest()[:12]


def images_digest(images: np.ndarray, names) -> str:
    """12 hex digits of the pixels of uint8 `images` (at the audit size), taken in the order of their
    `names`: an image file changed under the same name changes it, a reordered train.csv does not."""
    import hashlib

    h = hashlib.sha256()
    for k in np.argsort(np.asarray(names), kind="stable"):
        h.update(np.ascontiguousarray(images[k]).tobytes())
    return h.hexdigest()[:12]


class KeptModels:
    """Every fold model trained, kept in `root` by what it was trained on (its training set's labels
    digest and pixels digest, the audit's code version, the training settings) as soon as it is
    trained: a run killed after some folds, or a label or image changed in one fold, trains only the
    folds whose training set has no model yet."""
    HISTORY = "history.parquet"

    def __init__(self, root: Path):
        self.root = Path(root)

    def folder(self, labels_digest: str, pixels_digest: str, code: str, config) -> Path:
        return self.root / f"{labels_digest[:16]}-{pixels_digest}-{code}-{config_digest(config)}"

    @staticmethod
    def has(folder: Path) -> bool:
        return (folder / AuditModel.FILE).is_file()

    @classmethod
    def keep(cls, folder: Path, model, history: list[dict]) -> None:
        """Write `model` and its `history` (one row per epoch) into `folder`, whole or not at all."""
        import pandas as pd

        from cloud_assets.lib.files import written_folder

        with written_folder(folder) as staging:
            model.save(staging / AuditModel.FILE)
            pd.DataFrame(history).to_parquet(staging / cls.HISTORY)

    @classmethod
    def history(cls, folder: Path):
        import pandas as pd

        return pd.read_parquet(folder / cls.HISTORY)


def build(n_classes: int, config: TrainingConfig):
    """The U-Net: a stride-2 stem, then `widths` levels of two 3x3 convolutions (batch norm, ReLU),
    max-pooled on the way down, upsampled and joined with the skip connection on the way up, all at
    half the input size or less (the full size costs the most and adds little at this scale); outputs
    `pixels` (a sigmoid per class, upsampled bilinearly to the input size) and `classes` (a sigmoid per
    class, from the bottleneck's global pool)."""
    import keras
    from keras import layers

    def conv(x, width, name, strides=1):
        x = layers.Conv2D(width, 3, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
        return layers.Activation("relu", name=f"{name}_relu")(x)

    inputs = keras.Input((*config.size, config.channels), name="image")
    x, skips = conv(inputs, config.widths[0], "stem", strides=2), []
    for level, width in enumerate(config.widths[:-1]):
        x = conv(conv(x, width, f"down{level}a"), width, f"down{level}b")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
    x = conv(conv(x, config.widths[-1], "bottleneck_a"), config.widths[-1], "bottleneck_b")
    head = layers.GlobalAveragePooling2D(name="gap")(x)
    classes = layers.Dense(n_classes, activation="sigmoid", name="classes")(head)
    for level in reversed(range(len(skips))):
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"up{level}")(x)
        x = layers.Concatenate(name=f"join{level}")([x, skips[level]])
        x = conv(conv(x, config.widths[level], f"decode{level}a"), config.widths[level], f"decode{level}b")
    logits = layers.Conv2D(n_classes, 1, name="pixel_logits")(x)
    logits = layers.UpSampling2D(2, interpolation="bilinear", name="full_size")(logits)
    pixels = layers.Activation("sigmoid", name="pixels")(logits)
    return keras.Model(inputs, {"pixels": pixels, "classes": classes}, name="audit_unet")


def check_size(config: TrainingConfig) -> None:
    """The audit size must halve cleanly at the stem and at each of the U-Net's poolings."""
    step = 2 ** len(config.widths)
    size = config.size
    if size[0] % step or size[1] % step or min(size) < step:
        raise ValueError(f"audit size {size[0]}x{size[1]}: each side must be a multiple of {step} (the U-Net "
                         f"halves it {len(config.widths)} times), e.g. {4 * step}x{6 * step}")


def resize_images(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 `(n, h, w, 3)` images (the image cache's) at the audit size (INTER_AREA)."""
    out = np.empty((len(images), *size, 3), np.uint8)
    for k, img in enumerate(images):
        out[k] = cv2.resize(np.asarray(img), (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return out


TEXTURE_GAIN = 8.0  # texture energy in grey levels, times this, as uint8 (the energy rarely reaches 32)


def texture(images: np.ndarray, size: tuple[int, int], scales: tuple[float, ...]) -> np.ndarray:
    """uint8 `(n, h, w, len(scales))`: the texture energy of uint8 BGR `images (n, H, W, 3)` (the image
    cache's) at the audit `size`: per scale, the absolute difference between each pixel's grey level
    and its Gaussian blur of that sigma (in pixels of `images`), averaged over the pixels each audit
    pixel covers (INTER_AREA), times TEXTURE_GAIN. The fine textures that tell the classes apart
    (Sugar's dust, Gravel's grains) average out when an image shrinks to the audit size; their energy
    does not."""
    out = np.empty((len(images), *size, len(scales)), np.uint8)
    for k, img in enumerate(images):
        grey = cv2.cvtColor(np.asarray(img), cv2.COLOR_BGR2GRAY).astype(np.float32)
        for c, sigma in enumerate(scales):
            energy = cv2.resize(np.abs(grey - cv2.GaussianBlur(grey, (0, 0), sigma)), (size[1], size[0]),
                                interpolation=cv2.INTER_AREA)
            out[k, ..., c] = np.clip(np.rint(energy * TEXTURE_GAIN), 0, 255)
    return out


def _inputs(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 255.0


def bce_dice(y_true, y_pred):
    """The pixels' loss with `dice_loss`: the binary cross-entropy plus 1 - the soft Dice of each image
    and class (smoothed by one pixel: an empty mask predicted empty scores 1), averaged. The Dice term
    pulls the prediction's edges to the masks' where the cross-entropy alone leaves them blurred."""
    import keras
    from keras import ops

    inter = ops.sum(y_true * y_pred, axis=(1, 2))
    total = ops.sum(y_true, axis=(1, 2)) + ops.sum(y_pred, axis=(1, 2))
    dice = (2 * inter + 1.0) / (total + 1.0)
    return ops.mean(keras.losses.binary_crossentropy(y_true, y_pred)) + 1.0 - ops.mean(dice)


def cosine_rate(rate: float, epoch: int, epochs: int, floor: float = 0.05) -> float:
    """The learning rate of `epoch` (1..`epochs`) under a cosine decay from `rate` to `floor` times it
    (epoch by epoch)."""
    return rate * (floor + (1 - floor) * 0.5 * (1 + np.cos(np.pi * (epoch - 1) / epochs)))


def _epoch(epoch: int, epochs: int, result, val_loss: float, images: int, start: float, best: float,
           log: Callable[[str], None], network: str = "") -> tuple[dict, bool]:
    """One epoch's history row (from Keras' fit `result`, the held-out loss, the images trained on and
    the epoch's `start`) and whether it beat `best`; logged."""
    seconds = time.monotonic() - start
    entry = {"epoch": epoch, "loss": float(result.history["loss"][-1]), "val_loss": float(val_loss),
             "images_per_s": round(images / seconds, 1), "seconds": round(seconds, 1)}
    improved = val_loss < best - 1e-4
    log(f"{network}epoch {epoch}/{epochs}: loss {entry['loss']:.4f}, held-out loss {entry['val_loss']:.4f}"
        f"{' (best)' if improved else ''}, {entry['images_per_s']} images/s")
    return entry, improved


def _restore(model, weights, optimizer_state) -> None:
    """Put a compiled model back to the weights and optimizer state it had before training."""
    model.set_weights(weights)
    for variable, value in zip(model.optimizer.variables, optimizer_state):
        variable.assign(value)


class Trainer:
    """Trains audit models of one shape and setting one after another (one per fold) on one compiled
    model. Each `train` starts from the initial weights and optimizer state that a newly built model
    has after `keras.utils.set_random_seed(config.seed)`, so it learns what a new model would, but the
    training and evaluation steps are traced once, not once per fold (the first epoch of a new model
    spends several seconds tracing). A second round (a refit's `config`: `AuditTraining.refit`) starts each
    `train` from a trained model's weights instead, with a new optimizer state, as that model compiled
    anew would."""

    def __init__(self, n_classes: int, config: TrainingConfig):
        import keras

        check_size(config)
        self.config = config
        keras.utils.set_random_seed(config.seed)
        self.model = _compiled(build(n_classes, config), config)
        self.model.optimizer.build(self.model.trainable_variables)
        self._initial = self.model.get_weights(), [np.array(v) for v in self.model.optimizer.variables]

    def train(self, images: np.ndarray, masks: np.ndarray, labels: np.ndarray,
              log: Callable[[str], None] = print, start=None):
        """The model trained on uint8 `images (n, h, w, channels)` at the audit size (each image and its
        texture channels: `AuditInputs.unet_images`), uint8 `masks (n, h, w, classes)` and 0/1 `labels (n,
        classes)`, from a new model's weights or from `start`'s (a trained U-Net of this shape: trained
        further); returns (model, history: one dict per epoch). The model is this trainer's: the next
        `train` changes it, so save it first."""
        import keras

        weights, optimizer_state = self._initial
        if start is not None:
            weights = start.get_weights()
            if [w.shape for w in weights] != [w.shape for w in self._initial[0]]:
                raise ValueError("the model to train further is not a U-Net of this trainer's shape")
        keras.utils.set_random_seed(self.config.seed)
        _restore(self.model, weights, optimizer_state)
        return _fit(self.model, images, masks, labels, self.config, log)


@functools.lru_cache(maxsize=4)
def shared_trainer(n_classes: int, config: TrainingConfig) -> Trainer:
    """This process's `Trainer` of this shape and setting, made once: every fold of a step trains on it, and
    in a process that runs step after step (a Celery worker; a notebook's or the tests' in-process runs)
    every fold of every run, its steps traced once."""
    return Trainer(n_classes, config)


def _compiled(model, config: TrainingConfig):
    """The U-Net `model` compiled to train as `config` says: Adam at its learning rate, the pixels' loss
    (`bce_dice` with `dice_loss`, else the cross-entropy) beside the classes' cross-entropy."""
    import keras

    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                  loss={"pixels": bce_dice if config.dice_loss else "binary_crossentropy",
                        "classes": "binary_crossentropy"})
    return model


def _fit(model, images: np.ndarray, masks: np.ndarray, labels: np.ndarray, config: TrainingConfig,
         log: Callable[[str], None]):
    """`model` (compiled) trained on `images`, `masks` and `labels` as `config` says, the epoch with the
    best loss on its `held_out` share kept: (model, history)."""
    n = len(images)
    if n < 4:
        raise ValueError(f"{n} training images: too few to train an audit model")
    if images.shape[-1] != config.channels:
        raise ValueError(f"images of {images.shape[-1]} channels: this U-Net reads {config.channels} (3 colours "
                         f"and {len(config.texture)} texture channels)")
    order = np.random.default_rng(config.seed).permutation(n)
    n_val = max(1, int(round(n * config.held_out)))
    val, fit = order[:n_val], order[n_val:]
    x, y_pix, y_cls = _inputs(images), masks.astype(np.float32), labels.astype(np.float32)
    best, best_weights, waited, history = np.inf, None, 0, []
    for epoch in range(1, config.epochs + 1):
        start = time.monotonic()
        rng = np.random.default_rng(config.seed + epoch)
        shuffled = rng.permutation(fit)
        x_fit, y_fit = x[shuffled], y_pix[shuffled]
        if config.flips:
            for axis, flip in ((1, rng.random(len(shuffled)) < 0.5), (2, rng.random(len(shuffled)) < 0.5)):
                x_fit[flip], y_fit[flip] = np.flip(x_fit[flip], axis), np.flip(y_fit[flip], axis)
        if config.decay:
            model.optimizer.learning_rate = cosine_rate(config.learning_rate, epoch, config.epochs)
        result = model.fit(x_fit, {"pixels": y_fit, "classes": y_cls[shuffled]},
                           batch_size=config.batch_size, epochs=1, verbose=0, shuffle=False)
        val_loss = model.evaluate(x[val], {"pixels": y_pix[val], "classes": y_cls[val]},
                                  batch_size=config.batch_size, verbose=0, return_dict=True)["loss"]
        entry, improved = _epoch(epoch, config.epochs, result, val_loss, len(fit), start, best, log)
        history.append(entry)
        if improved:
            best, best_weights, waited = val_loss, model.get_weights(), 0
        else:
            waited += 1
            if waited == config.patience:
                log(f"early stop after epoch {epoch}: no better held-out loss for {config.patience} epochs")
                break
    model.set_weights(best_weights)
    return model, history


def train(images: np.ndarray, masks: np.ndarray, labels: np.ndarray, config: TrainingConfig,
          log: Callable[[str], None] = print):
    """One model trained as `Trainer.train` trains it (a new trainer, for a single model)."""
    return Trainer(labels.shape[1], config).train(images, masks, labels, log)


def densenet(size: tuple[int, int], n_classes: int, blocks=(2, 3, 4, 3), growth: int = 16, stem: int = 32,
             name: str = "class_densenet"):
    """A small Keras 3 DenseNet-BC: a stride-4 stem, dense blocks with 1x1 bottlenecks, transitions, GAP,
    one sigmoid per class. Layer names follow Keras' DenseNets (`conv<stage>_block<i>_concat`), so
    Grad-CAM finds the same kind of layer as in the reference notebook's DenseNet121. The demo
    classifier's network and the audit's class network."""
    import keras
    from keras import layers

    def bn_relu(x, name):
        # momentum 0.9: a short training run needs inference statistics that keep up with the weights
        x = layers.BatchNormalization(epsilon=1.001e-5, momentum=0.9, name=f"{name}_bn")(x)
        return layers.Activation("relu", name=f"{name}_relu")(x)

    inputs = keras.Input((*size, 3), name="input_1")
    # a strided 4x4 stem instead of DenseNet's 7x7 conv + max pool: the same 1/4 size, far cheaper on CPU
    x = layers.Conv2D(stem, 4, strides=4, use_bias=False, name="conv1_conv")(inputs)
    x = bn_relu(x, "conv1")
    for stage, n in enumerate(blocks, start=2):
        for i in range(1, n + 1):
            block = f"conv{stage}_block{i}"
            y = bn_relu(x, f"{block}_0")
            y = layers.Conv2D(4 * growth, 1, use_bias=False, name=f"{block}_1_conv")(y)
            y = bn_relu(y, f"{block}_1")
            y = layers.Conv2D(growth, 3, padding="same", use_bias=False, name=f"{block}_2_conv")(y)
            x = layers.Concatenate(name=f"{block}_concat")([x, y])
        if stage < 1 + len(blocks):
            x = bn_relu(x, f"pool{stage}")
            x = layers.Conv2D(x.shape[-1] // 2, 1, use_bias=False, name=f"pool{stage}_conv")(x)
            x = layers.AveragePooling2D(2, name=f"pool{stage}_pool")(x)
    x = bn_relu(x, "final")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = layers.Dense(n_classes, activation="sigmoid", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


class ClassTrainer:
    """Trains class networks of one size and setting one after another (one per fold) on one compiled
    model, as `Trainer` trains the U-Nets: each `train` starts from the initial weights and optimizer
    state of a new network (`model`, new and uncompiled; by default `densenet` at `config.size`), so it
    learns what a new one would, but its steps are traced once, not once per fold. The learning rate's
    cosine decay runs over the training set's steps; a training set of another step count (a fold a
    batch larger) compiles the model again."""

    def __init__(self, n_classes: int, config: ClassConfig, model=None):
        import keras

        self.config = config
        keras.utils.set_random_seed(config.seed)
        self.model = model if model is not None else densenet(config.size, n_classes)
        self._weights, self._steps = self.model.get_weights(), 0
        self._optimizer_state: list[np.ndarray] = []

    def _compile(self, steps: int) -> None:
        import keras

        self.model.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
            self.config.learning_rate, steps, alpha=0.05)), loss="binary_crossentropy")
        self.model.optimizer.build(self.model.trainable_variables)
        self._steps, self._optimizer_state = steps, [np.array(v) for v in self.model.optimizer.variables]

    def train(self, images: np.ndarray, labels: np.ndarray, log: Callable[[str], None] = print):
        """The class network trained on uint8 `images (n, h, w, 3)` at `config.size` and 0/1 `labels (n,
        classes)` as `ClassConfig` says; returns (model, history: one dict per epoch). The model is this
        trainer's: the next `train` changes it, so save it first."""
        import keras

        config, model = self.config, self.model
        n = len(images)
        if n < 4:
            raise ValueError(f"{n} training images: too few to train a class network")
        keras.utils.set_random_seed(config.seed)
        rng = np.random.default_rng(config.seed)
        order = rng.permutation(n)
        n_val = max(1, int(round(n * config.held_out)))
        val, fit = order[:n_val], order[n_val:]
        steps = config.epochs * int(np.ceil(len(fit) / config.batch_size))
        if steps != self._steps:
            self._compile(steps)
        _restore(model, self._weights, self._optimizer_state)
        x_val, y_val = _inputs(images[val]), labels[val].astype(np.float32)
        best, best_weights, history = np.inf, None, []
        for epoch in range(1, config.epochs + 1):
            start = time.monotonic()
            take = rng.permutation(fit)
            x = _inputs(images[take])
            flip = rng.random((len(take), 2)) < 0.5
            x[flip[:, 0]] = x[flip[:, 0], :, ::-1]
            x[flip[:, 1]] = x[flip[:, 1], ::-1]
            result = model.fit(x, labels[take].astype(np.float32), batch_size=config.batch_size, epochs=1, verbose=0,
                               shuffle=False)
            val_loss = float(model.evaluate(x_val, y_val, batch_size=64, verbose=0))
            entry, improved = _epoch(epoch, config.epochs, result, val_loss, len(take), start, best, log,
                                     "class network ")
            history.append(entry)
            if improved:
                best, best_weights = val_loss, model.get_weights()
        model.set_weights(best_weights)
        return model, history


@functools.lru_cache(maxsize=2)
def shared_class_trainer(n_classes: int, config: ClassConfig) -> ClassTrainer:
    """This process's `ClassTrainer` of this shape and setting, made once, as `shared_trainer`."""
    return ClassTrainer(n_classes, config)


def train_classes(images: np.ndarray, labels: np.ndarray, config: ClassConfig, model=None,
                  log: Callable[[str], None] = print):
    """One class network trained as `ClassTrainer.train` trains it (a new trainer, for a single network)."""
    return ClassTrainer(labels.shape[1], config, model).train(images, labels, log)


def predict_classes(model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """float32 `(n, classes)`: the class network's probabilities for uint8 `images` at its size."""
    out = [np.asarray(model.predict_on_batch(_inputs(np.asarray(images[s:s + batch_size]))), np.float32)
           for s in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, model.output_shape[-1]), np.float32)


CAM_SIDE = 7  # the class network's Grad-CAM layer: its last concatenation at least this many pixels a side


def class_cam_layer(model) -> str:
    """The class network's Grad-CAM layer: its last dense-block concatenation whose output is at least
    CAM_SIDE pixels on its shorter side. At 224x224 that is the last one (7x7, as the reference notebook's
    DenseNet121 at 224x224); at 112x112, the third stage's (7x7), the last being 3x3."""
    concats = [layer for layer in model.layers if type(layer).__name__ == "Concatenate"
               and min(layer.output.shape[1:3]) >= CAM_SIDE]
    if not concats:
        raise ValueError(f"class network {model.name!r}: no concatenation of at least {CAM_SIDE}x{CAM_SIDE} for Grad-CAM")
    return concats[-1].name


def class_maps(model, images: np.ndarray, size: tuple[int, int], batch_size: int = 32):
    """The class network's out-of-sample evidence for uint8 `images` at its size, from one pass of the
    saliency engine (`lib.saliency.engine`: the reference notebook's Guided Grad-CAM) at
    `class_cam_layer`: (probabilities `(n, classes)` float32, Grad-CAM at the layer's resolution
    `(classes, n, h', w')` float32, guided backprop resized to `size` `(n, h, w)` float16)."""
    from cloud_assets.lib.saliency.engine import engine_for, iter_batches

    engine = engine_for(model, class_cam_layer(model))
    n, (h, w) = len(images), size
    probs = np.zeros((n, engine.classes), np.float32)
    cams = np.zeros((engine.classes, n, *engine.layer_size), np.float32)
    guided = np.zeros((n, h, w), np.float16)
    for members, gb, cam, p in iter_batches(None, images, batch_size=batch_size, engine=engine):
        probs[members], cams[:, members] = p, cam
        guided[members] = [cv2.resize(g, (w, h), interpolation=cv2.INTER_AREA) for g in gb]
    return probs, cams, guided


# the image's flips a prediction averages over (the U-Net trains on random flips of both axes; on tuning
# datasets 10 and 14, out of sample against the clean masks: mean Dice 0.846 -> 0.856 and 0.843 -> 0.853,
# the class head's AUROC 0.989 -> 0.991 and 0.990 -> 0.992, for twice the prediction's time)
PREDICT_FLIPS = ((), (1,), (2,), (1, 2))


def predict(model, images: np.ndarray, batch_size: int = 32):
    """Yields (start, class probabilities `(b, classes)`, pixel probabilities `(b, classes, h, w)`
    float16) batch by batch, so that a caller can stream them to disk: each the mean over the image's
    PREDICT_FLIPS (each pixel's flipped back)."""
    for start in range(0, len(images), batch_size):
        batch = _inputs(np.asarray(images[start:start + batch_size]))
        outs = [(axes, model.predict_on_batch(np.flip(batch, axes))) for axes in PREDICT_FLIPS]  # (): as it is
        classes = np.mean([np.asarray(out["classes"], np.float32) for _, out in outs], axis=0)
        pixels = np.mean([np.flip(np.asarray(out["pixels"], np.float32), axes) for axes, out in outs], axis=0)
        yield start, classes, pixels.transpose(0, 3, 1, 2).astype(np.float16)


def gathered(batches, n: int, classes: int, size) -> tuple[np.ndarray, np.ndarray]:
    """`predict`'s batches for `n` images gathered: (probabilities `(n, classes)`, pixels `(classes, n, h,
    w)` float16)."""
    probs, pixels = np.zeros((n, classes), np.float32), np.zeros((classes, n, *size), np.float16)
    for start, p, pix in batches:
        probs[start:start + len(p)], pixels[:, start:start + len(p)] = p, pix.transpose(1, 0, 2, 3)
    return probs, pixels


class FoldModels:
    """Fold models to predict with: the folds' models share one architecture, so one model is loaded and
    each fold's weights are loaded into it, and the prediction step is traced once."""

    def __init__(self):
        self.loaded: dict[str, Any] = {}

    def __call__(self, path: Path):
        import keras

        if path.name not in self.loaded:
            self.loaded[path.name] = keras.saving.load_model(path, compile=False)  # predicts only
        else:
            self.loaded[path.name].load_weights(path)
        return self.loaded[path.name]


class ImportedPredictions:
    """Out-of-fold predictions made elsewhere (CLOUD_ASSETS_AUDIT_PREDICTIONS), in place of the fold
    models': a folder of `images.csv` (a column `image`: every image of train.csv, once),
    `probabilities.npy` (float, `(images, classes)`: each class's probability) and `pixels.npy`
    (float, `(classes, images, h, w)`: each pixel's probability of each class, at any size), the
    classes in CLOUD_ASSETS_CLASSES' order, every value in [0, 1], each image predicted by a model
    that did not train on it. The arrays are memory-mapped; a problem names the file."""

    def __init__(self, folder, n_classes: int):
        import pandas as pd

        self.folder = folder = Path(folder)
        for name in ("images.csv", "probabilities.npy", "pixels.npy"):
            if not (folder / name).is_file():
                raise ValueError(f"{folder / name}: missing; CLOUD_ASSETS_AUDIT_PREDICTIONS must name a folder of "
                                 f"images.csv, probabilities.npy and pixels.npy (see the documentation's Label audit page)")
        table = pd.read_csv(folder / "images.csv", dtype=str, keep_default_na=False)
        if "image" not in table.columns or table["image"].duplicated().any():
            raise ValueError(f"{folder / 'images.csv'}: needs a column 'image' naming each image once")
        self.rows = {image: k for k, image in enumerate(table["image"])}
        self.probabilities = np.load(folder / "probabilities.npy", mmap_mode="r")
        self.pixels = np.load(folder / "pixels.npy", mmap_mode="r")
        n = len(table)
        if self.probabilities.shape != (n, n_classes):
            raise ValueError(f"{folder / 'probabilities.npy'}: shape {self.probabilities.shape}, expected ({n}, "
                             f"{n_classes}): one row per image of images.csv, one column per class")
        if self.pixels.ndim != 4 or self.pixels.shape[:2] != (n_classes, n):
            raise ValueError(f"{folder / 'pixels.npy'}: shape {self.pixels.shape}, expected ({n_classes}, {n}, "
                             f"height, width)")

    def rows_of(self, images) -> np.ndarray:
        """The rows of `images`; ValueError naming the first image the folder lacks."""
        missing = [i for i in images if i not in self.rows]
        if missing:
            raise ValueError(f"{self.folder / 'images.csv'}: {len(missing)} images of train.csv have no prediction "
                             f"(first: {missing[0]})")
        return np.array([self.rows[i] for i in images], np.int64)

    def batches(self, images, size: tuple[int, int], batch_size: int = 64):
        """(start, probabilities (b, classes), pixels (b, classes, h, w) at `size`) for `images`, as
        `predict` yields them; ValueError naming the file on a value outside [0, 1]."""
        rows = self.rows_of(images)
        for start in range(0, len(rows), batch_size):
            take = rows[start:start + batch_size]
            probs = np.asarray(self.probabilities[take], np.float32)
            pixels = np.asarray(self.pixels[:, take], np.float32).transpose(1, 0, 2, 3)
            if pixels.shape[2:] != tuple(size):
                pixels = np.stack([[cv2.resize(p, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) for p in image]
                                   for image in pixels])
            for name, values in (("probabilities.npy", probs), ("pixels.npy", pixels)):
                if not (np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1):
                    raise ValueError(f"{self.folder / name}: values outside [0, 1] (rows {take[0]}...{take[-1]})")
            yield start, probs, pixels.astype(np.float16)


class AuditInputs(Value):
    """`audit_inputs`: what the fold models learn from, in `audit_folds`' order."""
    images = Array()         # uint8 (n, h, w, 3) BGR at the audit size
    texture = Array()        # uint8 (n, h, w, scales): their texture energy (`texture`, at the profile's scales)
    class_images = Array()   # uint8 (n, h, w, 3) BGR at the class network's size (class network densenet only)
    masks = Array()          # uint8 (n, h, w, classes)
    labels = Array()         # uint8 (n, classes)
    images_table = Table()   # image

    @property
    def has_class_images(self) -> bool:
        return self.source.has(AuditInputs.class_images.name)

    @property
    def texture_channels(self) -> int:
        return self.texture.shape[-1] if self.source.has(AuditInputs.texture.name) else 0

    def unet_images(self, rows) -> np.ndarray:
        """uint8 `(len(rows), h, w, 3 + texture channels)`: what the U-Net reads of the images `rows`, each
        image with its texture energy."""
        images = np.asarray(self.images[rows])
        if not self.texture_channels:
            return images
        return np.concatenate([images, np.asarray(self.texture[rows])], axis=-1)


class AuditModel(Value):
    """One fold of `audit_models`: `model.keras` (the U-Net) and, with the class network densenet,
    `classes.keras` beside these."""
    history = Table()    # per epoch
    meta = Document()    # fold, training digests, profile, size, widths, epochs, class network (or imported)
    FILE = "model.keras"
    CLASS_FILE = "classes.keras"

    @property
    def model_file(self) -> Path:
        return self.source.path / self.FILE

    @property
    def class_model_file(self) -> Path:
        return self.source.path / self.CLASS_FILE


class AuditPredictions(Value):
    """One fold of `audit_predictions`: each of its images from the model that never saw it."""
    probabilities = Array()   # float32 (images, classes)
    pixels = Array()          # float16 (classes, images, h, w)
    images = Table()          # image
    meta = Document()         # flips: how many of the image's flips each prediction averages (PREDICT_FLIPS); the
    #                           second round's refit_epochs, refit_seconds, refit_images, refit_corrected (its
    #                           training labels that the first round corrected) and refit_kept (its kept folder)
    # the class network's Guided Grad-CAM (class network densenet only): Grad-CAM float32 (classes, images,
    # h', w') at its layer's resolution, guided backprop float16 (images, h, w) at the audit size
    class_gradcam = Array()
    class_guided_backprop = Array()

    @property
    def has_class_maps(self) -> bool:
        return self.source.has(AuditPredictions.class_gradcam.name)
