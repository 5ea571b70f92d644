"""`cloud-assets instance`: the instance's dagster.yaml names the variables, never their values;
SQLite without them, PostgreSQL with CLOUD_ASSETS_POSTGRES_URL or Dagster's DAGSTER_POSTGRES_*."""
from urllib.parse import urlparse

import pytest
import yaml

from cloud_assets import cli, instance
from tests.helpers import ROOT, open_instance


def test_without_variables_the_instance_is_sqlite(tmp_path, monkeypatch, capsys):
    for name in [instance.POSTGRES_URL, *instance.DAGSTER_POSTGRES.values()]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    assert cli.main(["instance", "--template", str(ROOT / "dagster.yaml")]) == 0
    assert f"SQLite in {tmp_path / 'home'}" in capsys.readouterr().out
    written = yaml.safe_load((tmp_path / "home" / "dagster.yaml").read_text())
    assert "storage" not in written and written["event_log_storage"]["class"] == "SqliteEventLogStorage"


def test_dagster_postgres_variables_reach_a_real_server_and_no_password_is_written(postgres_server, tmp_path):
    url = urlparse(postgres_server())
    env = {"DAGSTER_POSTGRES_USER": url.username, "DAGSTER_POSTGRES_PASSWORD": "not-written",
           "DAGSTER_POSTGRES_HOSTNAME": url.hostname, "DAGSTER_POSTGRES_DB": url.path.lstrip("/"),
           "DAGSTER_POSTGRES_PORT": str(url.port)}
    home = tmp_path / "home"
    with pytest.MonkeyPatch.context() as m:
        for k, v in env.items():
            m.setenv(k, v)
        assert instance.write(home, ROOT / "dagster.yaml") == "PostgreSQL (DAGSTER_POSTGRES_*)"
        text = (home / "dagster.yaml").read_text()
        assert "not-written" not in text and "env: DAGSTER_POSTGRES_PASSWORD" in text
        with open_instance(home) as opened:
            assert type(opened.run_storage).__name__ == "PostgresRunStorage"
            assert opened.event_log_storage.get_concurrency_info("gpu").slot_count == 1


def test_some_dagster_postgres_variables_are_not_enough():
    with pytest.raises(ValueError, match="DAGSTER_POSTGRES_HOSTNAME set but not DAGSTER_POSTGRES_DB"):
        instance.storage({"DAGSTER_POSTGRES_HOSTNAME": "db"})


_CLAIMER = """
import sys, time
import dagster as dg
from dagster._core.storage.event_log import SqliteEventLogStorage
from cloud_assets.instance import SqliteEventLogStorage as Ours
home, me, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
storage = dg.DagsterInstance.get().event_log_storage
if sys.argv[4] == "dagster":
    storage.__class__ = SqliteEventLogStorage
assert type(storage) is (Ours if sys.argv[4] == "ours" else SqliteEventLogStorage)
while time.time() < start:
    pass
lost = 0
for k in range(300):
    if storage._claim_concurrency_slot("gpu", me, f"step{k}").name == "CLAIMED":
        holders = [s.run_id for s in storage.get_concurrency_info("gpu").claimed_slots]
        lost += holders != [me]  # another claim took the one slot this one holds
        storage.free_concurrency_slot_for_step(me, f"step{k}")
print(lost)
"""


@pytest.mark.parametrize("storage", ["ours", "dagster"])
def test_two_processes_claiming_the_gpu_slot_at_once_never_both_get_it(storage, tmp_path, monkeypatch):
    """The instance's SQLite event log claims the pool's one slot atomically; Dagster's own claim (a
    SELECT ... FOR UPDATE that SQLite ignores, then an update by id) lets two claims both succeed."""
    import subprocess
    import sys
    import time

    for name in [instance.POSTGRES_URL, *instance.DAGSTER_POSTGRES.values()]:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance.write(home, ROOT / "dagster.yaml")
    start = time.time() + 8  # both processes imported and waiting
    procs = [subprocess.Popen([sys.executable, "-c", _CLAIMER, str(home), me, str(start), storage],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for me in ("a", "b")]
    lost = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        lost.append(int(out.strip().splitlines()[-1]))
    if storage == "ours":
        assert lost == [0, 0]
    else:  # the race this storage closes, still open in Dagster's: shown so that a fixed Dagster is noticed
        assert sum(lost) > 0, "Dagster's SQLite claim no longer races: cloud_assets.instance's override can go"
