"""The folds' class networks on one compiled model (`lib.audit.network.ClassTrainer`, as `audit_models`
trains them) against a new network per fold (a new `ClassTrainer` each time: built, compiled and traced
per fold), side by side in one run: FOLDS training sets of TRAIN images each (the grid's folds: 960 of
1200) at 112x112 (the `fast` profile's class size for a 224x224 classifier), EPOCHS epochs, random pixels
and labels (the cost does not depend on what the images show). Before each class network, as in
`audit_models`, the fold's U-Net trains (one epoch, untimed). The two variants alternate fold by fold,
so a machine whose speed drifts slows both alike; the first fold of the shared trainer is its only trace.

    .venv/bin/python bench/class_trainer.py [--epochs 2]

Last line: `bench class_trainer: folds=F shared_s=A new_s=B ratio=R` (seconds over the folds; ratio B / A).
"""
import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from cloud_assets.lib.audit import network as audit  # noqa: E402

FOLDS, TRAIN, SIZE, CLASSES, UNET_SIZE = 5, 960, (112, 112), 4, (64, 96)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (TRAIN + FOLDS * 8, *SIZE, 3), dtype=np.uint8)
    labels = (rng.random((len(images), CLASSES)) < 0.5).astype(np.uint8)
    config = audit.ClassConfig(size=SIZE, epochs=args.epochs)
    unet = audit.Trainer(CLASSES, audit.TrainingConfig(size=UNET_SIZE, epochs=1))
    unet_images = rng.integers(0, 255, (TRAIN, *UNET_SIZE, 3), dtype=np.uint8)
    masks = (rng.random((TRAIN, *UNET_SIZE, CLASSES)) < 0.3).astype(np.uint8)
    shared, seconds = None, {"shared": 0.0, "new": 0.0}
    quiet = lambda message: None  # noqa: E731
    for fold in range(FOLDS):
        rows = np.arange(fold * 8, fold * 8 + TRAIN)  # each fold's training set a little different
        for variant in ("shared", "new"):
            unet.train(unet_images, masks, labels[:TRAIN], log=quiet)  # as audit_models: the fold's U-Net first
            start = time.perf_counter()
            if variant == "shared":
                shared = shared or audit.ClassTrainer(CLASSES, config)
                shared.train(images[rows], labels[rows], log=quiet)
            else:
                audit.ClassTrainer(CLASSES, config).train(images[rows], labels[rows], log=quiet)
            seconds[variant] += time.perf_counter() - start
        print(f"fold {fold}: shared {seconds['shared']:.1f} s, new {seconds['new']:.1f} s so far", flush=True)
    print(f"bench class_trainer: folds={FOLDS} shared_s={seconds['shared']:.1f} new_s={seconds['new']:.1f} "
          f"ratio={seconds['new'] / seconds['shared']:.2f}")


if __name__ == "__main__":
    main()
