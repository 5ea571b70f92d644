"""The reviewer's decisions as a versioned input, and the corrected train.csv they give."""
from pathlib import Path

import dagster as dg
import pandas as pd

from cloud_assets.defs import checks, shards
from cloud_assets.defs.automation.conditions import FOLLOWS_MODEL
from cloud_assets.defs.metadata import md_table
from cloud_assets.defs.resources import DatasetResource, VarDir
from cloud_assets.lib import model as model_lib, review
from cloud_assets.lib.labels import Problem
from cloud_assets.lib.store import Bundle

REVIEW_CHECKS = [checks.spec("corrected_labels", "review_applies",
                             "Every row of label_review.csv names an image and class of the dataset and an "
                             "allowed decision, and every accepted decision fits the current labels.")]


@dg.observable_source_asset(group_name="review")
def label_review(dataset: DatasetResource):
    """The reviewer's decisions, `label_review.csv` (written by the report's Label issues page), in the
    dataset folder or at CLOUD_ASSETS_REVIEW_PATH; its data version is the file's SHA-256."""
    path = dataset.review_file
    if not path.is_file():
        return dg.ObserveResult(data_version=dg.DataVersion("absent"),
                                metadata={"path": dg.MetadataValue.path(str(path)), "rows": 0})
    rows = sum(1 for _ in path.open()) - 1
    return dg.ObserveResult(data_version=dg.DataVersion(model_lib.sha256(path)),
                            metadata={"path": dg.MetadataValue.path(str(path.resolve())), "rows": rows})


@dg.asset(group_name="review", deps=[label_review], check_specs=REVIEW_CHECKS, automation_condition=FOLLOWS_MODEL,
          code_version="1", **shards.WHOLE)
def corrected_labels(context: dg.AssetExecutionContext, dataset: DatasetResource, var: VarDir, label_table: Bundle,
                     label_issues: Bundle):
    """`train_corrected.csv` (Kaggle format, same rows and order as train.csv): the accepted decisions of
    label_review applied to train.csv; `proposed_masks.csv` lists the masks proposed by the classifier
    (boxes) that it contains. Without a review file, train.csv unchanged. A bad row fails the check
    `review_applies`, naming the file and line, and nothing is written."""
    path = dataset.review_file
    rows = label_table.table("rows")
    shape = tuple(label_table.json("meta")["original_shape"])
    issues = label_issues.table("issues")
    if path.is_file():
        try:
            decisions = review.read(path, label_table.table("labels")["image"], dataset.class_names)
            corrected, changes, proposed = review.apply(rows, decisions, issues, shape, path)
            problems = []
        except review.ReviewError as e:
            problems = [Problem("review_applies", where, what) for where, what in e.problems]
        yield from checks.results(REVIEW_CHECKS, problems)
        checks.raise_blocking(REVIEW_CHECKS, problems)
    else:
        context.log.warning(f"corrected_labels: no review file at {path}; train_corrected.csv is train.csv unchanged")
        yield from checks.results(REVIEW_CHECKS, [])
        decisions = pd.DataFrame(columns=[*review.COLUMNS, "line"])
        corrected, changes, proposed = review.apply(rows, decisions, issues, shape, path)
    injected = dataset.root / "label_noise.csv"
    matches = review.injected_matches(decisions, pd.read_csv(injected, dtype=str, keep_default_na=False)) \
        if injected.is_file() else {}
    with var.staging(dg.AssetKey("corrected_labels")) as staged:
        corrected.to_csv(staged.path / "train_corrected.csv", index=False)
        proposed.to_csv(staged.path / "proposed_masks.csv", index=False)
        staged.put("review", decisions)
        staged.put("changes", changes)
        staged.put("summary", {"review_path": str(path), "reviewed": len(decisions),
                               "accepted": int((decisions["decision"] == "accept").sum()),
                               "rejected": int((decisions["decision"] == "reject").sum()),
                               "changes": len(changes), "proposed_masks": len(proposed), "injected": matches})
    csv = Path(var.path) / "store" / "corrected_labels" / "train_corrected.csv"
    context.log.info(f"corrected_labels: {len(decisions)} decisions, {len(changes)} labels changed; {csv}")
    yield dg.Output(staged, metadata={
        "train_corrected": dg.MetadataValue.path(str(csv.resolve())), "reviewed": len(decisions),
        "changes": len(changes), "proposed_masks": len(proposed),
        "changed_labels": md_table(changes.groupby("action").size().rename("labels").reset_index()),
        "progress": md_table(review.progress(decisions, issues)),
        **({"accepted_matching_injected_errors": matches["accepted_injected"]} if matches else {})})
