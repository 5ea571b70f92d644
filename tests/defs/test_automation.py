"""Automation on a real SQLite instance: a new model file re-runs exactly the model-dependent
assets, an unchanged one nothing, a code-version change what depends on it; the sensor's cursor."""
from pathlib import Path

import dagster as dg
import pytest

from cloud_assets.defs.automation import definitions as automation
from tests.helpers import A, ANALYSIS, DATA_ASSETS, FOLD_AUDIT, dagster_home, fold_audit, tiny_keras, resources as project_resources

pytestmark = pytest.mark.e2e  # the end-to-end tier (make test-fast leaves it out)

ALL = DATA_ASSETS + ANALYSIS + [A.report_site]
MODEL_DEPENDENT = {k.to_user_string() for a in ANALYSIS + [A.report_site] for k in a.keys}


def _defs(resources, assets=None):
    return dg.Definitions(assets=[A.model_file, A.label_review] + (assets or ALL) + FOLD_AUDIT,
                          resources=resources, jobs=[automation.observe_model_file, automation.observe_label_review])


def _observe(defs, instance, job="observe_model_file"):
    assert defs.resolve_job_def(job).execute_in_process(instance=instance).success


def _requested(result) -> set:
    return {r.key.to_user_string() for r in result.results if result.get_num_requested(r.key)}


@pytest.fixture(scope="module")
def world(small_dataset, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("auto")
    with dg.instance_for_test(temp_dir=str(dagster_home(tmp))) as instance:
        model = tiny_keras(tmp / "model.keras")
        resources = project_resources(small_dataset, model, tmp / "var", review_path=str(tmp / "label_review.csv"))
        defs = _defs(resources)
        _observe(defs, instance)
        _observe(defs, instance, "observe_label_review")  # no review file: observed as absent
        fold_audit(small_dataset, tmp / "var", instance, review_path=str(tmp / "label_review.csv"))
        assert dg.materialize(ALL + FOLD_AUDIT, instance=instance, resources=resources,
                              selection=dg.AssetSelection.assets(*ALL)).success
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        yield instance, defs, resources, model, first.cursor


def test_unchanged_model_file_requests_nothing(world):
    instance, defs, _, _, cursor = world
    _observe(defs, instance)
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    assert result.total_requested == 0


def test_code_version_change_requests_the_asset_and_what_depends_on_it(world):
    instance, _, resources, _, cursor = world
    bumped = [a if a is not A.threshold_maps else
              a.map_asset_specs(lambda spec: spec.replace_attributes(code_version="2")) for a in ALL]
    result = dg.evaluate_automation_conditions(defs=_defs(resources, bumped), instance=instance, cursor=cursor)
    assert _requested(result) == {"threshold_maps", "confusion_matrices", "mistakes", "fp_class_distribution",
                         "fn_class_distribution", "report_site"}


def test_a_new_review_file_requests_the_corrected_labels_and_the_report(world):
    instance, defs, resources, _, cursor = world
    image = sorted((Path(resources["dataset"].data_dir) / "train_images").glob("*.jpg"))[0].name
    Path(resources["dataset"].review_path).write_text(
        "image,class,decision,new_class,score,kind,reviewed_at\n"
        f"{image},Fish,reject,,0.9,spurious label,2026-11-28T00:00:00Z\n")
    _observe(defs, instance, "observe_label_review")
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    assert _requested(result) == {"corrected_labels", "report_site"}


def test_new_model_file_requests_exactly_the_model_dependent_assets(world):
    instance, defs, _, model, cursor = world
    tiny_keras(model, outputs=4, input_shape=(224, 224, 3))  # new weights: a new SHA-256
    _observe(defs, instance)
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    requested = _requested(result)
    assert requested == MODEL_DEPENDENT
    assert not requested & {a.key.to_user_string() for a in DATA_ASSETS}


def test_a_new_model_observed_between_the_same_two_evaluations_as_their_last_run_is_not_missed(world):
    """The model-dependent assets materialized again (with the model they read before), and a new model
    file observed, both before the next evaluation: their own update must not count as having handled the
    new model (`eager()` alone would request nothing, then or ever)."""
    instance, defs, resources, model, cursor = world
    assert dg.materialize(ALL + FOLD_AUDIT, instance=instance, resources=resources,
                          selection=dg.AssetSelection.assets(*ANALYSIS, A.report_site)).success
    tiny_keras(model, outputs=4, input_shape=(224, 224, 3))
    _observe(defs, instance)
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    assert _requested(result) == MODEL_DEPENDENT
    again = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    assert again.total_requested == 0  # requested once, not at every evaluation


def test_sensor_follows_the_sha256_cursor(tmp_path):
    from cloud_assets.defs.resources import ModelResource
    from cloud_assets.lib.files import sha256

    path = tmp_path / "m.keras"
    tiny_keras(path)
    model = ModelResource(path=str(path))
    first = automation.model_file_sensor(dg.build_sensor_context(cursor=None), model=model)
    assert isinstance(first, dg.RunRequest) and first.run_key == sha256(path)
    again = automation.model_file_sensor(dg.build_sensor_context(cursor=sha256(path)), model=model)
    assert isinstance(again, dg.SkipReason)
    tiny_keras(path)
    changed = automation.model_file_sensor(dg.build_sensor_context(cursor=first.run_key), model=model)
    assert isinstance(changed, dg.RunRequest) and changed.run_key == sha256(path) != first.run_key
    gone = automation.model_file_sensor(dg.build_sensor_context(cursor="x"),
                                        model=ModelResource(path=str(tmp_path / "none.keras")))
    assert isinstance(gone, dg.SkipReason)
