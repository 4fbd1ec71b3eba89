"""The network of one synthesized environment stack, read from its Terraform JSON.

What is read, and nothing else: subnets (CIDR, zone, tier), route tables with their routes and
associations, network ACLs with their numbered rules, security groups with their rules, and where
each component sits (load balancer, API tasks, database, cache, interface endpoints, the S3 gateway
endpoint, NAT gateways, the internet gateway). Anything network-shaped the reader does not
understand (an IPv6 rule, a separate `aws_security_group_rule`, a main route table association)
raises `TopologyError` instead of being ignored, so the model never judges a network it cannot see.

Addresses: a component inside the VPC is represented by the whole CIDR of the subnet it sits in, and
a rule matches it only when the rule's CIDR covers that whole subnet (a rule covering part of a
subnet raises `TopologyError`: the model judges subnets, not hosts). Outside the VPC, fixed probe
addresses stand for the internet (one in each half of the IPv4 space, so a rule for 0.0.0.0/1 is
noticed) and for S3 (an address inside the S3 prefix list the gateway endpoint routes).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

Network = ipaddress.IPv4Network

# Probe addresses standing for "the internet": documentation ranges in both halves of IPv4.
INTERNET_PROBES = (Network("192.0.2.10/32"), Network("100.0.0.10/32"))
# Stands for S3 (inside the prefix list `com.amazonaws.<region>.s3` of a gateway endpoint).
S3_PROBE = Network("52.218.0.10/32")
ALL_PORTS = (0, 65535)
# Client port ranges (the reply's destination ports): Linux tasks and data services use the kernel's
# default range; load balancers, NAT gateways and arbitrary internet clients use anything above 1023.
LINUX_EPHEMERAL = (32768, 60999)
WIDE_EPHEMERAL = (1024, 65535)

REFERENCE = re.compile(r"^\$\{(aws_[a-z0-9_]+)\.([A-Za-z0-9_-]+)\.([a-z_]+)\}$")
ZONE_PICK = re.compile(r"^\$\{element\(sort\(data\.aws_availability_zones\.[A-Za-z0-9_-]+\.names\), (\d+)\)\}$")
UNSUPPORTED_TYPES = ("aws_security_group_rule", "aws_main_route_table_association", "aws_network_acl_association",
                     "aws_egress_only_internet_gateway", "aws_vpc_peering_connection", "aws_ec2_transit_gateway",
                     "aws_network_interface")


class TopologyError(Exception):
    """The stack holds network configuration the model cannot judge faithfully."""


@dataclass(frozen=True)
class Subnet:
    id: str  # logical id in the stack
    cidr: Network
    zone: str  # "zone 0", "zone 1", ... (the n-th configured zone)
    tier: str
    route_table: str | None  # None: the VPC's main route table (local routes only)
    acl: str | None  # None: the VPC's default network ACL


@dataclass(frozen=True)
class Route:
    """One route: to `destination` (a CIDR) or to a prefix list (the S3 gateway endpoint's)."""

    name: str
    destination: Network | None
    prefix_list: str | None
    target: str  # "local", "internet-gateway", "nat-gateway", "gateway-endpoint"
    target_id: str

    def length(self) -> int:
        """Longest prefix wins; a prefix-list route beats the default route (AWS picks it for its CIDRs)."""
        return self.destination.prefixlen if self.destination is not None else 32


@dataclass(frozen=True)
class AclRule:
    name: str
    number: int
    egress: bool
    allow: bool
    cidr: Network
    ports: tuple[int, int]
    all_protocols: bool


@dataclass(frozen=True)
class SgRule:
    name: str
    group: str
    egress: bool
    ports: tuple[int, int]
    cidr: Network | None = None
    peer_group: str | None = None
    prefix_list: str | None = None


@dataclass(frozen=True)
class Component:
    """Something that sends or receives traffic, present in one or more subnets (or outside the VPC)."""

    name: str
    subnets: tuple[str, ...]  # logical ids; empty for something outside the VPC
    security_groups: frozenset[str] = frozenset()
    public_address: bool = False
    ephemeral: tuple[int, int] = LINUX_EPHEMERAL
    external_addresses: tuple[Network, ...] = ()  # outside the VPC only
    prefix_lists: frozenset[str] = frozenset()  # prefix lists its external addresses belong to
    has_security_groups: bool = True  # NAT gateways and outside parties have none


@dataclass
class Topology:
    vpc_cidr: Network
    subnets: dict[str, Subnet]
    routes: dict[str, tuple[Route, ...]]  # by route table
    acl_rules: dict[str, tuple[AclRule, ...]]  # by network ACL, sorted by number
    sg_rules: tuple[SgRule, ...]
    nat_subnets: dict[str, str] = field(default_factory=dict)  # NAT gateway -> the subnet it sits in
    components: dict[str, Component] = field(default_factory=dict)
    group_names: dict[str, str] = field(default_factory=dict)  # security group logical id -> name

    def component(self, name: str) -> Component:
        if name not in self.components:
            raise TopologyError(f"the stack has no {name!r} (components: {', '.join(sorted(self.components))})")
        return self.components[name]

    def with_component(self, component: Component, rules: Iterable[SgRule] = ()) -> Topology:
        """A copy with one more component (a probe, for example) and its security-group rules."""
        return Topology(self.vpc_cidr, self.subnets, self.routes, self.acl_rules, (*self.sg_rules, *rules),
                        self.nat_subnets, {**self.components, component.name: component}, self.group_names)

    def subnets_of_tier(self, tier: str) -> tuple[str, ...]:
        return tuple(sorted(name for name, subnet in self.subnets.items() if subnet.tier == tier))


# -- reading the synthesized JSON -----------------------------------------------------------------


def _ref(expression: str, kind: str) -> str:
    match = REFERENCE.match(expression) if isinstance(expression, str) else None
    if not match or match.group(1) != kind:
        raise TopologyError(f"{expression!r} is not a reference to a {kind}")
    return match.group(2)


def _refs(expressions: Iterable[str], kind: str) -> tuple[str, ...]:
    return tuple(_ref(expression, kind) for expression in expressions)


def _resources(stack: dict, kind: str) -> dict[str, dict]:
    return stack.get("resource", {}).get(kind, {})


def _ports(body: dict) -> tuple[int, int]:
    """(from, to) of a rule; protocol -1 (all) means every port."""
    protocol = str(body.get("protocol", body.get("ip_protocol", "-1"))).lower()
    if protocol in ("-1", "all"):
        return ALL_PORTS
    if protocol not in ("tcp", "6"):
        return (1, 0)  # not TCP: matches no TCP flow (an empty range)
    return int(body["from_port"]), int(body["to_port"])


def _zone(expression: str) -> str:
    match = ZONE_PICK.match(expression)
    return f"zone {match.group(1)}" if match else expression


def _one_vpc(stack: dict) -> Network:
    vpcs = _resources(stack, "aws_vpc")
    if len(vpcs) != 1:
        raise TopologyError(f"expected one aws_vpc, found {len(vpcs)}")
    return Network(next(iter(vpcs.values()))["cidr_block"])


def _reject_unsupported(stack: dict) -> None:
    for kind in UNSUPPORTED_TYPES:
        if _resources(stack, kind):
            raise TopologyError(f"{kind} is not modelled; extend reachability/topology.py before using it")


def _associations(stack: dict) -> tuple[dict[str, str], dict[str, str]]:
    """(subnet -> route table, subnet -> network ACL)."""
    tables = {}
    for association in _resources(stack, "aws_route_table_association").values():
        tables[_ref(association["subnet_id"], "aws_subnet")] = _ref(association["route_table_id"], "aws_route_table")
    acls = {}
    for name, acl in _resources(stack, "aws_network_acl").items():
        for subnet in _refs(acl.get("subnet_ids", []), "aws_subnet"):
            if subnet in acls:
                raise TopologyError(f"subnet {subnet} is associated with two network ACLs")
            acls[subnet] = name
    return tables, acls


def _subnets(stack: dict) -> dict[str, Subnet]:
    tables, acls = _associations(stack)
    return {
        name: Subnet(id=name, cidr=Network(body["cidr_block"]), zone=_zone(body["availability_zone"]),
                     tier=body.get("tags", {}).get("Tier", "untiered"), route_table=tables.get(name),
                     acl=acls.get(name))
        for name, body in _resources(stack, "aws_subnet").items()
    }


def _route_target(name: str, body: dict) -> tuple[str, str]:
    if body.get("gateway_id"):
        return "internet-gateway", _ref(body["gateway_id"], "aws_internet_gateway")
    if body.get("nat_gateway_id"):
        return "nat-gateway", _ref(body["nat_gateway_id"], "aws_nat_gateway")
    raise TopologyError(f"route {name} has a target the model does not know: {sorted(body)}")


def _routes(stack: dict, vpc: Network) -> dict[str, tuple[Route, ...]]:
    routes: dict[str, list[Route]] = {name: [Route(f"{name} local", vpc, None, "local", "local")]
                                      for name in _resources(stack, "aws_route_table")}
    for name, table in _resources(stack, "aws_route_table").items():
        if table.get("route"):
            raise TopologyError(f"route table {name} has inline routes; the model reads aws_route resources")
    for name, body in _resources(stack, "aws_route").items():
        if body.get("destination_ipv6_cidr_block") or body.get("destination_prefix_list_id"):
            raise TopologyError(f"route {name}: IPv6 and prefix-list routes are not modelled")
        target, target_id = _route_target(name, body)
        table = _ref(body["route_table_id"], "aws_route_table")
        routes[table].append(Route(name, Network(body["destination_cidr_block"]), None, target, target_id))
    for name, endpoint in _resources(stack, "aws_vpc_endpoint").items():
        if endpoint.get("vpc_endpoint_type") == "Gateway":
            for table in _refs(endpoint.get("route_table_ids", []), "aws_route_table"):
                routes[table].append(Route(f"{name} (prefix list)", None, name, "gateway-endpoint", name))
    return {table: tuple(entries) for table, entries in routes.items()}


def _acl_rules(stack: dict) -> dict[str, tuple[AclRule, ...]]:
    rules: dict[str, list[AclRule]] = {name: [] for name in _resources(stack, "aws_network_acl")}
    for name, acl in _resources(stack, "aws_network_acl").items():
        if acl.get("ingress") or acl.get("egress"):
            raise TopologyError(f"network ACL {name} has inline rules; the model reads aws_network_acl_rule")
    for name, body in _resources(stack, "aws_network_acl_rule").items():
        if body.get("ipv6_cidr_block"):
            raise TopologyError(f"network ACL rule {name}: IPv6 rules are not modelled")
        acl = _ref(body["network_acl_id"], "aws_network_acl")
        protocol = str(body["protocol"]).lower()
        rules[acl].append(AclRule(
            name=name, number=int(body["rule_number"]), egress=bool(body.get("egress", False)),
            allow=body["rule_action"] == "allow", cidr=Network(body["cidr_block"]), ports=_ports(body),
            all_protocols=protocol in ("-1", "all")))
    return {acl: tuple(sorted(entries, key=lambda rule: (rule.egress, rule.number))) for acl, entries in rules.items()}


def _prefix_list(expression: str) -> str:
    """The gateway endpoint whose prefix list a rule names (`${aws_vpc_endpoint.x.prefix_list_id}`)."""
    return _ref(expression, "aws_vpc_endpoint")


def _sg_rules(stack: dict) -> tuple[SgRule, ...]:
    rules = []
    for name, group in _resources(stack, "aws_security_group").items():
        if group.get("ingress") or group.get("egress"):
            raise TopologyError(f"security group {name} has inline rules; the model reads the rule resources")
    for kind, egress in (("aws_vpc_security_group_ingress_rule", False), ("aws_vpc_security_group_egress_rule", True)):
        for name, body in _resources(stack, kind).items():
            if body.get("cidr_ipv6"):
                raise TopologyError(f"{kind} {name}: IPv6 rules are not modelled")
            rules.append(SgRule(
                name=name, group=_ref(body["security_group_id"], "aws_security_group"), egress=egress,
                ports=_ports(body), cidr=Network(body["cidr_ipv4"]) if body.get("cidr_ipv4") else None,
                peer_group=(_ref(body["referenced_security_group_id"], "aws_security_group")
                            if body.get("referenced_security_group_id") else None),
                prefix_list=_prefix_list(body["prefix_list_id"]) if body.get("prefix_list_id") else None))
    return tuple(rules)


def _subnet_group(stack: dict, kind: str, expression: str) -> tuple[str, ...]:
    """Subnets of a DB / cache subnet group referenced by name."""
    group = _resources(stack, kind)[_ref(expression, kind)]
    return _refs(group["subnet_ids"], "aws_subnet")


def _components(stack: dict) -> dict[str, Component]:
    found: dict[str, Component] = {}
    for body in _resources(stack, "aws_lb").values():
        found["alb"] = Component("alb", _refs(body["subnets"], "aws_subnet"),
                                 frozenset(_refs(body.get("security_groups", []), "aws_security_group")),
                                 public_address=not body.get("internal", False), ephemeral=WIDE_EPHEMERAL)
    for body in _resources(stack, "aws_ecs_service").values():
        network = body["network_configuration"]
        found["tasks"] = Component("tasks", _refs(network["subnets"], "aws_subnet"),
                                   frozenset(_refs(network.get("security_groups", []), "aws_security_group")),
                                   public_address=bool(network.get("assign_public_ip", False)))
    instances = _resources(stack, "aws_rds_cluster_instance").values()
    for body in _resources(stack, "aws_rds_cluster").values():
        found["database"] = Component(
            "database", _subnet_group(stack, "aws_db_subnet_group", body["db_subnet_group_name"]),
            frozenset(_refs(body.get("vpc_security_group_ids", []), "aws_security_group")),
            public_address=any(instance.get("publicly_accessible", False) for instance in instances))
    for body in _resources(stack, "aws_elasticache_replication_group").values():
        found["cache"] = Component(
            "cache", _subnet_group(stack, "aws_elasticache_subnet_group", body["subnet_group_name"]),
            frozenset(_refs(body.get("security_group_ids", []), "aws_security_group")))
    for name, body in _resources(stack, "aws_vpc_endpoint").items():
        service = body["service_name"].split(".", 3)[-1]  # com.amazonaws.<region>.<service>
        if body.get("vpc_endpoint_type") == "Interface":
            found[f"endpoint {service}"] = Component(
                f"endpoint {service}", _refs(body["subnet_ids"], "aws_subnet"),
                frozenset(_refs(body.get("security_group_ids", []), "aws_security_group")), ephemeral=WIDE_EPHEMERAL)
        elif service == "s3":
            found["s3"] = Component("s3", (), external_addresses=(S3_PROBE,), prefix_lists=frozenset({name}),
                                    has_security_groups=False, ephemeral=WIDE_EPHEMERAL)
    found["internet"] = Component("internet", (), external_addresses=INTERNET_PROBES, has_security_groups=False,
                                  ephemeral=WIDE_EPHEMERAL)
    return found


def read_topology(stack: dict) -> Topology:
    """The network of one synthesized environment stack (its `cdk.tf.json`, parsed)."""
    _reject_unsupported(stack)
    vpc = _one_vpc(stack)
    return Topology(
        vpc_cidr=vpc, subnets=_subnets(stack), routes=_routes(stack, vpc), acl_rules=_acl_rules(stack),
        sg_rules=_sg_rules(stack), components=_components(stack),
        nat_subnets={name: _ref(body["subnet_id"], "aws_subnet")
                     for name, body in _resources(stack, "aws_nat_gateway").items()},
        group_names={name: body.get("name", name) for name, body in _resources(stack, "aws_security_group").items()})
