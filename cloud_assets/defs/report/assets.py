"""The report site, rebuilt from the materialized assets and Dagster's own event log."""
import time
from pathlib import Path

import dagster as dg
import pandas as pd

from cloud_assets.defs.automation.conditions import FOLLOWS_MODEL
from cloud_assets.plumbing.sharding import Sharding
from cloud_assets.defs.resources import DatasetResource, VarDir
from cloud_assets.report import gather
from cloud_assets.settings import Settings

def model_history(instance: dg.DagsterInstance, class_names) -> pd.DataFrame:
    """Per model version (SHA-256) and class: the latest PR-AUC and FP count recorded in the
    metadata of `val_predictions` and `mistakes` materializations."""
    rows: dict = {}
    for key, fields in (("val_predictions", "pr_auc"), ("mistakes", "fp")):
        records = instance.fetch_materializations(dg.AssetKey(key), limit=10000, ascending=True).records
        for record in records:
            meta = record.asset_materialization.metadata if record.asset_materialization else {}
            if "model_sha256" not in meta:
                continue
            sha = meta["model_sha256"].value
            entry = rows.setdefault(sha, {"seen": record.timestamp})
            for c in class_names:
                if f"{fields}_{c}" in meta:
                    entry[(fields, c)] = meta[f"{fields}_{c}"].value
    out = []
    for sha, entry in sorted(rows.items(), key=lambda kv: kv[1]["seen"]):
        seen = time.strftime("%Y-%m-%d %H:%M", time.gmtime(entry["seen"]))
        for c in class_names:
            out.append({"version": sha[:12], "seen": seen, "class": c, "pr_auc": entry.get(("pr_auc", c)),
                        "fp": entry.get(("fp", c))})
    return pd.DataFrame(out, columns=["version", "seen", "class", "pr_auc", "fp"])


class ReportSources(dg.Config):
    sources: str = ""  # a folder with mkdocs.yml and site/ to build from; empty: the package's own


def build(settings: Settings, sharding: Sharding) -> list:
    """The report site."""
    @dg.asset(group_name="report", automation_condition=FOLLOWS_MODEL, code_version="1", **sharding.whole,
              ins={name: dg.AssetIn() for name in gather.INPUTS})
    def report_site(context: dg.AssetExecutionContext, config: ReportSources, dataset: DatasetResource, var: VarDir,
                    **inputs):
        """The MkDocs report site, built with `--strict` beside the live one and swapped in atomically.
        `inputs`: `Bundle`s, or `Shards` for the per-image assets of a sharded run."""
        from cloud_assets.report import site  # the pages and their charts: only this step loads them

        data = gather.gather(inputs, dataset.class_names, dataset.root, model_history(context.instance, dataset.class_names))
        built = site.build(data, site.sources(config.sources), Path(var.path), log=context.log.info)
        index = built.path / "index.html"
        context.log.info(f"report_site: built {index}")
        return dg.MaterializeResult(metadata={"index": dg.MetadataValue.url(index.resolve().as_uri()),
                                              "path": dg.MetadataValue.path(str(Path(var.path, "site", "index.html").resolve())),
                                              "pages": len(list(built.path.rglob("*.html")))})

    return [report_site]
