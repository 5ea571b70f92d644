"""The definitions load quickly without TensorFlow, and every asset spec is as documented."""
import pytest
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg



def _load(**changes) -> dg.Definitions:
    """What `cloud_assets.definitions` builds with the default settings (with `changes`)."""
    from cloud_assets.definitions import build_defs
    from cloud_assets.settings import Settings

    return build_defs(Settings().replace(**changes))


def test_asset_specs_snapshot(snapshot):
    """Every asset's group, dependencies, code version, pools and checks, against the stored snapshot
    (`tests/defs/__snapshots__/`); after an intended change, `pytest tests/defs/test_definitions.py --snapshot-update`
    rewrites it, and the diff shows what changed."""
    defs = _load()
    graph = defs.resolve_asset_graph()
    specs = {s.key.to_user_string(): s for s in defs.resolve_all_asset_specs()}
    checks = {}
    for key in graph.asset_check_keys:
        checks.setdefault(key.asset_key.to_user_string(), []).append(key.name)
    assert {k: {"group": s.group_name, "deps": sorted(d.asset_key.to_user_string() for d in s.deps),
                "code_version": s.code_version, "partitioned": s.partitions_def is not None,
                "pools": sorted(graph.get(s.key).pools or ()) if graph.has(s.key) and graph.get(s.key).is_materializable else [],
                "checks": sorted(checks.get(k, []))}
            for k, s in sorted(specs.items())} == snapshot
    # one step computes both, from one read of the images
    assert graph.get(dg.AssetKey("val_predictions")).assets_def is graph.get(dg.AssetKey("saliency_maps")).assets_def


def test_the_stored_trees_are_part_of_the_code_versions_of_the_assets_that_rank_with_them(tmp_path):
    """New trees rank again what the old ones ranked: `label_issues`' code version holds the digest of
    the final trees, `audit_relabels'` that of the first round's, and another file gives another digest."""
    from cloud_assets.lib.audit import label_issues
    from cloud_assets.settings import Settings

    settings = Settings()
    final = label_issues.trees_path(settings.profile, settings.class_network)
    first = label_issues.trees_path(settings.profile, first_round=True)
    specs = {s.key.to_user_string(): s for s in _load().resolve_all_asset_specs()}
    for name, trees in (("label_issues", final), ("audit_relabels", first)):
        assert specs[name].code_version.endswith(f"-{label_issues.trees_version(trees)}")
    assert len({label_issues.trees_version(final), label_issues.trees_version(first)}) == 2
    other = tmp_path / "trees.skops"
    other.write_bytes(final.read_bytes() + b"\0")
    assert label_issues.trees_version(other) != label_issues.trees_version(final)
    assert label_issues.trees_version(tmp_path / "none.skops") == "none"


def test_the_jobs_part_the_fold_audit_from_what_reads_the_classifier():
    """fold_audit_job trains and predicts (nothing of the classifier's); classifier_job is everything
    else, every label ranked included, though label_issues sits in the audit group."""
    defs = _load()

    def selected(job: str) -> set[str]:
        return {k.to_user_string() for k in defs.resolve_job_def(job).asset_layer.executable_asset_keys}

    fold_audit, classifier = selected("fold_audit_job"), selected("classifier_job")
    assert fold_audit == {"audit_folds", "audit_inputs", "audit_models", "audit_relabels", "audit_predictions",
                          "audit_evidence"}
    assert not fold_audit & classifier
    assert {"label_issues", "corrected_labels", "report_site", "val_predictions"} <= classifier


@pytest.mark.e2e
def test_definitions_validate_without_importing_tensorflow(tmp_path):
    code = ("import sys, os; from cloud_assets.definitions import build_defs; from cloud_assets.settings import Settings;"
            "build_defs(Settings.from_env(os.environ)).resolve_all_asset_specs();"
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported at load time';"
            "assert 'cloud_assets.eval' not in sys.modules, 'the production path imports the evaluation'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
    out = subprocess.run([str(Path(sys.executable).parent / "dagster"), "definitions", "validate",
                          "-m", "cloud_assets.definitions"], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "CLOUD_ASSETS_DATA_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Validation successful" in out.stderr + out.stdout


def test_the_production_path_never_imports_the_evaluation_and_bench_no_test_module():
    root = Path(__file__).resolve().parents[2]
    for folder, banned in (("cloud_assets/defs", "cloud_assets.eval"), ("cloud_assets/plumbing", "cloud_assets.eval"),
                           ("cloud_assets/lib", "cloud_assets.eval"),
                           ("cloud_assets/report", "cloud_assets.eval"), ("bench", "tests")):
        for path in (root / folder).rglob("*.py"):
            text = path.read_text()
            assert f"from {banned}" not in text and f"import {banned}" not in text, path


def test_the_sharpened_candidates_are_part_of_label_issues_code_version():
    """A changed CLOUD_ASSETS_SHARPENED ranks again: the proposals it draws change."""
    def version(**changes) -> str:
        specs = _load(**changes).resolve_all_asset_specs()
        return next(s.code_version for s in specs if s.key.to_user_string() == "label_issues")

    assert version() != version(sharpened=0) != version(sharpened=20)
