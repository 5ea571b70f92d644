"""Model files: the notebook's Keras-2 DenseNet121 .h5, .keras files, and each error a user can hit."""
import numpy as np
import pytest

from cloud_assets.lib.classifier import model as model_lib
from cloud_assets.lib.classifier.model import ModelError
from tests.helpers import tiny_keras


@pytest.fixture(scope="module")
def densenet121_h5(tmp_path_factory):
    """The notebook's architecture written by Keras 2 (tf_keras), as the notebook's .h5 was."""
    import tf_keras

    base = tf_keras.applications.DenseNet121(include_top=False, weights=None, pooling="avg",
                                             input_shape=(224, 224, 3))
    out = tf_keras.layers.Dense(4, activation="sigmoid")(base.output)
    path = tmp_path_factory.mktemp("m") / "classifier_epoch_45.h5"
    tf_keras.Model(base.input, out).save(path)
    return path


@pytest.mark.e2e
def test_the_notebooks_densenet121_h5_loads_through_tf_keras(densenet121_h5):
    net = model_lib.load(densenet121_h5)
    info = model_lib.check(net, densenet121_h5, 4, (224, 224))
    assert info.framework == "tf_keras" and info.gradcam_layer == "conv5_block16_concat"
    x = (np.random.default_rng(0).random((3, 224, 224, 3)) * 255).astype(np.uint8)
    probs = model_lib.predict(net, x, batch_size=2)
    assert probs.shape == (3, 4) and probs.dtype == np.float32 and ((probs > 0) & (probs < 1)).all()


def test_keras3_file_loads_in_safe_mode(tmp_path):
    path = tiny_keras(tmp_path / "m.keras")
    info = model_lib.check(model_lib.load(path), path, 4, (224, 224))
    assert info.framework == "keras" and info.gradcam_layer == "conv_b"


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match=f"{tmp_path / 'nope.h5'}: model file not found"):
        model_lib.load(tmp_path / "nope.h5")


@pytest.mark.parametrize("name,content,message", [
    ("m.keras", b"hello", "not a Keras model (a .keras file is a zip archive)"),
    ("m.h5", b"hello world", "not a Keras model (an .h5 file is HDF5"),
    ("m.pt", b"hello", "unknown model format '.pt'"),
])
def test_not_a_model(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ModelError, match=str(tmp_path / name)) as e:
        model_lib.load(tmp_path / name)
    assert message in str(e.value)


def test_hdf5_that_is_not_a_model(tmp_path):
    import h5py

    with h5py.File(tmp_path / "data.h5", "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(ModelError, match="not a loadable Keras model"):
        model_lib.load(tmp_path / "data.h5")


def test_output_width_must_match_the_classes(tmp_path):
    path = tiny_keras(tmp_path / "m.keras", outputs=3)
    with pytest.raises(ModelError, match=r"output shape \(None, 3\); expected \(None, 4\)"):
        model_lib.check(model_lib.load(path), path, 4, (224, 224))


def test_gradcam_layer_must_exist(tmp_path):
    path = tiny_keras(tmp_path / "m.keras")
    with pytest.raises(ModelError, match="Grad-CAM layer 'conv5_block16_concat' not found.*conv_b"):
        model_lib.check(model_lib.load(path), path, 4, (224, 224), "conv5_block16_concat")


@pytest.mark.parametrize("shape,message", [((224, 224, 1), "cannot take the images"),
                                           ((128, 128, 3), "expects 128x128 images but the image cache holds 224x224")])
def test_input_shape_must_fit_the_images(tmp_path, shape, message):
    path = tiny_keras(tmp_path / "m.keras", input_shape=shape)
    with pytest.raises(ModelError, match=message):
        model_lib.check(model_lib.load(path), path, 4, (224, 224))


def test_any_size_input_is_accepted(tmp_path):
    path = tiny_keras(tmp_path / "m.keras", input_shape=(None, None, 3))
    assert model_lib.check(model_lib.load(path), path, 4, (224, 224)).input_size == (224, 224)


def test_configure_device_names_the_device():
    assert model_lib.configure_device().startswith(("tensorflow on CPU", "tensorflow on GPU"))


def _functional(path, build):
    """A Keras 3 model from `build(keras, layers)` -> (inputs, outputs), saved to `path`."""
    import keras
    from keras import layers

    inputs, outputs = build(keras, layers)
    keras.Model(inputs, outputs).save(path)
    return path


def _two_inputs(keras, layers):
    a, b = keras.Input((224, 224, 3)), keras.Input((224, 224, 3))
    x = layers.GlobalAveragePooling2D()(layers.Conv2D(2, 3)(layers.Add()([a, b])))
    return [a, b], layers.Dense(4, activation="sigmoid")(x)


def _no_4d_layer(keras, layers):
    inp = keras.Input((224, 224, 3))
    return inp, layers.Dense(4, activation="sigmoid")(layers.Flatten()(inp))


def _softmax(keras, layers):
    inp = keras.Input((224, 224, 3))
    x = layers.GlobalAveragePooling2D()(layers.Conv2D(2, 3, name="conv")(inp))
    return inp, layers.Dense(4, activation="softmax")(x)


@pytest.mark.parametrize("build,message", [
    (_two_inputs, "the model has 2 inputs; expected one image input"),
    (_no_4d_layer, "has no convolution or concatenation layer with a 4-D output for Grad-CAM"),
    (_softmax, "the output is a softmax"),
])
def test_model_shapes_that_do_not_fit(tmp_path, build, message):
    path = _functional(tmp_path / "m.keras", build)
    with pytest.raises(ModelError, match=message):
        model_lib.check(model_lib.load(path), path, 4, (224, 224))


def test_more_outputs_than_classes(tmp_path):
    path = tiny_keras(tmp_path / "m.keras", outputs=5)
    with pytest.raises(ModelError, match=rf"{path}: output shape \(None, 5\); expected \(None, 4\), one probability"):
        model_lib.check(model_lib.load(path), path, 4, (224, 224))


@pytest.mark.parametrize("suffix,message", [(".keras", "not a loadable Keras model"),
                                            (".h5", "not a readable HDF5 file")])
def test_truncated_model_file(tmp_path, densenet121_h5, suffix, message):
    whole = densenet121_h5 if suffix == ".h5" else tiny_keras(tmp_path / "whole.keras")
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(ModelError, match=f"{cut}: {message}"):
        model_lib.load(cut)


def _lambda_model(path, tf_keras_format: bool):
    if tf_keras_format:
        import tf_keras as k
    else:
        import keras as k
    inp = k.Input((224, 224, 3))
    x = k.layers.Lambda(lambda t: t * 2.0, name="doubles")(inp)
    x = k.layers.GlobalAveragePooling2D()(k.layers.Conv2D(2, 3)(x))
    k.Model(inp, k.layers.Dense(4, activation="sigmoid")(x)).save(path)
    return path


@pytest.mark.parametrize("name,tf_keras_format", [("m.keras", False), ("m.h5", True)])
def test_lambda_layers_are_refused_in_safe_mode_with_an_opt_in(tmp_path, name, tf_keras_format):
    path = _lambda_model(tmp_path / name, tf_keras_format)
    with pytest.raises(ModelError, match=f"{path}: refused in safe mode") as e:
        model_lib.load(path)
    assert "set model.safe_mode to 0" in str(e.value)
    net = model_lib.load(path, safe_mode=False)
    assert any(type(l).__name__ == "Lambda" for l in net.layers)
