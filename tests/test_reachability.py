"""SPEC 4.1 by behaviour: every required flow gets through and every forbidden one is stopped, per pair of zones.

The flows come from `reachability.flows.spec_flows` (written from SPEC 4.1, not from the network
module) and are judged on the synthesized JSON of every shipped environment, of a variant with every
network toggle on (cache, interface endpoints, three zones), and, in tests/test_properties.py, of
every generated configuration. The defects this found are pinned by mutation: the fix removed from
the JSON, the flow it repaired fails again at the hop the fix is about.
"""

from __future__ import annotations

import copy
import dataclasses
import json

import cdktf
import pytest

from environments.model import NatMode
from reachability.flows import DENIED, evaluate_flows
from reachability.topology import read_topology
from stacks.environment import EnvironmentStack
from tests.conftest import ROOT, resources_of
from tools.reachability import render

DOCS = ROOT / "docs" / "reachability.md"
EPHEMERAL = (1024, 65535)


def problems_of(stack: dict, env) -> list[str]:
    return [problem for result in evaluate_flows(read_topology(stack), env) for problem in result.problems]


def test_every_spec_flow_holds_in_every_shipped_environment(env_stack):
    env, stack = env_stack
    assert not problems_of(stack, env), "\n".join(problems_of(stack, env))


@pytest.mark.parametrize("name", ["staging-dr", "production-dr"])
def test_every_spec_flow_holds_in_every_dr_region_stack(stacks, project, name):
    """The DR-region stacks are built from the same modules: their flows hold like the environment's."""
    env, stack = project.environment_of(name), stacks[name]
    results = evaluate_flows(read_topology(stack), env)
    assert {"database", "cache"} <= {r.flow.destination for r in results}
    assert not [p for r in results for p in r.problems]


@pytest.fixture(scope="module")
def everything_on(project):
    """dev with the cache, the interface endpoints and three zones: every conditional flow exists."""
    env = project.environment("dev")
    env = dataclasses.replace(
        env, features=dataclasses.replace(env.features, cache=True, vpc_interface_endpoints=True),
        network=dataclasses.replace(env.network, az_count=3, nat_gateways=NatMode.PER_AZ))
    return env, json.loads(cdktf.Testing.synth(EnvironmentStack(cdktf.Testing.app(), project, env)))


def test_every_spec_flow_holds_with_every_network_toggle_on(everything_on):
    env, stack = everything_on
    results = evaluate_flows(read_topology(stack), env)
    assert {"cache", "endpoint kms"} <= {r.flow.destination for r in results}
    assert all(len(r.verdicts) >= 3 for r in results), "every flow is judged in all three zones"
    assert not [p for r in results for p in r.problems]


def _acl_rules(stack: dict, *, egress: bool, ports: tuple[int, int], cidrs: set[str], tier: str) -> list[str]:
    acl = next(name for name in resources_of(stack, "aws_network_acl") if f"{tier}-acl" in name)
    return [name for name, rule in resources_of(stack, "aws_network_acl_rule").items()
            if acl in rule["network_acl_id"] and rule["egress"] is egress
            and (rule["from_port"], rule["to_port"]) == ports and rule["cidr_block"] in cidrs]


def _subnet_cidrs(stack: dict, tier: str) -> set[str]:
    subnets = resources_of(stack, "aws_subnet").values()
    return {subnet["cidr_block"] for subnet in subnets if subnet["tags"]["Tier"] == tier}


def test_endpoint_replies_to_tasks_in_another_zone_need_their_acl_rule(stacks, project):
    """The shipped production defect: without the rule, a task cannot hear an endpoint in the other zone."""
    env, stack = project.environment("production"), copy.deepcopy(stacks["production"])
    app = _subnet_cidrs(stack, "app")
    fix = _acl_rules(stack, egress=True, ports=EPHEMERAL, cidrs=app, tier="app")
    assert len(fix) == len(app), "one reply rule per application subnet"
    for name in fix:
        del stack["resource"]["aws_network_acl_rule"][name]
    problems = problems_of(stack, env)
    assert problems and all("endpoint" in p and "return: network ACL egress of app subnet" in p for p in problems)
    assert len(problems) == 2 * 5, "both cross-zone pairs of all five endpoints break"


def test_cache_replication_across_zones_needs_its_rules(everything_on):
    env, stack = everything_on
    data = _subnet_cidrs(stack, "data")
    for egress in (True, False):
        broken = copy.deepcopy(stack)
        for name in _acl_rules(broken, egress=egress, ports=EPHEMERAL, cidrs=data, tier="data"):
            del broken["resource"]["aws_network_acl_rule"][name]
        problems = problems_of(broken, env)
        assert problems and all(p.startswith("cache (zone") for p in problems), problems
    broken = copy.deepcopy(stack)
    rules = resources_of(broken, "aws_vpc_security_group_ingress_rule")
    (self_rule,) = [name for name, rule in rules.items() if "cache-from-cache" in name]
    del rules[self_rule]
    assert any("security group ingress of cache" in p for p in problems_of(broken, env))


def test_a_database_opened_to_a_wide_range_is_caught_by_the_forbidden_flows(stacks, project):
    """0.0.0.0/1 on the database's group and its subnets' ACL: not the literal 0.0.0.0/0, still the internet."""
    env, stack = project.environment("dev"), copy.deepcopy(stacks["dev"])
    for rule in resources_of(stack, "aws_network_acl_rule").values():
        if "data-acl" in rule["network_acl_id"]:
            rule["cidr_block"] = "0.0.0.0/1"
    for rule in resources_of(stack, "aws_vpc_security_group_ingress_rule").values():
        if rule["from_port"] == 5432:
            rule.pop("referenced_security_group_id")
            rule["cidr_ipv4"] = "0.0.0.0/1"
    results = {r.flow.title: r for r in evaluate_flows(read_topology(stack), env)}
    assert not results["host in a public subnet -> database (any port)"].holds
    assert results["tasks -> database (tcp/5432)"].holds


def test_forbidden_flows_are_stopped_by_more_than_one_layer(env_stack):
    """Defence in depth: each forbidden flow on its service port is denied by at least two hops."""
    env, stack = env_stack
    for result in evaluate_flows(read_topology(stack), env):
        if result.flow.expect == DENIED:
            for verdict in result.verdicts:
                assert sum(not hop.allowed for hop in verdict.hops) >= 2, verdict.explain()


def test_the_reachability_table_is_up_to_date(project, stacks):
    text = render(project, stacks)
    assert DOCS.is_file() and DOCS.read_text(encoding="utf-8") == text, \
        "docs/reachability.md is stale: run `python main.py && python tools/reachability.py`"
    for env in project.environments:
        assert f"## {env.name}" in text
    assert "does not hold" not in text


def test_a_load_balancer_opened_on_another_port_breaks_only_these_ports(stacks, project):
    """internet -> load balancer admits 443 and 80 and nothing else: port 22 from anywhere shows on both flows."""
    env, stack = project.environment("dev"), copy.deepcopy(stacks["dev"])
    rules = resources_of(stack, "aws_vpc_security_group_ingress_rule")
    (https,) = [rule for rule in rules.values() if rule.get("from_port") == 443 and rule.get("cidr_ipv4")]
    rules["ssh"] = {**https, "from_port": 22, "to_port": 22}
    acl_rules = resources_of(stack, "aws_network_acl_rule")
    (acl_https,) = [rule for rule in acl_rules.values() if "public-acl" in rule["network_acl_id"]
                    and not rule["egress"] and rule["from_port"] == 443]
    acl_rules["ssh"] = {**acl_https, "from_port": 22, "to_port": 22, "rule_number": acl_https["rule_number"] + 1}
    broken = {r.flow.title: r.problems for r in evaluate_flows(read_topology(stack), env) if not r.holds}
    assert set(broken) == {"internet -> alb (tcp/443)", "internet -> alb (tcp/80)"}, broken
    assert all("tcp/22 also gets through" in p for problems in broken.values() for p in problems)


def test_a_cache_opened_to_a_wide_range_is_caught_from_the_public_subnets(everything_on):
    """0.0.0.0/1 on the cache's group and the data subnets' ACL: a host in a public subnet reaches the cache."""
    env, stack = everything_on
    stack = copy.deepcopy(stack)
    for rule in resources_of(stack, "aws_network_acl_rule").values():
        if "data-acl" in rule["network_acl_id"]:
            rule["cidr_block"] = "0.0.0.0/1"
    for rule in resources_of(stack, "aws_vpc_security_group_ingress_rule").values():
        if rule["from_port"] == 6379:
            rule.pop("referenced_security_group_id")
            rule["cidr_ipv4"] = "0.0.0.0/1"
    results = {r.flow.title: r for r in evaluate_flows(read_topology(stack), env)}
    assert not results["host in a public subnet -> cache (any port)"].holds
    assert results["tasks -> database (tcp/5432)"].holds
