"""The reviewer's decisions as a versioned input, and the corrected train.csv they give."""
from pathlib import Path

import dagster as dg

from cloud_assets.plumbing import checks
from cloud_assets.plumbing.sharding import Sharding
from cloud_assets.defs.automation.conditions import FOLLOWS_MODEL
from cloud_assets.plumbing.metadata import md_table
from cloud_assets.defs.resources import DatasetResource, VarDir
from cloud_assets.lib import review
from cloud_assets.lib.data import labels
from cloud_assets.lib.files import sha256
from cloud_assets.lib.data.labels import Problem
from cloud_assets.lib.audit.label_issues import LabelIssues
from cloud_assets.lib.data.labels import LabelTable
from cloud_assets.lib.review import CorrectedLabels
from cloud_assets.lib.store import Bundle
from cloud_assets.settings import Settings

REVIEW_CHECKS = [
    checks.spec("corrected_labels", "review_applies",
                "label_review.csv is a UTF-8 CSV file whose every row names an image and class of the dataset "
                "(once) and an allowed decision, and every accepted decision fits the current labels."),
    checks.spec("corrected_labels", "keeps_corrections",
                "The review gives at least as many label changes as the latest corrections of this train.csv (a "
                "missing or empty review gives none), unless the run config says allow_fewer_changes."),
]


class ReviewConfig(dg.Config):
    # apply a review that gives fewer label changes than the latest corrections of this train.csv: an
    # empty or missing review included, to start over (every earlier version stays in
    # $CLOUD_ASSETS_VAR_DIR/corrections/)
    allow_fewer_changes: bool = False


def build(settings: Settings, sharding: Sharding) -> list:
    """The review's input and the corrections."""
    @dg.observable_source_asset(group_name="review")
    def label_review(dataset: DatasetResource):
        """The reviewer's decisions, `label_review.csv` (written by the report's Label issues page), in the
        dataset folder or at CLOUD_ASSETS_REVIEW_PATH; its data version is the file's SHA-256. The file is
        read and checked as `corrected_labels` reads it: a bad file fails the observation, naming the line."""
        path = dataset.review_file
        if not path.exists():
            return dg.ObserveResult(data_version=dg.DataVersion("absent"),
                                    metadata={"path": dg.MetadataValue.path(str(path)), "decisions": 0})
        decisions = review.read(path, review.images_of(labels.read_csv(dataset.train_csv, ["Image_Label"])),
                                dataset.class_names)
        return dg.ObserveResult(data_version=dg.DataVersion(sha256(path)), metadata={
            "path": dg.MetadataValue.path(str(path.resolve())), "decisions": len(decisions),
            "accepted": int((decisions["decision"] == "accept").sum())})

    @dg.asset(group_name="review", deps=[label_review], check_specs=REVIEW_CHECKS, automation_condition=FOLLOWS_MODEL,
              code_version="2", **sharding.whole)
    def corrected_labels(context: dg.AssetExecutionContext, config: ReviewConfig, dataset: DatasetResource,
                         var: VarDir, label_table: Bundle, label_issues: Bundle):
        """`train_corrected.csv` (Kaggle format, same rows and order as train.csv): the accepted decisions of
        label_review applied to train.csv; `proposed_masks.csv` lists the proposed masks (boxes, from the
        fold audit's models) that it contains. Every version is also kept in
        `$CLOUD_ASSETS_VAR_DIR/corrections/<review>-<train.csv>-<train_corrected.csv>/` (each file's SHA-256,
        shortened). A bad review fails the check `review_applies`, naming the file and line; a review that
        gives fewer label changes than the latest corrections of this train.csv (missing or empty, after
        corrections) fails `keeps_corrections` unless the run config says `allow_fewer_changes`. Then
        nothing is written."""
        path = dataset.review_file
        labelled = LabelTable(label_table)
        rows, shape = labelled.rows, tuple(labelled.meta["original_shape"])
        issues = LabelIssues(label_issues).issues
        train_sha = sha256(dataset.train_csv)
        kept = Path(var.path) / review.CORRECTIONS
        problems = []
        try:
            decisions, corrected, changes, proposed = review.evaluate(
                path, rows, issues, dataset.class_names, shape, review.latest(kept, train_sha),
                config.allow_fewer_changes)
        except review.FewerChanges as e:
            problems = [Problem("keeps_corrections", where, f"{what}; nothing was written (every version is kept in "
                                f"{kept}). To apply it on purpose: make review FEWER=1 (the run config "
                                f"allow_fewer_changes: true of corrected_labels)") for where, what in e.problems]
        except review.ReviewError as e:
            problems = [Problem("review_applies", where, what) for where, what in e.problems]
        yield from checks.results(REVIEW_CHECKS, problems)
        checks.raise_blocking(REVIEW_CHECKS, problems)
        if not path.exists():
            context.log.warning(f"corrected_labels: no review file at {path}; train_corrected.csv is train.csv unchanged")

        with var.staging(dg.AssetKey("corrected_labels")) as staged:
            corrected.to_csv(staged.path / "train_corrected.csv", index=False)
            proposed.to_csv(staged.path / "proposed_masks.csv", index=False)
            summary = {"version": review.version_name(sha256(path) if path.is_file() else None, train_sha,
                                                      sha256(staged.path / "train_corrected.csv")),
                       "review_path": str(path), "train_csv_sha256": train_sha, "reviewed": len(decisions),
                       "accepted": int((decisions["decision"] == "accept").sum()),
                       "rejected": int((decisions["decision"] == "reject").sum()),
                       "changes": len(changes), "proposed_masks": len(proposed)}
            CorrectedLabels.review.put(staged, decisions)
            CorrectedLabels.changes.put(staged, changes)
            CorrectedLabels.summary.put(staged, summary)
            version = review.keep(kept, [staged.path / "train_corrected.csv", staged.path / "proposed_masks.csv"], path,
                                  summary)
        csv = Path(var.path) / "store" / "corrected_labels" / "train_corrected.csv"
        context.log.info(f"corrected_labels: {len(decisions)} decisions, {len(changes)} labels changed; {csv}; "
                         f"version {summary['version']} kept in {version}")
        yield dg.Output(staged, metadata={
            "train_corrected": dg.MetadataValue.path(str(csv.resolve())),
            "version": dg.MetadataValue.path(str(version.resolve())), "reviewed": len(decisions),
            "changes": len(changes), "proposed_masks": len(proposed),
            "changed_labels": md_table(changes.groupby("action").size().rename("labels").reset_index()),
            "progress": md_table(review.progress(decisions, issues))})

    return [label_review, corrected_labels]
