"""The definitions load quickly without TensorFlow, and every asset spec is as documented."""
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

ROOT = Path(__file__).resolve().parents[1]


def _load() -> dg.Definitions:
    """What `cloud_assets.definitions` loads lazily."""
    import cloud_assets.defs

    os.environ.setdefault("CLOUD_ASSETS_DATA_DIR", "/nonexistent")
    return dg.load_defs(defs_root=cloud_assets.defs)


def test_asset_specs_snapshot():
    defs = _load()
    specs = {s.key.to_user_string(): s for s in defs.resolve_all_asset_specs()}
    snapshot = {k: (s.group_name, sorted(d.asset_key.to_user_string() for d in s.deps)) for k, s in specs.items()}
    assert snapshot == {
        "model_file": ("model", []),
        "label_table": ("data", []),
        "train_val_split": ("data", ["label_table"]),
        "image_cache": ("data", ["train_val_split"]),
        "val_masks": ("data", ["label_table", "train_val_split"]),
        "dark_image_counts": ("data", ["image_cache", "label_table"]),
        "val_predictions": ("model", ["image_cache", "label_table", "model_file"]),
        "saliency_maps": ("model", ["image_cache", "model_file"]),
        "threshold_maps": ("analysis", ["val_predictions"]),
        "confusion_matrices": ("analysis", ["threshold_maps", "val_predictions"]),
        "mistakes": ("analysis", ["saliency_maps", "threshold_maps", "val_predictions"]),
        "fp_class_distribution": ("analysis", ["mistakes", "val_predictions"]),
        "fn_class_distribution": ("analysis", ["mistakes", "val_predictions"]),
        "mask_attention": ("analysis", ["image_cache", "saliency_maps", "val_masks"]),
        "label_issues": ("analysis", ["mask_attention", "val_predictions"]),
        "label_review": ("review", []),
        "corrected_labels": ("review", ["label_issues", "label_review", "label_table"]),
        "report_site": ("report", sorted(["dark_image_counts", "image_cache", "label_table", "train_val_split",
                                          "val_masks", "val_predictions", "saliency_maps", "threshold_maps",
                                          "confusion_matrices", "mistakes", "fp_class_distribution",
                                          "fn_class_distribution", "label_issues", "corrected_labels"])),
    }
    graph = defs.resolve_asset_graph()
    pools = {k.to_user_string(): graph.get(k).pools for k in graph.materializable_asset_keys}
    assert {k for k, p in pools.items() if p} == {"val_predictions", "saliency_maps"}
    assert pools["val_predictions"] == pools["saliency_maps"] == {"gpu"}
    # one step computes both, from one read of the images
    assert graph.get(dg.AssetKey("val_predictions")).assets_def is graph.get(dg.AssetKey("saliency_maps")).assets_def
    checks = {key.name for key in graph.asset_check_keys}
    assert checks == {"train_csv_schema", "rle_valid", "images_readable", "image_size", "image_color", "review_applies",
                      "keeps_corrections"}


def test_definitions_validate_without_importing_tensorflow(tmp_path):
    code = ("import sys, os; os.environ['CLOUD_ASSETS_DATA_DIR']='/x'; import dagster as dg, cloud_assets.defs;"
            "from cloud_assets.definitions import defs; dg.load_defs(defs_root=cloud_assets.defs).resolve_all_asset_specs();"
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported at load time'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
    out = subprocess.run([str(Path(sys.executable).parent / "dagster"), "definitions", "validate",
                          "-m", "cloud_assets.definitions"], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "CLOUD_ASSETS_DATA_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Validation successful" in out.stderr + out.stdout
