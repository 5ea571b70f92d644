"""Load and check a Keras classifier file; predict in batches. TensorFlow is imported lazily.

`.keras` files load with Keras 3 in safe mode. `.h5` files are usually Keras 2 files (the notebook's
DenseNet121 among them, whose layer names contain '/', which Keras 3 refuses): they load with
`tf_keras`, Keras 2 kept for this, and Keras 3 is tried only if that fails. Everything that takes
a model works with either kind.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from cloud_assets.lib.progress import Progress, ProgressCallback
from cloud_assets.lib.store import Array, Document, Table, Value, release

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"


class ModelError(ValueError):
    """A model file that is missing, unreadable or does not fit the dataset; names the file."""


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    input_size: tuple[int, int]
    gradcam_layer: str
    framework: str         # "keras" (Keras 3) or "tf_keras" (Keras 2)


def keras_backend() -> str:
    """The Keras 3 backend in use (`KERAS_BACKEND`, default tensorflow), without importing it."""
    import keras

    return keras.config.backend()


def configure_device() -> str:
    """The Keras backend and the device it computes on, e.g. 'jax on GPU (NVIDIA H100 80GB HBM3)'. On
    TensorFlow, memory growth is set on every visible GPU; on JAX, TensorFlow is not imported."""
    backend = keras_backend()
    if backend == "jax":
        import jax

        devices = jax.devices()
        if devices[0].platform == "cpu":
            return f"jax on CPU ({os.cpu_count()} cores)"
        return f"jax on GPU ({', '.join(sorted({d.device_kind for d in devices}))})"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass  # already initialised: growth was set by an earlier call
    if gpus:
        names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
        return f"{backend} on GPU ({', '.join(names)})"
    return f"{backend} on CPU ({os.cpu_count()} cores)"


def check_path(path) -> Path:
    """`path` as a Path if it is a file; ModelError if it is unset, missing or a folder."""
    if path in ("", None):
        raise ModelError("model.path is not set; it must be a .keras or .h5 file")
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: model file not found; model.path must be a .keras or .h5 file")
    if path.is_dir():
        raise ModelError(f"{path}: is a folder; model.path must be a .keras or .h5 file")
    return path


def load(path, safe_mode: bool = True):
    """The Keras model in `path` (`.keras` or `.h5`), not compiled. ModelError names what is wrong."""
    path = check_path(path)
    with open(path, "rb") as f:
        head = f.read(8)
    suffix = path.suffix.lower()
    if suffix == ".keras" and head[:4] != ZIP_MAGIC:
        raise ModelError(f"{path}: not a Keras model (a .keras file is a zip archive)")
    if suffix in (".h5", ".hdf5") and head != HDF5_MAGIC:
        raise ModelError(f"{path}: not a Keras model (an .h5 file is HDF5, which starts with \\x89HDF)")
    if suffix not in (".keras", ".h5", ".hdf5"):
        raise ModelError(f"{path}: unknown model format {suffix!r}; expected a .keras or .h5 file")
    if safe_mode and suffix != ".keras":
        _refuse_code_layers(path)
    errors = []
    loaders = [_load_keras] if suffix == ".keras" else [_load_tf_keras, _load_keras]
    for loader in loaders:
        try:
            return loader(path, safe_mode)
        except Exception as e:  # noqa: BLE001 - each loader's reason is reported below
            if "safe_mode" in str(e) or "Lambda" in str(e) and "unsafe" in str(e).lower():
                raise ModelError(f"{path}: refused in safe mode: {e} {UNSAFE_OPT_IN}") from None
            errors.append(f"{loader.__doc__}: {type(e).__name__}: {str(e)[:300]}")
    hint = ""
    if suffix != ".keras" and keras_backend() != "tensorflow":
        hint = (f" (Keras 2 .h5 files load with tf_keras, on TensorFlow; KERAS_BACKEND is {keras_backend()!r}: "
                f"write a Keras 3 copy with `cloud-assets convert-model {path} OUT.keras` where TensorFlow is installed)")
    raise ModelError(f"{path}: not a loadable Keras model; " + " | ".join(errors) + hint)


UNSAFE_OPT_IN = "Loading runs code stored in the file; if you trust it, set model.safe_mode to 0."


def _refuse_code_layers(path: Path) -> None:
    """Keras 2 `.h5` files store a `Lambda` layer's Python bytecode, and tf_keras runs it while
    loading even in safe mode: read the architecture first and refuse such layers."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            config = f.attrs.get("model_config")
    except OSError as e:
        raise ModelError(f"{path}: not a readable HDF5 file ({e}); truncated or damaged?") from None
    if config is None:
        return
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("class_name") == "Lambda":
                found.append(node.get("config", {}).get("name", "?"))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(json.loads(config.decode() if isinstance(config, bytes) else config))
    if found:
        raise ModelError(f"{path}: refused in safe mode: Lambda layer(s) {', '.join(map(repr, found))} carry "
                         f"Python code. {UNSAFE_OPT_IN}")


def _load_keras(path: Path, safe_mode: bool):
    """Keras 3"""
    import keras

    return keras.models.load_model(path, compile=False, safe_mode=safe_mode)


def _load_tf_keras(path: Path, safe_mode: bool):
    """tf_keras (Keras 2)"""
    import tf_keras

    return tf_keras.models.load_model(path, compile=False, safe_mode=safe_mode)


def convert(src, dst, safe_mode: bool = True, atol: float = 1e-5) -> float:
    """Write a Keras 3 `.keras` copy of the model in `src` (a Keras 2 `.h5` file) to `dst`, which
    every Keras 3 backend loads. The architecture is read from the file with Keras 3's own reader
    of Keras 2 configurations, layer names' '/' (which Keras 3 refuses) becoming '_'; the weights are
    copied layer by layer from the model tf_keras loads; the predictions of both on the same random
    images must agree within `atol`. Returns their largest difference."""
    import h5py
    import keras
    from keras.src.legacy.saving import saving_utils

    dst = Path(dst)
    if dst.suffix != ".keras" or dst.is_dir():
        raise ModelError(f"{dst}: expected the name of a .keras file to write (the converted model)")
    if not dst.parent.is_dir():
        raise ModelError(f"{dst.parent}: no such folder to write the converted model in")
    old = load(src, safe_mode)
    if framework(old) == "keras":
        new = old
    else:
        with h5py.File(src, "r") as f:
            config = json.loads(f.attrs["model_config"])

        def rename(node):
            if isinstance(node, dict):
                return {k: rename(v) for k, v in node.items()}
            if isinstance(node, list):
                return [rename(v) for v in node]
            return node.replace("/", "_") if isinstance(node, str) else node

        try:
            new = saving_utils.model_from_config(rename(config))
            for layer in old.layers:
                new.get_layer(layer.name.replace("/", "_")).set_weights(layer.get_weights())
        except Exception as e:  # noqa: BLE001 - any failure of the rebuild names the file
            raise ModelError(f"{src}: Keras 3 cannot rebuild this model: {type(e).__name__}: {str(e)[:300]}") from None
    shape = [d or 224 for d in _shape(old.inputs[0])[1:]]
    x = np.random.default_rng(0).random((4, *shape)).astype(np.float32)
    diff = float(np.abs(np.asarray(old.predict_on_batch(x)) - keras.ops.convert_to_numpy(new.predict_on_batch(x))).max())
    if not diff <= atol:
        raise ModelError(f"{src}: the Keras 3 copy predicts differently (largest difference {diff:.2e} > {atol}); "
                         f"nothing written")
    tmp = dst.with_name(f".{dst.name}.tmp.keras")
    try:
        new.save(tmp)
        tmp.replace(dst)
    finally:
        tmp.unlink(missing_ok=True)
    return diff


def framework(model) -> str:
    return "tf_keras" if type(model).__module__.startswith("tf_keras") else "keras"


def _shape(tensor) -> tuple:
    return tuple(None if d is None else int(d) for d in tensor.shape)


def gradcam_layer(model, name: str | None = None) -> str:
    """`name` if the model has it, else the last convolution or concatenation with a 4-D output
    (for Keras DenseNets `conv5_block<N>_concat`, the notebook's choice)."""
    four_d = [layer for layer in model.layers if _has_4d_output(layer)]
    if name:
        if name not in {layer.name for layer in model.layers}:
            last = ", ".join(layer.name for layer in four_d[-5:])
            raise ModelError(f"Grad-CAM layer {name!r} not found in model {model.name!r}; "
                             f"its last 4-D layers are: {last}")
        return name
    for layer in reversed(four_d):
        kind = type(layer).__name__
        if "Conv" in kind or kind == "Concatenate":
            return layer.name
    raise ModelError(f"model {model.name!r} has no convolution or concatenation layer with a 4-D output "
                     f"for Grad-CAM")


def _has_4d_output(layer) -> bool:
    try:
        return len(layer.output.shape) == 4
    except (AttributeError, ValueError, TypeError):
        return False


def check(model, path, n_classes: int, input_size: tuple[int, int], layer_name: str | None = None) -> ModelInfo:
    """That the model takes one BGR image of `input_size` (or any size) and gives `n_classes` outputs."""
    if len(model.inputs) != 1:
        raise ModelError(f"{path}: the model has {len(model.inputs)} inputs; expected one image input")
    shape = _shape(model.inputs[0])
    if len(shape) != 4 or shape[-1] != 3:
        raise ModelError(f"{path}: input shape {shape} cannot take the images, which are (batch, height, width, 3) "
                         f"BGR; expected (None, {input_size[0]}, {input_size[1]}, 3)")
    h, w = shape[1:3]
    if (h is not None and h != input_size[0]) or (w is not None and w != input_size[1]):
        raise ModelError(f"{path}: the model expects {h}x{w} images but the image cache holds "
                         f"{input_size[0]}x{input_size[1]}; set dataset.input_size to {h}x{w} and re-materialize the "
                         f"data assets")
    if len(model.outputs) != 1:
        raise ModelError(f"{path}: the model has {len(model.outputs)} outputs; expected one of {n_classes} "
                         f"probabilities")
    out = _shape(model.outputs[0])
    if len(out) != 2 or out[1] != n_classes:
        raise ModelError(f"{path}: output shape {out}; expected (None, {n_classes}), one probability per "
                         f"configured class")
    if _output_activation(model) == "softmax":
        raise ModelError(f"{path}: the output is a softmax, whose probabilities compete and sum to 1; "
                         f"this is a multi-label dataset: expected one independent sigmoid per class")
    return ModelInfo(input_size=(int(input_size[0]), int(input_size[1])),
                     gradcam_layer=gradcam_layer(model, layer_name), framework=framework(model))


def _output_activation(model) -> str:
    """The name of the activation that produces the model's output ('' if none is recognised)."""
    layer = model.layers[-1]
    if type(layer).__name__ == "Softmax":
        return "softmax"
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", "") if activation is not None else ""


def batches(images, batch_size: int, positions=None):
    """`(members, rows, batch)` over uint8 BGR (scaled by 1/255, as the notebook) or [0, 1] images:
    float32 batches of `batch_size`, `images[members]` at rows `rows`, the other rows black.

    An image sits at row `position % batch_size` of its batch, its position being its index or,
    for a shard's images, its entry in `positions` (its index in the unsharded order). TensorFlow's
    CPU kernels sum an image's products in an order that depends on its row in the batch (not on
    the other images), so a shard's images get the unsharded run's numbers bit for bit; and every
    batch having one shape, a backend that compiles per shape (JAX) compiles once."""
    n = len(images)
    rows = (np.arange(n) if positions is None else np.asarray(positions)) % batch_size
    rank = np.empty(n, np.int64)  # an image's batch: its rank among the images of its row
    for r in range(batch_size):
        same = np.flatnonzero(rows == r)
        rank[same] = np.arange(len(same))
    for b in range(int(rank.max()) + 1 if n else 0):
        members = np.flatnonzero(rank == b)
        part = np.asarray(images[members])
        release(images)
        batch = np.zeros((batch_size, *part.shape[1:]), np.float32)
        batch[rows[members]] = part / np.float32(255.0) if part.dtype == np.uint8 else part
        yield members, rows[members], batch


def predict(model, images: np.ndarray, batch_size: int = 32, report: ProgressCallback | None = None,
            positions=None) -> np.ndarray:
    """float32 `(n, outputs)` for uint8 BGR `(n, h, w, 3)` images (scaled by 1/255, as the notebook),
    every image included (the notebook's generator drops the last partial batch); `positions` as in
    `batches`."""
    out = np.empty((len(images), int(model.outputs[0].shape[-1])), np.float32)
    progress = Progress(len(images), report)
    for members, rows, batch in batches(images, batch_size, positions):
        out[members] = np.asarray(model.predict_on_batch(batch), dtype=np.float32)[rows]
        progress.advance(len(members))
    return out


class ValPredictions(Value):
    """`val_predictions`: the classifier's pass over the validation images."""
    probabilities = Array("val")   # float (images, classes)
    y_true = Array("val")          # int8 (images, classes)
    images = Table("val")          # image
    summary = Document()           # model_path, model_sha256, device, framework, gradcam_layer
