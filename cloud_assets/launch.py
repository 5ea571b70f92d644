"""`cloud-assets launch` and `cloud-assets run`: `dg launch` with what a person reads in the terminal.
The run's own console (dg's lines, the executor's DEBUG events, the steps' warnings and errors,
TensorFlow's C++ lines) goes to a log file; the terminal shows the assets' progress lines (counts,
rates, ETAs), each step as it ends, failed checks and errors, read from the run's event log in the
Dagster instance, which keeps every event (the UI's Runs page shows them).

`cloud-assets run` (make run) observes the sources, then materializes only the assets that Dagster
finds stale or missing: in runs of its own on one machine, or as one backfill that the Dagster
daemon runs where an executor spreads the work (Celery, Kubernetes), followed to its end.

dg runs in a folder of its own, `$CLOUD_ASSETS_VAR_DIR/logs`, never the one it was started from nor
the log's: Dagster's command line loads `./.env` over the environment, and make has already read
`.env` as defaults the environment overrides."""
from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from cloud_assets.settings import DEFAULT_VAR_DIR

# the run's console logger prints warnings and errors only; the event log still records everything
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
POLL_S = 0.5
# the variables that name files or folders: made absolute before dg starts in its own folder
PATH_VARIABLES = ("CLOUD_ASSETS_DATA_DIR", "CLOUD_ASSETS_MODEL_PATH", "CLOUD_ASSETS_VAR_DIR", "CLOUD_ASSETS_REVIEW_PATH",
                  "CLOUD_ASSETS_AUDIT_PREDICTIONS", "DAGSTER_HOME")
DAEMON_WAIT_S = 60  # a backfill no daemon has picked up after this long is reported


def _run_config(args: list[str]) -> tuple[list[str], dict]:
    """(`args` without `--config-json JSON`, the run config: that JSON's, its console logger `QUIET`).
    A config file (`-c`, `--config`) is refused: its loggers would be the run's."""
    rest = [part for a in args for part in (a.split("=", 1) if a.startswith("--config-json=") else [a])]
    if rest.count("--config-json") > 1:
        raise ValueError("--config-json: given twice; give the run config once")
    config = {}
    if "--config-json" in rest:
        at = rest.index("--config-json")
        if at + 1 == len(rest):
            raise ValueError("--config-json: expected the run config as JSON")
        try:
            config = json.loads(rest[at + 1])
        except json.JSONDecodeError as e:
            raise ValueError(f"--config-json {rest[at + 1]!r}: not JSON ({e})") from None
        if not isinstance(config, dict):
            raise ValueError(f"--config-json {rest[at + 1]!r}: expected a JSON object")
        del rest[at:at + 2]
    if any(a in ("-c", "--config") or a.startswith("--config") for a in rest):
        raise ValueError("cloud-assets launch takes the run config as --config-json JSON (it adds the console "
                         "logger's); run dg launch directly for a config file")
    return rest, {**config, **QUIET}


def launch(args: list[str], log_path: Path, say: Callable[[str], None] = print) -> int:
    """Runs `dg launch ARGS` with its console written to `log_path`, and says the progress of the
    runs it starts. Returns dg's exit status."""
    args, config = _run_config(args)
    if not os.environ.get("DAGSTER_HOME"):
        raise ValueError("DAGSTER_HOME is not set: it names the Dagster instance's folder (make sets it; "
                         "make where prints it)")
    log_path = log_path.resolve()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    dg_bin = Path(sys.executable).parent / "dg"
    env = dg_environment()
    folder = dg_folder(env)
    say(f"dg launch {' '.join(args)}   (its console: {log_path})")
    instance = dg.DagsterInstance.get()
    try:
        since = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=1)
        with open(log_path, "a") as log:
            proc = subprocess.Popen([str(dg_bin), "launch", *args, "-m", "cloud_assets.definitions",
                                     "--config-json", json.dumps(config)],
                                    stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder)
            watcher = _Watcher(instance, since, say)
            while proc.poll() is None:
                watcher.poll()
                time.sleep(POLL_S)
            watcher.poll()
        if proc.returncode != 0 or watcher.failed:
            say(f"dg launch failed (exit status {proc.returncode}); the last lines of {log_path}:")
            for line in _tail(log_path, 15):
                say(f"  | {line}")
        return proc.returncode or int(watcher.failed)
    finally:
        instance.dispose()


def dg_environment() -> dict:
    """This process's environment for dg, started in another folder: the path variables absolute
    (relative to this folder; CLOUD_ASSETS_VAR_DIR unset, its default here), the virtual environment named."""
    env = {**os.environ, "VIRTUAL_ENV": sys.prefix}
    env["CLOUD_ASSETS_VAR_DIR"] = env.get("CLOUD_ASSETS_VAR_DIR") or DEFAULT_VAR_DIR
    for name in PATH_VARIABLES:
        if env.get(name):
            env[name] = str(Path(env[name]).absolute())
    return env


def dg_folder(env: dict, name: str = "logs") -> Path:
    """The folder dg starts in, created: `name` in the var folder of `env` (`dg_environment`), which
    holds no .env, wherever a log goes."""
    folder = Path(env["CLOUD_ASSETS_VAR_DIR"]) / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def validate() -> int:
    """make definitions: `dagster definitions validate` on cloud_assets.definitions, started as dg is
    (`dg_environment`, `dg_folder`). Returns its exit status."""
    env = dg_environment()
    return subprocess.call([str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-m",
                            "cloud_assets.definitions"], env=env, cwd=dg_folder(env))


def ui(host: str, port: int) -> int:
    """make ui: `dagster dev` (webserver, daemon, code server) on cloud_assets.definitions, started in the
    var folder's `ui/` (`dg_folder`), with the path variables absolute (`dg_environment`, relative to the
    folder this was started in). Replaces this process."""
    env = dg_environment()
    os.chdir(dg_folder(env, "ui"))
    dagster = str(Path(sys.executable).parent / "dagster")
    os.execve(dagster, [dagster, "dev", "-m", "cloud_assets.definitions", "--host", host, "--port", str(port)], env)


def run(log_path: Path, say: Callable[[str], None] = print) -> int:
    """make run: observes the dataset, the model file and the review (`observe_sources`), then
    materializes every asset Dagster finds stale or missing (a code version, or an input's data
    version, changed since its last materialization; a partition never materialized), nothing when
    none is. Returns non-zero when a run fails."""
    from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
    from dagster._core.loader import LoadingContextForTest

    from cloud_assets import definitions
    from cloud_assets.settings import Settings

    if launch(["--job", "observe_sources"], log_path, say):
        return 1
    graph = definitions.defs().resolve_asset_graph()
    instance = dg.DagsterInstance.get()
    try:
        resolver = CachingStaleStatusResolver(instance, graph, LoadingContextForTest(instance))

        def partitions(key):
            definition = graph.get(key).partitions_def
            return definition.get_partition_keys() if definition else [None]

        stale = {}  # asset key -> its stale or missing partitions ([None] unpartitioned)
        for key in graph.materializable_asset_keys:
            if found := [p for p in partitions(key) if resolver.get_status(key, p) != StaleStatus.FRESH]:
                stale[key] = found
        # what reads a stale asset is computed again after it (Dagster calls it fresh until then)
        after = dg.AssetSelection.assets(*stale).downstream().resolve(graph) if stale else set()
        todo = {key: stale.get(key) or partitions(key) for key in sorted(after)}
        if not todo:
            say("every asset is up to date: nothing to materialize")
            return 0
        say(f"stale or missing: {', '.join(k.to_user_string() for k in todo)}")
        if Settings.from_env(os.environ).executor:
            return _backfill(instance, graph, todo, say)
    finally:
        instance.dispose()
    audit_and_after = dg.AssetSelection.groups("audit").downstream().resolve(graph)
    # one run before the audit and one from it (the shards' and the folds' partition ranges differ)
    for part in ([k for k in todo if k not in audit_and_after], [k for k in todo if k in audit_and_after]):
        if not part:
            continue
        selection = ",".join(k.to_user_string() for k in part)
        # the partitions to materialize of the part's partitioned assets (one partition set, zero-padded keys)
        names = sorted({p for k in part for p in todo[k] if p is not None})
        options = ["--partition-range", f"{names[0]}...{names[-1]}"] if names else []
        if launch(["--assets", selection, *options], log_path, say):
            return 1
    return 0


def _backfill(instance, graph, todo: dict, say) -> int:
    """One backfill of `todo` (asset key -> partitions), which the Dagster daemon splits into runs by
    the assets' backfill policies and launches in order; followed until it ends."""
    from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
    from dagster._core.definitions.events import AssetKeyPartitionKey
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill

    subset = AssetGraphSubset.from_asset_partition_set(
        {AssetKeyPartitionKey(key, p) for key, parts in todo.items() for p in parts}, graph)
    backfill_id = uuid.uuid4().hex[:8]
    since = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=1)
    instance.add_backfill(PartitionBackfill.from_asset_graph_subset(
        backfill_id=backfill_id, backfill_timestamp=time.time(), tags={}, dynamic_partitions_store=instance,
        asset_graph_subset=subset, title="make run", description="cloud-assets run: what was stale or missing",
        run_config=QUIET))
    say(f"backfill {backfill_id}: {len(todo)} assets, for the Dagster daemon to run (the UI's Backfills page)")
    watcher, waited = _Watcher(instance, since, say), time.monotonic()
    terminal = {BulkActionStatus.COMPLETED_SUCCESS, BulkActionStatus.COMPLETED_FAILED, BulkActionStatus.FAILED,
                BulkActionStatus.CANCELED, BulkActionStatus.COMPLETED}
    while (status := instance.get_backfill(backfill_id).status) not in terminal:
        watcher.poll()
        if not watcher.cursors and time.monotonic() - waited > DAEMON_WAIT_S:
            say(f"backfill {backfill_id}: no run started in {DAEMON_WAIT_S} s; is the Dagster daemon running on this "
                f"instance (dagster-daemon run, or make ui)? It stays queued until one is.")
            waited = time.monotonic()
        time.sleep(POLL_S)
    watcher.poll()
    ok = status in (BulkActionStatus.COMPLETED_SUCCESS, BulkActionStatus.COMPLETED) and not watcher.failed
    say(f"backfill {backfill_id}: {status.value.lower().replace('_', ' ')}")
    if not ok:
        say(f"backfill {backfill_id} failed: its runs' events are in the Dagster UI (Runs, Backfills)")
    return 0 if ok else 1


class _Watcher:
    """Reads the new events of every run created since `since`, and says the readable ones."""

    def __init__(self, instance: dg.DagsterInstance, since: datetime.datetime, say):
        self.instance, self.since, self.say = instance, since, say
        self.cursors: dict[str, str | None] = {}
        self.steps: dict[str, int] = {}   # run id -> steps in its plan
        self.done: dict[str, int] = {}
        self.started: dict[tuple[str, str], float] = {}
        self.failed = False

    def poll(self) -> None:
        for run in reversed(self.instance.get_runs(filters=dg.RunsFilter(created_after=self.since))):
            if run.run_id not in self.cursors:
                self.cursors[run.run_id] = None
                self.done[run.run_id] = 0
                plan = self.instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id) \
                    if run.execution_plan_snapshot_id else None
                self.steps[run.run_id] = len(plan.steps) if plan else 0
                self.say(f"run {run.run_id[:8]} ({run.job_name}): {self.steps[run.run_id]} steps")
            while True:
                page = self.instance.get_records_for_run(run.run_id, cursor=self.cursors[run.run_id], limit=500)
                for record in page.records:
                    self._say(run.run_id, record.event_log_entry)
                self.cursors[run.run_id] = page.cursor
                if not page.has_more:
                    break

    def _say(self, run_id: str, entry) -> None:
        event = entry.dagster_event
        clock = time.strftime("%H:%M:%S", time.localtime(entry.timestamp))
        if event is None:  # an asset's own log line: its progress, counts, where it wrote
            if entry.level >= 20:  # INFO and above
                self.say(f"{clock}   {entry.user_message}")
            return
        kind, step = event.event_type, event.step_key
        if kind == dg.DagsterEventType.STEP_START:
            self.started[(run_id, step)] = entry.timestamp
        elif kind == dg.DagsterEventType.STEP_SUCCESS:
            self.done[run_id] += 1
            took = entry.timestamp - self.started.get((run_id, step), entry.timestamp)
            self.say(f"{clock} done {step} in {took:.1f}s  [{self.done[run_id]}/{self.steps[run_id]} steps]")
        elif kind == dg.DagsterEventType.STEP_FAILURE:
            self.failed = True
            error = event.step_failure_data.error
            while error is not None and error.cause is not None:  # the user's error, not Dagster's wrapper
                error = error.cause
            self.say(f"{clock} FAILED {step}: {error.message.strip() if error else entry.user_message}")
        elif kind == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            check = event.event_specific_data
            if not check.passed:
                self.say(f"{clock} check {check.asset_key.to_user_string()}.{check.check_name} did not pass "
                         f"({check.severity.value})")
        elif kind in (dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.RUN_FAILURE):
            self.failed |= kind == dg.DagsterEventType.RUN_FAILURE
            self.say(f"{clock} run {run_id[:8]} {'succeeded' if kind == dg.DagsterEventType.RUN_SUCCESS else 'FAILED'}"
                     f" (every event: the Dagster UI's Runs page)")


def _tail(path: Path, n: int) -> list[str]:
    return path.read_text(errors="replace").splitlines()[-n:]
