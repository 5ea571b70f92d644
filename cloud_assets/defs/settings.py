"""The one place that reads the environment: which CLOUD_ASSETS_* variable fills which field, and
the variables read when the definitions load.

A variable that is set reaches its resource field as a Dagster `EnvVar`, so the UI shows where the
value came from; one that is unset leaves the field's default. The executor, the schedules' cron,
the shards, the class list, the saliency method and the audit's folds, profile and size are chosen when the definitions
load (the method is part of `saliency_maps`' code version, the audit size of the audit assets', so that changing
either re-runs them), so their variables are read here as plain values
and checked at once: a bad value fails the load naming the variable, the value and what is allowed.
`.env.example` and the README's table list the same variables.
"""
import dataclasses
import os
from collections.abc import Callable

import dagster as dg

from cloud_assets.lib import saliency_methods
from cloud_assets.lib.labels import NOTEBOOK_CLASS_ORDER

# resource field -> (variable, type); the README's Configuration table says what each means
FIELDS = {
    "dataset.data_dir": ("CLOUD_ASSETS_DATA_DIR", str),
    "dataset.input_size": ("CLOUD_ASSETS_INPUT_SIZE", str),
    "dataset.review_path": ("CLOUD_ASSETS_REVIEW_PATH", str),
    "dataset.audit_predictions": ("CLOUD_ASSETS_AUDIT_PREDICTIONS", str),
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
SALIENCY_METHOD = "CLOUD_ASSETS_SALIENCY_METHOD"
CLASSES = "CLOUD_ASSETS_CLASSES"
AUDIT_FOLDS = "CLOUD_ASSETS_AUDIT_FOLDS"
AUDIT_SIZE = "CLOUD_ASSETS_AUDIT_SIZE"
AUDIT_PROFILE = "CLOUD_ASSETS_AUDIT_PROFILE"
CELERY_BROKER = "CLOUD_ASSETS_CELERY_BROKER"
CELERY_BACKEND = "CLOUD_ASSETS_CELERY_BACKEND"


class SettingError(ValueError):
    """A variable whose value is not allowed; the message names the variable, the value and what is allowed."""


def _at_least_one(text: str) -> int:
    n = int(text)
    if n < 1:
        raise ValueError(text)
    return n


def _one_of(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(text)
        return text
    return parse


def _classes(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",")]
    if not all(names) or len(set(names)) < len(names) or any("_" in n for n in names):
        raise ValueError(text)
    return names


def _at_least_two(text: str) -> int:
    n = int(text)
    if n < 2:
        raise ValueError(text)
    return n


def _audit_size(text: str) -> tuple[int, int] | None:
    if not text:
        return None  # the profile's
    height, width = (int(v) for v in text.lower().split("x"))
    if height < 16 or width < 16 or height % 16 or width % 16:
        raise ValueError(text)
    return height, width


def _url(text: str) -> str:
    if "://" not in text:
        raise ValueError(text)
    return text


def _cron(text: str) -> str:
    from dagster._utils.schedules import is_valid_cron_string

    if not is_valid_cron_string(text):
        raise ValueError(text)
    return text


@dataclasses.dataclass(frozen=True)
class LoadTime:
    """A variable read when the definitions load: its default (when unset or empty), what is allowed
    (in words, for the error) and its parser (ValueError on a value that is not allowed)."""
    default: str
    allowed: str
    parse: Callable[[str], object]


LOAD_TIME = {
    SHARDS: LoadTime("1", "a whole number of shards, at least 1 (1: nothing partitioned) and at most the "
                          "number of images in train.csv", _at_least_one),
    SHARDS_PER_RUN: LoadTime("2", "a whole number of shards per backfill run, at least 1", _at_least_one),
    EXECUTOR: LoadTime("", "'k8s', 'celery' or unset (multiprocess)", _one_of("", "k8s", "celery")),
    MODEL_CHECK_CRON: LoadTime("*/5 * * * *", "a cron expression of five fields, e.g. '*/5 * * * *'", _cron),
    CLASSES: LoadTime(",".join(NOTEBOOK_CLASS_ORDER), "the classes in the model's output order, comma-separated, "
                      "each once and without '_' (train.csv's Image_Label is <image>_<class>)", _classes),
    SALIENCY_METHOD: LoadTime(saliency_methods.DEFAULT, "one of " + ", ".join(saliency_methods.METHODS),
                              _one_of(*saliency_methods.METHODS)),
    CELERY_BROKER: LoadTime("redis://127.0.0.1:6379/0", "the Celery broker's URL, e.g. redis://HOST:6379/0", _url),
    CELERY_BACKEND: LoadTime("redis://127.0.0.1:6379/1", "the Celery result backend's URL, e.g. redis://HOST:6379/1",
                             _url),
    AUDIT_FOLDS: LoadTime("5", "a whole number of folds, at least 2", _at_least_two),
    AUDIT_PROFILE: LoadTime("", "'fast', 'strong' or unset (strong where a GPU is visible, else fast)",
                            _one_of("", "fast", "strong")),
    AUDIT_SIZE: LoadTime("", "HEIGHTxWIDTH, each a multiple of 16 (the audit U-Net halves it four times), e.g. "
                             "64x96, or unset (the profile's)", _audit_size),
}


def load_time(variable: str):
    """The parsed value of a variable read when the definitions load; SettingError if it is not allowed."""
    setting = LOAD_TIME[variable]
    text = os.environ.get(variable, "").strip() or setting.default
    try:
        return setting.parse(text)
    except ValueError:
        raise SettingError(f"{variable}={os.environ.get(variable)!r}: expected {setting.allowed}") from None


def fields(resource: str) -> dict:
    """The fields of `resource` whose variable is set (or required), as EnvVars; SettingError, naming
    the field and the variable, for a whole-number field whose variable is not a whole number."""
    out = {}
    for key, (variable, kind) in FIELDS.items():
        owner, _, name = key.partition(".")
        if owner != resource or (variable not in os.environ and key not in REQUIRED):
            continue
        if kind is int:
            try:
                int(os.environ[variable])
            except ValueError:
                raise SettingError(naming_variables(f"{key}={os.environ[variable]!r}: expected a whole number")) \
                    from None
        out[name] = dg.EnvVar.int(variable) if kind is int else dg.EnvVar(variable)
    return out


def naming_variables(message: str) -> str:
    """`message` with each resource field it mentions followed by its variable, e.g.
    `dataset.input_size (CLOUD_ASSETS_INPUT_SIZE)`: library errors name fields, users set variables."""
    for key, (variable, _) in FIELDS.items():
        message = message.replace(key, f"{key} ({variable})")
    return message
