"""The Kubernetes set-up, checked with dagster-k8s's own schema code."""
from pathlib import Path

import yaml

from cloud_assets.defs.model import assets as model_assets

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_step_requests_a_gpu_in_a_valid_dagster_k8s_config():
    from dagster_k8s.job import get_user_defined_k8s_config

    tags = model_assets.model_pass.op.tags
    config = get_user_defined_k8s_config(tags)  # raises on a tag dagster-k8s rejects
    assert config.container_config["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert config.pod_spec_config["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert config.pod_spec_config["node_selector"]


def test_executor_run_config_matches_the_k8s_job_executor_schema(monkeypatch):
    from dagster._config import validate_config
    from dagster_k8s import k8s_job_executor

    from cloud_assets.defs.resources import executor

    run_config = yaml.safe_load((ROOT / "deploy" / "k8s_executor.yaml").read_text())
    result = validate_config(k8s_job_executor.config_schema.config_type, run_config["execution"]["config"])
    assert result.success, [e.message for e in result.errors]
    bad = validate_config(k8s_job_executor.config_schema.config_type, {"max_concurrent": "many"})
    assert not bad.success
    monkeypatch.setenv("CLOUD_ASSETS_EXECUTOR", "k8s")
    assert executor() is k8s_job_executor


def test_helm_values_serve_the_definitions_with_the_k8s_executor():
    values = yaml.safe_load((ROOT / "deploy" / "helm" / "values.yaml").read_text())
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "cloud_assets.definitions"]
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert env["CLOUD_ASSETS_EXECUTOR"] == "k8s" and values["runLauncher"]["type"] == "K8sRunLauncher"
    # the instance on the team's PostgreSQL server, not one the chart would deploy
    assert values["postgresql"]["enabled"] is False and values["postgresql"]["postgresqlHost"]
