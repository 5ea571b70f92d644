"""What several test files share: asset lists, a tiny model, the browser, materialize() with real
resources, a temporary Dagster home and the environment of a run on it."""
import contextlib
import hashlib
import json
import os
from pathlib import Path
import shutil
import socket
import subprocess
import sys
import tempfile
from unittest import mock
import urllib.request

import dagster as dg

from cloud_assets.definitions import asset, build_defs
from cloud_assets.defs.resources import build_resources
from cloud_assets.instance import POSTGRES_URL, text as instance_yaml
from cloud_assets.settings import Settings


class Assets:
    """The assets of `build_defs(settings)` by name (`A.label_table`; a multi-asset by any of its
    assets' names), and the lists the tests materialize."""

    def __init__(self, settings: Settings):
        self.settings, self.defs = settings, build_defs(settings)
        self.DATA = [getattr(self, n) for n in ("label_table", "train_val_split", "image_cache", "val_masks",
                                                "dark_image_counts")]
        # the classifier's audit: its predictions, maps and mistakes, every label ranked, the corrections
        self.ANALYSIS = [getattr(self, n) for n in (
            "val_predictions", "threshold_maps", "confusion_matrices", "mistakes", "fp_class_distribution",
            "fn_class_distribution", "mask_attention", "label_issues", "corrected_labels")]
        # the fold audit, which label_issues reads
        self.FOLD_AUDIT = [getattr(self, n) for n in ("audit_folds", "audit_inputs", "audit_models", "audit_relabels",
                                                      "audit_predictions", "audit_evidence")]

    def __getattr__(self, name: str) -> dg.AssetsDefinition:
        if name.startswith("_"):  # pytest's and mock's probes
            raise AttributeError(name)
        return asset(self.defs, name)


SETTINGS = Settings.from_env(os.environ)  # as the definitions Dagster loads here: two folds (conftest)
A = Assets(SETTINGS)
DATA_ASSETS, ANALYSIS, FOLD_AUDIT = A.DATA, A.ANALYSIS, A.FOLD_AUDIT
# one epoch per fold model and round in the tests
QUICK_AUDIT = {"ops": {"audit_models": {"config": {"epochs": 1, "class_epochs": 1}},
                       "audit_predictions": {"config": {"refit_epochs": 1}}}}
FOLD_AUDIT_NAMES = ["audit_folds", "audit_inputs", *(f"audit_models@{k}" for k in SETTINGS.fold_keys), "audit_relabels",
                    *(f"audit_predictions@{k}" for k in SETTINGS.fold_keys), "audit_evidence"]


def quick(selection) -> dict:
    """QUICK_AUDIT's run config for the steps of `selection` it configures."""
    return {"ops": {name: config for name, config in QUICK_AUDIT["ops"].items() if name in selection}}


def run_folds(run) -> None:
    """The fold audit's fold steps in the order they need: every fold's first-round U-Net
    (`audit_models`), the second round's labels (`audit_relabels`), every fold's second round and
    predictions (`audit_predictions`); `run(selection, partition_key)` materializes one."""
    for key in SETTINGS.fold_keys:
        run(["audit_models"], key)
    run(["audit_relabels"], None)
    for key in SETTINGS.fold_keys:
        run(["audit_predictions"], key)
ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"  # Debian's, driven by Playwright: no browser download
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def tiny_keras(path, outputs=4, input_shape=(224, 224, 3)):
    """A small Keras 3 classifier file (two convolutions, sigmoid outputs) at `path`."""
    import keras
    from keras import layers

    inp = keras.Input(input_shape)
    x = layers.Conv2D(4, 3, strides=4, activation="relu", name="conv_a")(inp)
    x = layers.Conv2D(4, 3, activation="relu", name="conv_b")(x)
    x = layers.GlobalAveragePooling2D()(x)
    net = keras.Model(inp, layers.Dense(outputs, activation="sigmoid")(x))
    net.save(path)
    return path


def resources(data_dir, model_path, var_dir, settings: Settings | None = None, **dataset_config) -> dict:
    """The project's resources for these folders, with `settings` (the environment's by default)."""
    settings = settings or Settings.from_env(os.environ)
    return build_resources(settings.replace(data_dir=str(data_dir), model_path=str(model_path), var_dir=str(var_dir)),
                           **dataset_config)


def materialize(data_dir, var_dir, assets=DATA_ASSETS, model_path="", run_config=None, selection=None,
                instance=None, partition_key=None, settings: Settings | None = None, **dataset_config):
    """dg.materialize with the project's resources; where `assets` hold label_issues, the dataset's
    fold audit is placed in `var_dir` first (`fold_audit`) and its assets are added, unselected."""
    if A.label_issues in assets:
        fold_audit(data_dir, var_dir, **dataset_config)
        if selection is None:
            selection = [k for a in assets if isinstance(a, dg.AssetsDefinition) for k in a.keys]
        assets = assets + [a for a in FOLD_AUDIT if a not in assets]
    return dg.materialize(assets, resources=resources(data_dir, model_path, var_dir, settings, **dataset_config),
                          raise_on_error=False, run_config=run_config, selection=selection, instance=instance,
                          partition_key=partition_key)


def _run_fold_audit(data_dir, var_dir, instance, dataset_config) -> None:
    built = resources(data_dir, "", var_dir, **dataset_config)

    def run(selection, partition_key=None):
        result = dg.materialize(DATA_ASSETS + FOLD_AUDIT, resources=built, selection=selection, instance=instance,
                                partition_key=partition_key, run_config=quick(selection))
        assert result.success, failure_message(result)

    run(["label_table", "train_val_split", "image_cache", "audit_folds", "audit_inputs"])
    run_folds(run)
    run(["audit_evidence"])


_FOLD_AUDITS = {}  # dataset digest -> the store of its fold audit, once per test process


def _dataset_digest(data_dir, dataset_config) -> str:
    h = hashlib.sha256((Path(data_dir) / "train.csv").read_bytes())
    for p in sorted((Path(data_dir) / "train_images").iterdir()):
        h.update(f"{p.name}:{p.stat().st_size}".encode())
    h.update(json.dumps(dataset_config, sort_keys=True, default=str).encode())
    return h.hexdigest()


def fold_audit(data_dir, var_dir, instance=None, **dataset_config) -> None:
    """The fold audit of the dataset at `data_dir` (one epoch per fold), in `var_dir`'s store unless
    it has one: computed once per dataset and test process, then copied; with `instance`,
    materialized in `var_dir` and recorded by that instance."""
    target = Path(var_dir) / "store"
    if (target / "audit_evidence").is_symlink():
        return
    if instance is not None:
        _run_fold_audit(data_dir, var_dir, instance, dataset_config)
        return
    key = _dataset_digest(data_dir, dataset_config)
    if key not in _FOLD_AUDITS:
        var = Path(tempfile.mkdtemp(prefix="fold-audit-"))
        _run_fold_audit(data_dir, var, None, dataset_config)
        _FOLD_AUDITS[key] = var / "store"
    source = _FOLD_AUDITS[key]
    (target / ".versions").mkdir(parents=True, exist_ok=True)
    for name in FOLD_AUDIT_NAMES:
        version = os.readlink(source / name)
        shutil.copytree(source / version, target / version, dirs_exist_ok=True)
        (target / name).symlink_to(version)


def failure_message(result) -> str:
    """The messages of every failed step's error and its causes."""
    messages = []
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            error = event.event_specific_data.error
            while error is not None:
                messages.append(error.message)
                error = error.cause
    return "\n".join(messages)


def checks(result) -> dict:
    return {c.check_name: c for c in result.get_asset_check_evaluations()}


def dagster_home(folder, extra: str = "", env: dict | None = None) -> Path:
    """A new DAGSTER_HOME, `folder/home`, with the project's dagster.yaml (the `gpu` pool; SQLite
    storage, or PostgreSQL when `env` holds CLOUD_ASSETS_POSTGRES_URL: `cloud_assets.instance`) and
    `extra` YAML appended."""
    home = Path(folder) / "home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(instance_yaml((ROOT / "dagster.yaml").read_text(), home, env or {}) + extra)
    return home


@contextlib.contextmanager
def open_instance(home: Path, env: dict | None = None):
    """The Dagster instance of `home`, its `env:` settings (the PostgreSQL URL) read from `env`."""
    with mock.patch.dict(os.environ, {k: v for k, v in (env or {}).items() if k == POSTGRES_URL}):
        opened = dg.DagsterInstance.from_config(str(home))
    try:
        yield opened
    finally:
        opened.dispose()


def run_env(home: Path, data, model="", inherit_settings: bool = True, **variables) -> dict:
    """The environment of a run on `home`: this process's (without its CLOUD_ASSETS_* variables unless
    `inherit_settings`), DAGSTER_HOME, the data folder and the model file (None leaves one out), the
    var folder beside the home, and CLOUD_ASSETS_<NAME>=value for each NAME=value of `variables`
    (None leaves it out)."""
    env = {k: v for k, v in os.environ.items() if inherit_settings or not k.startswith("CLOUD_ASSETS_")}
    env["DAGSTER_HOME"] = str(home)
    given = {"data_dir": data, "model_path": model, "var_dir": Path(home).parent / "var", **variables}
    for name, value in given.items():
        key = f"CLOUD_ASSETS_{name.upper()}"
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port: int, query: str, variables: dict) -> dict:
    """The answer of the webserver on loopback `port` to a GraphQL query, as the UI sends it."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", method="POST",
                                     data=json.dumps({"query": query, "variables": variables}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def dg_run(env: dict, *args, **popen) -> subprocess.CompletedProcess:
    """`dg ARGS -m cloud_assets.definitions`, started beside the run's Dagster home: never in the project
    folder, whose .env (a user's) Dagster's command line would load over `env`."""
    return subprocess.run([str(Path(sys.executable).parent / "dg"), *args, "-m", "cloud_assets.definitions"],
                          cwd=Path(env["DAGSTER_HOME"]).parent, env=env, **popen)


def make_project(folder: Path) -> Path:
    """A project folder for make: the Makefile, the instance settings and this checkout's .venv; make runs
    with `-o .venv/.installed` so that it never reinstalls into that .venv from here."""
    folder.mkdir()
    shutil.copy(ROOT / "Makefile", folder / "Makefile")
    for name in (".venv", "dagster.yaml", "requirements.lock", "pyproject.toml"):
        (folder / name).symlink_to(ROOT / name)
    return folder
