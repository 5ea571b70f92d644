"""The one place that reads the environment: which CLOUD_ASSETS_* variable fills which field.

A variable that is set reaches its resource field as a Dagster `EnvVar`, so the UI shows where the
value came from; one that is unset leaves the field's default. The executor, the schedule's cron and
the shards are chosen when the definitions load, so their variables are read here as plain values.
`.env.example` and the README's table list the same variables.
"""
import os

import dagster as dg

# resource field -> (variable, type); the README's Configuration table says what each means
FIELDS = {
    "dataset.data_dir": ("CLOUD_ASSETS_DATA_DIR", str),
    "dataset.input_size": ("CLOUD_ASSETS_INPUT_SIZE", str),
    "dataset.review_path": ("CLOUD_ASSETS_REVIEW_PATH", str),
    "model.path": ("CLOUD_ASSETS_MODEL_PATH", str),
    "model.batch_size": ("CLOUD_ASSETS_BATCH_SIZE", int),
    "model.safe_mode": ("CLOUD_ASSETS_MODEL_SAFE_MODE", int),
    "var.path": ("CLOUD_ASSETS_VAR_DIR", str),
}
REQUIRED = {"dataset.data_dir", "model.path"}
EXECUTOR = "CLOUD_ASSETS_EXECUTOR"
SHARDS = "CLOUD_ASSETS_SHARDS"
SHARDS_PER_RUN = "CLOUD_ASSETS_SHARDS_PER_RUN"
MODEL_CHECK_CRON = "CLOUD_ASSETS_MODEL_CHECK_CRON"


def fields(resource: str) -> dict:
    """The fields of `resource` whose variable is set (or required), as EnvVars."""
    out = {}
    for key, (variable, kind) in FIELDS.items():
        owner, _, name = key.partition(".")
        if owner == resource and (variable in os.environ or key in REQUIRED):
            out[name] = dg.EnvVar.int(variable) if kind is int else dg.EnvVar(variable)
    return out


def value(variable: str, default: str = "") -> str:
    """A variable read when the definitions load (the executor's kind, the schedule's cron)."""
    return os.environ.get(variable, default)


def naming_variables(message: str) -> str:
    """`message` with each resource field it mentions followed by its variable, e.g.
    `dataset.input_size (CLOUD_ASSETS_INPUT_SIZE)`: library errors name fields, users set variables."""
    for key, (variable, _) in FIELDS.items():
        message = message.replace(key, f"{key} ({variable})")
    return message
