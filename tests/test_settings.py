"""Configuration: each CLOUD_ASSETS_* variable, read by `Settings.from_env`, reaches its resource
field; an unset one leaves the field's default; a bad value fails the step naming the variable."""
import dagster as dg

from cloud_assets import settings
from cloud_assets.defs.resources import build_resources
from cloud_assets.settings import Settings
from tests.helpers import ANALYSIS, DATA_ASSETS, failure_message, materialize, tiny_keras


def test_set_variables_reach_their_fields_and_unset_ones_keep_the_defaults(tmp_path):
    given = Settings.from_env({"CLOUD_ASSETS_BATCH_SIZE": "8", "CLOUD_ASSETS_MODEL_PATH": str(tmp_path / "m.keras")})
    assert settings.resource_fields(given, "model") == {"path": str(tmp_path / "m.keras"), "batch_size": 8}
    with dg.build_resources({"model": build_resources(given)["model"]}) as resources:
        assert resources.model.batch_size == 8 and resources.model.safe_mode == 1
        assert resources.model.path == str(tmp_path / "m.keras")
    assert "model.batch_size (CLOUD_ASSETS_BATCH_SIZE)" in settings.naming_variables("model.batch_size")


def test_a_bad_batch_size_fails_the_model_step_naming_the_variable(small_dataset, tmp_path):
    model = tiny_keras(tmp_path / "model.keras")
    result = materialize(small_dataset, tmp_path / "var", DATA_ASSETS + ANALYSIS[:1], model,
                         settings=Settings().replace(batch_size=0))  # as the launchpad's resource config may
    assert not result.success
    assert "model.batch_size (CLOUD_ASSETS_BATCH_SIZE)=0: expected a whole number of images" in failure_message(result)


def test_a_missing_model_file_names_its_variable_once(tmp_path):
    from cloud_assets.defs.resources import DatasetResource, ModelResource
    from cloud_assets.lib.classifier.model import ModelError

    for call in (lambda m: m.file(), lambda m: m.load(DatasetResource(data_dir=str(tmp_path)))):
        try:
            call(ModelResource(path=str(tmp_path / "missing.keras")))
        except ModelError as e:
            assert str(e).count("CLOUD_ASSETS_MODEL_PATH") == 1, str(e)
        else:
            raise AssertionError("a missing model file was accepted")


def _documented(text: str, pattern: str) -> dict:
    """variable -> its value, for every line of `text` matching `pattern` (groups: name, value)."""
    import re

    values = {m.group(1): m.group(2).strip() for m in re.finditer(pattern, text, re.MULTILINE)}
    return {k: re.sub(rf"^\$\{{{k}:-(.*)\}}$", r"\1", v) for k, v in values.items()}  # KEY=${KEY:-value}


def test_env_example_and_the_readme_list_every_setting_with_its_default():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    from cloud_assets.instance import POSTGRES_URL

    known = set(settings.variables()) | {"DAGSTER_HOME", "KERAS_BACKEND", POSTGRES_URL}
    example = _documented((root / ".env.example").read_text(), r"^#? ?([A-Z_]+)=(.*)$")
    table = _documented((root / "README.md").read_text(), r"^\| `([A-Z_]+)` \|.*\| ([^|]*) \|$")
    assert set(example) | {"KERAS_BACKEND"} == known, set(example) ^ known
    assert set(table) == known, set(table) ^ known
    for variable, setting in settings.variables().items():
        if setting["resource"]:
            continue  # unset, the resource field's default, which the table gives
        assert example[variable] == setting["default"], variable
        default = setting["default"]
        assert table[variable].startswith(f"`{default}`") if default else table[variable] == "unset", \
            (variable, table[variable])
