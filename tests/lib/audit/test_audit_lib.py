"""The audit's folds and models, without Dagster: folds stratified, deterministic and sticky; the
U-Net learns where a class is from images and masks, on TensorFlow (and JAX: tests/lib/saliency/test_backends.py
runs the engine there; the audit model is plain Keras 3)."""
import collections
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cloud_assets.lib.audit import network as audit, folds, label_issues
from cloud_assets.lib.saliency.engine import upsample


def _dataset(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    images = [f"{v:07x}.jpg" for v in rng.choice(2 ** 28, n, replace=False)]
    combos = list(rng.choice(["Fish", "Sugar", "Fish+Sugar", "Flower+Gravel", "Flower"], n, p=[.3, .3, .2, .15, .05]))
    return images, combos


def test_folds_are_stratified_by_label_combination_and_deterministic():
    images, combos = _dataset()
    assigned = folds.assign(images, combos, 5)
    assert sorted(collections.Counter(assigned).values()) == [200] * 5
    for combo in set(combos):
        per_fold = np.bincount(assigned[np.array(combos) == combo], minlength=5)
        assert per_fold.max() - per_fold.min() <= 1, (combo, per_fold)
    shuffled = np.random.default_rng(1).permutation(len(images))
    again = folds.assign([images[i] for i in shuffled], [combos[i] for i in shuffled], 5)
    assert dict(zip(images, assigned)) == dict(zip([images[i] for i in shuffled], again))  # not the row order


def test_a_changed_label_keeps_every_fold_and_changes_the_other_folds_training_sets_only():
    images, combos = _dataset(200)
    assigned = folds.assign(images, combos, 4)
    table = pd.DataFrame({"image": images, "fold": assigned, "labels": combos})
    before = [folds.training_digest(table, f, ["labels"]) for f in range(4)]
    combos[7] = "Gravel"
    again = folds.assign(images, combos, 4, previous=dict(zip(images, assigned)))
    assert (again == assigned).all()
    table["labels"] = combos
    after = [folds.training_digest(table, f, ["labels"]) for f in range(4)]
    assert [b == a for b, a in zip(before, after)] == [f == assigned[7] for f in range(4)]
    # a new image is dealt to the fold with fewest of its combination
    grown = folds.assign(images + ["new.jpg"], combos + ["Gravel"], 4, previous=dict(zip(images, assigned)))
    assert (grown[:-1] == assigned).all() and grown[-1] != assigned[7]


def test_fewer_than_two_folds_are_refused():
    with pytest.raises(ValueError, match="at least 2"):
        folds.assign(["a"], ["Fish"], 1)


def test_the_learning_rate_decays_from_its_rate_to_its_floor_over_the_epochs():
    rates = [audit.cosine_rate(2e-3, epoch, 8) for epoch in range(1, 9)]
    assert rates[0] == pytest.approx(2e-3) and all(a > b for a, b in zip(rates, rates[1:]))
    assert 0.05 * 2e-3 < rates[-1] < 0.1 * 2e-3


@pytest.mark.e2e
def test_the_unet_learns_where_a_bright_class_is():
    """Class 0 is a bright square, class 1 a dark one; after a few epochs the pixel probabilities
    separate them and the head tells present from absent."""
    rng = np.random.default_rng(0)
    n, size = 160, (32, 48)
    images = rng.integers(60, 120, (n, *size, 3)).astype(np.uint8)
    masks = np.zeros((n, *size, 2), np.uint8)
    labels = np.zeros((n, 2), np.uint8)
    for k in range(n):
        for c, value in enumerate((250, 5)):
            if rng.random() < 0.5:
                y, x = rng.integers(0, size[0] - 12), rng.integers(0, size[1] - 12)
                images[k, y:y + 12, x:x + 12] = value
                masks[k, y:y + 12, x:x + 12, c], labels[k, c] = 1, 1
    config = audit.TrainingConfig(size=size, widths=(8, 16, 24), epochs=8, patience=8, learning_rate=5e-3)
    log = []
    model, history = audit.train(images[:128], masks[:128], labels[:128], config, log=log.append)
    assert len(history) == 8 and "images/s" in log[0]
    probs = np.concatenate([c for _, c, _ in audit.predict(model, images[128:])])
    pixels = np.concatenate([p for _, _, p in audit.predict(model, images[128:])]).astype(np.float32)
    truth = masks[128:].transpose(0, 3, 1, 2).astype(bool)
    assert pixels[truth].mean() > 0.5 > pixels[~truth].mean()
    assert ((probs > 0.5) == labels[128:].astype(bool)).mean() > 0.8


def test_the_dice_loss_is_nought_for_the_masks_themselves_and_grows_as_the_edges_blur():
    """`bce_dice`: a prediction equal to the masks (an empty one included) costs nothing; the same masks
    with their edges blurred cost more, and a prediction of nothing costs most."""
    masks = np.zeros((2, 8, 12, 2), np.float32)
    masks[0, 2:6, 3:9, 0] = 1
    blurred = masks.copy()
    blurred[0, 1:7, 2:10, 0] = np.maximum(blurred[0, 1:7, 2:10, 0], 0.5)
    loss = [float(audit.bce_dice(masks, p)) for p in (masks, blurred, np.zeros_like(masks))]
    assert loss[0] == pytest.approx(0, abs=1e-3) and loss[0] < loss[1] < loss[2]


def test_a_prediction_is_the_mean_over_the_flips_each_pixel_flipped_back():
    """A model whose pixel output is its input's first channel and whose class output is its top-left
    pixel: averaged over the flips, each pixel flipped back, the pixels come back as they went in (a
    flip left unreversed would mix them), and the class is the mean of the four corners."""
    import keras

    image = keras.Input((4, 6, 3))
    model = keras.Model(image, {"pixels": keras.layers.Lambda(lambda x: x[..., :1])(image),
                                "classes": keras.layers.Lambda(lambda x: x[:, 0, 0, :1])(image)})
    images = np.random.default_rng(0).integers(0, 255, (3, 4, 6, 3)).astype(np.uint8)
    (start, probs, pixels), = list(audit.predict(model, images, batch_size=8))
    x = images[..., 0].astype(np.float32) / 255
    np.testing.assert_allclose(pixels[:, 0], x, atol=1e-3)
    corners = (x[:, 0, 0] + x[:, -1, 0] + x[:, 0, -1] + x[:, -1, -1]) / 4
    np.testing.assert_allclose(probs[:, 0], corners, atol=1e-6)


@pytest.mark.e2e
def test_the_class_network_learns_which_class_an_image_shows():
    """Class 0 is a bright square, class 1 a dark one; the class network, trained as the audit trains
    it, tells present from absent on images it never saw, and its Grad-CAM (`class_maps`, at a layer of
    at least 7x7) falls on the square; a profile's class size follows the classifier's input size."""
    rng = np.random.default_rng(0)
    n, size = 320, (32, 32)
    images = rng.integers(60, 120, (n, *size, 3)).astype(np.uint8)
    labels = (rng.random((n, 2)) < 0.5).astype(np.uint8)
    squares = np.zeros((2, n, *size), bool)
    for k in range(n):
        for c, value in enumerate((250, 5)):
            if labels[k, c]:
                y, x = rng.integers(0, size[0] - 12, 2)
                images[k, y:y + 12, x:x + 12] = value
                squares[c, k, y:y + 12, x:x + 12] = True
    log = []
    model, history = audit.train_classes(images[:256], labels[:256], audit.ClassConfig(size=size, epochs=8),
                                         log=log.append)
    assert len(history) == 8 and "images/s" in log[0]
    probs = audit.predict_classes(model, images[256:])
    assert probs.shape == (64, 2) and ((probs > 0.5) == labels[256:].astype(bool)).mean() > 0.9
    # its Grad-CAM: the engine's probabilities, and on each labelled square far more energy than its area
    engine_probs, cams, guided = audit.class_maps(model, images[256:], (16, 16))
    assert model.get_layer(audit.class_cam_layer(model)).output.shape[1:3] == (8, 8)
    assert cams.shape == (2, 64, 8, 8) and guided.shape == (64, 16, 16) and guided.dtype == np.float16
    np.testing.assert_allclose(engine_probs, probs, atol=1e-4)
    cam = upsample(cams, size)
    inside = [(cam[c, k] * squares[c, 256 + k]).sum() / cam[c, k].sum() for c in range(2) for k in range(64)
              if labels[256 + k, c] and cam[c, k].sum() > 0]
    assert np.mean(inside) > 2 * 144 / 1024, np.mean(inside)
    assert audit.PROFILES["fast"].class_size((224, 224)) == (112, 112)  # half of each side
    assert audit.PROFILES["strong"].class_size((224, 224)) == (224, 224)
    assert audit.PROFILES["fast"].class_size((40, 60)) == (32, 32)      # at least 32


@pytest.mark.e2e
def test_class_networks_trained_one_after_another_on_one_trainer_equal_new_ones_bit_for_bit():
    """The folds' class networks share one compiled model (`ClassTrainer`); each must learn exactly what a
    new network would, also after a training set of another step count compiled it again."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (200, 32, 32, 3)).astype(np.uint8)
    labels = (rng.random((200, 2)) < 0.5).astype(np.uint8)
    config = audit.ClassConfig(size=(32, 32), epochs=2)
    trainer = audit.ClassTrainer(2, config)
    for rows in (np.arange(0, 150), np.arange(10, 160), np.arange(0, 190)):  # the third has more steps
        shared = trainer.train(images[rows], labels[rows], log=lambda message: None)[0].get_weights()
        new = audit.train_classes(images[rows], labels[rows], config, log=lambda message: None)[0].get_weights()
        assert all(np.array_equal(a, b) for a, b in zip(shared, new))


def test_second_rounds_trained_one_after_another_on_one_trainer_equal_each_model_compiled_anew_bit_for_bit(tmp_path):
    """The folds' second rounds share one compiled U-Net (`Trainer.train(start=...)`); each must end exactly
    where its first-round model, loaded and compiled anew, would."""
    import keras

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (40, 32, 48, 3)).astype(np.uint8)
    masks = (rng.random((40, 32, 48, 2)) < 0.3).astype(np.uint8)
    labels = masks.max(axis=(1, 2))
    first = audit.TrainingConfig(size=(32, 48), widths=(8, 16), epochs=1)
    refit = audit.TrainingConfig(size=(32, 48), widths=(8, 16), epochs=2, learning_rate=5e-4)
    refiner = audit.Trainer(2, refit)
    for fold, rows in enumerate((np.arange(0, 30), np.arange(10, 40))):
        path = tmp_path / f"fold{fold}.keras"
        audit.Trainer(2, first).train(images[rows], masks[rows], labels[rows], log=lambda message: None)[0].save(path)
        shared = refiner.train(images[rows], masks[rows], labels[rows], lambda message: None,
                               start=keras.saving.load_model(path, compile=False))[0].get_weights()
        keras.utils.set_random_seed(refit.seed)
        anew = audit._fit(audit._compiled(keras.saving.load_model(path, compile=False), refit), images[rows],
                          masks[rows], labels[rows], refit, lambda message: None)[0].get_weights()
        assert all(np.array_equal(a, b) for a, b in zip(shared, anew))
    with pytest.raises(ValueError, match="not a U-Net of this trainer's shape"):
        refiner.train(images, masks, labels, start=audit.build(2, audit.TrainingConfig(size=(32, 48), widths=(8, 24))))


def test_an_audit_size_the_unet_cannot_halve_is_refused():
    with pytest.raises(ValueError, match="multiple of 16"):
        audit.train(np.zeros((8, 60, 96, 3), np.uint8), np.zeros((8, 60, 96, 1), np.uint8), np.zeros((8, 1)),
                    audit.TrainingConfig(size=(60, 96)))
    with pytest.raises(ValueError, match="multiple of 32 .* e.g. 128x192"):  # five levels halve it five times
        audit.check_size(audit.TrainingConfig(size=(64, 80), widths=(8, 16, 24, 32, 48)))


def test_texture_energy_keeps_at_the_audit_size_what_the_shrinking_averages_away():
    """A fine speckle and a flat grey of the same mean look alike once shrunk to the audit size; their
    texture energy does not, at every scale, and the U-Net reads it beside the colours."""
    rng = np.random.default_rng(0)
    image = np.full((96, 144, 3), 128, np.uint8)
    image[:, 72:] = np.where(rng.random((96, 72, 1)) < 0.5, 96, 160)  # dust: mean 128, as the flat half
    small = audit.resize_images(image[None], (16, 24))[0].astype(float)
    assert abs(small[:, 3:9].mean() - small[:, 15:21].mean()) < 2  # the colours no longer tell them apart
    energy = audit.texture(image[None], (16, 24), (1.0, 4.0))
    assert energy.shape == (1, 16, 24, 2) and energy.dtype == np.uint8
    assert (energy[0, :, :8] == 0).all() and (energy[0, :, 14:] > 100).all()  # 6 sigmas from the dust and more
    config = audit.TrainingConfig(size=(16, 24), widths=(8, 16), epochs=1, texture=(1.0, 4.0))
    assert config.channels == 5 and audit.build(4, config).input_shape == (None, 16, 24, 5)
    with pytest.raises(ValueError, match="images of 3 channels: this U-Net reads 5 .*2 texture channels"):
        audit.train(np.zeros((8, 16, 24, 3), np.uint8), np.zeros((8, 16, 24, 1), np.uint8), np.zeros((8, 1)), config)


def test_each_profile_builds_at_its_size_and_the_default_follows_the_device():
    for name, profile in audit.PROFILES.items():
        config = audit.TrainingConfig(size=profile.size, widths=profile.widths, texture=profile.texture)
        audit.check_size(config)
        model = audit.build(4, config)
        assert tuple(model.get_layer("pixels").output.shape) == (None, *profile.size, 4), name
        assert model.input_shape == (None, *profile.size, 3 + len(profile.texture)), name
    gpu = any(Path("/proc/driver/nvidia/gpus").glob("*"))
    assert audit.default_profile() == ("strong" if gpu else "fast")


def test_the_class_network_follows_the_profile_unless_its_variable_names_one():
    """Unset, the class network is the profile's: the U-Net's head on both (the ranking has trees for
    each); CLOUD_ASSETS_AUDIT_CLASS_NETWORK overrides it, on either profile."""
    from cloud_assets.settings import Settings

    def network(**variables) -> str:
        return Settings.from_env({f"CLOUD_ASSETS_AUDIT_{k.upper()}": v for k, v in variables.items()}).class_network

    assert network(profile="fast") == "unet" and network(profile="strong") == "unet"
    assert network(profile="fast", class_network="densenet") == "densenet"
    assert network(profile="strong", class_network="densenet") == "densenet"
    for profile in audit.PROFILES:  # trees exist for each profile's own
        assert label_issues.trees_path(profile, network(profile=profile)).is_file()


def test_the_evidence_names_a_shifted_mask_and_a_missing_label():
    """Image a: the Fish mask where the model predicts Fish; b: the Fish mask beside the prediction;
    c: Sugar predicted but not labelled."""
    from cloud_assets.lib.audit import evidence as audit_evidence

    h, w = 64, 96
    masks, labels = np.zeros((3, h, w, 2), np.uint8), np.zeros((3, 2), np.uint8)
    pixels = np.full((2, 3, h, w), 0.02, np.float32)
    pixels[0, 0, 10:40, 10:50] = masks[0, 10:40, 10:50, 0] = labels[0, 0] = 1
    pixels[0, 1, 10:40, 10:50], masks[1, 30:60, 50:90, 0], labels[1, 0] = 0.95, 1, 1
    pixels[1, 2, 20:50, 30:70] = 0.95
    table = audit_evidence.evidence(["a", "b", "c"], ["Fish", "Sugar"], labels, masks,
                                    np.array([[.9, .1], [.8, .1], [.1, .9]]), pixels).set_index(["image", "class"])
    good, shifted, missing = table.loc[("a", "Fish")], table.loc[("b", "Fish")], table.loc[("c", "Sugar")]
    assert good["mask_quality"] > 0.9 and good["region_iou"] == 1 and good["uncovered"] == 0
    assert good["region_outside"] == 0 and good["mask_area"] == 30 * 40 / (h * w)
    assert shifted["mask_quality"] < 0.1 and shifted["uncovered"] == 1 and shifted["region_iou"] == 0
    assert shifted["outside_mass"] > 0.9 and shifted["region_outside"] == 1 and shifted["regions"] == 1
    assert good["gap"] == 0 and shifted["gap"] == 0
    assert good["one_box_fit"] > 0.9 and good["mask_fit"] > 0.9 and good["moved_box_gain"] == pytest.approx(0, abs=1e-6)
    assert shifted["moved_box_gain"] > 0.5 and missing["mask_fit"] == missing["two_box_gain"] == 0
    # cleanlab finds the missing label likely wrong; the Sugar prediction lies inside no other mask
    assert missing["label"] == 0 and missing["audit_cleanlab"] > 0.8 and missing["mask_quality"] < 0.1
    assert missing["inside_other"] == 0 and missing["other_class"] == ""
    assert np.allclose(missing[list(audit_evidence.AUDIT_BOX)].to_numpy(float), [20 / 64, 30 / 96, 50 / 64, 70 / 96])
    # the labelled mask's box: none for the missing label
    assert np.allclose(shifted[list(audit_evidence.LABEL_BOX)].to_numpy(float), [30 / 64, 50 / 96, 60 / 64, 90 / 96])
    assert np.isnan(missing[list(audit_evidence.LABEL_BOX)].to_numpy(float)).all()


def test_the_gap_is_the_dip_of_the_prediction_between_two_patches_under_one_box():
    from cloud_assets.lib.audit.evidence import gap

    own = np.zeros((64, 96), bool)
    own[10:50, 10:90] = True
    prob = np.zeros((64, 96), np.float32)
    prob[15:45, 12:40], prob[20:48, 60:88] = 0.9, 0.6  # two patches side by side, nothing between
    assert gap(prob, own) == pytest.approx(1.0)
    prob[15:45, 40:60] = 0.3  # a weak bridge: the dip is 1 - 0.3 / 0.6 (the lower side)
    assert gap(prob, own) == pytest.approx(0.5)
    one = np.zeros((64, 96), np.float32)
    one[12:48, 12:88] = 0.8  # one patch filling the box, fading towards the edges: no dip
    one[12:48, 12:20] = 0.4
    assert gap(one, own) == 0
    stacked = np.zeros((64, 96), np.float32)
    stacked[10:25, 20:80], stacked[38:50, 20:80] = 0.7, 0.7  # one above the other: across the rows
    assert gap(stacked, own) == pytest.approx(1.0)
    assert gap(prob, np.zeros((64, 96), bool)) == 0  # no mask


def test_two_patches_under_one_box_fit_two_boxes_better_than_one_even_where_the_prediction_joins_them():
    from cloud_assets.lib.audit.evidence import fits, gap

    own = np.zeros((64, 96), bool)
    own[10:50, 10:90] = True
    one = np.zeros((64, 96), np.float32)
    one[12:48, 14:86] = 0.9  # one patch filling the box
    _, _, fit, gain = fits(one, own)
    assert fit == pytest.approx(0.9) and gain < 0  # the prediction's own box holds it; two hold it worse
    two = np.zeros((64, 96), np.float32)
    two[10:26, 10:50], two[34:50, 50:90] = 0.9, 0.9  # two patches in opposite corners
    two[20:40, 40:60] = 0.9  # joined where they meet: no line across the box dips
    _, _, fit, gain = fits(two, own)
    assert fit < 0.5 and gain > 0.2
    assert gap(two, own) == 0
    assert fits(two, np.zeros((64, 96), bool)) == (0.0, 0.0, 0.0, 0.0)  # no mask
    assert fits(np.zeros((64, 96), np.float32), own) == (0.0, 0.0, 0.0, 0.0)  # nothing predicted


def test_a_box_drawn_beside_its_pattern_fits_the_prediction_better_moved():
    from cloud_assets.lib.audit.evidence import fits

    prob = np.zeros((64, 96), np.float32)
    prob[10:40, 10:50] = 1.0
    drawn = np.zeros((64, 96), bool)
    drawn[10:40, 10:50] = True
    assert fits(prob, drawn)[:2] == pytest.approx((1.0, 0.0), abs=1e-6)  # the mask is the prediction: nothing to move
    beside = np.zeros((64, 96), bool)
    beside[20:50, 40:80] = True  # the same box, shifted down and right
    mask_fit, moved_gain, _, _ = fits(prob, beside)
    assert mask_fit == pytest.approx(20 * 10 / (2 * 30 * 40 - 20 * 10))
    assert moved_gain == pytest.approx(1.0 - mask_fit)  # moved back, the box is the prediction
