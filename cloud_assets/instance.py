"""The Dagster instance's `dagster.yaml`: the project's settings (telemetry off, the `gpu` pool's
limit), on SQLite under DAGSTER_HOME, or on PostgreSQL when CLOUD_ASSETS_POSTGRES_URL or Dagster's
own DAGSTER_POSTGRES_* variables are set. The file names the variables (`env:`), never their values,
so no password is written to disk; runs, events, schedules and the pool's slots all live in the
database then, which every process of a team's deployment shares."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import yaml

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


def text(template: str, env: Mapping[str, str] = os.environ) -> str:
    """`template` (the project's dagster.yaml) with the storage the variables ask for."""
    section = storage(env)
    return template if not section else template.rstrip("\n") + "\n" + yaml.safe_dump({"storage": section},
                                                                                      sort_keys=False)


def write(home: Path, template: Path, env: Mapping[str, str] = os.environ) -> str:
    """Writes `home`/dagster.yaml when it differs from what the variables ask for, then creates the
    database's tables and the `gpu` pool's limit (two runs that start together on a new instance race
    to create it, and both GPU steps can pass before it exists). Returns where the storage is."""
    import dagster as dg

    home.mkdir(parents=True, exist_ok=True)
    wanted = text(template.read_text(), env)
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
