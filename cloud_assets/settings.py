"""Every setting of the project: its CLOUD_ASSETS_* variable, its default, what is allowed and the
error that names the variable. `Settings.from_env(mapping)` reads them from a mapping (the
environment for Dagster's loader and the commands, any dict for tests and benchmarks) and is the one
place that does; `cloud_assets.definitions.build_defs(settings)` builds every definition from them.

Some settings fill a resource field (the dataset folder, the model file, ...): unset, the field
keeps its default. The others shape the definitions themselves (the executor, the schedules' cron,
the shards, the class list, the saliency method and the audit's folds, profile, size and class
network; the method is part of `saliency_maps`' code version, the audit's size, profile and class
network of the audit assets', so that changing any re-runs them). A bad value fails at once, naming the variable, the value and what is
allowed. `.env.example` and the README's table list the same variables.
"""
import dataclasses
from collections.abc import Callable, Mapping

from cloud_assets.lib.audit.network import CLASS_NETWORKS
from cloud_assets.lib.saliency import methods as saliency_methods
from cloud_assets.lib.data.images import parse_size
from cloud_assets.lib.data.labels import NOTEBOOK_CLASS_ORDER

DEFAULT_VAR_DIR = "var"


class SettingError(ValueError):
    """A variable whose value is not allowed; the message names the variable, the value and what is allowed."""


def _whole(at_least: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        n = int(text)
        if n < at_least:
            raise ValueError(text)
        return n
    return parse


def _one_of(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(text)
        return text
    return parse


def _text(text: str) -> str:
    return text


def _optional(parse: Callable[[str], object]) -> Callable[[str], object]:
    """`parse`, with '' (unset) as None: the resource field keeps its default."""
    return lambda text: parse(text) if text else None


def _size(text: str) -> str:
    parse_size(text)  # ValueError unless HEIGHTxWIDTH
    return text


def _classes(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(","))
    if not all(names) or len(set(names)) < len(names) or any("_" in n for n in names):
        raise ValueError(text)
    return names


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


def _setting(variable: str, default: str, allowed: str, parse: Callable[[str], object], resource: str = ""):
    """A field of Settings: its variable, its default as the variable would give it (when unset or
    empty), what is allowed (in words, for the error), its parser (ValueError when not allowed) and
    the resource field it fills, if any (`resource.field`)."""
    return dataclasses.field(default=parse(default), metadata={
        "variable": variable, "default": default, "allowed": allowed, "parse": parse, "resource": resource})


_WHOLE_OR_UNSET = "a whole number, or unset (the default)"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every setting; `Settings()` holds the defaults. A resource field's setting is None when unset."""

    data_dir: str = _setting("CLOUD_ASSETS_DATA_DIR", "", "a dataset folder", _text, resource="dataset.data_dir")
    model_path: str = _setting("CLOUD_ASSETS_MODEL_PATH", "", "a .keras or .h5 file", _text, resource="model.path")
    input_size: str | None = _setting("CLOUD_ASSETS_INPUT_SIZE", "", "HEIGHTxWIDTH, e.g. 224x224",
                                      _optional(_size), resource="dataset.input_size")
    review_path: str | None = _setting("CLOUD_ASSETS_REVIEW_PATH", "", "a file path", _optional(_text),
                                       resource="dataset.review_path")
    audit_predictions: str | None = _setting("CLOUD_ASSETS_AUDIT_PREDICTIONS", "", "a folder",
                                             _optional(_text), resource="dataset.audit_predictions")
    batch_size: int | None = _setting("CLOUD_ASSETS_BATCH_SIZE", "", "a whole number of images, at least 1, or "
                                      "unset (32)", _optional(_whole(1)), resource="model.batch_size")
    safe_mode: int | None = _setting("CLOUD_ASSETS_MODEL_SAFE_MODE", "", "0 or 1, or unset (1)",
                                     _optional(lambda text: int(_one_of("0", "1")(text))), resource="model.safe_mode")
    var_dir: str = _setting("CLOUD_ASSETS_VAR_DIR", DEFAULT_VAR_DIR, "a folder", _text, resource="var.path")
    shards: int = _setting("CLOUD_ASSETS_SHARDS", "1", "a whole number of shards, at least 1 (1: nothing partitioned) "
                           "and at most the number of images in train.csv", _whole(1))
    shards_per_run: int = _setting("CLOUD_ASSETS_SHARDS_PER_RUN", "2", "a whole number of shards per backfill run, "
                                   "at least 1", _whole(1))
    executor: str = _setting("CLOUD_ASSETS_EXECUTOR", "", "'k8s', 'celery' or unset (multiprocess)",
                             _one_of("", "k8s", "celery"))
    model_check_cron: str = _setting("CLOUD_ASSETS_MODEL_CHECK_CRON", "*/5 * * * *", "a cron expression of five "
                                     "fields, e.g. '*/5 * * * *'", _cron)
    classes: tuple[str, ...] = _setting(
        "CLOUD_ASSETS_CLASSES", ",".join(NOTEBOOK_CLASS_ORDER), "the classes in the model's output order, "
        "comma-separated, each once and without '_' (train.csv's Image_Label is <image>_<class>)",
        _classes)
    saliency_method: str = _setting("CLOUD_ASSETS_SALIENCY_METHOD", saliency_methods.DEFAULT, "one of " + ", ".join(
        saliency_methods.METHODS), _one_of(*saliency_methods.METHODS))
    celery_broker: str = _setting("CLOUD_ASSETS_CELERY_BROKER", "redis://127.0.0.1:6379/0", "the Celery broker's "
                                  "URL, e.g. redis://HOST:6379/0", _url)
    celery_backend: str = _setting("CLOUD_ASSETS_CELERY_BACKEND", "redis://127.0.0.1:6379/1", "the Celery result "
                                   "backend's URL, e.g. redis://HOST:6379/1", _url)
    audit_folds: int = _setting("CLOUD_ASSETS_AUDIT_FOLDS", "5", "a whole number of folds, at least 2",
                                _whole(2))
    audit_profile: str = _setting("CLOUD_ASSETS_AUDIT_PROFILE", "", "'fast', 'strong' or unset (strong where a GPU "
                                  "is visible, else fast)", _one_of("", "fast", "strong"))
    audit_class_network: str = _setting("CLOUD_ASSETS_AUDIT_CLASS_NETWORK", "", "'unet' (the U-Net's image-level "
                                        "head), 'densenet' (a class network per fold at the classifier's input "
                                        "size) or unset (the profile's: unet on both)",
                                        _one_of("", *CLASS_NETWORKS))
    audit_size: tuple[int, int] | None = _setting(
        "CLOUD_ASSETS_AUDIT_SIZE", "", "HEIGHTxWIDTH, each a multiple of 16 (the audit U-Net halves it four times), "
        "e.g. 64x96, or unset (the profile's)", _audit_size)
    sharpened: int = _setting("CLOUD_ASSETS_SHARPENED", "1000", "a whole number of candidates, 0 or more",
                              _whole(0))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Settings":
        """The settings the variables of `env` give; SettingError, naming the first variable whose
        value is not allowed."""
        values = {}
        for field in dataclasses.fields(cls):
            variable, meta = field.metadata["variable"], field.metadata
            try:
                values[field.name] = meta["parse"](env.get(variable, "").strip() or meta["default"])
            except ValueError:
                raise SettingError(f"{variable}={env.get(variable)!r}: expected {meta['allowed']}") from None
        return cls(**values)

    @classmethod
    def variable(cls, name: str) -> str:
        """The variable of the setting `name`."""
        return next(f.metadata["variable"] for f in dataclasses.fields(cls) if f.name == name)

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)

    @property
    def profile(self) -> str:
        """The audit profile: CLOUD_ASSETS_AUDIT_PROFILE's, else strong where a GPU is visible."""
        from cloud_assets.lib.audit import network as audit

        return self.audit_profile or audit.default_profile()

    @property
    def class_network(self) -> str:
        """The audit's class network: CLOUD_ASSETS_AUDIT_CLASS_NETWORK's, else the profile's."""
        from cloud_assets.lib.audit import network as audit

        return self.audit_class_network or audit.PROFILES[self.profile].class_network

    @property
    def audit_shape(self) -> tuple[int, int]:
        """The audit's (height, width): CLOUD_ASSETS_AUDIT_SIZE's, else the profile's."""
        from cloud_assets.lib.audit import network as audit

        return self.audit_size or audit.PROFILES[self.profile].size

    @property
    def fold_keys(self) -> list[str]:
        """The audit's fold partition keys."""
        from cloud_assets.lib import shards

        return shards.keys(self.audit_folds)


def variables() -> dict[str, dict]:
    """Variable -> its field's metadata (default, allowed, parse), for the documentation's tests."""
    return {f.metadata["variable"]: dict(f.metadata) for f in dataclasses.fields(Settings)}


def resource_fields(settings: Settings, resource: str) -> dict:
    """The fields of `resource` ('dataset', 'model', 'var') that `settings` set: field name -> value."""
    out = {}
    for field in dataclasses.fields(Settings):
        owner, _, name = field.metadata["resource"].partition(".")
        if owner == resource and getattr(settings, field.name) is not None:
            out[name] = getattr(settings, field.name)
    return out


def naming_variables(message: str) -> str:
    """`message` with each resource field it mentions followed by its variable, e.g.
    `dataset.input_size (CLOUD_ASSETS_INPUT_SIZE)`: library errors name fields, users set variables."""
    for field in dataclasses.fields(Settings):
        if key := field.metadata["resource"]:
            message = message.replace(key, f"{key} ({field.metadata['variable']})")
    return message
