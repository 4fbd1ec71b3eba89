"""Tracing (issue 17): an ADOT collector sidecar, OTEL_* variables, X-Ray sampling and a CMK for traces.

What is expected comes from the issue (pinned image, non-root, read-only root filesystem, not
essential, its own log group, X-Ray write permissions only) and from each environment's
`features.tracing` and `tracing.sampling_rate`.
"""

from __future__ import annotations

import json
import re
import tomllib

import cdktf
import pytest

from environments.loader import load_project
from stacks.environment import EnvironmentStack
from tests import api_checks, network_checks
from tests.conftest import only, resources_of
from tests.strategies import to_toml

# Release and digest (issue 21): a tag alone can be moved to other content.
PINNED_COLLECTOR = re.compile(r"^public\.ecr\.aws/aws-observability/aws-otel-collector:v\d+\.\d+\.\d+"
                              r"@sha256:[0-9a-f]{64}$")
# The collector image's own user: `aoc`, UID and GID 4317 (cmd/awscollector/Dockerfile of aws-otel-collector).
COLLECTOR_IMAGE_USER = "4317:4317"
XRAY_WRITE = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
              "xray:GetSamplingTargets", "xray:GetSamplingStatisticSummaries"}
ROOT_USERS = {"0", "root", "0:0", "root:root"}


def containers(stack: dict) -> dict[str, dict]:
    definition = api_checks.api_task_definition(stack)  # not the database bootstrap task's
    return {container["name"]: container for container in json.loads(definition["container_definitions"])}


def role_statements(stack: dict, role_suffix: str) -> list[dict]:
    (policy,) = [body for body in resources_of(stack, "aws_iam_role_policy").values()
                 if body["name"].endswith(f"{role_suffix}-policy")]
    return network_checks.policy_document(stack, policy["policy"])["statement"]


def collector(stack: dict) -> dict | None:
    found = [c for c in containers(stack).values() if c["image"].startswith("public.ecr.aws/aws-observability/")]
    assert len(found) <= 1
    return found[0] if found else None


def variables(container: dict) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("environment", [])}


def test_shipped_tracing_is_on_in_staging_and_production(project):
    assert {env.name: env.features.tracing for env in project.environments} == {
        "dev": False, "staging": True, "production": True}


def test_the_collector_sidecar_is_pinned_hardened_and_not_essential(env_stack):
    env, stack = env_stack
    sidecar = collector(stack)
    assert (sidecar is not None) is env.features.tracing
    if sidecar is None:
        return
    assert PINNED_COLLECTOR.fullmatch(sidecar["image"]), sidecar["image"]
    assert sidecar["essential"] is False, "a collector fault must never stop the API"
    assert sidecar.get("user") and sidecar["user"] not in ROOT_USERS
    assert sidecar["user"] == COLLECTOR_IMAGE_USER, "a UID the image does not know owns nothing in it"
    assert sidecar["readonlyRootFilesystem"] is True
    assert not sidecar.get("portMappings"), "the collector listens on the task's loopback only"
    options = sidecar["logConfiguration"]["options"]
    api_options = containers(stack)["api"]["logConfiguration"]["options"]
    assert options["awslogs-group"] != api_options["awslogs-group"], "the collector has its own log group"
    group_id = network_checks.ref_name(options["awslogs-group"], "aws_cloudwatch_log_group")
    group = stack["resource"]["aws_cloudwatch_log_group"][group_id]
    assert group["kms_key_id"].startswith("${aws_kms_key.") and group["retention_in_days"] == env.log_retention_days
    execution = role_statements(stack, "-api-execution")
    writes = next(s for s in execution if "logs:PutLogEvents" in s["actions"])
    assert f"${{aws_cloudwatch_log_group.{group_id}.arn}}:*" in writes["resources"]


def test_the_app_sends_otlp_to_the_collector_and_samples_through_it(env_stack):
    env, stack = env_stack
    app = variables(containers(stack)["api"])
    otel = {name for name in app if name.startswith("OTEL_")}
    if not env.features.tracing:
        assert not otel
        return
    config = json.loads(variables(collector(stack))["AOT_CONFIG_CONTENT"])
    http = config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert app["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://{http}" and http.startswith("127.0.0.1:")
    assert app["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert app["OTEL_TRACES_SAMPLER"] == "xray"
    assert app["OTEL_TRACES_SAMPLER_ARG"] == f"endpoint=http://{config['extensions']['awsproxy']['endpoint']}"
    assert config["service"]["pipelines"]["traces"]["exporters"] == ["awsxray"]
    assert config["exporters"]["awsxray"]["region"] == env.region
    rule = only(stack, "aws_xray_sampling_rule")
    assert app["OTEL_SERVICE_NAME"] == rule["service_name"] == f"{env.resource_name('api')}"


def test_the_sampling_rule_uses_the_configured_rate(env_stack):
    env, stack = env_stack
    rules = resources_of(stack, "aws_xray_sampling_rule")
    assert bool(rules) is env.features.tracing
    for rule in rules.values():
        assert rule["fixed_rate"] == env.tracing.sampling_rate
        assert rule["reservoir_size"] == 1 and len(rule["rule_name"]) <= 32
        assert all(rule[key] == "*" for key in ("host", "http_method", "url_path", "resource_arn", "service_type"))


def test_the_task_role_gets_x_ray_writes_and_no_wildcard_action(env_stack):
    env, stack = env_stack
    for suffix in ("-api-task", "-api-execution"):
        for statement in role_statements(stack, suffix):
            assert not any(action == "*" or action.endswith(":*") for action in statement["actions"]), statement
    xray = [s for s in role_statements(stack, "-api-task") if any(a.startswith("xray:") for a in s["actions"])]
    if not env.features.tracing:
        assert not xray
        return
    (statement,) = xray
    assert set(statement["actions"]) == XRAY_WRITE, "X-Ray writes and nothing more"
    assert statement["resources"] == ["*"], "X-Ray's actions have no resource types to scope to"


def test_the_api_dashboard_links_to_the_traces_when_tracing_is_on(env_stack):
    env, stack = env_stack
    (board,) = [d for d in resources_of(stack, "aws_cloudwatch_dashboard").values()
                if d["dashboard_name"] == env.resource_name("api")]
    texts = [w["properties"]["markdown"] for w in json.loads(board["dashboard_body"])["widgets"] if w["type"] == "text"]
    if not env.features.tracing:
        assert not texts
        return
    (text,) = texts
    assert f'service("{env.resource_name("api")}")' in text and "#xray:traces" in text


def test_traces_are_encrypted_with_a_customer_managed_key_in_the_baseline(project, stacks):
    (baseline,) = project.baselines
    stack = stacks[baseline.stack_name]
    assert baseline.xray_encryption
    setting = only(stack, "aws_xray_encryption_config")
    assert setting["type"] == "KMS"
    key = stack["resource"]["aws_kms_key"][network_checks.ref_name(setting["key_id"], "aws_kms_key")]
    assert key["enable_key_rotation"] is True
    for env in project.environments:
        assert not resources_of(stacks[env.name], "aws_xray_encryption_config"), "one setting per account"


@pytest.mark.parametrize("name", ["staging", "production"])
def test_tracing_off_leaves_nothing_behind(config_dir, stacks, name):
    path = config_dir / f"{name}.toml"
    document = tomllib.loads(path.read_text())
    document["features"]["tracing"] = False
    path.write_text(to_toml(document))
    project = load_project(config_dir)
    stack = json.loads(cdktf.Testing.synth(EnvironmentStack(cdktf.Testing.app(), project, project.environment(name))))
    assert not resources_of(stack, "aws_xray_sampling_rule") and collector(stack) is None
    assert not [n for n in variables(containers(stack)["api"]) if n.startswith("OTEL_")]
    assert len(resources_of(stack, "aws_cloudwatch_log_group")) == len(
        resources_of(stacks[name], "aws_cloudwatch_log_group")) - 1, "only the collector's log group goes"
