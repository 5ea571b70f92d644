"""The saliency engine on Keras 3's JAX backend against TensorFlow (Guided Grad-CAM and Grad-CAM++),
and Keras 2 files converted for it.

The JAX side runs in a fresh interpreter (Keras picks its backend once, at import) in which
TensorFlow, tf_keras and Dagster cannot be imported, as on a machine that has only JAX.
Tolerance: 1e-4 on every map (both are float32 computations of the same graph; the differences
seen are about 1e-6), 1e-5 on probabilities.
"""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from cloud_assets import cli
from cloud_assets.lib.classifier import model as model_lib
from cloud_assets.lib.saliency import engine as saliency
from cloud_assets.lib.classifier.model import ModelError

ROOT = Path(__file__).resolve().parents[3]
ONLY_JAX = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "tf_keras", "dagster"):
            raise ImportError(f"No module named {name!r}")
sys.meta_path.insert(0, Block())
"""


def run_on_jax(code: str, only_jax: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)}
    script = (ONLY_JAX if only_jax else "") + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)


MAPS_ON_JAX = """
import numpy as np, keras
from cloud_assets.lib.classifier import model as model_lib
from cloud_assets.lib.saliency import engine as saliency
assert keras.config.backend() == "jax"
net = model_lib.load("{model}")
x = np.load("{images}")
engine = saliency.Engine(net)
gb, cams, probs = engine(x)
np.savez("{out}", gb=gb, cams=cams, probs=probs, ggc=saliency.guided_gradcam(net, x, batch_size=2),
         plus_plus=saliency.gradcam(net, x, method="gradcam++"), device=model_lib.configure_device())
"""


def maps_on_jax(model, images, tmp_path):
    np.save(tmp_path / "x.npy", images)
    out = tmp_path / "jax.npz"
    done = run_on_jax(MAPS_ON_JAX.format(model=model, images=tmp_path / "x.npy", out=out))
    assert done.returncode == 0, done.stderr[-3000:]
    return np.load(out)


def assert_same_maps(net, images, jax_maps):
    gb, cams, probs = saliency.Engine(net)(images)
    assert cams.shape == jax_maps["cams"].shape and gb.shape == jax_maps["gb"].shape
    assert np.abs(gb - jax_maps["gb"]).max() < 1e-4
    assert np.abs(saliency.upsample(cams, images.shape[1:3]) - saliency.upsample(jax_maps["cams"], images.shape[1:3])).max() < 1e-4
    assert np.abs(probs - jax_maps["probs"]).max() < 1e-5
    assert np.abs(saliency.guided_gradcam(net, images, batch_size=2) - jax_maps["ggc"]).max() < 1e-4
    assert np.abs(saliency.gradcam(net, images, method="gradcam++") - jax_maps["plus_plus"]).max() < 1e-4


@pytest.fixture(scope="module")
def images():
    x = np.random.default_rng(0).random((5, 64, 64, 3)).astype(np.float32)
    x[4] = 0  # a black image
    return x


@pytest.mark.e2e
def test_jax_gives_the_maps_tensorflow_gives(tmp_path, images):
    import keras

    from cloud_assets.lib.audit.network import densenet

    keras.utils.set_random_seed(0)
    net = densenet((64, 64), 4, blocks=(1, 2, 2, 2), growth=8, stem=8)
    net.save(tmp_path / "m.keras")
    jax_maps = maps_on_jax(tmp_path / "m.keras", images, tmp_path)
    assert str(jax_maps["device"]).startswith("jax on CPU")
    assert_same_maps(net, images, jax_maps)


def keras2_file(path):
    """A Keras 2 (tf_keras) .h5 file with '/' in its layer names, as old Keras DenseNets have."""
    import tf_keras as k

    inp = k.Input((64, 64, 3))
    x = k.layers.Conv2D(8, 3, padding="same", name="conv1/conv")(inp)
    x = k.layers.BatchNormalization(name="conv1/bn")(x)
    x = k.layers.Activation("relu", name="conv1/relu")(x)
    y = k.layers.Conv2D(8, 3, padding="same", activation="relu", name="block1/conv")(x)
    x = k.layers.Concatenate(name="block1/concat")([x, y])
    x = k.layers.MaxPooling2D(4)(x)
    x = k.layers.Conv2D(8, 3, name="block2/conv")(x)
    x = k.layers.BatchNormalization(name="bn")(x)
    x = k.layers.Activation("relu", name="relu")(x)
    x = k.layers.GlobalAveragePooling2D()(x)
    net = k.Model(inp, k.layers.Dense(4, activation="sigmoid")(x))
    rng = np.random.default_rng(1)  # moving statistics that are not the identity, so BN counts
    for layer in net.layers:
        if isinstance(layer, k.layers.BatchNormalization):
            g, b, m, v = layer.get_weights()
            layer.set_weights([g * 1.5, b + 0.1, rng.normal(0, 0.1, m.shape), v * 2])
    net.save(path)
    return path


@pytest.mark.e2e
def test_convert_model_writes_a_keras3_twin_that_jax_loads(tmp_path, images, capsys):
    src = keras2_file(tmp_path / "old.h5")
    old = model_lib.load(src)
    assert model_lib.framework(old) == "tf_keras"
    assert cli.main(["convert-model", str(src), str(tmp_path / "new.keras")]) == 0
    assert "predictions equal" in capsys.readouterr().out
    new = model_lib.load(tmp_path / "new.keras")
    assert model_lib.framework(new) == "keras"
    assert "block1_concat" in {l.name for l in new.layers}
    assert np.abs(old.predict_on_batch(images) - new.predict_on_batch(images)).max() < 1e-5
    # the tf_keras model on TensorFlow and its twin on JAX give the same maps
    jax_maps = maps_on_jax(tmp_path / "new.keras", images, tmp_path)
    assert_same_maps(old, images, jax_maps)


def test_convert_model_refuses_a_non_keras_destination(tmp_path):
    src = keras2_file(tmp_path / "old.h5")
    assert cli.main(["convert-model", str(src), str(tmp_path / "new.h5")]) == 2
    assert not (tmp_path / "new.h5").exists()


@pytest.mark.e2e
def test_a_keras2_file_on_jax_is_refused_with_the_way_out(tmp_path):
    src = keras2_file(tmp_path / "old.h5")
    done = run_on_jax(f"""
        from cloud_assets.lib.classifier import model as model_lib
        try:
            model_lib.load("{src}")
        except model_lib.ModelError as e:
            print(e)
        """)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "old.h5" in done.stdout and "cloud-assets convert-model" in done.stdout


def test_upsample_is_the_notebooks_resize_relu_and_division():
    import cv2

    cams = np.random.default_rng(0).normal(size=(3, 4, 7, 7)).astype(np.float32)
    cams[1, 2] = -1.0  # nothing above zero: the notebook's NaN, here 0
    got = saliency.upsample(cams, (224, 160))
    assert got.shape == (3, 4, 224, 160)
    for c in range(3):
        for i in range(4):
            cam = np.maximum(cv2.resize(cams[c, i], (160, 224), interpolation=cv2.INTER_LINEAR), 0)
            expected = cam / cam.max() if cam.max() > 0 else np.zeros_like(cam)
            assert np.array_equal(got[c, i], expected)


def test_prefetch_keeps_order_and_raises_the_producers_error():
    assert list(saliency.prefetch(iter(range(10)))) == list(range(10))

    def failing():
        yield 1
        raise ModelError("broken batch")

    with pytest.raises(ModelError, match="broken batch"):
        list(saliency.prefetch(failing()))
    # a consumer that stops early does not leave the producer blocked
    gen = saliency.prefetch(iter(range(100)), depth=1)
    assert next(gen) == 0
    gen.close()


def test_device_command_names_backend_and_device(capsys):
    assert cli.main(["device"]) == 0
    assert capsys.readouterr().out.startswith(("tensorflow on CPU", "tensorflow on GPU"))


@pytest.mark.e2e
def test_the_audit_unet_trains_and_predicts_on_jax():
    """The fold audit's model is plain Keras 3: on JAX alone (no TensorFlow importable) it trains
    from scratch and predicts every pixel."""
    done = run_on_jax("""
        import numpy as np
        from cloud_assets.lib.audit import network as audit
        rng = np.random.default_rng(0)
        images = rng.integers(0, 255, (40, 32, 48, 3)).astype(np.uint8)
        masks = np.zeros((40, 32, 48, 2), np.uint8)
        masks[:20, 4:20, 8:30, 0] = 1
        images[:20, 4:20, 8:30] = 250
        labels = masks.max(axis=(1, 2))
        config = audit.TrainingConfig(size=(32, 48), widths=(8, 16, 24), epochs=2, patience=2)
        model, history = audit.train(images, masks, labels, config, log=print)
        import keras
        assert keras.backend.backend() == "jax" and len(history) == 2
        (start, probs, pixels), = list(audit.predict(model, images[:8], batch_size=8))
        assert probs.shape == (8, 2) and pixels.shape == (8, 2, 32, 48)
        print("ok", history[-1])
        """)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-3000:]
