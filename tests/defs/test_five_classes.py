"""Any number of classes from configuration alone: a fifth class in train.csv, a five-output model,
`class_names` of the dataset resource; nothing else changes."""
import pandas as pd
import pytest

from cloud_assets.lib.store import Store
from cloud_assets.synth.dataset import boxes_rle
from tests.helpers import A, ANALYSIS, DATA_ASSETS, failure_message, materialize, tiny_keras

pytestmark = pytest.mark.e2e  # the end-to-end tier (make test-fast leaves it out)

CLASSES = ["Fish", "Flower", "Sugar", "Gravel", "Haze"]


def test_the_whole_graph_runs_on_five_classes(dataset_copy, tmp_path):
    rows = pd.read_csv(dataset_copy / "train.csv", dtype=str, keep_default_na=False)
    images = rows["Image_Label"].str.rpartition("_")[0].unique()
    haze = [(f"{image}_Haze", boxes_rle([(20, 30, 200, 300)], (350, 525)) if i % 3 == 0 else "")
            for i, image in enumerate(images)]
    pd.concat([rows, pd.DataFrame(haze, columns=rows.columns)]).to_csv(dataset_copy / "train.csv", index=False)
    model = tiny_keras(tmp_path / "model.keras", outputs=5)
    result = materialize(dataset_copy, tmp_path / "var", DATA_ASSETS + ANALYSIS + [A.model_file,
                                                                             A.report_site],
                         model, class_names=CLASSES)
    assert result.success, failure_message(result)
    store = Store(tmp_path / "var" / "store")
    assert store.get("val_masks").array("masks").shape[0] == 5
    assert store.get("val_predictions").array("probabilities").shape[1] == 5
    issues = store.get("label_issues").table("issues")
    assert set(issues["class"]) == set(CLASSES) and issues["score"].between(0, 1).all()
    site = tmp_path / "var" / "site"
    assert (site / "classes" / "Haze.html").is_file()
    assert "Haze: azure" in (site / "issues.html").read_text()  # the fifth outline colour, in the legend
