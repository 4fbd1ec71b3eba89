"""SPEC section 5: the ten correctness properties, over generated valid configurations.

One synthesis per generated configuration is shared by all the checks (synthesis is the
expensive part), so every property is checked on every example: 2 shards x 50 examples = 100,
in two test cases so pytest-xdist can run them on both cores at once.
Property 10's Terraform half (`terraform validate`) runs on fewer examples in its own test,
because each validation costs seconds; its synthesis half is every example here.
"""

from __future__ import annotations

import ipaddress
import json

import cdktf
import pytest
from hypothesis import HealthCheck, given, note, settings

from core.provider import required_tags
from environments.loader import load_project
from environments.model import EnvironmentConfig, ProjectConfig
from stacks.environment import EnvironmentStack
from tests import api_checks, database_checks, network_checks, observability_checks, tag_checks
from tests.conftest import resources_of
from tests.strategies import config_directory, configurations
from tests.terraform_tools import run_terraform

NAMED_ATTRIBUTES = ("name", "bucket", "identifier", "cluster_identifier", "replication_group_id", "alarm_name",
                    "dashboard_name")
SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large]


def synthesize_environment(project: ProjectConfig, env: EnvironmentConfig) -> dict:
    return json.loads(cdktf.Testing.synth(EnvironmentStack(cdktf.Testing.app(), project, env)))


def generated(config) -> tuple[ProjectConfig, dict[str, dict]]:
    with config_directory(config) as directory:
        project = load_project(directory)
    return project, {env.name: synthesize_environment(project, env) for env in project.environments}


def resource_names(stack: dict) -> set[str]:
    """Every literal name a resource gives itself in AWS (those must never collide)."""
    names = set()
    for resources in stack.get("resource", {}).values():
        for resource in resources.values():
            for key in NAMED_ATTRIBUTES:
                value = str(resource.get(key, ""))
                # A bare reference (`${aws_s3_bucket.x.id}`) repeats another resource's name.
                if value and not (value.startswith("${") and value.endswith("}") and value.count("${") == 1):
                    names.add(value)
    return names


def check_isolation(project: ProjectConfig, stacks: dict[str, dict]) -> None:
    """Property 1: no two environments share a name, CIDR, state key or resource name."""
    envs = project.environments
    assert len({env.name for env in envs}) == len(envs)
    keys = [stacks[env.name]["terraform"]["backend"]["s3"]["key"] for env in envs]
    assert len(set(keys)) == len(keys)
    networks = [ipaddress.IPv4Network(env.network.cidr) for env in envs]
    for index, network in enumerate(networks):
        assert not any(network.overlaps(other) for other in networks[:index])
    seen: dict[str, str] = {}
    for env in envs:
        for name in resource_names(stacks[env.name]):
            assert name not in seen, f"{name!r} is used by {seen[name]} and {env.name}"
            seen[name] = env.name


def check_secret_access(stack: dict) -> None:
    """Property 3, second half: only named roles may read a secret, and only that secret."""
    for policy in resources_of(stack, "aws_iam_role_policy").values():
        for statement in network_checks.policy_document(stack, policy["policy"])["statement"]:
            if any(action.startswith("secretsmanager:") for action in statement["actions"]):
                assert "*" not in statement["resources"], statement
                assert all(r.startswith(("${aws_rds_cluster.", "${aws_secretsmanager_secret."))
                           for r in statement["resources"]), statement


def check_environment(env: EnvironmentConfig, stack: dict) -> None:
    """Properties 2-9 and the configuration-following checks of every tier, on one stack."""
    network_checks.check_subnet_layout(stack, env.network.cidr, env.network.az_count)
    network_checks.check_data_tier_is_isolated(stack)  # 2
    database_checks.check_secrets_use_customer_managed_keys(stack)  # 3
    check_secret_access(stack)  # 3
    tags = required_tags(environment=env.name, application=env.application, owner=env.owner,
                         cost_center=env.cost_center)
    tag_checks.check_required_tags(stack, tags)  # 4
    api_checks.check_multi_az(stack)  # 5
    api_checks.check_https_only(stack)  # 6
    api_checks.check_https_only_cloudfront(stack)  # 6
    database_checks.check_backups(stack)  # 7
    network_checks.check_security_groups(stack, env.api.container_port)  # 8
    observability_checks.check_alarm_coverage(stack)  # 9
    database_checks.check_cluster_follows_configuration(stack, env)
    api_checks.check_service_follows_configuration(stack, env)
    expected_nats = env.network.az_count if env.network.nat_gateways == "per_az" else 1
    assert network_checks.nat_gateway_count(stack) == expected_nats
    observability_checks.check_log_groups(stack, env)
    observability_checks.check_outputs(stack)


EXAMPLES_PER_SHARD = 50


@pytest.mark.parametrize("shard", [1, 2])
@settings(max_examples=EXAMPLES_PER_SHARD, deadline=None, suppress_health_check=SLOW)
@given(config=configurations(min_environments=2, max_environments=2))
def test_the_spec_properties_hold_for_every_generated_configuration(shard, config):
    project, stacks = generated(config)  # property 10 (synthesis): every configuration synthesizes
    note(f"environments: {[env.source for env in project.environments]}")
    check_isolation(project, stacks)  # 1
    for env in project.environments:
        check_environment(env, stacks[env.name])


@pytest.fixture(scope="module")
def validation_dir(terraform_env, tmp_path_factory, stacks):
    """One initialized working directory; each example only swaps the configuration in it."""
    folder = tmp_path_factory.mktemp("validate-generated")
    (folder / "cdk.tf.json").write_text(json.dumps(stacks["dev"]))
    run_terraform(["init", "-backend=false", "-input=false", "-no-color"], folder, terraform_env)
    return folder


@pytest.mark.terraform
@settings(max_examples=10, deadline=None, suppress_health_check=[*SLOW, HealthCheck.function_scoped_fixture])
@given(config=configurations(min_environments=1, max_environments=1))
def test_generated_configurations_pass_terraform_validate(config, validation_dir, terraform_env):
    """Property 10, Terraform half: what we synthesize is valid against the real provider schema."""
    _, stacks = generated(config)
    for stack in stacks.values():
        (validation_dir / "cdk.tf.json").write_text(json.dumps(stack))
        result = run_terraform(["validate", "-json", "-no-color"], validation_dir, terraform_env, check=False)
        report = json.loads(result.stdout)
        assert report["valid"], json.dumps(report["diagnostics"], indent=1)[:4000]
