"""Guided Grad-CAM: the seed's method against `cloud_assets.lib.saliency`, side by side.

Builds Keras DenseNet121(weights=None, pooling='avg') + Dense(4, sigmoid) at 224x224 and, on the
same 32 images, after a warm-up at the same batch shape, times:
- the seed's method: predict, then per class a guided backprop and a Grad-CAM pass, each a
  compiled graph function (the seed's K.function), with its numpy post-processing;
- ours: one forward and one guided backward pass for every class together;
- the floor: one bare guided forward + backward pass.
Last line: `bench saliency: vs_seed=R vs_floor=F max_abs_diff=D`.
"""
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from cloud_assets.lib import saliency  # noqa: E402
from cloud_assets.lib.model import configure_device  # noqa: E402

LAYER = "conv5_block16_concat"
N = int(os.environ.get("BENCH_IMAGES", 32))


def build():
    import keras

    base = keras.applications.DenseNet121(include_top=False, weights=None, pooling="avg", input_shape=(224, 224, 3))
    return keras.Model(base.input, keras.layers.Dense(4, activation="sigmoid")(base.output))


def seed_method(model, layer=LAYER):
    """The seed's cost structure with TF2 graph functions in place of K.function."""
    import keras
    import tensorflow as tf

    guided = saliency.guided_clone(model, layer)
    guided_sub = keras.Model(guided.inputs, guided.get_layer(layer).output)
    sub = keras.Model(model.inputs, [model.get_layer(layer).output, model.outputs[0]])
    predict = tf.function(lambda x: model(x, training=False))

    @tf.function
    def backprop_fn(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            a = guided_sub(x, training=False)
        return tape.gradient(a, x)

    def gradient_fn(class_i):
        @tf.function
        def fn(x):
            with tf.GradientTape() as tape:
                a, out = sub(x, training=False)
                y = out[:, class_i:class_i + 1]
            return a, tape.gradient(y, a)
        return fn

    gradient_fns = [gradient_fn(c) for c in range(4)]

    def run(imgs):
        x = tf.constant(imgs)
        predict(x)
        out = []
        for class_i in range(4):
            gb = saliency.normalize_guided_backprop(backprop_fn(x).numpy())
            a, grads = (t.numpy() for t in gradient_fns[class_i](x))
            cams = saliency.gradcam_from_gradients(a, grads[None], imgs.shape[1:3])[0]
            out.append(cams * gb)
        return np.stack(out)

    return run, backprop_fn


def timed(fn, x, repeats=2):
    fn(x)  # warm-up at the same batch shape
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn(x)
        best = min(best, time.perf_counter() - t)
    return best, result


def main():
    import tensorflow as tf

    device = configure_device()
    model = build()
    x = np.random.default_rng(0).random((N, 224, 224, 3)).astype(np.float32)
    seed_run, guided_pass = seed_method(model)
    engine = saliency.Engine(model, LAYER)

    def ours(imgs):
        gb, cams, _ = engine(imgs)
        return cams * gb[None]

    t_seed, ref = timed(seed_run, x)
    t_ours, got = timed(ours, x)
    # the floor is the seed's own guided backprop pass: one guided forward + backward
    t_floor, _ = timed(lambda imgs: guided_pass(tf.constant(imgs)).numpy(), x)
    finite = np.isfinite(ref)
    diff = float(np.abs(got[finite] - ref[finite]).max())
    print(f"device: {device}; DenseNet121 at 224x224, {N} images, 4 classes")
    print(f"seed method (predict + 4 x (guided backprop + Grad-CAM)): {t_seed:7.2f}s")
    print(f"ours (one forward + one guided backward):                {t_ours:7.2f}s")
    print(f"floor (bare guided forward + backward):                   {t_floor:7.2f}s")
    print(f"bench saliency: vs_seed={t_seed / t_ours:.2f} vs_floor={t_ours / t_floor:.2f} max_abs_diff={diff:.2e}")


if __name__ == "__main__":
    main()
