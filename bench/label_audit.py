"""Label audit scored against injected errors, over every label of a grid of synthetic datasets.

A cell: a dataset synthesized with `--seed S --twin-rate 0.15` (1200 images: `SYNTH`), every label
of it (training and validation) re-noised from its `train_clean.csv` with a mix (noise seed 100*S +
1), a classifier trained on those labels (`cloud-assets train`, 8 epochs, every one at the full
size: `TRAIN`), the pipeline up to the
classifier's maps, and the fold audit (5 folds, a U-Net each, both rounds, out-of-sample predictions
for every image) materialized. Every label of the cell is then ranked by `lib.audit.label_issues.rank`.

The ranking's trees, and the first round's (`--fit-first`, which the second round's labels depend on),
are fitted on the cells `TUNING` (`--fit`); every figure printed comes from the cells `REPORTED`, which
no weight or threshold was chosen on.

Per cell and averaged, for the notebook's FP set at 90% precision (the classifier's, on the validation
split), cleanlab on the audit's out-of-sample probabilities, cleanlab.segmentation's mask quality,
the classifier's own signals and the combination: precision at k (k = injected errors), recall at
2k and AUROC over every label, and over the validation and training labels apart; the recall at 2k
of every kind of error, per third of its severity; and the fixes: a reviewer who accepts exactly the
true errors among the top 2k with the page's own proposals, applied by `lib.review.apply`, the share
of them whose label then matches the clean one (`fixes`). Everything is cached in
bench/.cache/label_audit/.

    .venv/bin/python bench/label_audit.py --prepare                every cell (about 18 min each on 2 cores)
    .venv/bin/python bench/label_audit.py                         the grid, over every label
    .venv/bin/python bench/label_audit.py --fit                    refit the profile's trees on TUNING
    .venv/bin/python bench/label_audit.py --fit-first              refit its first round's trees (audit_relabels')
    .venv/bin/python bench/label_audit.py --cleaning               the value of cleaning: segmentation Dice
    .venv/bin/python bench/label_audit.py --data DIR --model FILE  one dataset's own label_noise.csv
    .venv/bin/python bench/label_audit.py --method gradcam++       with another saliency method
    .venv/bin/python bench/label_audit.py --profile strong         with the audit's other profile
    .venv/bin/python bench/label_audit.py --class-network densenet the class network beside the U-Net (the profiles' default: unet)
    .venv/bin/python bench/label_audit.py --cells 10:11            trees fitted in memory on 10, figures on 11

Last line: `bench label_audit: profile=NAME class_network=NAME precision_at_k=P auroc=A min_kind_recall_at_2k=R
notebook_precision_at_k=S cleanlab_precision_at_k=C fixed=F refused=N audit_training_s=T`.
"""
import argparse
import dataclasses
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

from cloud_assets.constants import PRECISION_LEVEL  # noqa: E402
from cloud_assets.definitions import asset, build_defs  # noqa: E402
from cloud_assets.defs.audit.assets import AuditTraining  # noqa: E402
from cloud_assets.lib.audit.sharpen import sharpened_proposals  # noqa: E402
from cloud_assets.eval import scoring, weights  # noqa: E402
from cloud_assets.lib.saliency import methods as saliency_methods  # noqa: E402
from cloud_assets.lib.audit.kinds import ISSUE_OF_NOISE  # noqa: E402
from cloud_assets.defs.resources import build_resources  # noqa: E402
from cloud_assets.lib.saliency import attention  # noqa: E402
from cloud_assets.lib.audit import network as audit, label_issues  # noqa: E402
from cloud_assets.lib.classifier import mistakes  # noqa: E402
from cloud_assets.lib.data import rle  # noqa: E402
from cloud_assets.lib.classifier import thresholds  # noqa: E402
from cloud_assets.lib.store import Store  # noqa: E402
from cloud_assets.settings import Settings  # noqa: E402


def _settings() -> Settings:
    """The environment's settings, with --method, --profile and --class-network (the saliency method, the
    audit's profile and class network)."""
    env = dict(os.environ)
    for option, variable in (("--method", "saliency_method"), ("--profile", "audit_profile"),
                             ("--class-network", "audit_class_network")):
        if option in sys.argv[:-1]:
            env[Settings.variable(variable)] = sys.argv[sys.argv.index(option) + 1]
    return Settings.from_env(env)


SETTINGS = _settings()
PROFILE, SIZE, CLASS_NETWORK = SETTINGS.profile, SETTINGS.audit_shape, SETTINGS.class_network
TEXTURE = audit.PROFILES[PROFILE].texture
DEFS = build_defs(SETTINGS)

CACHE = ROOT / "bench" / ".cache" / "label_audit"
# a cell: a dataset (synthesized with --seed S) whose every label, training and validation, is
# re-noised with a mix (noise seed 100 x S + 1), its classifier and its fold audit trained on those labels
# the ranking's weights are fitted on these cells (strong's and fast-densenet's stored trees on 10 and 14 alone:
# each file's note names its cells)
TUNING = ((10, "all"), (14, "all"), (15, "all"))
REPORTED = ((11, "all"), (12, "all"), (13, "all"))  # every figure printed comes from these
# 8 epochs: the classifier's evidence reaches the validation fifth only; 6 minutes a cell on 2 cores
TRAIN = ["--epochs", "8", "--half-size", "0"]
SYNTH = ["--train", "1200", "--test", "20", "--height", "350", "--width", "525", "--twin-rate", "0.15"]
NOTEBOOK, CLEANLAB, COMBINED = ("notebook: FP at 90% precision", "cleanlab alone (audit probabilities)",
                             "combined (label_issues)")
RANKINGS = {NOTEBOOK: "notebook_fp90", CLEANLAB: "audit_cleanlab",
            "cleanlab.segmentation alone (mask quality)": "segmentation",
            "classifier's cleanlab (validation only)": "cleanlab",
            "classifier's mask attention (validation only)": "attention_score", COMBINED: "score"}
CLI = [sys.executable, "-m", "cloud_assets.cli"]
# each saliency method's, audit profile's and class network's pipeline in its own folder; the data, the
# noise and the classifiers are shared
METHOD = SETTINGS.saliency_method
VAR = ("var" + ("" if METHOD == saliency_methods.DEFAULT else f"-{METHOD}") + ("" if PROFILE == "fast" else f"-{PROFILE}")
       + ("" if CLASS_NETWORK == "unet" else f"-{CLASS_NETWORK}"))
BEFORE_AUDIT = [asset(DEFS, name) for name in ("label_table", "train_val_split", "image_cache", "val_masks",
                                                       "model_file", "val_predictions", "audit_folds", "audit_inputs")]
FOLDS = [asset(DEFS, name) for name in ("audit_models", "audit_relabels", "audit_predictions")]
AUDIT_EVIDENCE = asset(DEFS, "audit_evidence")


def prepare(seed: int, mix: str) -> Path:
    """The cell (`seed`, `mix`): dataset `seed` synthesized, every label re-noised with `mix`, its
    classifier trained, the pipeline up to the model pass and the fold audit materialized. Each stage
    is skipped when its output exists."""
    base = CACHE / "grid" / f"ds{seed}" / "base"
    folder = CACHE / "grid" / f"ds{seed}-{mix}"
    noisy, model = folder / "noisy", folder / "model.keras"
    if not (base / "train_clean.csv").exists():
        subprocess.run(CLI + ["synth", "--out", str(base), "--seed", str(seed)] + SYNTH, check=True)
    if not (noisy / "train.csv").exists():
        subprocess.run(CLI + ["renoise", "--data", str(base), "--out", str(noisy), "--noise", mix,
                              "--seed", str(100 * seed + 1)], check=True)
    if not model.exists():
        subprocess.run(CLI + ["train", "--data", str(noisy), "--out", str(model)] + TRAIN, check=True)
    pipeline(noisy, model, folder / VAR)
    return folder


def pipeline(data_dir: Path, model: Path, var: Path) -> Store:
    """The assets the ranking reads: the classifier's predictions and maps of the validation split,
    and the fold audit's evidence on every label."""
    store = Store(var / "store")
    everything = BEFORE_AUDIT + FOLDS + [AUDIT_EVIDENCE]
    resources = build_resources(SETTINGS.replace(data_dir=str(data_dir), model_path=str(model), var_dir=str(var)))

    def run(selection, partition_key=None):
        result = dg.materialize(everything, resources=resources, selection=selection, partition_key=partition_key,
                                raise_on_error=False)
        assert result.success, f"{data_dir}: {selection} failed"

    first = SETTINGS.fold_keys[0]
    predicted = all(store.stored(f"audit_predictions@{key}") for key in SETTINGS.fold_keys)
    # predicted before the class network's Grad-CAM was or before predictions averaged the flips, or by U-Nets
    # trained with other settings: predicted again (the fold models that fit are kept)
    meta = audit.AuditModel(store.get(f"audit_models@{first}")).meta if predicted else {}
    predictions = audit.AuditPredictions(store.get(f"audit_predictions@{first}")) if predicted else None
    stale = predictions is not None and (
        CLASS_NETWORK != "unet" and not predictions.has_class_maps
        or not predictions.source.has("meta") or predictions.meta["flips"] != len(audit.PREDICT_FLIPS)
        or "refit_kept" not in predictions.meta
        or meta.get("training_config") != audit.config_digest(AuditTraining().training(PROFILE, SIZE)))
    if not predicted or stale:
        inputs = audit.AuditInputs(store.get("audit_inputs")) if store.stored("audit_inputs") else None
        inputs_stale = inputs is not None and (CLASS_NETWORK != "unet" and not inputs.has_class_images
                                               or inputs.texture_channels != len(TEXTURE))
        if not store.stored("saliency_maps") or not store.stored("audit_inputs") or inputs_stale:
            run([k for a in BEFORE_AUDIT if isinstance(a, dg.AssetsDefinition) for k in a.keys])
        for key in SETTINGS.fold_keys:
            print(f"{data_dir}: audit fold {key}", flush=True)
            run([FOLDS[0].key], key)
    # every time, as the evidence: the first round's corrections follow the code and trees that draw them, and
    # the second round's models are kept by the labels they train on, so only a changed correction retrains
    run([FOLDS[1].key])
    for key in SETTINGS.fold_keys:
        print(f"{data_dir}: audit fold {key}, second round", flush=True)
        run([FOLDS[2].key], key)
    run([AUDIT_EVIDENCE.key])  # every time: seconds, and always the evidence of the code that reads it
    return store


def rank_cell(seed: int, mix: str, trees: dict | None = None, scored: bool = True, first_round: bool = False) -> pd.DataFrame:
    """Every label of the cell (`seed`, `mix`), ranked (`rank_dataset`)."""
    folder = prepare(seed, mix)
    return rank_dataset(folder / "noisy", Store(folder / VAR / "store"), trees, scored, first_round)


def rank_dataset(noisy: Path, store: Store, trees: dict | None = None, scored: bool = True,
                 first_round: bool = False) -> pd.DataFrame:
    """Every label of the dataset `noisy` (with its label_noise.csv; its assets in `store`) ranked by
    `label_issues.rank` (the stored trees unless `trees`; unscored and unsorted when not `scored`),
    with `truth` (an injected error), `true_kind`, `true_severity`, `swapped_with`, the errors' clean
    masks' boxes (`weights.CLEAN_BOX`) and the baselines' columns; with `first_round`, the first round's
    evidence alone, as `audit_relabels` ranks it."""
    rows = pd.read_csv(noisy / "train.csv", dtype=str, keep_default_na=False)
    manifest = pd.read_csv(noisy / "label_noise.csv", dtype=str, keep_default_na=False)
    shape = tuple(store.get("label_table").json("meta")["original_shape"])
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
    split = store.get("train_val_split").table("split")
    args = (store.get("audit_relabels" if first_round else "audit_evidence").table("evidence"),
            dict(zip(split["image"], split["split"])),
            None if first_round else label_issues.classifier_evidence(table, y_true, y_pred))
    # the proposals as label_issues draws them: the first CLOUD_ASSETS_SHARPENED candidates' sharpened by their
    # images (the first round's corrections keep the evidence's)
    sharpen = None if first_round or not SETTINGS.sharpened else sharpener(store, classes)
    if scored:
        ranked = label_issues.rank(*args, trees or label_issues.load_trees(
            label_issues.trees_path(PROFILE, CLASS_NETWORK, first_round)), sharpen)
    else:
        ranked = label_issues.labels_frame(*args)
    # the notebook's FP set at 90% precision: the classifier's, on the validation split only
    maps = thresholds.threshold_maps(y_true, y_pred)
    cut = np.array([thresholds.probability_at(maps, c, PRECISION_LEVEL) for c in range(len(classes))])
    flagged = pd.DataFrame((mistakes.binarize(y_pred, cut) == 1) & (y_true == 0), index=names, columns=classes).stack()
    keys = pd.MultiIndex.from_arrays([ranked["image"], ranked["class"]])
    ranked["notebook_fp90"] = flagged.reindex(keys).fillna(False).to_numpy(float)
    ranked["segmentation"] = 1 - ranked["mask_quality"]
    kinds, severity, labelled_as = {}, {}, {}
    manifest = manifest.reindex(columns=["image", "class", "kind", "labelled_as", "severity"], fill_value="")
    for image, cls, kind, other, sev in manifest.itertuples(index=False):
        kinds[(image, cls)], severity[(image, cls)], labelled_as[(image, cls)] = kind, pd.to_numeric(sev, errors="coerce"), other
        if kind == "swapped":
            kinds[(image, other)], severity[(image, other)], labelled_as[(image, other)] = kind, np.nan, cls
    keys = list(zip(ranked["image"], ranked["class"]))
    ranked["true_kind"] = [kinds.get(k, "") for k in keys]
    ranked["true_severity"] = [severity.get(k, np.nan) for k in keys]
    ranked["swapped_with"] = [labelled_as.get(k, "") for k in keys]
    ranked["truth"] = ranked["true_kind"] != ""
    # the errors' clean masks' boxes: what the regressors of the proposal's sides learn (`weights.fit_proposal_sides`)
    clean = pd.read_csv(noisy / "train_clean.csv", dtype=str, keep_default_na=False).set_index("Image_Label")
    boxes = np.full((len(ranked), 4), np.nan)
    for row in np.flatnonzero(ranked["truth"].to_numpy()):
        bounds = attention.mask_bounds(rle.decode(clean.at[f"{ranked['image'].iat[row]}_{ranked['class'].iat[row]}",
                                                           "EncodedPixels"], shape))
        if bounds is not None:
            boxes[row] = attention.box_shares(bounds, shape)
    ranked[list(weights.CLEAN_BOX)] = boxes
    if sharpen is not None and not scored:  # what the regressors of the proposal's sides learn from
        errors = ranked[ranked["truth"]]
        ranked.loc[errors.index, "proposal"] = sharpen(errors)
    return ranked


def sharpener(store: Store, classes):
    """ranking -> the proposals of its first CLOUD_ASSETS_SHARPENED rows sharpened by their images, as
    label_issues draws them (`lib.audit.sharpen.sharpened_proposals`)."""
    predictions = {key: store.get(f"audit_predictions@{key}") for key in SETTINGS.fold_keys}
    bundles = [store.get(name) for name in ("audit_folds", "image_cache", "label_table")]
    return lambda ranking: sharpened_proposals(ranking.head(SETTINGS.sharpened), predictions, *bundles, classes,
                                               SETTINGS.fold_keys)


def scores(ranked: pd.DataFrame) -> pd.DataFrame:
    errors = set(zip(ranked.loc[ranked["truth"], "image"], ranked.loc[ranked["truth"], "class"]))
    return pd.DataFrame({name: scoring.scores_against(ranked, errors, col)
                         for name, col in RANKINGS.items()}).T[["precision_at_k", "recall_at_2k", "auroc", "k"]]


def found(ranked: pd.DataFrame) -> pd.DataFrame:
    """The injected errors, each with `found`: in the top 2k of the combined score (k = errors), and
    `kind_right`: suspected as the issue kind that undoes its noise kind (`lib.audit.kinds.ISSUE_OF_NOISE`)."""
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


DICE_SEEDS = 5  # trainings per label set in --cleaning (paired by seed)
FIXED_IOU = 0.7  # a fixed label: its mask overlaps the clean one by at least this (both empty: fixed)


def fixes(ranked: pd.DataFrame, noisy: Path, store: Store, corrected: bool = False):
    """A reviewer who accepts exactly the true errors among the top 2k candidates, with the page's own
    proposals (its kind and class), applied by `lib.review.apply`: those errors, each with `fixed`
    (its label then matches train_clean.csv: mask IoU >= FIXED_IOU, and so does every other class the
    decision touches: the class a mask moves to or from, a swap's other class), and how many accepted
    decisions were refused (then left out); with `corrected`, the corrected train.csv rows as well."""
    from cloud_assets.lib import review
    from cloud_assets.lib.data import labels

    k = int(ranked["truth"].sum())
    top = ranked.head(2 * k)
    accepted = top[top["truth"]].reset_index(drop=True)
    decisions = review.accepted(accepted)
    rows = labels.read_train_csv(noisy / "train.csv")[["Image_Label", "EncodedPixels"]]
    shape = tuple(store.get("label_table").json("meta")["original_shape"])
    rows_after, refused = review.apply_what_fits(rows, decisions, ranked, shape, noisy / "label_review.csv")
    after = rows_after.set_index("Image_Label")["EncodedPixels"]
    truth = labels.read_train_csv(noisy / "train_clean.csv").set_index("Image_Label")["EncodedPixels"]

    def right(image, cls) -> bool:
        a, b = (rle.decode(e[f"{image}_{cls}"], shape).astype(bool) for e in (after, truth))
        union = (a | b).sum()
        return union == 0 or (a & b).sum() / union >= FIXED_IOU

    # every class the decision touches must match: its own, the class a mask moves to or from, a swap's other
    accepted["fixed"] = [all(right(i, t) for t in {c, n, w} if t)
                         for i, c, n, w in zip(accepted["image"], accepted["class"], decisions["new_class"],
                                               accepted["swapped_with"])]
    return (accepted, refused, rows_after) if corrected else (accepted, refused)


def fixed_share(accepted: pd.DataFrame) -> pd.DataFrame:
    """Per true kind and over all: the accepted errors and the share fixed."""
    table = accepted.groupby("true_kind").agg(accepted=("fixed", "size"), fixed=("fixed", "mean"))
    table.loc["every kind"] = [len(accepted), accepted["fixed"].mean()]
    return table


def training_seconds(store: Store) -> float:
    """The fold models' training time, both rounds, summed over their epochs and folds (from their histories)."""
    return sum(float(store.get(f"audit_models@{key}").table("history")["seconds"].sum())
               + store.get(f"audit_predictions@{key}").json("meta").get("refit_seconds", 0.0) for key in SETTINGS.fold_keys)


def grid(tuning=None):
    """The figures over the REPORTED cells, ranked by the stored trees, or with `tuning` (cells) by trees
    fitted on those cells here, in memory (nothing written)."""
    trees = fitted(tuning_frame(tuning), "in memory") if tuning else None
    cells, per_split, errors, fixed, refused, seconds = {}, {}, [], [], 0, []
    for seed, mix in REPORTED:
        ranked = rank_cell(seed, mix, trees)
        folder = CACHE / "grid" / f"ds{seed}-{mix}"
        store = Store(folder / VAR / "store")
        seconds.append(training_seconds(store))
        accepted, n = fixes(ranked, folder / "noisy", store)
        fixed.append(accepted)
        refused += n
        cells[(seed, mix)] = scores(ranked)
        for split in ("val", "train"):
            per_split[(seed, mix, split)] = scores(ranked[ranked["split"] == split])
        errors.append(found(ranked))
        c = cells[(seed, mix)].loc["combined (label_issues)"]
        print(f"dataset {seed}, mix {mix}: {int(c['k'])} errors among {len(ranked)} labels; combined "
              f"precision at k {c['precision_at_k']:.3f}, AUROC {c['auroc']:.3f}", flush=True)
    table = pd.concat(cells, names=["dataset", "mix", "ranking"])
    print("\nPer cell, every label:")
    print(table.round(3).to_markdown())
    split_table = pd.concat(per_split, names=["dataset", "mix", "split", "ranking"])
    print("\nValidation and training labels apart, averaged over the cells:")
    print(split_table.groupby(level=["split", "ranking"], sort=False).mean().round(3).to_markdown())
    mean = table.groupby(level="ranking", sort=False).mean()
    print("\nAveraged over the grid, every label:")
    print(mean.round(3).to_markdown())
    per_kind = kind_recall(pd.concat(errors, ignore_index=True))  # pooled: every error counts once
    print("\nRecall at 2k per kind (combined score), pooled over the grid; severity in thirds:")
    print(per_kind.round(3).to_markdown())
    kinds = per_kind.loc[[i for i in per_kind.index if " " not in i], "recall_at_2k"]
    combined, notebook_fp, clean = (mean.loc[m] for m in (COMBINED, NOTEBOOK, CLEANLAB))
    wins = all(t.loc[COMBINED, col] > max(t.loc[CLEANLAB, col], t.loc[NOTEBOOK, col])
               for t in cells.values() for col in ("precision_at_k", "auroc"))
    print(f"\ncombined above cleanlab and the notebook's FP set on precision at k and AUROC in every cell: {wins}")
    share = fixed_share(pd.concat(fixed, ignore_index=True))
    print("\nThe true errors among the top 2k, accepted with the page's proposals: the share whose label then "
          f"matches the clean one (IoU >= {FIXED_IOU}), pooled over the grid; {refused} accepted decisions refused:")
    print(share.round(3).to_markdown())
    print(f"\nthe audit's profile {PROFILE} ({SIZE[0]}x{SIZE[1]}, class network {CLASS_NETWORK}): its five "
          f"fold models trained in {np.mean(seconds):.0f} s a cell on average (1200 images)")
    print(f"bench label_audit: profile={PROFILE} class_network={CLASS_NETWORK} precision_at_k={combined['precision_at_k']:.3f} "
          f"auroc={combined['auroc']:.3f} min_kind_recall_at_2k={kinds.min():.3f} "
          f"notebook_precision_at_k={notebook_fp['precision_at_k']:.3f} cleanlab_precision_at_k={clean['precision_at_k']:.3f} "
          f"fixed={share.loc['every kind', 'fixed']:.3f} refused={refused} audit_training_s={np.mean(seconds):.0f}")


def one_dataset(data_dir: Path, model: Path):
    store = pipeline(data_dir, model, CACHE / "datasets" / data_dir.resolve().name / VAR)
    ranked = rank_dataset(data_dir, store)
    table = scores(ranked)
    print(f"{len(ranked)} labels, {int(ranked['truth'].sum())} injected errors among them")
    print(table.round(3).to_markdown())
    per_kind = kind_recall(found(ranked))
    print(per_kind.round(3).to_markdown())
    recall = per_kind.loc[[i for i in per_kind.index if " " not in i], "recall_at_2k"]
    accepted, refused = fixes(ranked, data_dir, store)
    share = fixed_share(accepted)
    print(f"accepted with the page's proposals, {refused} refused; fixed (IoU >= {FIXED_IOU} with the clean label):")
    print(share.round(3).to_markdown())
    c, s, cl = (table.loc[m] for m in (COMBINED, NOTEBOOK, CLEANLAB))
    print(f"bench label_audit: precision_at_k={c['precision_at_k']:.3f} auroc={c['auroc']:.3f} "
          f"min_kind_recall_at_2k={recall.min():.3f} notebook_precision_at_k={s['precision_at_k']:.3f} "
          f"cleanlab_precision_at_k={cl['precision_at_k']:.3f} fixed={share.loc['every kind', 'fixed']:.3f} "
          f"refused={refused}")


def tuning_frame(cells, first_round: bool = False) -> pd.DataFrame:
    return pd.concat([rank_cell(seed, mix, scored=False, first_round=first_round) for seed, mix in cells],
                     ignore_index=True)


def fitted(frame: pd.DataFrame, note: str) -> dict:
    """The final ranking's trees fitted on a `tuning_frame`, with the regressors of the proposal's sides
    (the first round's corrections keep the proposals as drawn)."""
    return {**weights.fit_trees(frame, note), "proposal_sides": weights.fit_proposal_sides(frame),
            label_issues.SHARPENED: bool(SETTINGS.sharpened)}


def fit(first_round: bool = False):
    """Fit the ranking's trees (with `first_round`, the first round's) on the TUNING cells and store them
    in the package."""
    frame = tuning_frame(TUNING, first_round)
    cells = [f"{s}-{m}" for s, m in TUNING]
    option = "--fit-first" if first_round else "--fit"
    note = (f"fitted by bench/label_audit.py {option} --profile {PROFILE} --class-network {CLASS_NETWORK} on the "
            f"synthetic cells {cells}: {len(frame)} labels, {int(frame['truth'].sum())} injected errors")
    path = label_issues.trees_path(PROFILE, CLASS_NETWORK, first_round)
    weights.save_trees(weights.fit_trees(frame, note) if first_round else fitted(frame, note), path)
    print(f"wrote {path}: {note}")


def cleaning_value(seed: int, mix: str, held_out: int):
    """The value of cleaning on the segmentation task: the reviewer of `fixes` on the cell (`seed`,
    `mix`) gives train_corrected.csv; a segmentation network (the fold audit's U-Net and training,
    `lib.audit.network`) is trained on every image of the cell with its noisy labels, with the corrected ones
    and with the clean ones (DICE_SEEDS training seeds each), and each is scored on the clean masks of
    dataset `held_out` (never trained, tuned or ranked on): Kaggle's mean Dice over every image and
    class, at the audit size, averaged over the seeds."""
    from cloud_assets.lib.data import images, labels

    folder = prepare(seed, mix)
    store = Store(folder / VAR / "store")
    ranked = rank_cell(seed, mix)
    accepted, refused, corrected = fixes(ranked, folder / "noisy", store, corrected=True)
    base = CACHE / "grid" / f"ds{held_out}" / "base"
    if not (base / "train_clean.csv").exists():
        subprocess.run(CLI + ["synth", "--out", str(base), "--seed", str(held_out)] + SYNTH, check=True)
    size, classes = SIZE, labels.NOTEBOOK_CLASS_ORDER
    shape = tuple(store.get("label_table").json("meta")["original_shape"])

    cache_size = images.ImageCache(store.get("image_cache")).train.shape[1:3]

    def dataset(rows: pd.DataFrame, data_dir: Path):
        """The U-Net's inputs from `rows`: the images as audit_inputs makes them (from the image cache's
        size), their masks and labels."""
        table = labels.label_table(rows, classes)
        cached = np.empty((len(table), *cache_size, 3), np.uint8)
        images.cache_images([data_dir / "train_images" / n for n in table["image"]], cached, cache_size)
        x = audit.resize_images(cached, size)
        if TEXTURE:
            x = np.concatenate([x, audit.texture(cached, size, TEXTURE)], axis=-1)
        encoded = rows.set_index("Image_Label")["EncodedPixels"]
        masks = np.stack([rle.decode_resized([encoded.get(f"{n}_{c}", "") for n in table["image"]], shape, size)
                          for c in classes], axis=-1)
        return x, masks, table[list(classes)].to_numpy(np.uint8)

    test_x, test_masks, _ = dataset(labels.read_train_csv(base / "train_clean.csv"), base)
    noisy = folder / "noisy"
    dice: dict[str, list[float]] = {}
    for name, rows in (("noisy (train.csv)", labels.read_train_csv(noisy / "train.csv")),
                       ("cleaned (train_corrected.csv)", corrected),
                       ("clean (train_clean.csv)", labels.read_train_csv(noisy / "train_clean.csv"))):
        inputs, scores = dataset(rows[["Image_Label", "EncodedPixels"]], noisy), []
        for training_seed in range(DICE_SEEDS):  # the differences are small: averaged over training seeds
            config = dataclasses.replace(AuditTraining().training(PROFILE, SIZE), seed=training_seed)
            model, _ = audit.train(*inputs, config, log=lambda m: None)
            predicted = np.concatenate([p for _, _, p in audit.predict(model, test_x)]).astype(np.float32) >= 0.5
            scores.append(mean_dice(predicted.transpose(0, 2, 3, 1), test_masks > 0))
        dice[name] = scores
        print(f"{name}: mean Dice {np.mean(scores):.4f} on the clean masks of dataset {held_out} (seeds: "
              f"{', '.join(f'{s:.4f}' for s in scores)})", flush=True)
    noisy_s, cleaned_s, clean_s = (np.array(v) for v in dice.values())
    before, after, clean = noisy_s.mean(), cleaned_s.mean(), clean_s.mean()
    closed = (after - before) / (clean - before) if clean != before else float("nan")
    # each training seed's three trainings are paired: the gap and the gain per seed, and their standard errors
    gap, gain = clean_s - noisy_s, cleaned_s - noisy_s
    gap_se, gain_se = (float(np.std(v, ddof=1) / np.sqrt(len(v))) for v in (gap, gain))
    print(f"\ncleaning value on dataset {seed} ({mix}): {len(accepted)} true errors among the top 2k accepted with "
          f"the page's proposals ({refused} refused), {accepted['fixed'].mean():.0%} of them fixed; segmentation "
          f"mean Dice on dataset {held_out}: {before:.4f} noisy, {after:.4f} cleaned, {clean:.4f} clean: cleaning "
          f"closes {closed:.0%} of the gap; paired by training seed, the gap noisy to clean {gap.mean():+.4f} "
          f"(standard error {gap_se:.4f}), the gain noisy to cleaned {gain.mean():+.4f} ({gain_se:.4f})")
    print(f"bench label_audit cleaning: dice_noisy={before:.4f} dice_cleaned={after:.4f} dice_clean={clean:.4f} "
          f"gap_closed={closed:.3f}")


def mean_dice(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Kaggle's metric: the Dice of every (image, class) of boolean `(n, h, w, classes)` masks, an
    empty prediction of an empty mask counting 1, averaged."""
    inter = (predicted & truth).sum(axis=(1, 2))
    total = predicted.sum(axis=(1, 2)) + truth.sum(axis=(1, 2))
    return float(np.where(total == 0, 1.0, 2 * inter / np.maximum(total, 1)).mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fit", action="store_true", help="refit the ranking's trees on the tuning cells")
    parser.add_argument("--fit-first", action="store_true",
                        help="refit the first round's trees (audit_relabels') on the tuning cells")
    parser.add_argument("--prepare", action="store_true", help="only prepare every cell (data, classifiers, audits)")
    parser.add_argument("--cleaning", action="store_true",
                        help="the value of cleaning on the segmentation task (mean Dice), on one cell")
    parser.add_argument("--data", type=Path, help="score one dataset against its own label_noise.csv")
    parser.add_argument("--model", type=Path, help="its classifier (with --data)")
    parser.add_argument("--method", choices=list(saliency_methods.METHODS), default=saliency_methods.DEFAULT,
                        help="the saliency method of the classifier's maps (default: the notebook's Guided Grad-CAM)")
    parser.add_argument("--profile", choices=list(audit.PROFILES),
                        help="the fold audit's profile (default: as CLOUD_ASSETS_AUDIT_PROFILE, else by the device)")
    parser.add_argument("--class-network", choices=list(audit.CLASS_NETWORKS),
                        help="the fold audit's class network (default: as CLOUD_ASSETS_AUDIT_CLASS_NETWORK, else the profile's)")
    parser.add_argument("--cells", metavar="TUNING:REPORTED",
                        help="other cells, e.g. 10:11 (dataset seeds, comma-separated): the trees fitted in memory on "
                             "the first, the figures from the second")
    args = parser.parse_args()
    if args.cells:
        global TUNING, REPORTED
        TUNING, REPORTED = ([(int(seed), "all") for seed in part.split(",")] for part in args.cells.split(":"))
    if args.data:
        one_dataset(args.data, args.model or ROOT / "var" / "demo-model.keras")
    elif args.prepare:
        for seed, mix in TUNING + REPORTED:
            prepare(seed, mix)
    elif args.fit or args.fit_first:
        fit(first_round=args.fit_first)
    elif args.cleaning:
        cleaning_value(*REPORTED[0], held_out=REPORTED[-1][0])
    else:
        grid(TUNING if args.cells else None)


if __name__ == "__main__":
    main()
