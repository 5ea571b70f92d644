"""The demo classifier: a small DenseNet trained from scratch, with the notebook's inputs and
this project's training choices.

BGR images scaled by 1/255 (as the notebook's generator made them); random flips and small
rotations, binary cross-entropy with a cosine-decayed Adam, per-class PR-AUC on the validation
split after every epoch, and the epoch with the best mean PR-AUC kept. The first epochs may run at
half the input size (progressive resizing): the network is fully convolutional up to its global
pooling, so the same weights carry over to the full size, and an epoch at half the size costs about
a fifth of one at the full size; the epoch kept is one at the full size. Layer
names follow Keras' DenseNets (`conv<stage>_block<i>_concat`), so Grad-CAM finds the same kind of
layer as in the notebook's DenseNet121.
"""
from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import numpy as np

from cloud_assets.lib.data import images, labels
from cloud_assets.lib.audit import network
from cloud_assets.lib.classifier import model as model_lib, thresholds


def build(input_size=(224, 224), n_classes: int = 4):
    """The demo classifier's network: the small DenseNet-BC of `lib.audit.network.densenet`."""
    return network.densenet(tuple(input_size), n_classes, name="demo_densenet")


def _load_split(data_dir: Path, class_names, size, log):
    table = labels.label_table(labels.read_train_csv(data_dir / "train.csv"), class_names).set_index("image")
    train, val = labels.stratified_split(table.reset_index())
    arrays = {}
    for split, names in (("train", train), ("val", val)):
        x = np.empty((len(names), *size, 3), np.uint8)
        def report(done: int, total: int, seconds: float, split: str = split) -> None:
            log(f"train: reading {split} images {done}/{total}")

        images.cache_images([data_dir / "train_images" / n for n in names], x, size, report)
        arrays[split] = (x, table.loc[names, list(class_names)].to_numpy().astype(np.float32))
    return arrays


def train(data_dir, out, class_names=labels.NOTEBOOK_CLASS_ORDER, size=(224, 224), epochs: int = 20,
          half_size: float = 0.7, minutes: float | None = None, batch_size: int = 32, seed: int = 10,
          log=print) -> dict:
    """Train on `data_dir`'s train split, keep the epoch with the best mean val PR-AUC in `out`.

    The first `half_size` (a share) of the `epochs` see the images at half `size` (each side), the
    others (at least the last) at `size`; only those are candidates for `out`. The learning rate
    decays (cosine) to nearly zero over `epochs`, so the last epochs settle; with `minutes`, training
    stops early when another epoch would pass that budget (the model then
    depends on the machine's speed). Returns the best epoch's per-class PR-AUC. `out` is written
    once, at the end: a failure leaves the previous file, or none.
    """
    data_dir, out = Path(data_dir), Path(out)
    if out.suffix != ".keras" or out.is_dir():
        raise ValueError(f"{out}: expected the name of a .keras file to write")
    if not 0 <= half_size <= 1:
        raise ValueError(f"half_size={half_size}: expected a share of the epochs, between 0 and 1")
    import keras
    import tensorflow as tf

    # Keras warns on every epoch that a tf.data pipeline ignores `shuffle`: it is shuffled already
    warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
    keras.utils.set_random_seed(seed)
    # the same weights from the same data on the same machine (about 20% slower on 2 cores), so
    # that `make demo` reproduces the documented label-audit figures
    tf.config.experimental.enable_op_determinism()
    log(f"train: {model_lib.configure_device()}")
    (x_train, y_train), (x_val, y_val) = (v for v in _load_split(data_dir, class_names, size, log).values())
    log(f"train: {len(x_train)} train / {len(x_val)} val images, classes {list(class_names)}")

    half = (size[0] // 2, size[1] // 2)
    augment = keras.Sequential([keras.layers.RandomFlip("horizontal_and_vertical", seed=seed),
                                keras.layers.RandomRotation(0.03, fill_mode="reflect", seed=seed)])

    def dataset(x):
        return (tf.data.Dataset.from_tensor_slices((x, y_train)).shuffle(len(x), seed=seed)
                .batch(batch_size)
                .map(lambda x, y: (augment(tf.cast(x, tf.float32) / 255.0, training=True), y),
                     num_parallel_calls=tf.data.AUTOTUNE)
                .prefetch(2))

    # one network for both sizes (and one optimizer and schedule over every epoch); `out` gets its
    # weights in a network of the input size
    net = build((None, None), len(class_names))
    steps = epochs * int(np.ceil(len(x_train) / batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(2e-3, steps, alpha=0.05)
    net.compile(optimizer=keras.optimizers.Adam(schedule), loss="binary_crossentropy")
    n_half = min(epochs - 1, round(half_size * epochs))
    if n_half and min(half) < 32:  # the network divides each side by 32
        log(f"train: {size[0]}x{size[1]} is too small to halve: every epoch at that size")
        n_half = 0
    sizes = [half] * n_half + [tuple(size)] * (epochs - n_half)

    best, best_auc, best_weights, start = -1.0, None, None, time.monotonic()
    for epoch, epoch_size in enumerate(sizes, start=1):
        full = epoch_size == tuple(size)
        if epoch == 1 or epoch_size != sizes[epoch - 2]:
            ds = dataset(x_train if full else network.resize_images(x_train, epoch_size))
            x_check = x_val if full else network.resize_images(x_val, epoch_size)
        t = time.monotonic()
        history = net.fit(ds, epochs=1, verbose=0)
        aucs = thresholds.pr_auc(y_val, model_lib.predict(net, x_check, batch_size=64))
        epoch_s = time.monotonic() - t
        mark = "" if full else f" (at {epoch_size[0]}x{epoch_size[1]})"
        if full and np.nanmean(aucs) > best:
            best, best_auc, best_weights, mark = float(np.nanmean(aucs)), aucs, net.get_weights(), " (best, kept)"
        per_class = " ".join(f"{c}={a:.3f}" for c, a in zip(class_names, aucs))
        log(f"train: epoch {epoch}: loss={history.history['loss'][-1]:.4f} val PR-AUC {per_class} "
            f"mean={np.nanmean(aucs):.3f} [{epoch_s:.0f}s]{mark}")
        # the next epoch's time, from this one's: an epoch at the full size costs about five at half the size
        next_s = epoch_s * (5 if epoch < len(sizes) and sizes[epoch] != epoch_size else 1)
        if minutes is not None and time.monotonic() - start + next_s > minutes * 60:
            log(f"train: stopping after epoch {epoch}: the {minutes:g}-minute budget is spent")
            break
    if best_auc is None:
        raise ValueError(f"{data_dir}: no epoch at the full size gave a validation PR-AUC (no class is present "
                         f"in the val split, or the time budget ended before one); nothing written")
    final = build(size, len(class_names))
    final.set_weights(best_weights)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.stem}.partial{out.suffix}")  # renamed to `out` once written
    try:
        final.save(partial)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    result = dict(zip(class_names, map(float, best_auc)))
    log("train: best val PR-AUC " + " ".join(f"{c}={a:.3f}" for c, a in result.items()) + f" mean={best:.3f}")
    log(f"train: saved {out}")
    return result
