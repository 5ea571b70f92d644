"""A change of the shard count, and settings read at load time: a dataset-wide step that finds
per-image values of another shard count fails naming both counts and the command that re-runs them;
that re-run removes the stale shards; bad values and too many shards fail naming the variable."""
import dataclasses
import re
import subprocess
import sys
import unittest.mock

import pytest

from cloud_assets.lib.audit import network as audit
from cloud_assets.settings import SettingError, Settings, variables
from cloud_assets.lib.store import Store
from tests.helpers import dg_run
from tests.defs.test_shards import BIN, _env

DATA = "label_table,train_val_split,image_cache,dark_image_counts"


def _dg(env, *args) -> tuple[int, str]:
    """(exit status, everything printed, whitespace collapsed)."""
    done = dg_run(env, *args, capture_output=True, text=True)
    return done.returncode, " ".join((done.stdout + done.stderr).split())


@pytest.mark.e2e
def test_a_new_shard_count_is_detected_and_the_rerun_removes_the_stale_shards(small_dataset, tmp_path):
    env3 = _env(small_dataset, "", tmp_path, 3)
    env2, env1 = {**env3, "CLOUD_ASSETS_SHARDS": "2"}, {**env3, "CLOUD_ASSETS_SHARDS": "1"}
    store = Store(tmp_path / "var" / "store")
    status, out = _dg(env3, "launch", "--assets", DATA, "--partition-range", "0...2")
    assert status == 0, out[-3000:]
    assert store.stored("image_cache") == ["image_cache@0", "image_cache@1", "image_cache@2"]

    # three shards stored, two configured: the dataset-wide step fails, naming both and the command
    status, out = _dg(env2, "launch", "--assets", "dark_image_counts")
    assert status != 0
    assert ("image_cache: its stored values were computed with 3 shard(s) (image_cache@0), but CLOUD_ASSETS_SHARDS "
            "is now 2; re-run the per-image assets with the new count: dg launch --assets 'not group:audit+' --partition-range "
            "0...1 (make demo does), which also removes the stale shards") in out, out[-3000:]
    assert "IndexError" not in out

    # the re-run with two shards replaces them and removes the third
    status, out = _dg(env2, "launch", "--assets", "image_cache", "--partition-range", "0...1")
    assert status == 0, out[-3000:]
    assert store.stored("image_cache") == ["image_cache@0", "image_cache@1"]
    assert not [p for p in (store.root / ".versions").iterdir() if p.name.startswith("image_cache@2")]
    status, out = _dg(env2, "launch", "--assets", "dark_image_counts")
    assert status == 0, out[-3000:]
    # cloud_assets.load reads the sharded value back as one
    code = "import cloud_assets; v = cloud_assets.load('image_cache'); print(sorted(v), len(v.table('val_names')))"
    done = subprocess.run([sys.executable, "-c", code], env=env2, cwd=tmp_path, capture_output=True, text=True)
    assert done.stdout.strip() == "['0', '1'] 10", done.stderr[-2000:]

    # and back to one: no unsharded value, two shards stored
    status, out = _dg(env1, "launch", "--assets", "dark_image_counts")
    assert status != 0
    assert "computed with 2 shard(s) (image_cache@0, image_cache@1), but CLOUD_ASSETS_SHARDS is now 1" in out, out[-3000:]


@pytest.mark.e2e
def test_bad_settings_fail_the_load_and_more_shards_than_images_fail_before_anything_is_written(small_dataset,
                                                                                                tmp_path):
    env = _env(small_dataset, "", tmp_path, 1)
    done = subprocess.run([str(BIN / "dagster"), "definitions", "validate", "-m", "cloud_assets.definitions"],
                          cwd=tmp_path, env={**env, "CLOUD_ASSETS_SHARDS": "abc"}, capture_output=True, text=True)
    status, out = done.returncode, " ".join((done.stdout + done.stderr).split())  # what make definitions runs
    assert status != 0
    assert ("CLOUD_ASSETS_SHARDS='abc': expected a whole number of shards, at least 1 (1: nothing partitioned) and "
            "at most the number of images in train.csv") in out, out[-3000:]
    status, out = _dg({**env, "CLOUD_ASSETS_SHARDS": "5000"}, "launch", "--assets", "label_table")
    assert status != 0
    assert "CLOUD_ASSETS_SHARDS=5000: expected at most 48, the number of images in train.csv" in out, out[-3000:]
    assert not (tmp_path / "var" / "store" / "label_table").exists()
    assert not list((tmp_path / "var" / "store" / ".staging").glob("*"))


@pytest.mark.parametrize("variable,value,allowed", [
    (Settings.variable("shards"), "abc", "a whole number of shards, at least 1"),
    (Settings.variable("shards"), "0", "a whole number of shards, at least 1"),
    (Settings.variable("shards"), "-1", "a whole number of shards, at least 1"),
    (Settings.variable("shards_per_run"), "2.5", "a whole number of shards per backfill run, at least 1"),
    (Settings.variable("executor"), "dask", "'k8s', 'celery' or unset (multiprocess)"),
    (Settings.variable("model_check_cron"), "every 5 minutes", "a cron expression of five fields"),
    (Settings.variable("model_check_cron"), "61 * * * *", "a cron expression of five fields"),
    (Settings.variable("classes"), "Fish,,Sugar", "the classes in the model's output order, comma-separated, each once"),
    (Settings.variable("classes"), "Fish,Sugar,Fish", "the classes in the model's output order, comma-separated, each once"),
    (Settings.variable("classes"), "Fish_1,Sugar", "the classes in the model's output order, comma-separated, each once"),
    (Settings.variable("saliency_method"), "scorecam", "one of guided-gradcam, gradcam++"),
    (Settings.variable("audit_folds"), "1", "a whole number of folds, at least 2"),
    (Settings.variable("input_size"), "96", "HEIGHTxWIDTH, e.g. 224x224"),
    (Settings.variable("input_size"), "224x0", "HEIGHTxWIDTH, e.g. 224x224"),
    (Settings.variable("audit_size"), "60x96", "HEIGHTxWIDTH, each a multiple of 16"),
    (Settings.variable("audit_size"), "64", "HEIGHTxWIDTH, each a multiple of 16"),
    (Settings.variable("audit_profile"), "best", "'fast', 'strong' or unset (strong where a GPU is visible, else fast)"),
])
def test_a_value_that_is_not_allowed_names_the_variable(variable, value, allowed):
    with pytest.raises(SettingError, match="^" + re.escape(f"{variable}={value!r}: expected {allowed}")):
        Settings.from_env({variable: value})


def test_unset_or_empty_values_take_their_defaults():
    assert Settings.from_env({}) == Settings.from_env({v: "" for v in variables()}) == Settings()
    for value in ("eight", "0"):
        with pytest.raises(SettingError, match=rf"^CLOUD_ASSETS_BATCH_SIZE='{value}': expected a whole number"):
            Settings.from_env({"CLOUD_ASSETS_BATCH_SIZE": value})


def test_the_class_list_reaches_the_dataset_resource():
    from cloud_assets.defs.resources import build_resources

    given = Settings.from_env({"CLOUD_ASSETS_CLASSES": "Sugar, Gravel,Fish", "CLOUD_ASSETS_DATA_DIR": "/data"})
    assert build_resources(given)["dataset"].class_names == ["Sugar", "Gravel", "Fish"]
    assert build_resources(Settings())["dataset"].class_names == ["Fish", "Flower", "Sugar", "Gravel"]


def test_two_settings_build_two_sets_of_definitions_in_one_process():
    """The shards' and the folds' partitions, the audit's code version, the saliency method's and the
    schedules' cron follow the settings each build_defs call is given."""
    import dagster as dg

    from cloud_assets.definitions import build_defs

    one = build_defs(Settings())
    other = build_defs(Settings.from_env({"CLOUD_ASSETS_SHARDS": "3", "CLOUD_ASSETS_AUDIT_FOLDS": "2",
                                          "CLOUD_ASSETS_AUDIT_PROFILE": "strong",
                                          "CLOUD_ASSETS_SALIENCY_METHOD": "gradcam++",
                                          "CLOUD_ASSETS_MODEL_CHECK_CRON": "0 * * * *"}))

    def partitions(defs, name):
        definition = defs.resolve_asset_graph().get(dg.AssetKey(name)).partitions_def
        return definition.get_partition_keys() if definition else None

    assert partitions(one, "image_cache") is None and partitions(other, "image_cache") == ["0", "1", "2"]
    assert partitions(one, "audit_models") == ["0", "1", "2", "3", "4"] and partitions(other, "audit_models") == ["0", "1"]
    def version(defs):
        return defs.get_assets_def("audit_models").code_versions_by_key[dg.AssetKey("audit_models")]

    assert version(one).startswith("6-64x96-fast-") and version(other).startswith("6-128x192-strong-")
    # a release that changes a profile's definition re-runs the audit of those who use it
    changed = {**audit.PROFILES, "fast": dataclasses.replace(audit.PROFILES["fast"], epochs=12)}
    with unittest.mock.patch.dict(audit.PROFILES, changed):
        assert version(build_defs(Settings())) not in (version(one), version(other))
    assert other.get_assets_def("saliency_maps").code_versions_by_key[dg.AssetKey("saliency_maps")] == "2-gradcam++"
    assert one.resolve_schedule_def("model_file_schedule").cron_schedule == "*/5 * * * *"
    assert other.resolve_schedule_def("model_file_schedule").cron_schedule == "0 * * * *"
