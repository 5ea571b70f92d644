"""Guided Grad-CAM: the engine against the notebook's cost structure and the floor, side by side.

Runs with NumPy, pandas, opencv-python-headless, Keras and one backend (`--backend tensorflow` or
`jax`; no Dagster, and no TensorFlow under JAX), so that it can be carried to a GPU machine with
the repository. Builds Keras DenseNet121(weights=None, pooling='avg') + Dense(4, sigmoid) at
224x224 and times, in one run on one device, after a warm-up of each at the same batch shape:
- floor: the bare guided forward + backward pass to the input, waited for, nothing copied back;
- notebook: the notebook's structure per batch: predict, then per class a guided backprop call and a
  Grad-CAM call (compiled functions of the same engine), each copied to the host and post-processed
  in NumPy as the notebook does, full-resolution maps included;
- engine: `lib.saliency.engine.write_maps` end to end, as `model_pass` runs it: uint8 images read from
  memory, the one-pass method with its reductions on the device, the copy to the host and the maps
  written into a store on local disk, overlapped with the next batch.
The notebook's structure is timed on `--notebook-images` images (it is slow) and reported per image.
Last line: `bench saliency: img_per_s=... floor_img_per_s=... vs_floor=... vs_notebook=... backend=... device=...`.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build(classes=4):
    import keras

    base = keras.applications.DenseNet121(include_top=False, weights=None, pooling="avg", input_shape=(224, 224, 3))
    return keras.Model(base.input, keras.layers.Dense(classes, activation="sigmoid")(base.output))


def normalize_guided_backprop(gb):
    """The notebook's normalisation of a guided backprop gradient `(n, H, W, channels)` -> `(n, H, W)`, in NumPy."""
    gb = gb.mean(axis=3)
    mean = gb.mean(axis=(1, 2), keepdims=True)
    std = gb.std(axis=(1, 2), keepdims=True) + 1e-5
    return np.clip((gb - mean) / std * 0.1 + 0.5, 0, 1).astype(np.float32)


def gradcam_from_gradients(a, grads, size):
    """The notebook's batch Grad-CAM in NumPy, from A `(n, h, w, k)` and `grads` `(classes, n, h, w, k)`, at `size`."""
    from cloud_assets.lib.saliency.engine import upsample

    weights = grads.mean(axis=(2, 3))
    cams = np.einsum("nhwk,cnk->cnhw", a, weights)
    cams = cams - cams.mean(axis=(2, 3), keepdims=True)
    norms = np.linalg.norm(cams.astype(np.float64), ord=2, axis=(2, 3)).astype(cams.dtype)
    return upsample((cams + 1e-10) / (norms[..., None, None] + 1e-10), size)


def notebook_batch(model, engine, x):
    """The notebook's structure on one batch: predict, then per class a guided backprop call and a
    Grad-CAM call, each copied to the host and post-processed in NumPy at full resolution."""
    model.predict_on_batch(x)
    out = []
    for c in range(engine.classes):
        gb = normalize_guided_backprop(engine.input_gradient(x))
        a, grads = engine.class_gradient(x, c)
        out.append(gradcam_from_gradients(a, grads[None], x.shape[1:3])[0] * gb)
    return out


def per_image(fn, n, repeats=2):
    """Best seconds per image of `fn()` over `repeats`, after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best / n


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=("tensorflow", "jax"), default=os.environ.get("KERAS_BACKEND", "tensorflow"))
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--images", type=int, default=64, help="images the engine and the floor run over")
    p.add_argument("--notebook-images", type=int, default=None, help="images the notebook's structure runs over "
                   "(default: one batch)")
    args = p.parse_args(argv)
    os.environ["KERAS_BACKEND"] = args.backend  # before Keras is imported

    from cloud_assets.lib.saliency import engine as saliency
    from cloud_assets.lib.classifier.model import configure_device
    from cloud_assets.lib.store import Store

    device = configure_device()
    model = build()
    engine = saliency.Engine(model, "conv5_block16_concat")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images, 224, 224, 3), dtype=np.uint8)
    batches = [images[s:s + args.batch].astype(np.float32) / 255 for s in range(0, args.images, args.batch)]
    notebook_n = args.notebook_images or min(args.batch, args.images)
    notebook_x = images[:notebook_n].astype(np.float32) / 255

    def floor():
        for x in batches:
            engine.floor(x)

    def notebook():
        for s in range(0, notebook_n, args.batch):
            notebook_batch(model, engine, notebook_x[s:s + args.batch])

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp))

        def ours():
            with store.staging("saliency_maps") as staged:
                saliency.write_maps(staged, engine, images, args.batch)
            store.discard(staged)

        t_floor = per_image(floor, args.images)
        t_notebook = per_image(notebook, notebook_n, repeats=1)
        t_ours = per_image(ours, args.images)

    print(f"{device}; DenseNet121 at 224x224, 4 classes, batch {args.batch}")
    print(f"floor (bare guided forward + backward):          {1 / t_floor:9.1f} images/s  ({args.images} images)")
    print(f"notebook's structure (predict + 4 x (guided backprop + Grad-CAM), numpy post-processing): "
          f"{1 / t_notebook:9.1f} images/s  ({notebook_n} images)")
    print(f"engine end to end (one pass, maps written to the store): {1 / t_ours:9.1f} images/s  ({args.images} images)")
    print(f"bench saliency: img_per_s={1 / t_ours:.1f} floor_img_per_s={1 / t_floor:.1f} "
          f"vs_floor={t_floor / t_ours:.2f} vs_notebook={t_notebook / t_ours:.2f} backend={args.backend} "
          f"device={device.split(' on ', 1)[1].replace(' ', '_')}")


if __name__ == "__main__":
    main()
