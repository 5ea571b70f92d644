"""`cloud-assets launch`: `dg launch` with what a person reads in the terminal. The run's own console
(Dagster's DEBUG events, TensorFlow's C++ lines) goes to a log file; the terminal shows the assets'
progress lines (counts, rates, ETAs), each step as it ends, failed checks and errors, read from the
run's event log in the Dagster instance, which keeps every event (the UI's Runs page shows them)."""
from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg

# the run's console logger prints warnings and errors only; the event log still records everything
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
POLL_S = 0.5


def launch(args: list[str], log_path: Path, say: Callable[[str], None] = print) -> int:
    """Runs `dg launch ARGS` with its console written to `log_path`, and says the progress of the
    runs it starts. Returns dg's exit status."""
    if any(a in ("-c", "--config", "--config-json") or a.startswith("--config") for a in args):
        raise ValueError("cloud-assets launch sets the run's logging config itself; run dg launch directly "
                         "for a run with its own config")
    if not os.environ.get("DAGSTER_HOME"):
        raise ValueError("DAGSTER_HOME is not set: it names the Dagster instance's folder (make sets it; "
                         "make where prints it)")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    dg_bin = Path(sys.executable).parent / "dg"
    env = {**os.environ, "VIRTUAL_ENV": sys.prefix}
    say(f"dg launch {' '.join(args)}   (its console: {log_path})")
    instance = dg.DagsterInstance.get()
    try:
        since = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=1)
        with open(log_path, "a") as log:
            proc = subprocess.Popen([str(dg_bin), "launch", *args, "--config-json", json.dumps(QUIET)],
                                    stdout=log, stderr=subprocess.STDOUT, env=env)
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
