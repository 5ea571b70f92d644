"""Guided Grad-CAM against the notebook's cells on a small DenseNet-family model.

The reference uses the notebook's own mechanism: the `Relu` gradient overridden with
`gradient_override_map` in a graph (`tf.function`), `tf.gradients` of the layer output for guided
backprop, one Grad-CAM gradient per class, and the notebook's numpy post-processing."""
import cv2
import numpy as np
import pytest

from cloud_assets.lib.saliency import engine as saliency


@pytest.fixture(scope="module")
def densenet():
    import keras

    from cloud_assets.lib.audit.network import densenet

    keras.utils.set_random_seed(0)
    return densenet((64, 64), 4, blocks=(1, 2, 2, 2), growth=8, stem=8)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    x = rng.random((5, 64, 64, 3)).astype(np.float32)
    x[4] = 0  # a black image
    return x


def notebook_reference(model, images, layer_name):
    import tensorflow as tf
    from tensorflow.python.framework import ops

    if "GuidedBackPropSeed" not in ops._gradient_registry._registry:
        @ops.RegisterGradient("GuidedBackPropSeed")
        def _guided(op, grad):
            dtype = op.inputs[0].dtype
            return grad * tf.cast(grad > 0., dtype) * tf.cast(op.inputs[0] > 0., dtype)

    import keras
    sub = keras.Model(model.inputs, [model.get_layer(layer_name).output, model.outputs[0]])

    @tf.function
    def guided_grads(x):
        with tf.compat.v1.get_default_graph().gradient_override_map({"Relu": "GuidedBackPropSeed"}):
            a, _ = sub(x, training=False)
        return tf.gradients(a, x)[0]

    @tf.function
    def gradcam_grads(x, class_i):
        a, out = sub(x, training=False)
        return a, tf.gradients(out[:, class_i:class_i + 1], a)[0]

    h, w = images.shape[1:3]
    gb = guided_grads(tf.constant(images)).numpy()
    gb = np.mean(gb, axis=3)
    img_means = np.repeat(np.mean(gb, axis=(1, 2)), gb.shape[1] * gb.shape[2]).reshape(gb.shape)
    img_std = np.repeat(np.std(gb, axis=(1, 2)), gb.shape[1] * gb.shape[2]).reshape(gb.shape) + 1e-5
    gb = np.clip(np.divide(gb - img_means, img_std) * 0.1 + 0.5, 0, 1)
    cams_all, ggc_all = [], []
    for class_i in range(model.outputs[0].shape[-1]):
        conv_output, grads_val = (t.numpy() for t in gradcam_grads(tf.constant(images), class_i))
        weights = np.mean(grads_val, axis=(1, 2))
        cams = np.einsum("ijkl,il->ijk", conv_output, weights)
        new_cams = np.empty((images.shape[0], h, w))
        with np.errstate(invalid="ignore", divide="ignore"):
            for i in range(images.shape[0]):
                cam_i = cams[i] - cams[i].mean()
                cam_i = (cam_i + 1e-10) / (np.linalg.norm(cam_i, 2) + 1e-10)
                new_cams[i] = cv2.resize(cam_i, (w, h), cv2.INTER_LINEAR)
                new_cams[i] = np.maximum(new_cams[i], 0)
                new_cams[i] = new_cams[i] / new_cams[i].max()
        cams_all.append(new_cams)
        ggc_all.append(new_cams * gb)
    return gb, np.stack(cams_all), np.stack(ggc_all)


@pytest.mark.e2e
def test_guided_gradcam_equals_the_notebook(densenet, images):
    layer = saliency.gradcam_layer(densenet)
    assert layer == "conv5_block2_concat"
    ref_gb, ref_cam, ref_ggc = notebook_reference(densenet, images, layer)
    ggc = saliency.guided_gradcam(densenet, images, batch_size=2)
    assert ggc.shape == (4, 5, 64, 64) and ggc.dtype == np.float32
    finite = np.isfinite(ref_ggc)
    assert finite.sum() > 0.5 * finite.size
    assert np.abs(ggc[finite] - ref_ggc[finite]).max() < 1e-4
    assert (ggc[~finite] == 0).all()  # the notebook's NaN (a zero maximum) is 0 here
    assert np.abs(saliency.guided_backprop(densenet, images) - ref_gb).max() < 1e-4
    cam = saliency.gradcam(densenet, images)
    assert np.abs(cam[np.isfinite(ref_cam)] - ref_cam[np.isfinite(ref_cam)]).max() < 1e-4


def _relu_variants():
    import keras
    from keras import layers

    def net(kind):
        inp = keras.Input((32, 32, 3))
        if kind == "activation_arg":
            x = layers.Conv2D(6, 3, activation="relu", name="c1")(inp)
            x = layers.Conv2D(6, 3, activation="relu", name="c2")(x)
        else:
            relu = (lambda n: layers.ReLU(name=n)) if kind == "relu_layer" else (lambda n: layers.Activation("relu", name=n))
            x = relu("r1")(layers.Conv2D(6, 3, name="c1")(inp))
            x = relu("r2")(layers.Conv2D(6, 3, name="c2")(x))
        x = layers.GlobalAveragePooling2D()(x)
        return keras.Model(inp, layers.Dense(3, activation="sigmoid")(x))

    keras.utils.set_random_seed(1)
    return {k: net(k) for k in ("activation_arg", "relu_layer", "activation_layer")}


@pytest.mark.parametrize("kind", ["activation_arg", "relu_layer", "activation_layer"])
def test_every_way_of_writing_relu_is_guided(kind):
    model = _relu_variants()[kind]
    x = np.random.default_rng(2).random((3, 32, 32, 3)).astype(np.float32)
    layer = "c2" if kind == "activation_arg" else "r2"
    ref_gb, _, ref_ggc = notebook_reference(model, x, layer)
    ours = saliency.guided_gradcam(model, x, layer_name=layer)
    finite = np.isfinite(ref_ggc)
    assert np.abs(ours[finite] - ref_ggc[finite]).max() < 1e-4
    assert np.abs(saliency.guided_backprop(model, x, layer_name=layer) - ref_gb).max() < 1e-4


def test_the_model_is_not_mutated(densenet, images):
    before = [w.copy() for w in densenet.get_weights()]
    activations = [getattr(l, "activation", None) for l in densenet.layers]
    saliency.guided_gradcam(densenet, images[:2])
    assert all(np.array_equal(a, b) for a, b in zip(before, densenet.get_weights()))
    assert activations == [getattr(l, "activation", None) for l in densenet.layers]


def test_one_engine_per_model_and_layer_serves_every_call(densenet, images):
    first = saliency.engine_for(densenet)
    saliency.guided_gradcam(densenet, images[:2])
    saliency.gradcam(densenet, images[:2])
    assert saliency.engine_for(densenet) is first
    assert saliency.engine_for(densenet, "conv4_block2_concat") is not first


def gradcam_plus_plus_reference(model, images, layer_name):
    """Grad-CAM++ as pytorch-grad-cam's `GradCAMPlusPlus.get_cam_weights` computes the weights, in
    NumPy, per class from TensorFlow's gradients; then the notebook's Grad-CAM normalisation."""
    import keras
    import tensorflow as tf

    sub = keras.Model(model.inputs, [model.get_layer(layer_name).output, model.outputs[0]])
    h, w = images.shape[1:3]
    out = []
    for class_i in range(model.outputs[0].shape[-1]):
        x = tf.constant(images)
        with tf.GradientTape() as tape:
            a, y = sub(x, training=False)
            score = tf.reduce_sum(y[:, class_i])
        a, grads = a.numpy().transpose(0, 3, 1, 2), tape.gradient(score, a).numpy().transpose(0, 3, 1, 2)
        g2, g3 = grads ** 2, grads ** 3
        aij = g2 / (2 * g2 + a.sum(axis=(2, 3))[:, :, None, None] * g3 + 1e-7)
        aij = np.where(grads != 0, aij, 0)
        weights = (np.maximum(grads, 0) * aij).sum(axis=(2, 3))
        cams = np.einsum("nkhw,nk->nhw", a, weights)
        maps = []
        for cam in cams:
            cam = cam - cam.mean()
            cam = cv2.resize((cam + 1e-10) / (np.linalg.norm(cam, 2) + 1e-10), (w, h), cv2.INTER_LINEAR)
            cam = np.maximum(cam, 0)
            maps.append(cam / cam.max() if cam.max() > 0 else cam)
        out.append(maps)
    return np.array(out, np.float32)


def test_gradcam_plus_plus_equals_pytorch_grad_cams_weights_on_the_same_engine(densenet, images):
    layer = saliency.gradcam_layer(densenet)
    ours = saliency.gradcam(densenet, images, method="gradcam++")
    reference = gradcam_plus_plus_reference(densenet, images, layer)
    assert ours.shape == reference.shape == (4, 5, 64, 64)
    assert np.abs(ours - reference).max() < 1e-4
    default = saliency.gradcam(densenet, images)
    assert np.abs(ours - default).max() > 1e-2  # another method, other maps
    engine = saliency.engine_for(densenet, method="gradcam++")
    assert engine is not saliency.engine_for(densenet) and engine.method.guided == "Guided Grad-CAM++"


def test_an_unknown_method_names_the_registered_ones(densenet):
    with pytest.raises(ValueError, match="saliency method 'scorecam': expected one of guided-gradcam, gradcam\\+\\+"):
        saliency.engine_for(densenet, method="scorecam")
