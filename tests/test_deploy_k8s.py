"""The Kubernetes set-up, checked with dagster-k8s's own schema code."""
import pytest
from pathlib import Path

import yaml
from tests.helpers import A


ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_step_requests_a_gpu_in_a_valid_dagster_k8s_config():
    from dagster_k8s.job import get_user_defined_k8s_config

    tags = A.val_predictions.op.tags
    config = get_user_defined_k8s_config(tags)  # raises on a tag dagster-k8s rejects
    assert config.container_config["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert config.pod_spec_config["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert config.pod_spec_config["node_selector"]


def test_executor_run_config_matches_the_k8s_job_executor_schema():
    from dagster._config import validate_config
    from dagster_k8s import k8s_job_executor

    from cloud_assets.defs.resources import executor
    from cloud_assets.settings import Settings

    run_config = yaml.safe_load((ROOT / "deploy" / "k8s_executor.yaml").read_text())
    result = validate_config(k8s_job_executor.config_schema.config_type, run_config["execution"]["config"])
    assert result.success, [e.message for e in result.errors]
    bad = validate_config(k8s_job_executor.config_schema.config_type, {"max_concurrent": "many"})
    assert not bad.success
    assert executor(Settings.from_env({"CLOUD_ASSETS_EXECUTOR": "k8s"})) is k8s_job_executor


def test_helm_values_serve_the_definitions_with_the_k8s_executor():
    values = yaml.safe_load((ROOT / "deploy" / "helm" / "values.yaml").read_text())
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "cloud_assets.definitions"]
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert env["CLOUD_ASSETS_EXECUTOR"] == "k8s" and values["runLauncher"]["type"] == "K8sRunLauncher"
    # the instance on the team's PostgreSQL server, not one the chart would deploy
    assert values["postgresql"]["enabled"] is False and values["postgresql"]["postgresqlHost"]


# the instance the chart writes (its configmap-instance.yaml): Dagster's own PostgreSQL storages, the
# password from DAGSTER_PG_PASSWORD, and the concurrency values above
CHART_INSTANCE = """
run_storage: {module: dagster_postgres.run_storage, class: PostgresRunStorage, config: {postgres_db: DB}}
event_log_storage: {module: dagster_postgres.event_log, class: PostgresEventLogStorage, config: {postgres_db: DB}}
schedule_storage: {module: dagster_postgres.schedule_storage, class: PostgresScheduleStorage, config: {postgres_db: DB}}
concurrency: {pools: {default_limit: LIMIT}}
telemetry: {enabled: false}
"""


@pytest.mark.e2e
def test_helm_init_container_creates_the_gpu_pool_on_the_charts_instance(tmp_path, postgres_server, monkeypatch):
    """The user deployment's init container, its command and environment as values.yaml gives them, run
    twice against an instance like the chart's on a real PostgreSQL server: the pool exists, once."""
    import os
    import subprocess
    import sys
    from urllib.parse import urlparse

    from tests.helpers import open_instance

    values = yaml.safe_load((ROOT / "deploy" / "helm" / "values.yaml").read_text())
    init = values["dagster-user-deployments"]["deployments"][0]["initContainers"][0]
    url = urlparse(postgres_server())
    db = {"username": url.username, "password": {"env": "DAGSTER_PG_PASSWORD"}, "hostname": url.hostname,
          "db_name": url.path.lstrip("/"), "port": url.port}
    home = tmp_path / "home"
    home.mkdir()
    text = CHART_INSTANCE.replace("DB", yaml.safe_dump(db, default_flow_style=True).strip())
    (home / "dagster.yaml").write_text(text.replace("LIMIT", str(values["concurrency"]["pools"]["defaultLimit"])))
    env = {**os.environ, **{e["name"]: e.get("value", "") for e in init["env"]}, "DAGSTER_HOME": str(home)}
    command = [str(Path(sys.executable).parent / init["command"][0]), *init["command"][1:]]
    for _ in range(2):
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        assert done.returncode == 0 and "pool 'gpu': 1 at a time" in done.stdout, done.stderr[-2000:]
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "")  # the server trusts loopback
    with open_instance(home) as opened:
        assert opened.event_log_storage.get_concurrency_info("gpu").slot_count == 1
