"""Label audit scored against injected errors, over a grid of synthetic datasets and noise mixes.

The grid: datasets `REPORTED` (synthesized with `--seed S --twin-rate 0.15` at the demo's size),
each re-noised from its `train_clean.csv` with the mix `TRAIN_MIX` (noise seed S+100) and a
classifier trained on it once (`cloud-assets train`). The pipeline (data, predictions, saliency) runs
once per dataset. Then, for every mix in `MIXES`, the validation images' labels alone are re-noised
from the clean labels (noise seed 100*S + mix index; the model never saw them, so it need not be
retrained) and mask attention and the ranking are recomputed with the library's functions.

The ranking's weights were fitted on the datasets `TUNING` with other noise seeds (`--fit`); no
figure printed here comes from them.

Per cell and averaged, for the seed's FP set at 90% precision, cleanlab alone, each signal and the
combination: precision at k (k = injected errors among the validation labels), recall at 2k and
AUROC; and the recall at 2k of every kind of error. Everything is cached in bench/.cache/label_audit/.

    .venv/bin/python bench/label_audit.py                         the grid (about 15 min cold on 2 cores)
    .venv/bin/python bench/label_audit.py --data DIR --model FILE  one dataset's own label_noise.csv
    .venv/bin/python bench/label_audit.py --fit                    refit the weights on TUNING, print them
    .venv/bin/python bench/label_audit.py --method gradcam++       the grid with another saliency method

Last line: `bench label_audit: precision_at_k=P auroc=A min_kind_recall_at_2k=R seed_precision_at_k=S
cleanlab_precision_at_k=C`.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# the saliency method is read when the definitions load (CLOUD_ASSETS_SALIENCY_METHOD): set it first
if "--method" in sys.argv[:-1]:
    os.environ["CLOUD_ASSETS_SALIENCY_METHOD"] = sys.argv[sys.argv.index("--method") + 1]

import dagster as dg  # noqa: E402

from cloud_assets.constants import PRECISION_LEVEL  # noqa: E402
from cloud_assets.defs.data import assets as data  # noqa: E402
from cloud_assets.defs.model import assets as model_assets  # noqa: E402
from cloud_assets.eval import scoring, weights  # noqa: E402
from cloud_assets.lib import saliency_methods  # noqa: E402
from cloud_assets.lib.kinds import ISSUE_OF_NOISE  # noqa: E402
from cloud_assets.defs.resources import build_resources  # noqa: E402
from cloud_assets.lib import attention, label_issues, mistakes, rle, thresholds  # noqa: E402
from cloud_assets.lib.store import Store  # noqa: E402
from cloud_assets.synth import noise  # noqa: E402

CACHE = ROOT / "bench" / ".cache" / "label_audit"
REPORTED = (11, 12, 13)
TUNING = (10, 14, 15, 16)
MIXES = ("classic", "boxes", "crowd", "all")
TRAIN_MIX = "all"
SYNTH = ["--train", "1200", "--test", "20", "--height", "350", "--width", "525", "--twin-rate", "0.15"]
RANKINGS = {"seed: FP at 90% precision": "seed_fp90", "cleanlab alone": "cleanlab",
           "mask attention alone": "attention_score", "mask evidence alone": "mask_evidence",
           "fixed weights: 0.3 cleanlab + 0.7 attention": "fixed_weights", "combined (label_issues)": "score"}
CLI = [sys.executable, "-m", "cloud_assets.cli"]
# each saliency method's pipeline in its own folder; the data, the noise and the classifiers are shared
VAR = "var" if model_assets.METHOD == saliency_methods.DEFAULT else f"var-{model_assets.METHOD}"


def prepare(seed: int) -> Path:
    """The grid dataset `seed`: synthesized, re-noised with TRAIN_MIX, its classifier trained, the
    pipeline up to the model pass materialized. Each stage is skipped when its output exists."""
    folder = CACHE / "grid" / f"ds{seed}"
    base, noisy, model = folder / "base", folder / "noisy", folder / "model.keras"
    if not (base / "train_clean.csv").exists():
        subprocess.run(CLI + ["synth", "--out", str(base), "--seed", str(seed)] + SYNTH, check=True)
    if not (noisy / "train.csv").exists():
        subprocess.run(CLI + ["renoise", "--data", str(base), "--out", str(noisy), "--noise", TRAIN_MIX,
                              "--seed", str(seed + 100)], check=True)
    if not model.exists():
        subprocess.run(CLI + ["train", "--data", str(noisy), "--out", str(model)], check=True)
    pipeline(noisy, model, folder / VAR)
    return folder


def pipeline(data_dir: Path, model: Path, var: Path) -> Store:
    store = Store(var / "store")
    if not (var / "store" / "saliency_maps").exists():
        assets = [data.label_table, data.train_val_split, data.image_cache, data.val_masks,
                  model_assets.model_file, model_assets.model_pass]
        result = dg.materialize(assets, resources=build_resources(str(data_dir), str(model), str(var)))
        assert result.success
    return store


def rank_labels(store: Store, rows: pd.DataFrame, manifest: pd.DataFrame, shape) -> pd.DataFrame:
    """Every validation label of `rows` (train.csv rows) ranked, with `truth` (an injected error),
    `true_kind` and the baselines' columns."""
    preds, sal, cache = store.get("val_predictions"), store.get("saliency_maps"), store.get("image_cache")
    classes = store.get("label_table").json("meta")["class_names"]
    names = list(preds.table("images")["image"])
    encoded = rows.set_index("Image_Label")["EncodedPixels"]
    size = cache.array("val").shape[1:3]
    masks = np.stack([rle.decode_resized([encoded[f"{n}_{c}"] for n in names], shape, size) for c in classes])
    y_true = (masks.reshape(len(classes), len(names), -1).max(axis=2).T > 0).astype(np.int8)
    y_pred = preds.array("probabilities")
    table = attention.attention_table(sal.array("gradcam"), sal.array("guided_backprop"), masks, cache.array("val"),
                                      classes, names)
    ranked = label_issues.rank(table, y_true, y_pred, classes)
    maps = thresholds.threshold_maps(y_true, y_pred)
    cut = np.array([thresholds.probability_at(maps, c, PRECISION_LEVEL) for c in range(len(classes))])
    flagged = (mistakes.binarize(y_pred, cut) == 1) & (y_true == 0)  # the seed's FP set at 90% precision
    ranked["seed_fp90"] = flagged[ranked["index"], [classes.index(c) for c in ranked["class"]]].astype(float)
    ranked["fixed_weights"] = 0.3 * ranked["cleanlab"] + 0.7 * ranked["attention_score"]  # the ranking's earlier form
    kinds, severity = {}, {}
    manifest = manifest.reindex(columns=["image", "class", "kind", "labelled_as", "severity"], fill_value="")
    for image, cls, kind, labelled_as, sev in manifest.itertuples(index=False):
        kinds[(image, cls)], severity[(image, cls)] = kind, pd.to_numeric(sev, errors="coerce")
        if kind == "swapped":
            kinds[(image, labelled_as)], severity[(image, labelled_as)] = kind, np.nan
    keys = list(zip(ranked["image"], ranked["class"]))
    ranked["true_kind"] = [kinds.get(k, "") for k in keys]
    ranked["true_severity"] = [severity.get(k, np.nan) for k in keys]
    ranked["truth"] = ranked["true_kind"] != ""
    return ranked


def cell(seed: int, mix: str, noise_seed: int) -> pd.DataFrame:
    """One grid cell: dataset `seed`'s validation labels re-noised by `mix`, ranked."""
    folder = prepare(seed)
    store = Store(folder / VAR / "store")
    clean = pd.read_csv(folder / "base" / "train_clean.csv", dtype=str, keep_default_na=False)
    shape = tuple(store.get("label_table").json("meta")["original_shape"])
    names = store.get("val_predictions").table("images")["image"]
    rows, manifest = noise.renoise(clean, noise.NoiseSpec.parse(mix), noise_seed, shape, images=names)
    return rank_labels(store, rows, manifest, shape)


def scores(ranked: pd.DataFrame) -> pd.DataFrame:
    errors = set(zip(ranked.loc[ranked["truth"], "image"], ranked.loc[ranked["truth"], "class"]))
    return pd.DataFrame({name: scoring.scores_against(ranked, errors, col)
                         for name, col in RANKINGS.items()}).T[["precision_at_k", "recall_at_2k", "auroc", "k"]]


def found(ranked: pd.DataFrame) -> pd.DataFrame:
    """The injected errors, each with `found`: in the top 2k of the combined score (k = errors), and
    `kind_right`: suspected as the issue kind that undoes its noise kind (`lib.kinds.ISSUE_OF_NOISE`)."""
    k = int(ranked["truth"].sum())
    top = set(ranked.sort_values("score", ascending=False, kind="stable").head(2 * k).index)
    errors = ranked[ranked["truth"]].copy()
    errors["found"] = errors.index.isin(top)
    errors["kind_right"] = errors["kind"] == errors["true_kind"].map(ISSUE_OF_NOISE)
    return errors


def kind_recall(errors: pd.DataFrame) -> pd.DataFrame:
    """Per true kind: errors and the share found (recall at 2k); for the kinds with a severity, per
    third of their severity range as well."""
    rows = errors.groupby("true_kind").agg(errors=("found", "size"), recall_at_2k=("found", "mean"),
                                           kind_right=("kind_right", "mean"))
    graded = errors.dropna(subset=["true_severity"]).copy()
    graded["third"] = graded.groupby("true_kind")["true_severity"].transform(
        lambda v: pd.qcut(v, 3, duplicates="drop").astype(str))
    thirds = graded.groupby(["true_kind", "third"])["found"].agg(errors="size", recall_at_2k="mean")
    thirds.index = [f"{kind} {third}" for kind, third in thirds.index]
    return pd.concat([rows, thirds]).sort_index()


def grid():
    cells, errors = {}, []
    for seed in REPORTED:
        for j, mix in enumerate(MIXES):
            ranked = cell(seed, mix, 100 * seed + j)
            cells[(seed, mix)] = scores(ranked)
            errors.append(found(ranked))
            c = cells[(seed, mix)].loc["combined (label_issues)"]
            print(f"dataset {seed}, mix {mix}: {int(c['k'])} errors among {len(ranked)} labels; combined "
                  f"precision at k {c['precision_at_k']:.3f}, AUROC {c['auroc']:.3f}", flush=True)
    table = pd.concat(cells, names=["dataset", "mix", "ranking"])
    print("\nPer cell:")
    print(table.round(3).to_markdown())
    by_mix = table.groupby(level=["mix", "ranking"], sort=False)[["precision_at_k", "auroc"]].mean().unstack("mix")
    print("\nPer mix, averaged over the datasets:")
    print(by_mix.round(3).to_markdown())
    mean = table.groupby(level="ranking", sort=False).mean()
    print("\nAveraged over the grid:")
    print(mean.round(3).to_markdown())
    # pooled: every error counts once, whichever cell it is in
    per_kind = kind_recall(pd.concat(errors, ignore_index=True))
    print("\nRecall at 2k per kind (combined score), pooled over the grid; severity in thirds:")
    print(per_kind.round(3).to_markdown())
    kinds = per_kind.loc[[i for i in per_kind.index if " " not in i], "recall_at_2k"]
    combined, seed_fp, clean = (mean.loc[m] for m in ("combined (label_issues)", "seed: FP at 90% precision",
                                                      "cleanlab alone"))
    wins = all(t.loc["combined (label_issues)", col] > max(t.loc["cleanlab alone", col],
                                                             t.loc["seed: FP at 90% precision", col])
               for t in cells.values() for col in ("precision_at_k", "auroc"))
    print(f"\ncombined above cleanlab and the seed on precision at k and AUROC in every cell: {wins}")
    print(f"bench label_audit: method={model_assets.METHOD} precision_at_k={combined['precision_at_k']:.3f} "
          f"auroc={combined['auroc']:.3f} "
          f"min_kind_recall_at_2k={kinds.min():.3f} seed_precision_at_k={seed_fp['precision_at_k']:.3f} "
          f"cleanlab_precision_at_k={clean['precision_at_k']:.3f}")


def one_dataset(data_dir: Path, model: Path):
    store = pipeline(data_dir, model, CACHE / "datasets" / data_dir.resolve().name / VAR)
    rows = pd.read_csv(data_dir / "train.csv", dtype=str, keep_default_na=False)
    manifest = pd.read_csv(data_dir / "label_noise.csv", dtype=str, keep_default_na=False)
    shape = tuple(store.get("label_table").json("meta")["original_shape"])
    ranked = rank_labels(store, rows, manifest, shape)
    table = scores(ranked)
    print(f"{len(ranked)} validation labels, {int(ranked['truth'].sum())} injected errors among them")
    print(table.round(3).to_markdown())
    per_kind = kind_recall(found(ranked))
    print(per_kind.round(3).to_markdown())
    recall = per_kind.loc[[i for i in per_kind.index if " " not in i], "recall_at_2k"]
    c, s, cl = (table.loc[m] for m in ("combined (label_issues)", "seed: FP at 90% precision", "cleanlab alone"))
    print(f"bench label_audit: precision_at_k={c['precision_at_k']:.3f} auroc={c['auroc']:.3f} "
          f"min_kind_recall_at_2k={recall.min():.3f} seed_precision_at_k={s['precision_at_k']:.3f} "
          f"cleanlab_precision_at_k={cl['precision_at_k']:.3f}")


def fit():
    """Fit the ranking's weights on the TUNING datasets (noise seeds 5000+, three draws per mix) and
    write them into the package."""
    frames = [cell(seed, mix, 5000 + 100 * seed + 10 * r + j)
              for seed in TUNING for j, mix in enumerate(MIXES) for r in range(3)]
    frame = pd.concat(frames, ignore_index=True)
    note = (f"fitted by bench/label_audit.py --fit on synthetic datasets {list(TUNING)} x mixes {list(MIXES)}, "
            f"three noise draws each (noise seeds 5000 + 100 x dataset + 10 x draw + mix index): "
            f"{len(frame)} labels, {int(frame['truth'].sum())} injected errors")
    label_issues.WEIGHTS_PATH.write_text(json.dumps(weights.fit_weights(frame, note), separators=(",", ":")))
    print(f"wrote {label_issues.WEIGHTS_PATH}: {note}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="score one dataset against its own label_noise.csv")
    parser.add_argument("--model", type=Path, help="its classifier (with --data)")
    parser.add_argument("--fit", action="store_true", help="refit the ranking's weights on the tuning datasets")
    parser.add_argument("--method", choices=list(saliency_methods.METHODS), default=saliency_methods.DEFAULT,
                        help="the saliency method of the maps (default: the notebook's Guided Grad-CAM)")
    args = parser.parse_args()
    if args.fit:
        fit()
    elif args.data:
        one_dataset(args.data, args.model or ROOT / "var" / "demo-model.keras")
    else:
        grid()


if __name__ == "__main__":
    main()
