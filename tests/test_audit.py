"""The audit assets materialized on the small dataset: every image of train.csv in one fold, one
model per fold trained on the others, every image predicted by the model that never saw it, every
label's evidence from those predictions; a fold
model is kept by its training set, so a second run trains nothing and a corrected label retrains
the other folds only."""
import numpy as np
import pandas as pd

from cloud_assets.defs.audit import assets as audit_assets
from cloud_assets.lib.store import Store
from tests.helpers import DATA_ASSETS, failure_message, materialize

AUDIT = [audit_assets.audit_folds, audit_assets.audit_inputs, audit_assets.audit_models,
         audit_assets.audit_predictions, audit_assets.audit_evidence]
QUICK = {"ops": {"audit_models": {"config": {"epochs": 1}}}}


def _run(data, var):
    """The data and the audit's unpartitioned assets, then every fold."""
    result = materialize(data, var, DATA_ASSETS + AUDIT, selection=["label_table", "train_val_split", "image_cache",
                                                                    "audit_folds", "audit_inputs"])
    assert result.success, failure_message(result)
    for key in audit_assets.FOLD_KEYS:
        result = materialize(data, var, DATA_ASSETS + AUDIT, selection=["audit_models", "audit_predictions"],
                             partition_key=key, run_config=QUICK)
        assert result.success, failure_message(result)


def _trained(var) -> dict:
    """Every fold model trained so far: its folder -> when it was written."""
    return {p.name: p.stat().st_mtime_ns for p in (var / "audit-models").iterdir()}


def _digests(store) -> list:
    return [store.get(f"audit_models@{key}").json("meta")["training_digest"] for key in audit_assets.FOLD_KEYS]


def test_every_image_is_predicted_by_the_model_that_never_saw_it(dataset_copy, tmp_path):
    var = tmp_path / "var"
    _run(dataset_copy, var)
    store = Store(var / "store")
    folds = store.get("audit_folds").table("folds")
    train = pd.read_csv(dataset_copy / "train.csv")
    assert sorted(folds["image"]) == sorted(set(train["Image_Label"].str.rpartition("_")[0]))
    seen = []
    for key in audit_assets.FOLD_KEYS:
        predictions, model = store.get(f"audit_predictions@{key}"), store.get(f"audit_models@{key}")
        images = list(predictions.table("images")["image"])
        assert set(images) == set(folds.loc[folds["fold"] == int(key), "image"])
        assert model.json("meta")["training_images"] == len(folds) - len(images)
        probs, pixels = predictions.array("probabilities"), predictions.array("pixels")
        assert probs.shape == (len(images), 4) and pixels.shape == (4, len(images), *audit_assets.SIZE)
        assert pixels.dtype == np.float16 and 0 <= float(pixels.min()) and float(pixels.max()) <= 1
        seen += images
    assert sorted(seen) == sorted(folds["image"])
    inputs = store.get("audit_inputs")
    assert inputs.array("images").shape == (len(folds), *audit_assets.SIZE, 3)
    assert inputs.array("masks").shape == (len(folds), *audit_assets.SIZE, 4)
    trained, digests = _trained(var), _digests(store)
    assert len(trained) == audit_assets.FOLDS

    # every (image, class) label, with its evidence from its own fold's model
    result = materialize(dataset_copy, var, DATA_ASSETS + AUDIT, selection=["audit_evidence"])
    assert result.success, failure_message(result)
    evidence = store.get("audit_evidence").table("evidence")
    labels = store.get("label_table").table("labels").set_index("image")
    assert len(evidence) == 4 * len(folds) and not evidence.duplicated(["image", "class"]).any()
    assert all(evidence["label"] == [labels.loc[i, c] for i, c in zip(evidence["image"], evidence["class"])])
    for column in ("audit_probability", "audit_cleanlab", "mask_quality", "outside_mass", "uncovered", "region_iou"):
        assert evidence[column].between(0, 1).all(), column

    # nothing changed: no fold trains again
    _run(dataset_copy, var)
    assert _trained(var) == trained

    # a label corrected in train.csv: every image keeps its fold; the other folds train again, its own not
    image = folds["image"].iloc[0]
    fold = int(folds["fold"].iloc[0])
    rows = train.fillna("")
    first = rows.index[rows["Image_Label"].str.startswith(image + "_") & (rows["EncodedPixels"] != "")][0]
    rows.loc[first, "EncodedPixels"] = ""
    rows.to_csv(dataset_copy / "train.csv", index=False)
    _run(dataset_copy, var)
    assert store.get("audit_folds").table("folds")["fold"].tolist() == folds["fold"].tolist()
    assert [a == b for a, b in zip(digests, _digests(store))] == [f == fold for f in range(audit_assets.FOLDS)]
    now = _trained(var)
    assert {k: v for k, v in now.items() if k in trained} == trained  # nothing trained before was rewritten
    assert len(now) == len(trained) + audit_assets.FOLDS - 1           # the other folds' new training sets
