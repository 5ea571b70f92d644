"""model_file, model_pass (val_predictions and saliency_maps) and the analysis assets, materialized on
the small dataset."""
import hashlib

import numpy as np
import pytest

from cloud_assets.lib.classifier import mistakes as mistakes_lib, thresholds
from cloud_assets.lib.store import Store
from cloud_assets.eval import notebook
from tests.helpers import A, ANALYSIS, DATA_ASSETS, failure_message, materialize, tiny_keras

pytestmark = pytest.mark.e2e  # the end-to-end tier (make test-fast leaves it out)



@pytest.fixture(scope="module")
def audited(small_dataset, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("audit")
    model = tiny_keras(tmp / "model.keras")
    result = materialize(small_dataset, tmp / "var", DATA_ASSETS + ANALYSIS + [A.model_file], model,
                         run_config={"ops": {"mistakes": {"config": {"precision_level": 80}}}})
    assert result.success, failure_message(result)
    return result, Store(tmp / "var" / "store"), model


def test_val_predictions_cover_every_val_image_with_the_notebook_inputs(audited, small_dataset):
    import keras

    result, store, model_path = audited
    preds = store.get("val_predictions")
    names = list(preds.table("images")["image"])
    split = store.get("train_val_split").table("split")
    assert names == list(split.loc[split["split"] == "val", "image"])
    probs = preds.array("probabilities")
    assert probs.shape == (len(names), 4) and len(names) % 32 != 0
    # the notebook's input: cv2.imread, resize, /255
    x = np.stack([notebook.get_img(small_dataset / "train_images" / n) for n in names])
    assert np.allclose(probs, keras.models.load_model(model_path).predict(x, verbose=0), atol=1e-5)
    meta = {e.asset_key.path[-1]: e.materialization.metadata for e in result.get_asset_materialization_events()}
    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
    assert meta["val_predictions"]["model_sha256"].value == digest
    assert "pr_auc_Fish" in meta["val_predictions"] and "Gravel" in meta["val_predictions"]["pr_auc"].value
    assert "| Fish" in meta["confusion_matrices"]["at_precision_90"].value
    assert meta["mistakes"]["precision_level"].value == 80


def test_saliency_maps_cover_every_val_image_compactly(audited):
    from cloud_assets.lib.saliency import engine as saliency

    result, store, model_path = audited
    maps = store.get("saliency_maps")
    n = len(store.get("val_predictions").table("images"))
    # Grad-CAM at its layer's resolution: the tiny model's last convolution is 54x54
    assert maps.array("gradcam").shape == (4, n, 54, 54) and maps.array("gradcam").dtype == np.float32
    assert maps.array("guided_backprop").shape == (n, 224, 224) and maps.array("guided_backprop").dtype == np.float16
    meta = {e.asset_key.path[-1]: e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert meta["saliency_maps"]["seconds_per_image"].value > 0 and meta["saliency_maps"]["images_per_s"].value > 0
    import keras
    x = store.get("image_cache").array("val")[:3].astype(np.float32) / 255
    direct = saliency.guided_gradcam(keras.models.load_model(model_path), x)
    stored = saliency.combine(maps.array("gradcam")[:, :3], maps.array("guided_backprop")[:3])
    assert np.abs(direct - stored).max() < 2e-3  # float16 storage
    table = store.get("mistakes").table("mistakes")
    assert (table["mean_guided_gradcam"] >= 0).all()


def test_val_predictions_alone_equal_those_of_the_saliency_pass(audited, small_dataset, tmp_path):
    """Selected alone, val_predictions runs the forward pass only; with saliency_maps, the saliency
    pass yields them: the same numbers either way."""
    import shutil

    _, store, model_path = audited
    var = tmp_path / "var"
    shutil.copytree(store.root, var / "store", symlinks=True)  # the store publishes by symlink
    result = materialize(small_dataset, var, DATA_ASSETS + ANALYSIS, model_path, selection=["val_predictions"])
    assert result.success, failure_message(result)
    assert {e.asset_key.path[-1] for e in result.get_asset_materialization_events()} == {"val_predictions"}
    alone = Store(var / "store").get("val_predictions").array("probabilities")
    assert np.array_equal(alone, store.get("val_predictions").array("probabilities"))


def test_analysis_assets_agree_with_the_library(audited):
    _, store, _ = audited
    preds = store.get("val_predictions")
    y_true, y_pred = preds.array("y_true"), preds.array("probabilities")
    maps = store.get("threshold_maps").table("maps")
    assert maps.equals(thresholds.threshold_maps(y_true, y_pred))
    cm = store.get("confusion_matrices").table("matrices")
    assert sorted(cm["level"].unique()) == [80, 90, 95]
    at90 = cm[cm["level"] == 90]
    cut = np.array([thresholds.probability_at(maps, c, 90) for c in range(4)])
    expected = mistakes_lib.confusion(y_true, mistakes_lib.binarize(y_pred, cut))
    assert at90[["tn", "fp", "fn", "tp"]].to_numpy().reshape(4, 2, 2).tolist() == expected.tolist()
    table = store.get("mistakes").table("mistakes")
    assert store.get("mistakes").json("level")["precision_level"] == 80
    from cloud_assets.lib.saliency import engine as saliency
    maps = store.get("saliency_maps")
    classes = ["Fish", "Flower", "Sugar", "Gravel"]
    for row in table.iloc[[0, len(table) // 2, -1]].itertuples():
        direct = saliency.combine(maps.array("gradcam")[classes.index(row[1]), row.index],
                                  maps.array("guided_backprop")[row.index]).mean()
        assert np.isclose(row.mean_guided_gradcam, direct, rtol=1e-6), row
    fp = store.get("fp_class_distribution").table("distribution")
    for name in ["Fish", "Flower", "Sugar", "Gravel"]:
        n_fp = ((table["class"] == name) & (table["outcome"] == "fp")).sum()
        assert (fp.loc[fp["class"] == name, "of"] == n_fp).all()


def test_model_file_observation_is_the_sha256(audited, tmp_path):
    import dagster as dg

    _, _, model_path = audited
    from cloud_assets.defs.resources import ModelResource

    defs = dg.Definitions(assets=[A.model_file], resources={"model": ModelResource(path=str(model_path))})
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral())
    observations = [e for e in result.all_events if e.event_type == dg.DagsterEventType.ASSET_OBSERVATION]
    assert observations
    tags = observations[0].event_specific_data.asset_observation.tags
    assert tags["dagster/data_version"] == hashlib.sha256(model_path.read_bytes()).hexdigest()


def test_bad_model_fails_val_predictions_and_keeps_the_data(audited, small_dataset, tmp_path):
    bad = tmp_path / "model.keras"
    bad.write_text("not a model")
    result = materialize(small_dataset, tmp_path / "var", DATA_ASSETS + ANALYSIS, bad)
    assert not result.success
    assert f"{bad}: not a Keras model" in failure_message(result)
    assert Store(tmp_path / "var" / "store").get("image_cache").array("val").shape[0] > 0
