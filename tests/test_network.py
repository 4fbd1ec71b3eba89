"""SPEC 4.1, the network tier, on the shipped environments (properties 2 and 8 included)."""

from __future__ import annotations

import ipaddress
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modules.network import subnet_cidrs
from tests import network_checks as checks
from tests.conftest import only, resources_of

ENVIRONMENTS = ("dev", "staging", "production")



def test_subnets_lie_in_the_vpc_without_overlap_across_the_configured_zones(env_stack):
    env, stack = env_stack
    checks.check_subnet_layout(stack, env.network.cidr, env.network.az_count)


def test_data_subnets_have_no_route_to_the_internet(env_stack):
    checks.check_data_tier_is_isolated(env_stack[1])


def test_application_subnets_leave_through_a_nat_gateway(env_stack):
    checks.check_app_tier_leaves_through_nat(env_stack[1])


def test_public_subnets_route_to_the_internet_gateway(env_stack):
    (route,) = checks.routes_of_tier(env_stack[1], "public")
    checks.ref_name(route["gateway_id"], "aws_internet_gateway")


def test_security_groups_are_least_privilege(env_stack):
    env, stack = env_stack
    checks.check_security_groups(stack, env.api.container_port)
    checks.check_default_security_group_is_empty(stack)


def test_network_acls_are_explicit(env_stack):
    checks.check_network_acls(env_stack[1])


def test_data_acl_admits_only_postgres_and_the_cache_from_the_application_subnets(env_stack):
    """5432 from the application subnets; with the cache also 6379 from them, and the cache nodes' replication
    (ephemeral ports) between the data subnets. Nothing from the public subnets or the internet."""
    env, stack = env_stack
    cidrs = subnet_cidrs(env.network.cidr, env.network.az_count)
    app, data = set(cidrs["app"]), set(cidrs["data"])
    rules = [rule for name, rule in resources_of(stack, "aws_network_acl_rule").items() if "data-acl" in name]
    inbound = {(rule["cidr_block"], (rule["from_port"], rule["to_port"])) for rule in rules if not rule["egress"]}
    expected = {(cidr, (5432, 5432)) for cidr in app}
    if env.features.cache:
        expected |= {(cidr, (6379, 6379)) for cidr in app} | {(cidr, (1024, 65535)) for cidr in data}
    assert inbound == expected
    assert {rule["cidr_block"] for rule in rules} == (app | data if env.features.cache else app)


@pytest.mark.parametrize(("name", "expected"), [("dev", 1), ("staging", 1), ("production", 2)])
def test_nat_gateways_follow_configuration(stacks, name, expected):
    """SPEC 2: one shared NAT in dev and staging, one per AZ (2 AZs) in production."""
    assert checks.nat_gateway_count(stacks[name]) == expected
    assert len(resources_of(stacks[name], "aws_eip")) == expected


def test_flow_logs_capture_all_traffic_into_an_encrypted_group_with_env_retention(env_stack):
    env, stack = env_stack
    flow_log = only(stack, "aws_flow_log")
    assert flow_log["traffic_type"] == "ALL"
    group_name = checks.ref_name(flow_log["log_destination"], "aws_cloudwatch_log_group")
    group = resources_of(stack, "aws_cloudwatch_log_group")[group_name]
    assert group["name"] == f"/aws/vpc/flowlogs-{env.name}"
    assert group["retention_in_days"] == env.log_retention_days
    checks.ref_name(group["kms_key_id"], "aws_kms_key")


def test_flow_log_role_can_only_write_to_its_group(env_stack):
    _, stack = env_stack
    flow_log = only(stack, "aws_flow_log")
    role_name = checks.ref_name(flow_log["iam_role_arn"], "aws_iam_role")
    trust = checks.policy_document(stack, resources_of(stack, "aws_iam_role")[role_name]["assume_role_policy"])
    assert trust["statement"][0]["principals"][0]["identifiers"] == ["vpc-flow-logs.amazonaws.com"]
    (policy,) = [p for p in resources_of(stack, "aws_iam_role_policy").values()
                 if checks.ref_name(p["role"], "aws_iam_role") == role_name]
    (statement,) = checks.policy_document(stack, policy["policy"])["statement"]
    assert "*" not in statement["resources"] and all("log_group" in r for r in statement["resources"])
    assert not any(action.endswith("*") for action in statement["actions"])


def test_logs_key_lets_cloudwatch_logs_use_it_only_for_this_accounts_groups(stacks):
    keys = [key for key in resources_of(stacks["dev"], "aws_kms_key").values()
            if "log group" in key["description"] and "provider" not in key]
    (key,) = keys
    assert key["enable_key_rotation"] is True
    statements = {s["Sid"]: s for s in json.loads(key["policy"])["Statement"]}
    logs = [s for s in statements.values() if s["Principal"].get("Service", "").startswith("logs.")]
    (grant,) = logs
    assert "kms:EncryptionContext:aws:logs:arn" in grant["Condition"]["ArnLike"]


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_vpc_endpoints_follow_the_feature_toggle(stacks, project, name):
    env = project.environment(name)
    endpoints = resources_of(stacks[name], "aws_vpc_endpoint").values()
    gateways = [e for e in endpoints if e["vpc_endpoint_type"] == "Gateway"]
    assert [e["service_name"] for e in gateways] == [f"com.amazonaws.{env.region}.s3"]
    prefix = f"com.amazonaws.{env.region}."
    interfaces = sorted(e["service_name"].removeprefix(prefix)
                        for e in endpoints if e["vpc_endpoint_type"] == "Interface")
    if env.features.vpc_interface_endpoints:
        assert interfaces == sorted(["ecr.api", "ecr.dkr", "logs", "secretsmanager", "kms"])
        for endpoint in (e for e in endpoints if e["vpc_endpoint_type"] == "Interface"):
            assert endpoint["private_dns_enabled"] is True
    else:
        assert interfaces == []


def test_every_endpoint_admits_only_this_accounts_principals_and_resources(env_stack):
    env, stack = env_stack
    checks.check_endpoint_policies(stack, env.region)


def test_the_vpc_id_is_an_output(env_stack):
    _, stack = env_stack
    assert checks.ref_name(stack["output"]["VpcId"]["value"], "aws_vpc")


@settings(max_examples=200, deadline=None)
@given(
    base=st.integers(min_value=0, max_value=255),
    prefix=st.integers(min_value=16, max_value=20),
    az_count=st.integers(min_value=2, max_value=3),
)
def test_subnet_plan_is_inside_disjoint_and_spans_the_zones(base, prefix, az_count):
    vpc = ipaddress.IPv4Network((f"10.{base}.0.0", prefix), strict=False)
    plan = subnet_cidrs(str(vpc), az_count)
    all_subnets = [ipaddress.IPv4Network(c) for tier in plan.values() for c in tier]
    assert all(len(tier) == az_count for tier in plan.values())
    assert all(subnet.subnet_of(vpc) for subnet in all_subnets)
    for index, subnet in enumerate(all_subnets):
        assert not any(subnet.overlaps(other) for other in all_subnets[:index])
    assert subnet_cidrs(str(vpc), az_count) == plan, "the plan must be deterministic"
