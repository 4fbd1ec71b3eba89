"""The reachability model on small hand-built stacks: each hop alone can stop a flow, and the model names it.

The stack below is the smallest one with every kind of hop: a public subnet (load balancer, NAT
gateway), two application subnets in two zones (tasks, an interface endpoint) and a data subnet
(database), each tier with its own network ACL. Every test breaks exactly one thing and asserts the
hop and rule the model blames, so a model that evaluated that hop wrongly (or not at all) fails.
"""

from __future__ import annotations

import copy
import re

import pytest

from reachability.evaluate import check, open_ports, places
from reachability.topology import TopologyError, read_topology

VPC = "10.0.0.0/16"
SUBNETS = {"pub0": ("10.0.0.0/24", 0, "public"), "app0": ("10.0.2.0/24", 0, "app"),
           "app1": ("10.0.3.0/24", 1, "app"), "data0": ("10.0.4.0/24", 0, "data")}
EPHEMERAL = (1024, 65535)


def ref(kind: str, name: str, attribute: str = "id") -> str:
    return f"${{{kind}.{name}.{attribute}}}"


def acl_rule(acl: str, number: int, egress: bool, cidr: str, ports: tuple[int, int], action: str = "allow") -> dict:
    return {"network_acl_id": ref("aws_network_acl", acl), "rule_number": number, "egress": egress,
            "protocol": "tcp", "rule_action": action, "cidr_block": cidr, "from_port": ports[0], "to_port": ports[1]}


def sg_rule(group: str, ports: tuple[int, int], *, cidr: str | None = None, peer: str | None = None) -> dict:
    body = {"security_group_id": ref("aws_security_group", group), "ip_protocol": "tcp",
            "from_port": ports[0], "to_port": ports[1]}
    if cidr:
        body["cidr_ipv4"] = cidr
    if peer:
        body["referenced_security_group_id"] = ref("aws_security_group", peer)
    return body


def small_stack() -> dict:
    """Every flow of this stack gets through: internet -> alb:443 -> tasks:8080 -> database:5432, tasks -> out."""
    zone = "${{element(sort(data.aws_availability_zones.zones.names), {})}}"
    subnets = {name: {"cidr_block": cidr, "availability_zone": zone.format(index), "tags": {"Tier": tier}}
               for name, (cidr, index, tier) in SUBNETS.items()}
    by_tier = {tier: [name for name, (_, _, t) in SUBNETS.items() if t == tier] for tier in ("public", "app", "data")}
    acls = {f"{tier}-acl": {"subnet_ids": [ref("aws_subnet", name) for name in names]}
            for tier, names in by_tier.items()}
    acl_rules = {
        "pub-in-443": acl_rule("public-acl", 100, False, "0.0.0.0/0", (443, 443)),
        "pub-in-eph": acl_rule("public-acl", 110, False, "0.0.0.0/0", EPHEMERAL),
        "pub-out-8080": acl_rule("public-acl", 100, True, "10.0.0.0/16", (8080, 8080)),
        "pub-out-443": acl_rule("public-acl", 110, True, "0.0.0.0/0", (443, 443)),
        "pub-out-eph": acl_rule("public-acl", 120, True, "0.0.0.0/0", EPHEMERAL),
        "app-in-8080": acl_rule("app-acl", 100, False, "10.0.0.0/24", (8080, 8080)),
        "app-in-eph": acl_rule("app-acl", 110, False, "0.0.0.0/0", EPHEMERAL),
        "app-out-5432": acl_rule("app-acl", 100, True, "10.0.4.0/24", (5432, 5432)),
        "app-out-443": acl_rule("app-acl", 110, True, "0.0.0.0/0", (443, 443)),
        "app-out-eph": acl_rule("app-acl", 120, True, "10.0.0.0/24", EPHEMERAL),
        "data-in-5432": acl_rule("data-acl", 100, False, "10.0.2.0/23", (5432, 5432)),
        "data-out-eph": acl_rule("data-acl", 100, True, "10.0.2.0/23", EPHEMERAL),
    }
    return {"resource": {
        "aws_vpc": {"vpc": {"cidr_block": VPC}},
        "aws_subnet": subnets,
        "aws_internet_gateway": {"igw": {}},
        "aws_nat_gateway": {"nat": {"subnet_id": ref("aws_subnet", "pub0")}},
        "aws_route_table": {"public-rt": {}, "app-rt": {}, "data-rt": {}},
        "aws_route_table_association": {
            f"{name}-assoc": {"subnet_id": ref("aws_subnet", name),
                              "route_table_id": ref("aws_route_table", f"{tier}-rt")}
            for name, (_, _, tier) in SUBNETS.items()},
        "aws_route": {
            "public-default": {"route_table_id": ref("aws_route_table", "public-rt"),
                               "destination_cidr_block": "0.0.0.0/0", "gateway_id": ref("aws_internet_gateway", "igw")},
            "app-default": {"route_table_id": ref("aws_route_table", "app-rt"),
                            "destination_cidr_block": "0.0.0.0/0", "nat_gateway_id": ref("aws_nat_gateway", "nat")},
        },
        "aws_network_acl": acls,
        "aws_network_acl_rule": acl_rules,
        "aws_security_group": {"alb": {"name": "alb"}, "api": {"name": "api"}, "db": {"name": "db"},
                               "endpoints": {"name": "endpoints"}},
        "aws_vpc_security_group_ingress_rule": {
            "alb-in": sg_rule("alb", (443, 443), cidr="0.0.0.0/0"),
            "api-in": sg_rule("api", (8080, 8080), peer="alb"),
            "db-in": sg_rule("db", (5432, 5432), peer="api"),
            "endpoints-in": sg_rule("endpoints", (443, 443), peer="api"),
        },
        "aws_vpc_security_group_egress_rule": {
            "alb-out": sg_rule("alb", (8080, 8080), peer="api"),
            "api-db": sg_rule("api", (5432, 5432), peer="db"),
            "api-out": sg_rule("api", (443, 443), cidr="0.0.0.0/0"),
        },
        "aws_lb": {"lb": {"internal": False, "subnets": [ref("aws_subnet", "pub0")],
                          "security_groups": [ref("aws_security_group", "alb")]}},
        "aws_ecs_service": {"svc": {"network_configuration": {
            "subnets": [ref("aws_subnet", "app0"), ref("aws_subnet", "app1")],
            "security_groups": [ref("aws_security_group", "api")], "assign_public_ip": False}}},
        "aws_db_subnet_group": {"dbsubnets": {"subnet_ids": [ref("aws_subnet", "data0")]}},
        "aws_rds_cluster": {"db": {"db_subnet_group_name": ref("aws_db_subnet_group", "dbsubnets", "name"),
                                   "vpc_security_group_ids": [ref("aws_security_group", "db")]}},
        "aws_vpc_endpoint": {"kms": {"service_name": "com.amazonaws.eu-west-1.kms", "vpc_endpoint_type": "Interface",
                                     "subnet_ids": [ref("aws_subnet", "app0")],
                                     "security_group_ids": [ref("aws_security_group", "endpoints")]}},
    }}


def verdict(stack: dict, source: str, destination: str, port: int, *, source_zone: int = 0, destination_zone: int = 0):
    topology = read_topology(stack)
    pick = {place.subnet.zone if place.subnet else None: place for place in places(topology, source)}
    target = {place.subnet.zone if place.subnet else None: place for place in places(topology, destination)}
    return check(topology, pick.get(f"zone {source_zone}", next(iter(pick.values()))),
                 target.get(f"zone {destination_zone}", next(iter(target.values()))), port)


def without(stack: dict, kind: str, name: str) -> dict:
    broken = copy.deepcopy(stack)
    del broken["resource"][kind][name]
    return broken


FLOWS = [("internet", "alb", 443), ("alb", "tasks", 8080), ("tasks", "database", 5432), ("tasks", "internet", 443)]


@pytest.mark.parametrize(("source", "destination", "port"), FLOWS)
def test_every_flow_of_the_intact_stack_gets_through(source, destination, port):
    result = verdict(small_stack(), source, destination, port)
    assert result.allowed, result.explain()


# (what is removed, the flow, the hop the model must blame, the rule text it must give)
SINGLE_BREAKS = [
    ("aws_route", "app-default", ("tasks", "internet", 443), "route from app subnet (zone 0)", "no route in app-rt"),
    ("aws_network_acl_rule", "app-out-5432", ("tasks", "database", 5432), "network ACL egress of app subnet",
     "implicit deny"),
    ("aws_network_acl_rule", "data-in-5432", ("tasks", "database", 5432), "network ACL ingress of data subnet",
     "implicit deny"),
    ("aws_vpc_security_group_egress_rule", "api-db", ("tasks", "database", 5432), "security group egress of tasks",
     "no rule allows tcp/5432"),
    ("aws_vpc_security_group_ingress_rule", "db-in", ("tasks", "database", 5432), "security group ingress of database",
     "no rule allows tcp/5432"),
    ("aws_network_acl_rule", "data-out-eph", ("tasks", "database", 5432), "return: network ACL egress of data subnet",
     "implicit deny: no rule of data-acl allows tcp/32768-60999"),
    ("aws_network_acl_rule", "app-in-eph", ("tasks", "database", 5432), "return: network ACL ingress of app subnet",
     "implicit deny"),
    ("aws_network_acl_rule", "app-out-eph", ("alb", "tasks", 8080), "return: network ACL egress of app subnet",
     "tcp/1024-65535"),
    ("aws_network_acl_rule", "pub-in-443", ("tasks", "internet", 443), "network ACL ingress of public subnet",
     "implicit deny"),
    ("aws_route", "public-default", ("tasks", "internet", 443), "route from public subnet (zone 0) to internet",
     "no route"),
    ("aws_route", "public-default", ("internet", "alb", 443), "return: route from public subnet",
     "no route"),
    ("aws_network_acl_rule", "pub-out-eph", ("internet", "alb", 443), "return: network ACL egress of public subnet",
     "implicit deny"),
]


@pytest.mark.parametrize(("kind", "name", "flow", "hop", "rule"), SINGLE_BREAKS,
                         ids=[f"{name}-{flow[0]}-{flow[1]}" for _, name, flow, _, _ in SINGLE_BREAKS])
def test_one_missing_piece_stops_the_flow_and_the_model_names_it(kind, name, flow, hop, rule):
    result = verdict(without(small_stack(), kind, name), *flow)
    blocked = result.blocked_by
    assert blocked is not None, f"{flow} still gets through without {name}"
    assert hop in blocked.step and rule in blocked.rule, result.explain()


def test_the_first_matching_rule_wins_even_when_a_later_one_allows():
    stack = small_stack()
    stack["resource"]["aws_network_acl_rule"]["data-deny"] = acl_rule("data-acl", 50, False, "10.0.2.0/24",
                                                                       (5000, 6000), "deny")
    blocked = verdict(stack, "tasks", "database", 5432).blocked_by
    assert blocked is not None and "rule 50 data-deny denies 5432" in blocked.rule
    # from the other application subnet, which the deny rule does not cover, it still gets through
    assert verdict(stack, "tasks", "database", 5432, source_zone=1).allowed


def test_a_deny_numbered_after_the_allow_changes_nothing():
    stack = small_stack()
    stack["resource"]["aws_network_acl_rule"]["data-deny"] = acl_rule("data-acl", 200, False, "0.0.0.0/0",
                                                                      (0, 65535), "deny")
    assert verdict(stack, "tasks", "database", 5432).allowed


def test_the_reply_needs_every_port_the_client_may_pick():
    stack = small_stack()
    stack["resource"]["aws_network_acl_rule"]["data-out-eph"]["to_port"] = 40000
    blocked = verdict(stack, "tasks", "database", 5432).blocked_by
    assert blocked is not None and blocked.step.startswith("return:") and "40001-60999" in blocked.rule


def test_traffic_inside_one_subnet_crosses_no_network_acl_but_across_zones_it_does():
    """Why the shipped endpoint bug hid: same zone works, the other zone's reply is stopped."""
    stack = small_stack()
    assert verdict(stack, "tasks", "endpoint kms", 443, source_zone=0).allowed
    across = verdict(stack, "tasks", "endpoint kms", 443, source_zone=1)
    assert not across.allowed and across.blocked_by.step == "network ACL ingress of app subnet (zone 0)"
    stack["resource"]["aws_network_acl_rule"]["app-in-443"] = acl_rule("app-acl", 130, False, "10.0.0.0/16", (443, 443))
    across = verdict(stack, "tasks", "endpoint kms", 443, source_zone=1)
    assert across.blocked_by.step == "return: network ACL egress of app subnet (zone 0)"
    stack["resource"]["aws_network_acl_rule"]["app-out-app"] = acl_rule("app-acl", 130, True, "10.0.3.0/24", EPHEMERAL)
    assert verdict(stack, "tasks", "endpoint kms", 443, source_zone=1).allowed


def test_nothing_from_the_internet_reaches_an_address_that_is_not_public():
    stack = small_stack()
    stack["resource"]["aws_vpc_security_group_ingress_rule"]["api-world"] = sg_rule("api", (0, 65535), cidr="0.0.0.0/0")
    blocked = verdict(stack, "internet", "tasks", 8080).blocked_by
    assert blocked.step.startswith("internet gateway") and "no public address" in blocked.rule


def test_a_wide_rule_short_of_everything_is_still_seen():
    """0.0.0.0/1 covers one internet probe: the model must not only recognise the literal 0.0.0.0/0."""
    stack = small_stack()
    stack["resource"]["aws_vpc_security_group_ingress_rule"]["alb-in"]["cidr_ipv4"] = "0.0.0.0/1"
    topology = read_topology(stack)
    results = {place.label: check(topology, place, places(topology, "alb")[0], 443).allowed
               for place in places(topology, "internet")}
    assert sorted(results.values()) == [False, True], results


def test_open_ports_lists_exactly_the_ports_every_hop_allows():
    stack = small_stack()
    stack["resource"]["aws_vpc_security_group_ingress_rule"]["db-in"]["to_port"] = 5440
    stack["resource"]["aws_vpc_security_group_egress_rule"]["api-db"]["from_port"] = 5000
    stack["resource"]["aws_vpc_security_group_egress_rule"]["api-db"]["to_port"] = 6000
    stack["resource"]["aws_network_acl_rule"]["app-out-5432"]["to_port"] = 5435
    stack["resource"]["aws_network_acl_rule"]["data-in-5432"]["to_port"] = 5438
    topology = read_topology(stack)
    assert open_ports(topology, places(topology, "tasks")[0], places(topology, "database")[0]) == [(5432, 5435)]


def test_a_rule_covering_part_of_a_subnet_is_refused_not_guessed():
    stack = small_stack()
    stack["resource"]["aws_network_acl_rule"]["data-in-5432"]["cidr_block"] = "10.0.2.0/25"
    with pytest.raises(TopologyError, match=re.escape("covers only part of 10.0.2.0/24")):
        verdict(stack, "tasks", "database", 5432)


@pytest.mark.parametrize("kind", ["aws_security_group_rule", "aws_network_interface"])
def test_network_resources_the_model_does_not_read_are_refused(kind):
    stack = small_stack()
    stack["resource"][kind] = {"extra": {}}
    with pytest.raises(TopologyError, match=kind):
        read_topology(stack)


def test_an_ipv6_rule_is_refused():
    stack = small_stack()
    stack["resource"]["aws_vpc_security_group_ingress_rule"]["alb-in6"] = {
        **sg_rule("alb", (443, 443)), "cidr_ipv6": "::/0"}
    with pytest.raises(TopologyError, match="IPv6"):
        read_topology(stack)
