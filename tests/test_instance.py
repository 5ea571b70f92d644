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
    assert "storage" not in yaml.safe_load((tmp_path / "home" / "dagster.yaml").read_text())


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
