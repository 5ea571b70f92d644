"""Label audit scored against the synthetic dataset's injected errors (label_noise.csv).

Runs the pipeline (data, predictions, saliency, mask attention, label issues) on the demo dataset
(`make demo`'s, synthesized and trained here if missing; CLOUD_ASSETS_DATA_DIR and
CLOUD_ASSETS_MODEL_PATH pick others, CLOUD_ASSETS_INPUT_SIZE the input of another model) into
bench/.cache/label_audit/<dataset folder>/, then prints, for each signal alone and for the
combination: precision at k (k = injected errors in the validation split), recall at 2k and AUROC
over every validation (image, class) label — next to two baselines on the same predictions: the
seed's approach (the FP set at 90% precision, taken as flagged) and cleanlab alone. Last line:
`bench label_audit: precision_at_k=P auroc=A seed_precision_at_k=S cleanlab_precision_at_k=C`.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dagster as dg  # noqa: E402

from cloud_assets.defs.analysis import assets as analysis  # noqa: E402
from cloud_assets.defs.data import assets as data  # noqa: E402
from cloud_assets.defs.model import assets as model_assets  # noqa: E402
from cloud_assets.defs.resources import build_resources  # noqa: E402
from cloud_assets.lib import label_issues, mistakes, thresholds  # noqa: E402
from cloud_assets.lib.store import Store  # noqa: E402

DATA = Path(os.environ.get("CLOUD_ASSETS_DATA_DIR", ROOT / "var" / "demo-data"))
MODEL = Path(os.environ.get("CLOUD_ASSETS_MODEL_PATH", ROOT / "var" / "demo-model.keras"))
VAR = ROOT / "bench" / ".cache" / "label_audit" / DATA.name


def ensure_demo():
    cli = [sys.executable, "-m", "cloud_assets.cli"]
    if not (DATA / "train.csv").exists():
        subprocess.run(cli + ["synth", "--out", str(DATA), "--train", "1200", "--test", "300", "--height", "350",
                              "--width", "525", "--seed", "0"], check=True)
    if not MODEL.exists():
        subprocess.run(cli + ["train", "--data", str(DATA), "--out", str(MODEL)], check=True)


def main():
    ensure_demo()
    assets = [data.label_table, data.train_val_split, data.image_cache, data.val_masks, model_assets.model_file,
              model_assets.model_pass, analysis.mask_attention, analysis.label_issues]
    result = dg.materialize(assets, resources=build_resources(str(DATA), str(MODEL), str(VAR)))
    assert result.success
    store = Store(VAR / "store")
    preds = store.get("val_predictions")
    y_true, y_pred = preds.array("y_true"), preds.array("probabilities")
    classes = store.get("label_table").json("meta")["class_names"]
    ranked = store.get("label_issues").table("issues")
    errors = label_issues.injected_errors(pd.read_csv(DATA / "label_noise.csv", keep_default_na=False),
                                          preds.table("images")["image"])

    maps = thresholds.threshold_maps(y_true, y_pred)
    cut = np.array([thresholds.probability_at(maps, c, 90) for c in range(len(classes))])
    flagged = (mistakes.binarize(y_pred, cut) == 1) & (y_true == 0)  # the seed's FP set at 90% precision
    ranked["seed_fp90"] = flagged[ranked["index"], [classes.index(c) for c in ranked["class"]]].astype(float)

    rows = {name: label_issues.scores_against(ranked, errors, col) for name, col in [
        ("seed: FP at 90% precision", "seed_fp90"), ("cleanlab alone", "cleanlab"),
        ("mask attention alone", "attention"), ("combined (label_issues)", "score")]}
    table = pd.DataFrame(rows).T[["precision_at_k", "recall_at_2k", "auroc", "k"]]
    print(f"{len(ranked)} validation labels, {len(errors)} injected errors among them")
    print(table.to_markdown(floatfmt=".3f"))
    c, s, cl = rows["combined (label_issues)"], rows["seed: FP at 90% precision"], rows["cleanlab alone"]
    print(f"bench label_audit: precision_at_k={c['precision_at_k']:.3f} auroc={c['auroc']:.3f} "
          f"seed_precision_at_k={s['precision_at_k']:.3f} cleanlab_precision_at_k={cl['precision_at_k']:.3f}")


if __name__ == "__main__":
    main()
