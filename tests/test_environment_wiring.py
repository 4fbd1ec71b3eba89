"""SPEC sections 1 and 3: every environment stack's provider and locked S3 backend."""

from __future__ import annotations

import dataclasses
import json

import cdktf
import pytest

from core.provider import EMULATED_SERVICES
from environments.model import EmulatorConfig
from stacks.environment import EnvironmentStack


def environment_stacks(stacks: dict, project) -> dict[str, dict]:
    return {env.name: stacks[env.name] for env in project.environments}


def test_one_stack_per_environment_plus_bootstrap_and_account_baselines(stacks, project):
    assert set(stacks) == ({"bootstrap"} | {env.name for env in project.environments}
                           | {baseline.stack_name for baseline in project.baselines}
                           | {env.dr_stack_name for env in project.environments if env.dr})
    assert {"dev", "staging", "production", "staging-dr", "production-dr"} <= set(stacks)


def test_each_environment_keeps_locked_encrypted_state_under_its_own_key(stacks, project):
    keys = set()
    for name, stack in environment_stacks(stacks, project).items():
        backend = stack["terraform"]["backend"]["s3"]
        assert backend["bucket"] == project.state.bucket
        assert backend["region"] == project.state.region
        assert backend["key"] == f"{name}/terraform.tfstate"
        assert backend["encrypt"] is True
        assert backend["kms_key_id"] == project.state.kms_alias
        assert backend["dynamodb_table"] == project.state.lock_table
        assert backend["use_lockfile"] is True
        keys.add(backend["key"])
    assert len(keys) == len(project.environments), "two environments would share one state file"


def test_provider_uses_the_environment_region_and_required_default_tags(stacks, project):
    for env in project.environments:
        providers = {p.get("alias"): p for p in stacks[env.name]["provider"]["aws"]}
        expected = {None, "us_east_1"} | ({"dr"} if env.dr else set())
        assert set(providers) == expected, "the default provider, CloudFront's us-east-1 alias and, with [dr], dr"
        assert providers["us_east_1"]["region"] == "us-east-1"
        assert providers["us_east_1"]["default_tags"] == providers[None]["default_tags"]
        provider = providers[None]
        assert provider["region"] == env.region
        assert provider["default_tags"][0]["tags"] == {
            "Environment": env.name,
            "Application": env.application,
            "Project": env.application,
            "Owner": env.owner,
            "CostCenter": env.cost_center,
            "ManagedBy": "cdktf",
        }
        assert "allowed_account_ids" not in provider, "the shipped files name no account"


def synth_single(project, env) -> dict:
    """Synthesize one environment stack in memory (no files) for variations of the config."""
    stack = EnvironmentStack(cdktf.Testing.app(), project, env)
    return json.loads(cdktf.Testing.synth(stack))


def test_an_account_id_makes_the_provider_refuse_other_accounts(project):
    env = dataclasses.replace(project.environment("dev"), account_id="111122223333")
    for provider in synth_single(project, env)["provider"]["aws"]:
        assert provider["allowed_account_ids"] == ["111122223333"]


@pytest.fixture(scope="module")
def emulated(project) -> dict:
    emulated_project = dataclasses.replace(project, emulator=EmulatorConfig(endpoint="http://127.0.0.1:4999"))
    return synth_single(emulated_project, project.environment("dev"))


def test_emulator_mode_sends_every_service_and_the_backend_to_the_local_endpoint(emulated):
    for provider in emulated["provider"]["aws"]:
        endpoints = provider["endpoints"][0]
        assert set(endpoints) == set(EMULATED_SERVICES)
        assert set(endpoints.values()) == {"http://127.0.0.1:4999"}
        assert provider["s3_use_path_style"] is True
        assert provider["skip_credentials_validation"] is True

    backend = emulated["terraform"]["backend"]["s3"]
    assert set(backend["endpoints"].values()) == {"http://127.0.0.1:4999"}
    assert backend["use_path_style"] is True


def test_emulated_services_cover_every_resource_type_in_every_stack(stacks):
    """A service missing from the endpoint list would silently be called on real AWS."""
    prefixes = {
        "dynamodb": "dynamodb", "kms": "kms", "s3": "s3", "resourcegroups": "resourcegroups", "iam": "iam",
        "vpc": "ec2", "subnet": "ec2", "route": "ec2", "internet": "ec2", "nat": "ec2", "eip": "ec2",
        "security": "ec2", "network": "ec2", "default": "ec2", "flow": "ec2", "ec2": "ec2",
        "cloudwatch": "cloudwatch", "db": "rds", "rds": "rds", "secretsmanager": "secretsmanager",
        "ecr": "ecr", "ecs": "ecs", "lb": "elbv2", "alb": "elbv2", "appautoscaling": "appautoscaling",
        "acm": "acm", "cloudfront": "cloudfront", "route53": "route53", "sns": "sns", "wafv2": "wafv2",
        "cloudtrail": "cloudtrail", "elasticache": "elasticache", "ssm": "ssm", "lambda": "lambda",
        "config": "configservice", "budgets": "budgets", "ce": "ce", "xray": "xray", "backup": "backup",
    }
    for name, stack in stacks.items():
        for resource_type in stack.get("resource", {}):
            word = resource_type.removeprefix("aws_").split("_")[0]
            assert word in prefixes, f"{name}: no service mapping for {resource_type}; extend this test"
            service = prefixes[word]
            if service == "cloudwatch" and "log" in resource_type:
                service = "logs"
            if resource_type.startswith("aws_cloudwatch_event_"):
                service = "events"
            assert service in EMULATED_SERVICES, f"{name}: {resource_type} would bypass the emulator"


def test_real_aws_output_has_no_emulator_settings(stacks):
    emulator_keys = {"endpoints", "skip_credentials_validation", "skip_metadata_api_check", "skip_region_validation",
                     "skip_requesting_account_id", "use_path_style", "s3_use_path_style"}
    for name, stack in stacks.items():
        blocks = [*stack["provider"]["aws"], *stack["terraform"]["backend"].values()]
        for block in blocks:
            assert not emulator_keys & set(block), f"{name}: {sorted(emulator_keys & set(block))}"
        # Loopback inside an ECS task is the task's own network (the tracing sidecar), not an emulator.
        tasks = {name: {**task, "container_definitions": ""}
                 for name, task in stack.get("resource", {}).get("aws_ecs_task_definition", {}).items()}
        text = json.dumps({**stack, "resource": {**stack.get("resource", {}), "aws_ecs_task_definition": tasks}})
        assert "127.0.0.1" not in text and "localhost" not in text, name


def without_metadata(value):
    """Drop cdktf's "//" metadata blocks, which in-memory synthesis leaves out."""
    if isinstance(value, dict):
        return {k: without_metadata(v) for k, v in value.items() if k != "//"}
    return value


def test_emulator_mode_changes_only_provider_and_backend(emulated, stacks):
    real = without_metadata(stacks["dev"])
    assert emulated["resource"] == real["resource"]
    assert emulated.get("output") == real.get("output")
    real_backend, emulated_backend = real["terraform"]["backend"]["s3"], emulated["terraform"]["backend"]["s3"]
    assert {k: v for k, v in emulated_backend.items() if k in real_backend} == real_backend

