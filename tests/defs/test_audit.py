"""The audit assets materialized on the small dataset: every image of train.csv in one fold, one
model per fold trained on the others, every image predicted by the model that never saw it, every
label's evidence from those predictions; a fold model is kept by its training set, so a second run
trains nothing, a run killed after some folds trains only the rest, and a corrected label or a
changed image retrains the other folds only; out-of-fold predictions made elsewhere take the models' place."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import cv2
import numpy as np
import pandas as pd
import pytest

from cloud_assets.lib.store import Store
from tests.helpers import (DATA_ASSETS, FOLD_AUDIT as AUDIT, ROOT, SETTINGS, A, Assets, failure_message, materialize,
                           quick, run_folds)

pytestmark = pytest.mark.e2e  # the end-to-end tier (make test-fast leaves it out)


def _run(data, var, assets: Assets = A, evidence: bool = False):
    """The data and the audit's unpartitioned assets, then every fold (with the definitions of `assets`),
    then with `evidence` audit_evidence."""
    everything, settings = assets.DATA + assets.FOLD_AUDIT, assets.settings
    result = materialize(data, var, everything, selection=["label_table", "train_val_split", "image_cache",
                                                           "audit_folds", "audit_inputs"], settings=settings)
    assert result.success, failure_message(result)

    def run(selection, partition_key):
        result = materialize(data, var, everything, selection=selection, partition_key=partition_key,
                             run_config=quick(selection), settings=settings)
        assert result.success, failure_message(result)

    run_folds(run)
    if evidence:
        result = materialize(data, var, everything, selection=["audit_evidence"], settings=settings)
        assert result.success, failure_message(result)


def _trained(var, second_round: bool = False) -> dict:
    """Every first-round fold model (with `second_round`, every second-round one) trained so far: its
    folder -> when it was written (not a model being written, or one whose writer was killed: a hidden
    temporary folder)."""
    return {p.name: p.stat().st_mtime_ns for p in (var / "audit-models").iterdir()
            if not p.name.startswith(".") and ("-refit-" in p.name) == second_round}


def _digests(store, name="training_digest") -> list:
    return [store.get(f"audit_models@{key}").json("meta")[name] for key in SETTINGS.fold_keys]


def test_every_image_is_predicted_by_the_model_that_never_saw_it(dataset_copy, tmp_path):
    var = tmp_path / "var"
    _run(dataset_copy, var)
    store = Store(var / "store")
    folds = store.get("audit_folds").table("folds")
    train = pd.read_csv(dataset_copy / "train.csv")
    assert sorted(folds["image"]) == sorted(set(train["Image_Label"].str.rpartition("_")[0]))
    seen = []
    for key in SETTINGS.fold_keys:
        predictions, model = store.get(f"audit_predictions@{key}"), store.get(f"audit_models@{key}")
        images = list(predictions.table("images")["image"])
        assert set(images) == set(folds.loc[folds["fold"] == int(key), "image"])
        assert model.json("meta")["training_images"] == len(folds) - len(images)
        probs, pixels = predictions.array("probabilities"), predictions.array("pixels")
        assert probs.shape == (len(images), 4) and pixels.shape == (4, len(images), *SETTINGS.audit_shape)
        assert pixels.dtype == np.float16 and 0 <= float(pixels.min()) and float(pixels.max()) <= 1
        seen += images
    assert sorted(seen) == sorted(folds["image"])
    # the second round: each fold's U-Net trained further on the other folds only, their labels as the first
    # round corrects them (only the images it suspects change), and kept like the first round's
    relabels = store.get("audit_relabels")
    masks, given = relabels.array("masks"), store.get("audit_inputs").array("masks")
    suspects = relabels.table("suspects")
    assert len(relabels.table("evidence")) == 4 * len(folds) and (suspects["score"] >= 0.5).all()
    changed = set(folds["image"][np.asarray((masks != given).any(axis=(1, 2, 3)))])
    assert changed <= set(suspects["image"])
    for key in SETTINGS.fold_keys:
        meta = store.get(f"audit_predictions@{key}").json("meta")
        own = folds["fold"] == int(key)
        assert meta["refit_images"] == int((~own).sum()) and meta["refit_epochs"] == 1
        assert meta["refit_corrected"] == int((masks != given)[np.asarray(~own)].any(axis=(1, 2)).sum())
    refits = _trained(var, second_round=True)
    assert len(refits) == SETTINGS.audit_folds
    inputs = store.get("audit_inputs")
    assert inputs.array("images").shape == (len(folds), *SETTINGS.audit_shape, 3)
    assert inputs.array("masks").shape == (len(folds), *SETTINGS.audit_shape, 4)
    trained, digests = _trained(var), _digests(store)
    assert len(trained) == SETTINGS.audit_folds

    # every (image, class) label, with its evidence from its own fold's model
    result = materialize(dataset_copy, var, DATA_ASSETS + AUDIT, selection=["audit_evidence"])
    assert result.success, failure_message(result)
    evidence = store.get("audit_evidence").table("evidence")
    labels = store.get("label_table").table("labels").set_index("image")
    assert len(evidence) == 4 * len(folds) and not evidence.duplicated(["image", "class"]).any()
    assert all(evidence["label"] == [labels.loc[i, c] for i, c in zip(evidence["image"], evidence["class"])])
    for column in ("audit_probability", "audit_cleanlab", "mask_quality", "outside_mass", "uncovered", "region_iou"):
        assert evidence[column].between(0, 1).all(), column

    # nothing changed: no fold trains again, in either round
    _run(dataset_copy, var)
    assert _trained(var) == trained and _trained(var, second_round=True) == refits

    # a label corrected in train.csv: every image keeps its fold; the other folds train again, its own not
    image = folds["image"].iloc[0]
    fold = int(folds["fold"].iloc[0])
    rows = train.fillna("")
    first = rows.index[rows["Image_Label"].str.startswith(image + "_") & (rows["EncodedPixels"] != "")][0]
    rows.loc[first, "EncodedPixels"] = ""
    rows.to_csv(dataset_copy / "train.csv", index=False)
    _run(dataset_copy, var)
    assert store.get("audit_folds").table("folds")["fold"].tolist() == folds["fold"].tolist()
    assert [a == b for a, b in zip(digests, _digests(store))] == [f == fold for f in range(SETTINGS.audit_folds)]
    now = _trained(var)
    assert {k: v for k, v in now.items() if k in trained} == trained  # nothing trained before was rewritten
    assert len(now) == len(trained) + SETTINGS.audit_folds - 1           # the other folds' new training sets

    # an image file changed under its name: likewise, the other folds train again, its own not
    image = folds["image"].iloc[-1]
    fold = int(folds["fold"].iloc[-1])
    path = dataset_copy / "train_images" / image
    cv2.imwrite(str(path), 255 - cv2.imread(str(path)))
    pixels = _digests(store, "images_digest")
    _run(dataset_copy, var)
    assert [a == b for a, b in zip(pixels, _digests(store, "images_digest"))] == [f == fold for f in range(SETTINGS.audit_folds)]
    after = _trained(var)
    assert {k: v for k, v in after.items() if k in now} == now
    assert len(after) == len(now) + SETTINGS.audit_folds - 1


def test_a_run_killed_after_some_folds_keeps_their_models_and_the_next_trains_only_the_rest(dataset_copy, tmp_path):
    var = tmp_path / "var"
    some = min(2, SETTINGS.audit_folds - 1)  # the folds trained before the kill, fewer than all
    result = materialize(dataset_copy, var, DATA_ASSETS + AUDIT, selection=["label_table", "train_val_split",
                                                                            "image_cache", "audit_folds", "audit_inputs"])
    assert result.success, failure_message(result)
    script = textwrap.dedent(f"""
        import dagster as dg
        from tests.helpers import DATA_ASSETS, FOLD_AUDIT, SETTINGS, materialize, quick
        for key in SETTINGS.fold_keys:
            assert materialize({str(dataset_copy)!r}, {str(var)!r}, DATA_ASSETS + FOLD_AUDIT, selection=["audit_models"],
                               partition_key=key, run_config=quick(["audit_models"])).success
        """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    models = var / "audit-models"
    deadline = time.monotonic() + 300
    while not (models.is_dir() and len(_trained(var)) >= some) and proc.poll() is None:
        assert time.monotonic() < deadline, "no fold model within 5 minutes"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = _trained(var)
    assert some <= len(kept) < SETTINGS.audit_folds, kept  # killed in the middle, each kept model whole
    assert all((models / name / "model.keras").is_file() for name in kept)
    _run(dataset_copy, var)
    now = _trained(var)
    assert {k: v for k, v in now.items() if k in kept} == kept and len(now) == SETTINGS.audit_folds


def test_out_of_fold_predictions_made_elsewhere_take_the_models_place(dataset_copy, tmp_path):
    """CLOUD_ASSETS_AUDIT_PREDICTIONS: a folder of images.csv, probabilities.npy, pixels.npy (here at
    twice the audit size) replaces the training; an image it lacks is named, and nothing is written."""
    n_classes, (h, w) = 4, SETTINGS.audit_shape
    images = sorted(set(pd.read_csv(dataset_copy / "train.csv")["Image_Label"].str.rpartition("_")[0]))
    rng = np.random.default_rng(0)
    made = tmp_path / "oof"
    made.mkdir()
    pd.DataFrame({"image": images[::-1]}).to_csv(made / "images.csv", index=False)
    probs = rng.random((len(images), n_classes)).astype(np.float32)
    pixels = np.repeat(np.repeat(rng.random((n_classes, len(images), h, w)).astype(np.float32), 2, axis=2), 2, axis=3)
    np.save(made / "probabilities.npy", probs)
    np.save(made / "pixels.npy", pixels)
    var = tmp_path / "var"
    everything = ["label_table", "train_val_split", "image_cache", "audit_folds", "audit_inputs"]
    assert materialize(dataset_copy, var, DATA_ASSETS + AUDIT, selection=everything, audit_predictions=str(made)).success

    def run(selection, partition_key):
        result = materialize(dataset_copy, var, DATA_ASSETS + AUDIT, selection=selection, partition_key=partition_key,
                             audit_predictions=str(made))
        assert result.success, failure_message(result)

    run_folds(run)
    assert not (var / "audit-models").exists()  # nothing trained
    assert Store(var / "store").get("audit_relabels").table("suspects").empty  # no models to train further
    store = Store(var / "store")
    row = {image: k for k, image in enumerate(images[::-1])}
    for key in SETTINGS.fold_keys:
        got = store.get(f"audit_predictions@{key}")
        names = list(got.table("images")["image"])
        assert np.allclose(got.array("probabilities"), probs[[row[i] for i in names]])
        first = pixels[:, row[names[0]]]
        assert np.allclose(got.array("pixels")[:, 0], first[:, ::2, ::2], atol=0.15)  # brought to the audit size
    assert materialize(dataset_copy, var, DATA_ASSETS + AUDIT, selection=["audit_evidence"],
                       audit_predictions=str(made)).success

    # an image without a prediction: the step fails naming it, and the fold's value stays
    pd.DataFrame({"image": images[1:][::-1]}).to_csv(made / "images.csv", index=False)
    np.save(made / "probabilities.npy", probs[1:])
    np.save(made / "pixels.npy", pixels[:, 1:])
    folds = store.get("audit_folds").table("folds")
    key = SETTINGS.fold_keys[int(folds.loc[folds["image"] == images[0], "fold"].iloc[0])]
    before = os.readlink(var / "store" / f"audit_predictions@{key}")
    result = materialize(dataset_copy, var, DATA_ASSETS + AUDIT, selection=["audit_predictions"],
                         partition_key=key, audit_predictions=str(made))
    assert not result.success
    assert f"images of train.csv have no prediction (first: {images[0]})" in failure_message(result)
    assert os.readlink(var / "store" / f"audit_predictions@{key}") == before


def test_a_profile_change_retrains_records_the_profile_and_the_first_profile_s_models_stay(dataset_copy, tmp_path):
    """The definitions built with the strong profile (in this process, beside the tests' own) train a
    fold model at the strong profile's size, recorded in its metadata; a class network the ranking has no
    trees for at that profile is refused before anything trains; back on the first profile, the models
    trained before are kept and nothing trains."""
    var = tmp_path / "var"
    _run(dataset_copy, var)
    before = _trained(var)
    store = Store(var / "store")
    assert store.get("audit_models@0").json("meta")["profile"] == SETTINGS.profile == "fast"
    strong = Assets(SETTINGS.replace(audit_profile="strong", audit_size=None))  # the profile's own size
    assert strong.settings.audit_shape == (128, 192)
    assert strong.audit_models.code_versions_by_key != A.audit_models.code_versions_by_key  # a new profile re-runs
    result = materialize(dataset_copy, var, strong.DATA + strong.FOLD_AUDIT, selection=["audit_inputs"],
                         settings=strong.settings)
    assert result.success, failure_message(result)
    result = materialize(dataset_copy, var, strong.DATA + strong.FOLD_AUDIT, selection=["audit_models"],
                         partition_key="0", run_config=quick(["audit_models"]), settings=strong.settings)
    assert result.success, failure_message(result)
    meta = store.get("audit_models@0").json("meta")
    assert (meta["profile"], meta["size"], meta["widths"]) == ("strong", [128, 192], [24, 48, 64, 96])
    assert len(_trained(var)) == len(before) + 1
    # a class network the ranking has no trees for at this profile: refused before anything trains
    dense = Assets(strong.settings.replace(audit_class_network="densenet"))
    result = materialize(dataset_copy, var, dense.DATA + dense.FOLD_AUDIT, selection=["audit_models"],
                         partition_key="1", run_config=quick(["audit_models"]), settings=dense.settings)
    assert not result.success and "ranking_trees_strong-densenet.skops" in failure_message(result)
    assert len(_trained(var)) == len(before) + 1
    _run(dataset_copy, var)
    assert {k: v for k, v in _trained(var).items() if k in before} == before and len(_trained(var)) == len(before) + 1
    assert store.get("audit_models@0").json("meta")["profile"] == "fast"


def test_the_densenet_class_network_trains_beside_the_kept_unets_on_the_other_folds_only(dataset_copy, tmp_path):
    """With CLOUD_ASSETS_AUDIT_CLASS_NETWORK=densenet (definitions built in this process), each fold also
    trains a class network on the other folds' images at its size, recorded in its metadata; its class
    probabilities take the U-Net head's place while the pixels stay the U-Net's; the U-Nets trained before
    are kept, nothing of theirs trains again; a label changed in one fold retrains the other folds' class
    networks only; back on the U-Net head, nothing trains."""
    var = tmp_path / "var"
    _run(dataset_copy, var)
    unets = _trained(var)
    store = Store(var / "store")
    head = {k: np.array(store.get(f"audit_predictions@{k}").array("probabilities")) for k in SETTINGS.fold_keys}
    pixels = {k: np.array(store.get(f"audit_predictions@{k}").array("pixels")) for k in SETTINGS.fold_keys}
    dense = Assets(SETTINGS.replace(audit_class_network="densenet"))
    assert dense.audit_models.code_versions_by_key != A.audit_models.code_versions_by_key  # the change re-runs
    _run(dataset_copy, var, dense, evidence=True)
    trained = _trained(var)
    assert {k: v for k, v in trained.items() if k in unets} == unets               # the U-Nets kept
    assert len(trained) == len(unets) + SETTINGS.audit_folds                       # a class network per fold
    folds = store.get("audit_folds").table("folds")
    class_images = store.get("audit_inputs").array("class_images")
    assert class_images.shape[0] == len(folds) and min(class_images.shape[1:3]) >= 32
    for key in SETTINGS.fold_keys:
        model, predictions = store.get(f"audit_models@{key}"), store.get(f"audit_predictions@{key}")
        meta = model.json("meta")
        assert meta["class_network"] == "densenet" and meta["class_size"] == list(class_images.shape[1:3])
        assert meta["training_images"] == int((folds["fold"] != int(key)).sum())  # its own fold never seen
        assert (model.path / "classes.keras").is_file()
        assert set(model.table("history")["network"]) == {"unet", "densenet"}
        probs = np.array(predictions.array("probabilities"))
        assert probs.shape == head[key].shape and not np.allclose(probs, head[key])  # the class network's
        assert np.array_equal(np.array(predictions.array("pixels")), pixels[key])     # the U-Net's pixels
        cams, guided = predictions.array("class_gradcam"), predictions.array("class_guided_backprop")
        assert cams.shape[:2] == (len(SETTINGS.classes), len(probs)) and min(cams.shape[2:]) >= 7  # its Grad-CAM
        assert guided.shape == (len(probs), *SETTINGS.audit_shape)
    # every label gets the class network's mask attention (the classifier's only reach the validation split)
    evidence = store.get("audit_evidence").table("evidence")
    shares = evidence[["class_ggc_own", "class_ggc_other", "class_ggc_outside", "class_ggc_nodata"]]
    assert shares.notna().all().all() and np.allclose(shares.sum(axis=1)[shares.sum(axis=1) > 0], 1, atol=1e-3)

    # a label corrected in fold f: only the other folds' U-Nets and class networks train again
    train = pd.read_csv(dataset_copy / "train.csv").fillna("")
    image = folds["image"].iloc[0]
    first = train.index[train["Image_Label"].str.startswith(image + "_") & (train["EncodedPixels"] != "")][0]
    train.loc[first, "EncodedPixels"] = ""
    train.to_csv(dataset_copy / "train.csv", index=False)
    _run(dataset_copy, var, dense)
    now = _trained(var)
    assert {k: v for k, v in now.items() if k in trained} == trained
    assert len(now) == len(trained) + 2 * (SETTINGS.audit_folds - 1)

    # back on the U-Net head: its models exist for this training set, nothing trains
    _run(dataset_copy, var, evidence=True)
    assert _trained(var) == now and store.get("audit_models@0").json("meta")["class_network"] == "unet"
    assert not (store.get("audit_models@0").path / "classes.keras").exists()
    assert store.get("audit_evidence").table("evidence")["class_cam_own"].isna().all()
