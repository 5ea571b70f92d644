"""Guided Grad-CAM for every class from one forward and one guided backward pass per batch.

Same definitions as the seed notebook:
- guided backprop: gradient of the Grad-CAM layer's output (summed) with respect to the input,
  through ReLUs whose gradient is `dy * [dy > 0] * [x > 0]`; channel mean; per image
  `(g - mean) / (std + 1e-5) * 0.1 + 0.5`, clipped to [0, 1]. It does not depend on the class.
- Grad-CAM (the seed's batch version): channel weights = spatial mean of d(sigmoid_c)/dA; cam =
  weighted sum of A's channels; minus its mean; `(cam + 1e-10) / (spectral_norm(cam) + 1e-10)`;
  resized with INTER_LINEAR; ReLU; divided by its maximum. Where the maximum is 0 the seed gives
  NaN; here 0.
- Guided Grad-CAM = Grad-CAM x guided backprop.

The seed runs, per batch and per class, a full guided backprop and a separate Grad-CAM pass
(about 17 forward-pass equivalents). Here one forward pass through a guided clone of the model
gives the layer output A and the class outputs (a guided ReLU's forward is a ReLU); one backward
pass from sum(A) to the input gives guided backprop; the Grad-CAM gradients d(y_c)/dA need only
the layers after A, which keep their ordinary ReLUs. The loaded model is never modified.
"""
from __future__ import annotations

import functools

import cv2
import numpy as np

from cloud_assets.constants import ARRAY_BATCH
from cloud_assets.lib.model import framework, gradcam_layer
from cloud_assets.lib.progress import Progress, Report
from cloud_assets.lib.store import release


def _keras_of(model):
    if framework(model) == "tf_keras":
        import tf_keras
        return tf_keras
    import keras
    return keras


@functools.cache
def _guided_relu_fn():
    import tensorflow as tf

    @tf.custom_gradient
    def guided_relu(x):
        def grad(dy):
            return dy * tf.cast(dy > 0, dy.dtype) * tf.cast(x > 0, dy.dtype)
        return tf.nn.relu(x), grad

    return guided_relu


def _is_plain_relu_layer(layer, K) -> bool:
    if isinstance(layer, K.layers.ReLU):
        cfg = layer.get_config()
        return not cfg.get("max_value") and not cfg.get("negative_slope") and not cfg.get("threshold")
    return isinstance(layer, K.layers.Activation) and layer.get_config().get("activation") == "relu"


def guided_clone(model, layer_name: str):
    """A copy of `model` (same weights) whose ReLUs up to `layer_name` have the guided gradient.

    Handles `Activation('relu')` layers, plain `ReLU` layers and `activation='relu'` arguments.
    Layers after `layer_name` keep their ReLUs, so the Grad-CAM gradients through the head stay
    those of the original model.
    """
    K = _keras_of(model)
    upstream = {l.name for l in K.Model(model.inputs, model.get_layer(layer_name).output).layers}
    guided_relu = _guided_relu_fn()

    def clone_layer(layer):
        cfg = layer.get_config()
        if layer.name in upstream:
            if _is_plain_relu_layer(layer, K):
                return K.layers.Activation(guided_relu, name=layer.name)
            if cfg.get("activation") == "relu":
                cfg["activation"] = guided_relu
        return layer.__class__.from_config(cfg)

    clone = K.models.clone_model(model, clone_function=clone_layer)
    clone.set_weights(model.get_weights())
    return clone


class Engine:
    """Compiled guided Grad-CAM for one model; reuse it across batches."""

    def __init__(self, model, layer_name: str | None = None):
        import tensorflow as tf

        self.layer_name = gradcam_layer(model, layer_name)
        K = _keras_of(model)
        guided = guided_clone(model, self.layer_name)
        self._net = K.Model(guided.inputs, [guided.get_layer(self.layer_name).output, guided.outputs[0]])

        # one trace for every batch size: a retrace for the last, partial batch costs seconds
        @tf.function(input_signature=[tf.TensorSpec([None, *model.inputs[0].shape[1:]], tf.float32)])
        def passes(x):
            with tf.GradientTape(persistent=True) as tape:
                tape.watch(x)
                a, out = self._net(x, training=False)
                total = tf.reduce_sum(a)
                per_class = [tf.reduce_sum(out[:, c]) for c in range(out.shape[-1])]
            gb = tape.gradient(total, x)
            grads = tf.stack([tape.gradient(y, a) for y in per_class])  # only the head: A -> outputs
            return a, out, gb, grads

        self._passes = passes

    def raw(self, images: np.ndarray):
        """(A, probabilities, input gradient, d y_c/dA) for float32 images in [0, 1]."""
        import tensorflow as tf

        a, out, gb, grads = self._passes(tf.convert_to_tensor(images, tf.float32))
        return a.numpy(), out.numpy(), gb.numpy(), grads.numpy()

    def __call__(self, images: np.ndarray):
        """(guided_backprop `(n, H, W)`, gradcam `(classes, n, H, W)`, probabilities `(n, classes)`), float32."""
        a, out, gb, grads = self.raw(images)
        size = images.shape[1:3]
        return normalize_guided_backprop(gb), gradcam_from_gradients(a, grads, size), out


def normalize_guided_backprop(gb: np.ndarray) -> np.ndarray:
    """The seed's normalisation of a guided backprop gradient `(n, H, W, channels)` -> `(n, H, W)`."""
    gb = gb.mean(axis=3)
    mean = gb.mean(axis=(1, 2), keepdims=True)
    std = gb.std(axis=(1, 2), keepdims=True) + 1e-5
    return np.clip((gb - mean) / std * 0.1 + 0.5, 0, 1).astype(np.float32)


def gradcam_from_gradients(a: np.ndarray, grads: np.ndarray, size) -> np.ndarray:
    """The seed's batch Grad-CAM from the layer output `a` `(n, h, w, k)` and `grads` `(classes, n, h, w, k)`."""
    weights = grads.mean(axis=(2, 3))                                   # (classes, n, k)
    cams = np.einsum("nhwk,cnk->cnhw", a, weights)
    cams = cams - cams.mean(axis=(2, 3), keepdims=True)
    norms = np.linalg.norm(cams.astype(np.float64), ord=2, axis=(2, 3)).astype(cams.dtype)  # spectral norm
    cams = (cams + 1e-10) / (norms[..., None, None] + 1e-10)
    out = np.empty((*cams.shape[:2], *size), np.float32)
    for c in range(cams.shape[0]):
        for i in range(cams.shape[1]):
            cam = np.maximum(cv2.resize(cams[c, i], (size[1], size[0]), interpolation=cv2.INTER_LINEAR), 0)
            top = cam.max()
            out[c, i] = cam / top if top > 0 else 0.0  # the seed divides by 0 here (NaN)
    return out


def iter_batches(model, images, layer_name: str | None = None, batch_size: int = 32,
                 report: Report | None = None):
    """Yield `(start, guided_backprop, gradcam, probabilities)` per batch of uint8 BGR or [0, 1] images."""
    engine = Engine(model, layer_name)
    progress = Progress(len(images), report)
    for start in range(0, len(images), batch_size):
        batch = np.asarray(images[start:start + batch_size])
        release(images)
        if batch.dtype == np.uint8:
            batch = batch.astype(np.float32) / 255.0
        gb, cams, probs = engine(batch)
        yield start, gb, cams, probs
        progress.advance(len(batch))


def guided_backprop(model, images, layer_name: str | None = None, batch_size: int = 32) -> np.ndarray:
    """float32 `(images, H, W)`: the seed's normalised guided backprop."""
    return np.concatenate([gb for _, gb, _, _ in iter_batches(model, images, layer_name, batch_size)])


def gradcam(model, images, layer_name: str | None = None, batch_size: int = 32) -> np.ndarray:
    """float32 `(classes, images, H, W)`: the seed's batch Grad-CAM, 0 where it gives NaN."""
    return np.concatenate([c for _, _, c, _ in iter_batches(model, images, layer_name, batch_size)], axis=1)


def guided_gradcam(model, images, layer_name: str | None = None, batch_size: int = 32) -> np.ndarray:
    """float32 `(classes, images, H, W)`: Grad-CAM x guided backprop, every class from one pass."""
    parts = [cams * gb[None] for _, gb, cams, _ in iter_batches(model, images, layer_name, batch_size)]
    return np.concatenate(parts, axis=1)


def mean_guided_gradcam(gradcam, guided_backprop, classes, images, batch: int = ARRAY_BATCH) -> np.ndarray:
    """float64 mean Guided Grad-CAM of each (class, image) pair, from stored `gradcam` and
    `guided_backprop`; memory-mapped inputs released every `batch` pairs."""
    out = np.empty(len(images), np.float64)
    for j, (c, i) in enumerate(zip(classes, images)):
        out[j] = combine(gradcam[c, i], guided_backprop[i]).mean()
        if j % batch == batch - 1:
            release(gradcam, guided_backprop)
    return out


def combine(gradcam: np.ndarray, guided_backprop: np.ndarray) -> np.ndarray:
    """Guided Grad-CAM, float32, from stored Grad-CAM `(..., n, H, W)` and guided backprop `(n, H, W)`."""
    return np.asarray(gradcam, np.float32) * np.asarray(guided_backprop, np.float32)
