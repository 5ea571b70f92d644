"""Guided Grad-CAM for every class from one forward and one guided backward pass per batch, on
Keras 3's TensorFlow or JAX backend (and Keras 2 models through tf_keras, on TensorFlow). Another
saliency method (`lib.saliency.methods`: Grad-CAM++) changes the channel weights alone.

Same definitions as the reference notebook:
- guided backprop: gradient of the Grad-CAM layer's output (summed) with respect to the input,
  through ReLUs whose gradient is `dy * [dy > 0] * [x > 0]`; channel mean; per image
  `(g - mean) / (std + 1e-5) * 0.1 + 0.5`, clipped to [0, 1]. It does not depend on the class.
- Grad-CAM (the notebook's batch version): channel weights = spatial mean of d(sigmoid_c)/dA; cam =
  weighted sum of A's channels; minus its mean; `(cam + 1e-10) / (spectral_norm(cam) + 1e-10)`;
  then, at the image's size (`upsample`): resized with INTER_LINEAR; ReLU; divided by its
  maximum. Where the maximum is 0 the notebook gives NaN; here 0.
- Guided Grad-CAM = Grad-CAM x guided backprop.

The notebook runs, per batch and per class, a full guided backprop and a separate Grad-CAM pass
(about 17 forward-pass equivalents). Here the model is cut at the Grad-CAM layer A: the body (a
copy whose ReLUs have the guided gradient; its forward pass is the model's) gives A and, by one
backward pass from sum(A), guided backprop; the head (A -> outputs, ordinary ReLUs) gives the
probabilities and d(y_c)/dA for every class. Every per-image reduction above, up to the Grad-CAM at
the layer's resolution, runs in the same compiled function on the device (`tf.function` or
`jax.jit`; `SaliencyMethod.reduce`); the host receives probabilities, guided backprop `(n, H, W)`
and Grad-CAM `(classes, n, h, w)`. The loaded model is never modified.
"""
from __future__ import annotations

import functools
import queue
import threading
import weakref
from collections.abc import Iterable, Iterator

import cv2
import numpy as np

from cloud_assets.constants import ARRAY_BATCH
from cloud_assets.lib.classifier.model import ModelError, batches, framework, gradcam_layer, keras_backend
from cloud_assets.lib.progress import Progress, ProgressCallback
from cloud_assets.lib.saliency.methods import DEFAULT, SaliencyMethod, method as saliency_method
from cloud_assets.lib.store import Array, Document, Table, Value, release


def _keras_of(model):
    if framework(model) == "tf_keras":
        import tf_keras
        return tf_keras
    import keras
    return keras


@functools.cache
def _guided_relu_fn():
    """ReLU whose gradient is the notebook's guided one, through the backend's custom gradient."""
    from keras import ops

    @ops.custom_gradient
    def guided_relu(x):
        def grad(*args, upstream=None):
            dy = args[0] if upstream is None else upstream
            return dy * ops.cast(dy > 0, dy.dtype) * ops.cast(x > 0, dy.dtype)
        return ops.relu(x), grad

    return guided_relu


def _is_plain_relu_layer(layer, K) -> bool:
    if isinstance(layer, K.layers.ReLU):
        cfg = layer.get_config()
        return not cfg.get("max_value") and not cfg.get("negative_slope") and not cfg.get("threshold")
    return isinstance(layer, K.layers.Activation) and layer.get_config().get("activation") == "relu"


def guided_clone(model, layer_name: str):
    """A copy of `model` (same weights) whose ReLUs up to `layer_name` have the guided gradient.

    Handles `Activation('relu')` layers, plain `ReLU` layers and `activation='relu'` arguments.
    Layers after `layer_name` keep their ReLUs.
    """
    K = _keras_of(model)
    upstream = {layer.name for layer in K.Model(model.inputs, model.get_layer(layer_name).output).layers}
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


def _cut(model, layer_name: str):
    """(body: input -> A through guided ReLUs, head: A -> outputs) of `model` at `layer_name`."""
    K = _keras_of(model)
    guided = guided_clone(model, layer_name)
    body = K.Model(guided.inputs, guided.get_layer(layer_name).output)
    try:
        head = K.Model(model.get_layer(layer_name).output, model.outputs[0])
    except ValueError as e:
        raise ModelError(f"Grad-CAM layer {layer_name!r} does not cut model {model.name!r} in two: a later layer "
                         f"also reads an earlier tensor ({str(e)[:200]}); choose a layer every path passes "
                         f"through") from None
    return body, head


class Engine:
    """Compiled guided Grad-CAM for one (model, layer, saliency method); build once, call per batch.

    `__call__` is the pass the assets use; `floor` (a bare guided forward and backward),
    `input_gradient` (the same, copied to the host) and `class_gradient` (one class's d(y_c)/dA) let
    the benchmark time the floor and the notebook's cost structure on the same compiled pieces.
    """

    def __init__(self, model, layer_name: str | None = None, method: str = DEFAULT):
        self.layer_name = gradcam_layer(model, layer_name)
        self.method: SaliencyMethod = saliency_method(method)
        self.backend = keras_backend()
        if framework(model) == "tf_keras" and self.backend != "tensorflow":
            raise ModelError(f"model {model.name!r} is a Keras 2 (tf_keras) model, which runs on TensorFlow only; "
                             f"KERAS_BACKEND is {self.backend!r}: convert it with `cloud-assets convert-model`")
        body, head = _cut(model, self.layer_name)
        self.layer_size = tuple(int(d) for d in body.outputs[0].shape[1:3])
        self.classes = int(model.outputs[0].shape[-1])
        build = {"tensorflow": _tensorflow_passes, "jax": _jax_passes}.get(self.backend)
        if build is None:
            raise ModelError(f"KERAS_BACKEND={self.backend!r} is not supported; use tensorflow or jax")
        self._passes, self._floor, self._class_gradient, self._host, self._sync = build(body, head, self.classes,
                                                                                          self.method.reduce)

    def __call__(self, images: np.ndarray):
        """(guided backprop `(n, H, W)`, Grad-CAM at the layer's resolution `(classes, n, h, w)`,
        probabilities `(n, classes)`), float32 numpy, for float32 images in [0, 1]."""
        return tuple(self._host(t) for t in self._passes(images))

    def floor(self, images: np.ndarray) -> None:
        """The bare guided forward and backward pass to the input, waited for, nothing copied back."""
        self._sync(self._floor(images))

    def input_gradient(self, images: np.ndarray) -> np.ndarray:
        """The guided input gradient `(n, H, W, 3)`, numpy: the notebook's guided backprop call."""
        return self._host(self._floor(images))

    def class_gradient(self, images: np.ndarray, c: int):
        """(A, d y_c / dA), numpy: one class's Grad-CAM gradient, as the notebook computes it per class."""
        return tuple(self._host(t) for t in self._class_gradient(images, c))


_ENGINES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def engine_for(model, layer_name: str | None = None, method: str = DEFAULT) -> Engine:
    """The one Engine of (`model`, layer, method), built on first use and kept while the model lives."""
    engines = _ENGINES.setdefault(model, {})
    key = (gradcam_layer(model, layer_name), method)
    if key not in engines:
        engines[key] = Engine(model, *key)
    return engines[key]


def _tensorflow_passes(body, head, classes, reduce):
    import tensorflow as tf

    spec = [tf.TensorSpec([None, *body.inputs[0].shape[1:]], tf.float32)]

    # one trace for every batch size: a retrace for the last, partial batch costs seconds
    @tf.function(input_signature=spec)
    def floor(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(body(x, training=False))
        return tape.gradient(total, x)

    @tf.function(input_signature=spec)
    def passes(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            a = body(x, training=False)
            total = tf.reduce_sum(a)
        input_grad = tape.gradient(total, x)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(a)
            out = head(a, training=False)
            per_class = [tf.reduce_sum(out[:, c]) for c in range(classes)]
        grads = tf.stack([tape.gradient(y, a) for y in per_class])
        guided, cams = reduce(a, grads, input_grad)
        return guided, cams, out

    @tf.function(input_signature=[*spec, tf.TensorSpec([], tf.int32)])
    def class_gradient(x, c):
        with tf.GradientTape() as tape:
            a = body(x, training=False)
            tape.watch(a)
            y = tf.reduce_sum(tf.gather(head(a, training=False), c, axis=1))
        return a, tape.gradient(y, a)

    def host(t):
        return np.asarray(t.numpy(), np.float32)

    return (lambda x: passes(tf.convert_to_tensor(x, tf.float32)),
            lambda x: floor(tf.convert_to_tensor(x, tf.float32)),
            lambda x, c: class_gradient(tf.convert_to_tensor(x, tf.float32), tf.constant(c, tf.int32)),
            host, lambda t: tf.reduce_sum(t).numpy())


def _jax_passes(body, head, classes, reduce):
    import jax
    import jax.numpy as jnp

    def weights():
        """The variables' current arrays, read per call: Keras' own predict replaces (donates) them."""
        return tuple(([v.value for v in m.trainable_variables], [v.value for v in m.non_trainable_variables])
                     for m in (body, head))

    def run(model, state, x):
        return model.stateless_call(*state, x, training=False)[0]

    @jax.jit
    def floor(weights, x):
        a, back = jax.vjp(lambda x: run(body, weights[0], x), x)
        return back(jnp.ones_like(a))[0]

    @jax.jit
    def passes(weights, x):
        a, back = jax.vjp(lambda x: run(body, weights[0], x), x)
        input_grad = back(jnp.ones_like(a))[0]
        out, head_back = jax.vjp(lambda a: run(head, weights[1], a), a)
        one_hot = jnp.broadcast_to(jnp.eye(classes, dtype=out.dtype)[:, None, :], (classes, *out.shape))
        grads = jax.vmap(lambda ct: head_back(ct)[0])(one_hot)             # (classes, n, h, w, k)
        guided, cams = reduce(a, grads, input_grad)
        return guided, cams, out

    @jax.jit
    def class_gradient(weights, x, c):
        a = run(body, weights[0], x)
        out, head_back = jax.vjp(lambda a: run(head, weights[1], a), a)
        return a, head_back(jax.nn.one_hot(jnp.full(out.shape[0], c), classes, dtype=out.dtype))[0]

    def host(t):
        return np.asarray(jax.device_get(t), np.float32)

    return (lambda x: passes(weights(), jnp.asarray(x, jnp.float32)),
            lambda x: floor(weights(), jnp.asarray(x, jnp.float32)),
            lambda x, c: class_gradient(weights(), jnp.asarray(x, jnp.float32), c),
            host, lambda t: t.block_until_ready())


def upsample(gradcam: np.ndarray, size) -> np.ndarray:
    """float32 `(..., H, W)`: Grad-CAM at the layer's resolution `(..., h, w)` brought to the image's
    `size` (H, W) exactly as the notebook does: INTER_LINEAR, ReLU, divided by the maximum; 0 where the
    maximum is 0 (the notebook's NaN). One cv2 call per map: cv2's multi-channel resize rounds a few
    channel counts differently, and is no faster."""
    gradcam = np.asarray(gradcam, np.float32)
    lead, (H, W) = gradcam.shape[:-2], tuple(size)
    flat = gradcam.reshape(-1, *gradcam.shape[-2:])
    out = np.empty((len(flat), H, W), np.float32)
    for k, cam in enumerate(flat):
        out[k] = cv2.resize(cam, (W, H), interpolation=cv2.INTER_LINEAR)
    np.maximum(out, 0, out=out)
    top = out.max(axis=(1, 2), keepdims=True)
    np.divide(out, top, out=out, where=top > 0)  # where the maximum is 0, every value is 0 already
    return out.reshape(*lead, H, W)


def prefetch(items: Iterable, depth: int = 2) -> Iterator:
    """`items`, produced by a background thread up to `depth` ahead: the producer's work (reading
    images, the device pass, the copy to the host) overlaps the consumer's (writing to the store).
    An exception in the producer is raised in the consumer."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done, stop = object(), threading.Event()

    def produce():
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put(e)

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def iter_batches(model, images, layer_name: str | None = None, batch_size: int = 32,
                 report: ProgressCallback | None = None, engine: Engine | None = None, positions=None):
    """Yield `(members, guided_backprop, gradcam, probabilities)` per batch of uint8 BGR or [0, 1]
    images (`images[members]`, in order); Grad-CAM at the layer's resolution. Images are read one
    batch ahead, and each batch's pass runs while the caller handles the previous one; batches as
    `lib.classifier.model.batches` makes them (`positions`: a shard's, in the unsharded order)."""
    engine = engine or engine_for(model, layer_name)
    progress = Progress(len(images), report)

    def computed():
        for members, rows, batch in prefetch(batches(images, batch_size, positions)):
            gb, cams, probs = engine(batch)
            yield members, gb[rows], cams[:, rows], probs[rows]

    for members, gb, cams, probs in prefetch(computed()):
        yield members, gb, cams, probs
        progress.advance(len(members))


def write_maps(staged, engine: Engine, images, batch_size: int = 32, report: ProgressCallback | None = None,
               positions=None) -> np.ndarray:
    """Fill `staged` (a store `Bundle`) with `gradcam` `(classes, n, h, w)` float32 at the layer's
    resolution and `guided_backprop` `(n, H, W)` float16 for uint8 BGR `images`, batch by batch into
    memory-mapped files, each batch written while the next is computed; returns the probabilities
    `(n, classes)`. `positions`: a shard's images' positions in the unsharded order."""
    n, h, w = images.shape[:3]
    cams = SaliencyMaps.gradcam.new(staged, (engine.classes, n, *engine.layer_size), np.float32)
    guided = SaliencyMaps.guided_backprop.new(staged, (n, h, w), np.float16)
    probabilities = np.empty((n, engine.classes), np.float32)
    for members, gb, cam, probs in iter_batches(None, images, batch_size=batch_size, report=report, engine=engine,
                                                positions=positions):
        guided[members] = gb
        cams[:, members] = cam
        probabilities[members] = probs
        release(guided, cams)
    cams.flush()
    guided.flush()
    return probabilities


def _collect(model, images, layer_name, batch_size, method=DEFAULT):
    parts = list(iter_batches(model, images, layer_name, batch_size, engine=engine_for(model, layer_name, method)))
    return (np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts], axis=1))


def guided_backprop(model, images, layer_name: str | None = None, batch_size: int = 32) -> np.ndarray:
    """float32 `(images, H, W)`: the notebook's normalised guided backprop."""
    return _collect(model, images, layer_name, batch_size)[0]


def gradcam(model, images, layer_name: str | None = None, batch_size: int = 32, method: str = DEFAULT) -> np.ndarray:
    """float32 `(classes, images, H, W)`: the notebook's batch Grad-CAM (or `method`'s class activation
    map) at the image's size, 0 where it gives NaN."""
    return upsample(_collect(model, images, layer_name, batch_size, method)[1], np.shape(images)[1:3])


def guided_gradcam(model, images, layer_name: str | None = None, batch_size: int = 32,
                   method: str = DEFAULT) -> np.ndarray:
    """float32 `(classes, images, H, W)`: Grad-CAM (or `method`'s map) x guided backprop, every class
    from one pass."""
    gb, cams = _collect(model, images, layer_name, batch_size, method)
    return combine(cams, gb)


def mean_guided_gradcam(gradcam, guided_backprop, classes, images, batch: int = ARRAY_BATCH) -> np.ndarray:
    """float64 mean Guided Grad-CAM of each (class, image) pair, from stored layer-resolution
    `gradcam` and `guided_backprop`; memory-mapped inputs released every `batch` pairs."""
    out = np.empty(len(images), np.float64)
    for j, (c, i) in enumerate(zip(classes, images)):
        out[j] = combine(gradcam[c, i], guided_backprop[i]).mean()
        if j % batch == batch - 1:
            release(gradcam, guided_backprop)
    return out


def combine(gradcam: np.ndarray, guided_backprop: np.ndarray) -> np.ndarray:
    """Guided Grad-CAM, float32, from Grad-CAM at the layer's resolution `(..., n, h, w)` and guided
    backprop `(n, H, W)`."""
    guided_backprop = np.asarray(guided_backprop, np.float32)
    return upsample(gradcam, guided_backprop.shape[-2:]) * guided_backprop


class SaliencyMaps(Value):
    """`saliency_maps`: Grad-CAM at its layer's resolution and guided backprop at the image's."""
    gradcam = Array("val", axis=1)     # float32 (classes, images, h, w)
    guided_backprop = Array("val")     # float16 (images, H, W)
    images = Table("val")              # image
    meta = Document()                  # class_names, layer, device, model_sha256, method
