"""The Dagster instance's `dagster.yaml`: the project's settings (telemetry off, the `gpu` pool's
default limit), on SQLite under DAGSTER_HOME, or on PostgreSQL when CLOUD_ASSETS_POSTGRES_URL or
Dagster's own DAGSTER_POSTGRES_* variables are set. The file names the variables (`env:`), never
their values, so no password is written to disk; runs, events, schedules and the pool's slots all
live in the database then, which every process of a team's deployment shares.

The event log is Dagster's, but for the pool: its limit is created atomically and idempotently (any
number of processes, at once or one after another), a limit set by hand (`dagster instance
concurrency set gpu N`) is kept, and a slot is claimed atomically (on SQLite and on PostgreSQL)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.storage.event_log import SqliteEventLogStorage as DagstersSqliteEventLogStorage
from dagster._core.storage.event_log.schema import ConcurrencyLimitsTable as Limits
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
from dagster._core.storage.event_log.schema import ConcurrencySlotsTable as Slots
from dagster._core.storage.sqlalchemy_compat import db_select
from dagster._core.storage.sqlite_storage import _event_logs_directory
from dagster._utils.concurrency import ConcurrencySlotStatus
from dagster_postgres.event_log import PostgresEventLogStorage as DagstersPostgresEventLogStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config
from sqlalchemy.dialects import postgresql, sqlite

POSTGRES_URL = "CLOUD_ASSETS_POSTGRES_URL"
# Dagster's own names (its deployment guides' dagster.yaml); the port is optional (5432)
DAGSTER_POSTGRES = {"username": "DAGSTER_POSTGRES_USER", "password": "DAGSTER_POSTGRES_PASSWORD",
                    "hostname": "DAGSTER_POSTGRES_HOSTNAME", "db_name": "DAGSTER_POSTGRES_DB"}
DAGSTER_POSTGRES_PORT = "DAGSTER_POSTGRES_PORT"
POOL = "gpu"


def postgres(env: Mapping[str, str] = os.environ) -> dict:
    """The PostgreSQL connection the variables ask for, as a storage's `config:`; {} for SQLite."""
    if env.get(POSTGRES_URL):
        return {"postgres_url": {"env": POSTGRES_URL}}
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
    return {"postgres_db": db}


def text(template: str, home: Path, env: Mapping[str, str] = os.environ) -> str:
    """`template` (the project's dagster.yaml) with the storage the variables ask for: the event log
    (and the pool's limit and slots) through this module's classes; on PostgreSQL, runs and schedules
    in Dagster's PostgreSQL storages; on SQLite, in Dagster's default files in `home` (written as an
    absolute path: `write`, which `make install` calls, rewrites it when the folder has moved)."""
    db = postgres(env)
    if db:
        extra = {"run_storage": {"module": "dagster_postgres.run_storage", "class": "PostgresRunStorage", "config": db},
                 "event_log_storage": {"module": __name__, "class": "PostgresEventLogStorage", "config": db},
                 "schedule_storage": {"module": "dagster_postgres.schedule_storage", "class": "PostgresScheduleStorage",
                                      "config": db}}
    else:
        extra = {"event_log_storage": {"module": __name__, "class": "SqliteEventLogStorage",
                                       "config": {"base_dir": str(Path(home).resolve())}}}
    return template.rstrip("\n") + "\n" + yaml.safe_dump(extra, sort_keys=False)


def init_pool(storage, pool: str = POOL) -> int:
    """Creates `pool`'s limit from the instance's default (dagster.yaml's `default_limit`) unless the
    pool has one: one atomic insert that does nothing when the row exists (Dagster's inserts, catches
    the unique violation, then updates in a transaction PostgreSQL has already aborted, so the second
    call fails, and of two processes at once one fails: dagster-io/dagster#33552). The limit row is
    then locked while its slots are allocated, so that two processes allocate one after the other. A
    limit set by hand stays; one from the default follows a changed default. Returns the limit."""
    default = storage._instance.global_op_concurrency_default_limit
    if default is None:
        raise ValueError(f"the instance has no default pool limit (dagster.yaml's concurrency.pools.default_limit), "
                         f"so the {pool!r} pool would be unlimited")
    storage._reconcile_concurrency_limits_from_slots()
    with storage.index_transaction() as conn:
        insert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(Limits)
        conn.execute(insert.values(concurrency_key=pool, limit=default, using_default_limit=True)
                     .on_conflict_do_nothing(index_elements=["concurrency_key"]))
        mine = Limits.c.concurrency_key == pool
        limit, from_default = conn.execute(db_select([Limits.c.limit, Limits.c.using_default_limit]).where(mine)
                                           .with_for_update()).fetchone()
        if from_default and limit != default:
            conn.execute(Limits.update().values(limit=default).where(mine))
            limit = default
        storage._allocate_concurrency_slots(conn, pool, limit)
    return limit


class _PoolInit(SqlEventLogStorage):
    """Dagster's event log with the pool's limit created by `init_pool` (Dagster calls this when a
    run first meets a pool without a limit), and a pool's slot claimed atomically. Dagster selects a
    free slot `FOR UPDATE`, which SQLite ignores and which on PostgreSQL's autocommitted connection
    holds only for that statement, then updates it by id alone: two runs that claim at the same moment
    both get the one `gpu` slot, and their GPU steps overlap. Here the update takes the slot only while
    it is still free; a claim that lost the race is BLOCKED and tries again."""

    def initialize_concurrency_limit_to_default(self, concurrency_key: str) -> bool:
        if not (self.has_concurrency_limits_table and self.has_instance and self.has_default_pool_limit_col) \
                or self._instance.global_op_concurrency_default_limit is None:
            return super().initialize_concurrency_limit_to_default(concurrency_key)
        init_pool(self, concurrency_key)
        return True

    def _claim_concurrency_slot(self, concurrency_key, run_id, step_key):
        free = (Slots.c.concurrency_key == concurrency_key) & Slots.c.step_key.is_(None) & Slots.c.deleted.is_(False)
        with self.index_connection() as conn:
            row = conn.execute(db_select([Slots.c.id]).where(free).limit(1)).fetchone()
            if row and conn.execute(Slots.update().values(run_id=run_id, step_key=step_key)
                                    .where((Slots.c.id == row[0]) & free)).rowcount:
                return ConcurrencySlotStatus.CLAIMED
        return ConcurrencySlotStatus.BLOCKED


class PostgresEventLogStorage(_PoolInit, DagstersPostgresEventLogStorage):
    """Dagster's PostgreSQL event log, the pool's limit created by `init_pool`."""

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(postgres_url=pg_url_from_config(config_value), inst_data=inst_data,
                   should_autocreate_tables=config_value.get("should_autocreate_tables", True),
                   token_provider=get_token_provider_from_config(config_value))


class SqliteEventLogStorage(_PoolInit, DagstersSqliteEventLogStorage):
    """Dagster's SQLite event log, its files where Dagster's default puts them under `base_dir`
    (DAGSTER_HOME), the pool's limit created by `init_pool` and its slot claimed atomically."""

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(_event_logs_directory(config_value["base_dir"]), inst_data=inst_data)


def write(home: Path, template: Path, env: Mapping[str, str] = os.environ) -> str:
    """Writes `home`/dagster.yaml when it differs from what the variables ask for, then creates the
    database's tables and the `gpu` pool's limit (`init_pool`: before any run, as two runs that
    start together on a new instance race to create it). Returns where the storage is and the limit."""
    home.mkdir(parents=True, exist_ok=True)
    wanted = text(template.read_text(), home, env)
    target = home / "dagster.yaml"
    if not target.is_file() or target.read_text() != wanted:
        tmp = target.with_name(f".dagster.yaml.{os.getpid()}.tmp")
        tmp.write_text(wanted)
        os.replace(tmp, target)
    where = f"PostgreSQL ({POSTGRES_URL if env.get(POSTGRES_URL) else 'DAGSTER_POSTGRES_*'})" if postgres(env) \
        else f"SQLite in {home}"
    return f"{where}; {create_pool(home)}"


def create_pool(home: Path) -> str:
    """Creates the `gpu` pool's limit on the instance in `home`, whatever its dagster.yaml (a deployment's
    own, e.g. the Helm chart's, whose event log is Dagster's); says the limit."""
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        return f"pool {POOL!r}: {init_pool(instance.event_log_storage)} at a time"
    finally:
        instance.dispose()
