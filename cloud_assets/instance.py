"""The Dagster instance's `dagster.yaml`: the project's settings (telemetry off, the `gpu` pool's
limit), on SQLite under DAGSTER_HOME, or on PostgreSQL when CLOUD_ASSETS_POSTGRES_URL or Dagster's
own DAGSTER_POSTGRES_* variables are set. The file names the variables (`env:`), never their values,
so no password is written to disk; runs, events, schedules and the pool's slots all live in the
database then, which every process of a team's deployment shares."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.storage.event_log import SqliteEventLogStorage as DagstersSqliteEventLogStorage
from dagster._core.storage.event_log.schema import ConcurrencySlotsTable as Slots
from dagster._core.storage.sqlalchemy_compat import db_select
from dagster._core.storage.sqlite_storage import _event_logs_directory
from dagster._utils.concurrency import ConcurrencySlotStatus

POSTGRES_URL = "CLOUD_ASSETS_POSTGRES_URL"
# Dagster's own names (its deployment guides' dagster.yaml); the port is optional (5432)
DAGSTER_POSTGRES = {"username": "DAGSTER_POSTGRES_USER", "password": "DAGSTER_POSTGRES_PASSWORD",
                    "hostname": "DAGSTER_POSTGRES_HOSTNAME", "db_name": "DAGSTER_POSTGRES_DB"}
DAGSTER_POSTGRES_PORT = "DAGSTER_POSTGRES_PORT"
POOL = "gpu"


def storage(env: Mapping[str, str] = os.environ) -> dict:
    """The `storage:` section the variables ask for; {} for SQLite under DAGSTER_HOME."""
    if env.get(POSTGRES_URL):
        return {"postgres": {"postgres_url": {"env": POSTGRES_URL}}}
    given = {field: name for field, name in DAGSTER_POSTGRES.items() if env.get(name)}
    if not given:
        return {}
    missing = sorted(set(DAGSTER_POSTGRES.values()) - set(given.values()))
    if missing:
        raise ValueError(f"{', '.join(sorted(given.values()))} set but not {', '.join(missing)}: the instance's "
                         f"PostgreSQL needs all four (or {POSTGRES_URL} alone)")
    db = {field: {"env": name} for field, name in DAGSTER_POSTGRES.items()}
    if env.get(DAGSTER_POSTGRES_PORT):
        db["port"] = {"env": DAGSTER_POSTGRES_PORT}
    return {"postgres": {"postgres_db": db}}


def text(template: str, home: Path, env: Mapping[str, str] = os.environ) -> str:
    """`template` (the project's dagster.yaml) with the storage the variables ask for; on SQLite, the
    event log (and the pools' slots) through `SqliteEventLogStorage` below, in `home` (written as an
    absolute path: `write`, which every make target calls, rewrites it when the folder has moved),
    runs and schedules in Dagster's default SQLite files."""
    section = storage(env)
    extra = {"storage": section} if section else {"event_log_storage": {
        "module": "cloud_assets.instance", "class": "SqliteEventLogStorage",
        "config": {"base_dir": str(Path(home).resolve())}}}
    return template.rstrip("\n") + "\n" + yaml.safe_dump(extra, sort_keys=False)


class SqliteEventLogStorage(DagstersSqliteEventLogStorage):
    """Dagster's SQLite event log, its files where Dagster's default puts them under `base_dir`
    (DAGSTER_HOME), but claiming a pool's slot atomically. Dagster selects a free slot `FOR UPDATE`,
    which SQLite ignores, then updates it by id alone: two runs that claim at the same moment both get
    the one `gpu` slot, and their GPU steps overlap. Here the update takes the slot only while it is
    still free; a claim that lost the race is BLOCKED and tries again."""

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(_event_logs_directory(config_value["base_dir"]), inst_data=inst_data)

    def _claim_concurrency_slot(self, concurrency_key, run_id, step_key):
        free = (Slots.c.concurrency_key == concurrency_key) & Slots.c.step_key.is_(None) & Slots.c.deleted.is_(False)
        with self.index_connection() as conn:
            row = conn.execute(db_select([Slots.c.id]).where(free).limit(1)).fetchone()
            if row and conn.execute(Slots.update().values(run_id=run_id, step_key=step_key)
                                    .where((Slots.c.id == row[0]) & free)).rowcount:
                return ConcurrencySlotStatus.CLAIMED
        return ConcurrencySlotStatus.BLOCKED


def write(home: Path, template: Path, env: Mapping[str, str] = os.environ) -> str:
    """Writes `home`/dagster.yaml when it differs from what the variables ask for, then creates the
    database's tables and the `gpu` pool's limit (two runs that start together on a new instance race
    to create it, and both GPU steps can pass before it exists). Returns where the storage is."""
    home.mkdir(parents=True, exist_ok=True)
    wanted = text(template.read_text(), home, env)
    target = home / "dagster.yaml"
    if not target.is_file() or target.read_text() != wanted:
        tmp = target.with_name(".dagster.yaml.tmp")
        tmp.write_text(wanted)
        os.replace(tmp, target)
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        instance.event_log_storage.initialize_concurrency_limit_to_default(POOL)
    finally:
        instance.dispose()
    if not storage(env):
        return f"SQLite in {home}"
    return f"PostgreSQL ({POSTGRES_URL if env.get(POSTGRES_URL) else 'DAGSTER_POSTGRES_*'})"
