"""Architecture diagrams (Graphviz DOT) drawn from the synthesized Terraform JSON, one per environment.

Why the JSON and not the configuration: the diagram then shows what Terraform will build. A module
change that moves a service to another subnet tier, drops a NAT gateway or opens a new path shows up
in the diagram (and fails the staleness test in tests/test_diagram.py) even when no configuration
changed. Every node, cluster and edge comes from resource types, attributes and `${...}` references.

Usage::

    python tools/diagram.py [--synth-dir cdktf.out] [--out docs] [--no-svg]

Writes `<out>/architecture-<env>.dot` for every environment stack (a stack with a VPC) and every
account baseline stack (`architecture-baseline-<...>.dot`: AWS Config, CloudTrail) and, when
Graphviz's `dot` is on PATH, `<out>/architecture-<env>.svg` next to it. Resources are visited in
sorted order and nothing machine-specific is written, so regenerating from the same input gives
byte-identical .dot files.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python tools/diagram.py`
    sys.path.insert(0, str(ROOT))

from environments.loader import load_project  # noqa: E402
from environments.model import BASELINE_STACK_PREFIX  # noqa: E402

EXIT_USAGE = 2  # the same status main.py uses for a usage/configuration problem
ANYWHERE = "0.0.0.0/0"
USERS, INTERNET = "users", "internet"
# The command that regenerates the checked-in diagrams (quoted in each file's header).
REGENERATE = "python tools/diagram.py"

# `${aws_subnet.network_app-subnet-0_42A071E6.id}` or `${data.aws_caller_identity.caller.account_id}`.
REFERENCE = re.compile(r"\$\{(?:data\.)?(aws_[a-z0-9_]+)\.([A-Za-z0-9_-]+)")
# How modules/network.py names a zone: the n-th of the zones the data source found, sorted.
ZONE_PICK = re.compile(r"^\$\{element\(sort\(data\.aws_availability_zones\.([A-Za-z0-9_-]+)\.names\), (\d+)\)\}$")
INTERPOLATION = re.compile(r"\$\{[^}]*?([A-Za-z0-9_]+)\}")

TIER_TITLES = {"public": "Public subnets", "app": "Application subnets", "data": "Data subnets"}
TIER_ORDER = tuple(TIER_TITLES)


class DiagramError(Exception):
    """The synthesized output is missing or is not shaped the way the diagram expects."""


# -- the diagram model ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """One box. `id` is the Terraform address where there is one, so readers can `terraform state show` it."""

    id: str
    label: str
    kind: str


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str = ""
    kind: str = "traffic"  # traffic | route | placement | protects | notifies | delivers


@dataclass
class Cluster:
    id: str
    label: str
    nodes: list[Node] = field(default_factory=list)
    clusters: list[Cluster] = field(default_factory=list)

    def walk(self) -> Iterator[Cluster]:
        yield self
        for child in self.clusters:
            yield from child.walk()


@dataclass
class Diagram:
    name: str
    title: str
    nodes: list[Node]
    clusters: list[Cluster]
    edges: list[Edge]

    def all_clusters(self) -> Iterator[Cluster]:
        for cluster in self.clusters:
            yield from cluster.walk()

    def cluster(self, cluster_id: str) -> Cluster:
        for cluster in self.all_clusters():
            if cluster.id == cluster_id:
                return cluster
        raise KeyError(cluster_id)

    def all_nodes(self) -> list[Node]:
        return [*self.nodes, *(node for cluster in self.all_clusters() for node in cluster.nodes)]

    def nodes_of(self, kind: str) -> list[Node]:
        return [node for node in self.all_nodes() if node.kind == kind]

    def edges_from(self, source: str, kind: str | None = None) -> list[Edge]:
        return [edge for edge in self.edges if edge.source == source and kind in (None, edge.kind)]


# -- reading the synthesized JSON -----------------------------------------------------------------


def _strings(value) -> Iterator[str]:
    """Every string inside a JSON value (references hide in lists and nested blocks)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def referenced(value, resource_type: str) -> list[str]:
    """Logical names of the `resource_type` resources that `value` refers to, first mention first."""
    names: list[str] = []
    for text in _strings(value):
        for found_type, name in REFERENCE.findall(text):
            if found_type == resource_type and name not in names:
                names.append(name)
    return names


def readable(value: str) -> str:
    """Terraform expressions shown as placeholders: `...-${data.aws_caller_identity.caller.account_id}` ->
    `...-<account_id>`; the diagram is drawn before anything is applied."""
    return INTERPOLATION.sub(lambda match: f"<{match.group(1)}>", value)


def address(resource_type: str, name: str) -> str:
    return f"{resource_type}.{name}"


class Stack:
    """Read-only lookups over one stack's Terraform JSON."""

    def __init__(self, name: str, body: dict):
        self.name, self.body = name, body

    def resources(self, resource_type: str) -> list[tuple[str, dict]]:
        """(logical name, attributes) pairs, sorted: the order every part of the diagram uses."""
        return sorted(self.body.get("resource", {}).get(resource_type, {}).items())

    def resource(self, resource_type: str, name: str) -> dict:
        return self.body["resource"][resource_type][name]

    def first_reference(self, value, resource_type: str) -> tuple[str, dict] | None:
        names = referenced(value, resource_type)
        return (names[0], self.resource(resource_type, names[0])) if names else None

    def grouped_subnets(self, value, group_type: str) -> list[str]:
        """Subnets of the subnet group (`aws_db_subnet_group`, `aws_elasticache_subnet_group`) `value` names."""
        group = self.first_reference(value, group_type)
        return referenced(group[1].get("subnet_ids"), "aws_subnet") if group else []

    def provider_region(self, alias: str | None) -> str:
        """The region of the default provider (alias None) or of an aliased one (`aws.us_east_1`)."""
        wanted = alias.split(".", 1)[1] if alias else None
        for provider in self.body.get("provider", {}).get("aws", []):
            if provider.get("alias") == wanted:
                return provider.get("region", "")
        return ""

    def zone(self, expression: str) -> str:
        """Resolve `element(sort(data.aws_availability_zones.X.names), i)` against the data source's
        zone-name filter, which lists exactly the configured zones (literal zones pass through)."""
        match = ZONE_PICK.match(expression)
        if not match:
            return readable(expression)
        source = self.body.get("data", {}).get("aws_availability_zones", {}).get(match.group(1), {})
        zones = sorted(value for item in source.get("filter", []) if item.get("name") == "zone-name"
                       for value in item.get("values", []))
        index = int(match.group(2))
        return zones[index] if index < len(zones) else readable(expression)


@dataclass(frozen=True)
class Subnet:
    address: str
    name: str
    tier: str
    cidr: str
    zone: str


def read_subnets(stack: Stack) -> dict[str, Subnet]:
    """Subnets by logical name; the tier is the `Tier` tag modules/network.py puts on each."""
    subnets = {}
    for name, subnet in stack.resources("aws_subnet"):
        tags = subnet.get("tags", {})
        subnets[name] = Subnet(address=address("aws_subnet", name), name=readable(tags.get("Name", name)),
                               tier=tags.get("Tier", "untiered"), cidr=subnet["cidr_block"],
                               zone=stack.zone(subnet.get("availability_zone", "")))
    return subnets


def _tier_order(tiers: Iterable[str]) -> list[str]:
    """Known tiers in traffic order (public, app, data), anything else after them alphabetically."""
    tiers = set(tiers)
    return [tier for tier in TIER_ORDER if tier in tiers] + sorted(tiers - set(TIER_ORDER))


# -- building the diagram -------------------------------------------------------------------------


class _Builder:
    """Collects nodes, clusters and edges for one environment stack."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self.subnets = read_subnets(stack)
        self.edges: list[Edge] = []
        self.placed: dict[str, list[Node]] = {}  # tier -> service nodes placed in it
        self.route_tables = self._route_tables_by_subnet()

    # - helpers -

    def edge(self, source: str, target: str, label: str = "", kind: str = "traffic") -> None:
        candidate = Edge(source, target, label, kind)
        if candidate not in self.edges:
            self.edges.append(candidate)

    def place(self, node: Node, subnet_names: Sequence[str]) -> None:
        """Put a service in the tier cluster of its subnets, with a dotted line to each subnet."""
        if not subnet_names:
            raise DiagramError(f"{self.stack.name}: {node.id} names no subnet")
        tiers = {self.subnets[name].tier for name in subnet_names}
        if len(tiers) != 1:
            raise DiagramError(f"{self.stack.name}: {node.id} spans subnet tiers {sorted(tiers)}")
        self.placed.setdefault(tiers.pop(), []).append(node)
        for name in subnet_names:
            self.edge(node.id, self.subnets[name].address, kind="placement")

    def _route_tables_by_subnet(self) -> dict[str, str]:
        tables = {}
        for _, association in self.stack.resources("aws_route_table_association"):
            subnet = referenced(association.get("subnet_id"), "aws_subnet")
            table = referenced(association.get("route_table_id"), "aws_route_table")
            if subnet and table:
                tables[subnet[0]] = table[0]
        return tables

    def default_route(self, subnet_name: str) -> dict | None:
        """The 0.0.0.0/0 route of the subnet's route table, or None: an isolated subnet."""
        table = self.route_tables.get(subnet_name)
        for _, route in self.stack.resources("aws_route"):
            if route.get("destination_cidr_block") == ANYWHERE and referenced(
                    route.get("route_table_id"), "aws_route_table") == [table]:
                return route
        return None

    # - edge tier -

    def edge_cluster(self) -> Cluster:
        cluster = Cluster("edge", "Edge (global): CloudFront, WAF, S3 site origin")
        for name, distribution in self.stack.resources("aws_cloudfront_distribution"):
            cluster.nodes.append(self._distribution(name, distribution, cluster))
        for name, acl in self.stack.resources("aws_wafv2_web_acl"):
            cluster.nodes.append(self._web_acl(name, acl))
        return cluster

    def _distribution(self, name: str, distribution: dict, cluster: Cluster) -> Node:
        node_id = address("aws_cloudfront_distribution", name)
        aliases = ", ".join(distribution.get("aliases", [])) or "(CloudFront domain)"
        tls = distribution.get("viewer_certificate", {}).get("minimum_protocol_version", "")
        node = Node(node_id, f"CloudFront distribution\n{aliases}\nminimum {tls}".strip(), "cloudfront")
        policy = distribution.get("default_cache_behavior", {}).get("viewer_protocol_policy", "")
        viewer = {"redirect-to-https": "HTTPS :443\n(HTTP redirected)", "https-only": "HTTPS :443 only"}
        self.edge(USERS, node_id, viewer.get(policy, "HTTP/HTTPS"))
        # Origins CloudFront only falls back to: every member of an origin group after the first.
        failover = {member.get("origin_id") for group in distribution.get("origin_group", [])
                    for member in group.get("member", [])[1:]}
        for origin in distribution.get("origin", []):
            bucket = self._origin_bucket(origin.get("domain_name", ""))
            if bucket is None:
                continue
            bucket_name, bucket_attributes = bucket
            bucket_id = address("aws_s3_bucket", bucket_name)
            replica = origin.get("origin_id") in failover
            title = "S3 site replica (private, failover origin)" if replica else "S3 site bucket (private)"
            cluster.nodes.append(Node(bucket_id, f"{title}\n{readable(bucket_attributes['bucket'])}",
                                      "site_replica" if replica else "site_bucket"))
            signed = "origin request, signed (OAC)" if origin.get("origin_access_control_id") else "origin request"
            self.edge(node_id, bucket_id, f"on failure: {signed}" if replica else signed)
        return node

    def _origin_bucket(self, domain_name: str) -> tuple[str, dict] | None:
        """The bucket behind an S3 origin: its domain is `<bucket>.s3.<region>.amazonaws.com`."""
        for name, bucket in self.stack.resources("aws_s3_bucket"):
            if domain_name.startswith(f"{bucket.get('bucket')}.s3."):
                return name, bucket
        return None

    def _web_acl(self, name: str, acl: dict) -> Node:
        node_id = address("aws_wafv2_web_acl", name)
        statements = [rule.get("statement", {}) for rule in acl.get("rule", [])]
        groups = sum("managed_rule_group_statement" in statement for statement in statements)
        limits = [s["rate_based_statement"].get("limit") for s in statements if "rate_based_statement" in s]
        rate = "".join(f", {limit} requests/5 min per IP" for limit in limits)
        label = f"WAF web ACL ({acl.get('scope', '')})\n{acl.get('name', name)}\n{groups} managed rule groups{rate}"
        node = Node(node_id, label, "waf")
        for distribution, attributes in self.stack.resources("aws_cloudfront_distribution"):
            if name in referenced(attributes.get("web_acl_id"), "aws_wafv2_web_acl"):
                self.edge(node_id, address("aws_cloudfront_distribution", distribution), "inspects", "protects")
        for _, association in self.stack.resources("aws_wafv2_web_acl_association"):
            if name in referenced(association.get("web_acl_arn"), "aws_wafv2_web_acl"):
                for lb in referenced(association.get("resource_arn"), "aws_lb"):
                    self.edge(node_id, address("aws_lb", lb), "inspects", "protects")
        return node

    # - VPC tiers -

    def place_services(self) -> None:
        """Everything that sits in subnets, in traffic order: load balancers, NAT, tasks, data stores."""
        for name, lb in self.stack.resources("aws_lb"):
            self._load_balancer(name, lb)
        for name, nat in self.stack.resources("aws_nat_gateway"):
            self.place(Node(address("aws_nat_gateway", name),
                            f"NAT gateway\n{readable(nat.get('tags', {}).get('Name', name))}", "nat"),
                       referenced(nat.get("subnet_id"), "aws_subnet"))
        for name, service in self.stack.resources("aws_ecs_service"):
            self._ecs_service(name, service)
        for name, cluster in self.stack.resources("aws_rds_cluster"):
            self._database(name, cluster)
        for name, group in self.stack.resources("aws_elasticache_replication_group"):
            self._cache(name, group)
        self._endpoints()

    def _load_balancer(self, name: str, lb: dict) -> None:
        node_id = address("aws_lb", name)
        facing = "internal" if lb.get("internal") else "internet-facing"
        protection = ", deletion protection" if lb.get("enable_deletion_protection") else ""
        self.place(Node(node_id, f"Application Load Balancer\n{lb.get('name', name)}\n{facing}{protection}",
                        "load_balancer"), referenced(lb.get("subnets"), "aws_subnet"))
        entrances, target_groups = [], []
        for _, listener in self.stack.resources("aws_lb_listener"):
            if referenced(listener.get("load_balancer_arn"), "aws_lb") != [name]:
                continue
            entrance = f"{listener.get('protocol')} :{listener.get('port')}"
            for action in listener.get("default_action", []):
                if action.get("type") == "redirect":
                    entrance += f" -> {action.get('redirect', {}).get('protocol', '')} redirect"
                target_groups += referenced(action.get("target_group_arn"), "aws_lb_target_group")
            entrances.append(entrance)
        # HTTPS first: it is the path requests take; plain HTTP only ever gets a redirect.
        self.edge(USERS, node_id, "\n".join(sorted(entrances, key=lambda text: not text.startswith("HTTPS"))))
        for group in target_groups:
            self._forward(node_id, group)

    def _forward(self, lb_id: str, target_group: str) -> None:
        """Load balancer -> every ECS service registered in the target group, on the container port."""
        group = self.stack.resource("aws_lb_target_group", target_group)
        for name, service in self.stack.resources("aws_ecs_service"):
            for binding in service.get("load_balancer", []):
                if referenced(binding.get("target_group_arn"), "aws_lb_target_group") == [target_group]:
                    port = binding.get("container_port", group.get("port"))
                    self.edge(lb_id, address("aws_ecs_service", name), f"{group.get('protocol', '')} :{port}")

    def _ecs_service(self, name: str, service: dict) -> None:
        node_id = address("aws_ecs_service", name)
        providers = " + ".join(sorted({item.get("capacity_provider", "") for item in
                                       service.get("capacity_provider_strategy", [])})) or "FARGATE"
        scaling = self._task_range(name)
        network = service.get("network_configuration", {})
        public_ip = "public IP" if network.get("assign_public_ip") else "no public IP"
        label = f"ECS service\n{service.get('name', name)}\n{providers}, {scaling}\n{public_ip}"
        self.place(Node(node_id, label, "ecs_service"), referenced(network.get("subnets"), "aws_subnet"))

    def _task_range(self, service_name: str) -> str:
        for _, target in self.stack.resources("aws_appautoscaling_target"):
            if service_name in referenced(target.get("resource_id"), "aws_ecs_service"):
                return f"{target.get('min_capacity')}-{target.get('max_capacity')} tasks"
        desired = self.stack.resource("aws_ecs_service", service_name).get("desired_count")
        return f"{desired} tasks"

    def _security_groups_of(self, value) -> list[str]:
        return referenced(value, "aws_security_group")

    def _allowed_from(self, target_groups: list[str], source_groups: list[str]) -> list[int]:
        """Ports the target's security groups admit from the source's groups (the real allowed path)."""
        ports = []
        for _, rule in self.stack.resources("aws_vpc_security_group_ingress_rule"):
            into = referenced(rule.get("security_group_id"), "aws_security_group")
            source = referenced(rule.get("referenced_security_group_id"), "aws_security_group")
            if set(into) & set(target_groups) and set(source) & set(source_groups):
                ports.append(rule.get("from_port"))
        return sorted(set(ports))

    def _connect_services(self, target_id: str, target_groups: list[str], protocol: str, note: str) -> None:
        """Edges from each ECS service to a data store, on the ports the security groups allow."""
        for name, service in self.stack.resources("aws_ecs_service"):
            sources = self._security_groups_of(service.get("network_configuration", {}).get("security_groups"))
            for port in self._allowed_from(target_groups, sources):
                self.edge(address("aws_ecs_service", name), target_id, f"{protocol} :{port}{note}")

    def _database(self, name: str, cluster: dict) -> None:
        node_id = address("aws_rds_cluster", name)
        readers = sum(1 for _, instance in self.stack.resources("aws_rds_cluster_instance")
                      if referenced(instance.get("cluster_identifier"), "aws_rds_cluster") == [name]) - 1
        scaling = cluster.get("serverlessv2_scaling_configuration", {})
        capacity = f"\nServerless v2 {scaling['min_capacity']:g}-{scaling['max_capacity']:g} ACU" if scaling else ""
        label = (f"Aurora cluster\n{cluster.get('cluster_identifier', name)}\n"
                 f"{cluster.get('engine', '')} {cluster.get('engine_version', '')}\n"
                 f"writer + {max(readers, 0)} reader(s){capacity}")
        self.place(Node(node_id, label, "database"),
                   self.stack.grouped_subnets(cluster.get("db_subnet_group_name"), "aws_db_subnet_group"))
        tls = " (TLS only)" if self._forces_ssl(cluster) else ""
        protocol = "PostgreSQL" if "postgres" in cluster.get("engine", "") else "TCP"
        self._connect_services(node_id, self._security_groups_of(cluster.get("vpc_security_group_ids")),
                               protocol, tls)

    def _forces_ssl(self, cluster: dict) -> bool:
        group = self.stack.first_reference(cluster.get("db_cluster_parameter_group_name"),
                                           "aws_rds_cluster_parameter_group")
        parameters = group[1].get("parameter", []) if group else []
        return any(item.get("name") == "rds.force_ssl" and str(item.get("value")) == "1" for item in parameters)

    def _cache(self, name: str, group: dict) -> None:
        node_id = address("aws_elasticache_replication_group", name)
        label = (f"ElastiCache {group.get('engine', 'redis')} {group.get('engine_version', '')}\n"
                 f"{group.get('replication_group_id', name)}\n{group.get('num_cache_clusters', 1)} nodes")
        self.place(Node(node_id, label, "cache"),
                   self.stack.grouped_subnets(group.get("subnet_group_name"), "aws_elasticache_subnet_group"))
        tls = " (TLS, AUTH)" if group.get("transit_encryption_enabled") else ""
        self._connect_services(node_id, self._security_groups_of(group.get("security_group_ids")), "Redis", tls)

    def _endpoints(self) -> None:
        """One node per tier listing the VPC endpoints reachable from it (S3 gateway, interface endpoints)."""
        by_tier: dict[str, list[tuple[str, list[str]]]] = {}
        region = self.stack.provider_region(None)
        for _, endpoint in self.stack.resources("aws_vpc_endpoint"):
            subnets = referenced(endpoint.get("subnet_ids"), "aws_subnet")
            tables = referenced(endpoint.get("route_table_ids"), "aws_route_table")
            subnets += [subnet for subnet, table in sorted(self.route_tables.items()) if table in tables]
            service = endpoint.get("service_name", "").split(f".{region}.", 1)[-1]
            kind = endpoint.get("vpc_endpoint_type", "Gateway").lower()
            for tier in {self.subnets[name].tier for name in subnets}:
                by_tier.setdefault(tier, []).append((f"{service} ({kind})", sorted(set(subnets))))
        for tier, endpoints in sorted(by_tier.items()):
            names = "\n".join(sorted(label for label, _ in endpoints))
            subnets = sorted({name for _, found in endpoints for name in found if self.subnets[name].tier == tier})
            self.place(Node(f"vpc-endpoints-{tier}", f"VPC endpoints\n{names}", "vpc_endpoints"), subnets)

    def vpc_cluster(self) -> Cluster:
        vpcs = self.stack.resources("aws_vpc")
        if len(vpcs) != 1:
            raise DiagramError(f"{self.stack.name}: expected one aws_vpc, found {len(vpcs)}")
        ((name, vpc),) = vpcs
        title = readable(vpc.get("tags", {}).get("Name", name))
        region = self.stack.provider_region(None)
        cluster = Cluster("vpc", f"VPC {title}  {vpc['cidr_block']}  ({region})")
        by_tier: dict[str, list[Subnet]] = {}
        for subnet in self.subnets.values():
            by_tier.setdefault(subnet.tier, []).append(subnet)
        for tier in _tier_order(by_tier):
            cluster.clusters.append(self._tier_cluster(tier, by_tier[tier]))
        return cluster

    def _tier_cluster(self, tier: str, subnets: list[Subnet]) -> Cluster:
        """Subnets in zone order, the services placed in them, and how the tier reaches the internet."""
        subnets = sorted(subnets, key=lambda subnet: (subnet.zone, subnet.cidr))
        exits = set()
        for subnet in subnets:
            logical = subnet.address.split(".", 1)[1]
            route = self.default_route(logical)
            if route and route.get("gateway_id"):
                exits.add("internet gateway")
            for nat in referenced(route.get("nat_gateway_id"), "aws_nat_gateway") if route else []:
                exits.add("NAT gateway")
                self.edge(subnet.address, address("aws_nat_gateway", nat), ANYWHERE, "route")
        reach = f"default route via {' and '.join(sorted(exits))}" if exits else "no route to the internet"
        cluster = Cluster(f"tier_{tier}", f"{TIER_TITLES.get(tier, f'{tier} subnets')} ({reach})")
        cluster.nodes += [Node(subnet.address, f"{subnet.name}\n{subnet.cidr}\n{subnet.zone}", "subnet")
                          for subnet in subnets]
        cluster.nodes += self.placed.get(tier, [])
        return cluster

    def internet_edges(self) -> None:
        """NAT gateways leave through the internet gateway of their own subnet's route table."""
        for name, nat in self.stack.resources("aws_nat_gateway"):
            label = "outbound"
            for subnet in referenced(nat.get("subnet_id"), "aws_subnet"):
                route = self.default_route(subnet)
                gateway = self.stack.first_reference(route.get("gateway_id") if route else None,
                                                     "aws_internet_gateway")
                if gateway:
                    label = f"via {readable(gateway[1].get('tags', {}).get('Name', gateway[0]))}"
            self.edge(address("aws_nat_gateway", name), INTERNET, label)

    # - observability and audit -

    def observability_cluster(self) -> Cluster:
        cluster = Cluster("observability", "Observability: alarms -> SNS topics, dashboards")
        for name, topic in self.stack.resources("aws_sns_topic"):
            region = self.stack.provider_region(topic.get("provider")) if topic.get("provider") else ""
            where = f"\n({region})" if region else ""
            cluster.nodes.append(Node(address("aws_sns_topic", name), f"SNS topic\n{topic.get('name', name)}{where}",
                                      "topic"))
        for name, alarm in self.stack.resources("aws_cloudwatch_metric_alarm"):
            node_id = address("aws_cloudwatch_metric_alarm", name)
            cluster.nodes.append(Node(node_id, f"alarm\n{alarm.get('alarm_name', name)}", "alarm"))
            for topic in referenced(alarm.get("alarm_actions"), "aws_sns_topic"):
                self.edge(node_id, address("aws_sns_topic", topic), "notifies", "notifies")
        for name, dashboard in self.stack.resources("aws_cloudwatch_dashboard"):
            cluster.nodes.append(Node(address("aws_cloudwatch_dashboard", name),
                                      f"dashboard\n{dashboard.get('dashboard_name', name)}", "dashboard"))
        self._cost_nodes(cluster)
        self._tracing_nodes(cluster)
        return cluster

    def _cost_nodes(self, cluster: Cluster) -> None:
        """The budget and the anomaly subscription, and the topics they notify."""
        for name, budget in self.stack.resources("aws_budgets_budget"):
            node_id = address("aws_budgets_budget", name)
            alerts = ", ".join(f"{n.get('threshold')}% {n.get('notification_type', '').lower()}"
                               for n in budget.get("notification", []))
            label = f"budget\n{budget.get('name', name)}\n{budget.get('limit_amount')} USD/month ({alerts})"
            cluster.nodes.append(Node(node_id, label, "budget"))
            for topic in referenced(budget.get("notification"), "aws_sns_topic"):
                self.edge(node_id, address("aws_sns_topic", topic), "notifies", "notifies")
        for name, subscription in self.stack.resources("aws_ce_anomaly_subscription"):
            node_id = address("aws_ce_anomaly_subscription", name)
            cluster.nodes.append(Node(node_id, f"cost anomaly alerts\n{subscription.get('name', name)}", "budget"))
            for topic in referenced(subscription.get("subscriber"), "aws_sns_topic"):
                self.edge(node_id, address("aws_sns_topic", topic), "notifies", "notifies")

    def _tracing_nodes(self, cluster: Cluster) -> None:
        """X-Ray, fed by the API's collector sidecar, sampled by the environment's rule."""
        for name, rule in self.stack.resources("aws_xray_sampling_rule"):
            node_id = address("aws_xray_sampling_rule", name)
            label = (f"X-Ray (OpenTelemetry traces)\nsampling rule {rule.get('rule_name', name)}\n"
                     f"{rule.get('reservoir_size')}/s + {float(rule.get('fixed_rate', 0)):.0%}")
            cluster.nodes.append(Node(node_id, label, "xray"))
            for service, _ in self.stack.resources("aws_ecs_service"):
                self.edge(address("aws_ecs_service", service), node_id, "traces via ADOT sidecar", "delivers")

    def audit_cluster(self) -> Cluster | None:
        trails = self.stack.resources("aws_cloudtrail")
        if not trails:
            return None
        cluster = Cluster("audit", "Audit: CloudTrail")
        for name, trail in trails:
            node_id = address("aws_cloudtrail", name)
            scope = "multi-region" if trail.get("is_multi_region_trail") else "single-region"
            validation = ", log file validation" if trail.get("enable_log_file_validation") else ""
            cluster.nodes.append(Node(node_id, f"CloudTrail\n{trail.get('name', name)}\n{scope}{validation}", "trail"))
            bucket = self.stack.first_reference(trail.get("s3_bucket_name"), "aws_s3_bucket")
            if bucket:
                bucket_id = address("aws_s3_bucket", bucket[0])
                label = f"S3 trail bucket\n{readable(bucket[1]['bucket'])}"
                cluster.nodes.append(Node(bucket_id, label, "trail_bucket"))
                self.edge(node_id, bucket_id, "log files", "delivers")
            group = self.stack.first_reference(trail.get("cloud_watch_logs_group_arn"), "aws_cloudwatch_log_group")
            if group:
                group_id = address("aws_cloudwatch_log_group", group[0])
                cluster.nodes.append(Node(group_id, f"log group\n{group[1].get('name', group[0])}", "trail_logs"))
                self.edge(node_id, group_id, "events", "delivers")
        return cluster


    def compliance_cluster(self) -> Cluster | None:
        """AWS Config: the recorder delivers to its bucket; rules that turn NON_COMPLIANT reach the topic."""
        recorders = self.stack.resources("aws_config_configuration_recorder")
        if not recorders:
            return None
        cluster = Cluster("compliance", "Compliance: AWS Config")
        for name, recorder in recorders:
            node_id = address("aws_config_configuration_recorder", name)
            group = recorder.get("recording_group", {})
            scope = "all supported types" + (" + global types" if group.get("include_global_resource_types") else "")
            cluster.nodes.append(Node(node_id, f"Config recorder\n{recorder.get('name', name)}\n{scope}", "recorder"))
            for _, channel in self.stack.resources("aws_config_delivery_channel"):
                bucket = self.stack.first_reference(channel.get("s3_bucket_name"), "aws_s3_bucket")
                if bucket:
                    bucket_id = address("aws_s3_bucket", bucket[0])
                    cluster.nodes.append(Node(bucket_id, f"S3 config bucket\n{readable(bucket[1]['bucket'])}",
                                              "trail_bucket"))
                    self.edge(node_id, bucket_id, "history, snapshots", "delivers")
        rules = [rule["source"]["source_identifier"] for _, rule in self.stack.resources("aws_config_config_rule")]
        rules_id = "aws_config_config_rule.*"
        cluster.nodes.append(Node(rules_id, f"{len(rules)} AWS managed rules\n" + "\n".join(sorted(rules)), "rules"))
        for name, rule in self.stack.resources("aws_cloudwatch_event_rule"):
            event_id = address("aws_cloudwatch_event_rule", name)
            cluster.nodes.append(Node(event_id, f"EventBridge rule\n{rule.get('name', name)}", "event_rule"))
            self.edge(rules_id, event_id, "NON_COMPLIANT", "notifies")
            for _, target in self.stack.resources("aws_cloudwatch_event_target"):
                topic = self.stack.first_reference(target.get("arn"), "aws_sns_topic")
                if topic and name in target.get("rule", ""):
                    topic_id = address("aws_sns_topic", topic[0])
                    cluster.nodes.append(Node(topic_id, f"SNS topic\n{topic[1].get('name', topic[0])}", "topic"))
                    self.edge(event_id, topic_id, "notifies", "notifies")
        return cluster


    def xray_encryption_cluster(self) -> Cluster | None:
        settings = self.stack.resources("aws_xray_encryption_config")
        if not settings:
            return None
        cluster = Cluster("xray_encryption", "X-Ray encryption (every trace of the account and region)")
        for name, setting in settings:
            key = self.stack.first_reference(setting.get("key_id"), "aws_kms_key")
            label = f"X-Ray encryption\n{setting.get('type')}" + (f"\n{key[1].get('description', '')}" if key else "")
            cluster.nodes.append(Node(address("aws_xray_encryption_config", name), label, "xray"))
        return cluster


def build_baseline_diagram(name: str, body: dict) -> Diagram:
    """The diagram of one account baseline stack: the once-per-account resources."""
    builder = _Builder(Stack(name, body))
    clusters = [cluster for cluster in (builder.compliance_cluster(), builder.audit_cluster(),
                                        builder.xray_encryption_cluster()) if cluster]
    title = f"{name}: account baseline drawn from cdktf.out/stacks/{name}/cdk.tf.json"
    return Diagram(name=name, title=title, nodes=[], clusters=clusters, edges=_ordered(builder.edges))


def build_diagram(name: str, body: dict) -> Diagram:
    """The diagram of one synthesized environment stack (`body` is its cdk.tf.json)."""
    builder = _Builder(Stack(name, body))
    edge = builder.edge_cluster()
    builder.place_services()
    vpc = builder.vpc_cluster()
    builder.internet_edges()
    clusters = [edge, vpc, builder.observability_cluster()]
    audit = builder.audit_cluster()
    if audit:
        clusters.append(audit)
    actors = [Node(USERS, "Users\n(browsers, API clients)", "actor"), Node(INTERNET, "Internet", "actor")]
    title = f"{name}: architecture drawn from cdktf.out/stacks/{name}/cdk.tf.json"
    return Diagram(name=name, title=title, nodes=actors, clusters=clusters, edges=_ordered(builder.edges))


def _ordered(edges: list[Edge]) -> list[Edge]:
    """Traffic first (it is what readers follow), then the supporting relations; stable otherwise."""
    rank = {"traffic": 0, "protects": 1, "route": 2, "placement": 3, "notifies": 4, "delivers": 5}
    return sorted(edges, key=lambda edge: rank.get(edge.kind, len(rank)))


# -- DOT ------------------------------------------------------------------------------------------

GRAPH_ATTRIBUTES = (("rankdir", "LR"), ("newrank", "true"), ("compound", "true"), ("fontname", "Helvetica"),
                    ("fontsize", "14"), ("labelloc", "t"), ("nodesep", "0.3"), ("ranksep", "0.6"))
NODE_DEFAULTS = (("shape", "box"), ("style", "rounded,filled"), ("fillcolor", "white"), ("fontname", "Helvetica"),
                 ("fontsize", "10"))
EDGE_DEFAULTS = (("fontname", "Helvetica"), ("fontsize", "9"))
NODE_STYLES = {
    "actor": (("shape", "oval"), ("fillcolor", "#eeeeee")),
    "subnet": (("style", "dashed"), ("fontsize", "9")),
    "cloudfront": (("fillcolor", "#e1d5f5"),),
    "waf": (("fillcolor", "#f8d7da"),),
    "site_bucket": (("fillcolor", "#fff3cd"),),
    "site_replica": (("fillcolor", "#fff3cd"), ("style", "filled,dashed")),
    "load_balancer": (("fillcolor", "#d6e9f8"),),
    "nat": (("fillcolor", "#d6e9f8"),),
    "ecs_service": (("fillcolor", "#d4edda"),),
    "database": (("shape", "cylinder"), ("style", "filled"), ("fillcolor", "#ffe5b4")),
    "cache": (("shape", "cylinder"), ("style", "filled"), ("fillcolor", "#ffe5b4")),
    "vpc_endpoints": (("fillcolor", "#f5f5f5"), ("fontsize", "9")),
    "alarm": (("fillcolor", "#fde2e1"), ("fontsize", "9")),
    "topic": (("fillcolor", "#fff3cd"),),
    "dashboard": (("fillcolor", "#f5f5f5"), ("fontsize", "9")),
    "trail": (("fillcolor", "#e8eaf6"),),
    "trail_bucket": (("fillcolor", "#fff3cd"),),
    "trail_logs": (("fillcolor", "#f5f5f5"),),
    "recorder": (("fillcolor", "#e8eaf6"),),
    "budget": (("fillcolor", "#e8f5e9"), ("fontsize", "9")),
    "xray": (("fillcolor", "#e8eaf6"),),
    "rules": (("fillcolor", "#f5f5f5"), ("fontsize", "8")),
    "event_rule": (("fillcolor", "#fde2e1"),),
}
EDGE_STYLES = {
    "traffic": (("color", "#1f4e79"), ("penwidth", "1.6")),
    "route": (("color", "#2e7d32"), ("style", "dashed")),
    "placement": (("color", "#9e9e9e"), ("style", "dotted"), ("arrowhead", "none"), ("constraint", "false")),
    "protects": (("color", "#8e24aa"), ("style", "dashed")),
    "notifies": (("color", "#c62828"), ("style", "dashed")),
    "delivers": (("color", "#616161"), ("style", "dashed")),
}
CLUSTER_STYLES = {
    "edge": (("style", "rounded,filled"), ("fillcolor", "#f7f2fc"), ("color", "#8e24aa")),
    "vpc": (("style", "rounded"), ("color", "#1f4e79"), ("penwidth", "2")),
    "tier_public": (("style", "rounded,filled"), ("fillcolor", "#eef6fd"), ("color", "#5b9bd5")),
    "tier_app": (("style", "rounded,filled"), ("fillcolor", "#eef8f0"), ("color", "#2e7d32")),
    "tier_data": (("style", "rounded,filled"), ("fillcolor", "#fff7ea"), ("color", "#e69500")),
    "observability": (("style", "rounded,filled"), ("fillcolor", "#fafafa"), ("color", "#9e9e9e")),
    "audit": (("style", "rounded,filled"), ("fillcolor", "#fafafa"), ("color", "#9e9e9e")),
    "compliance": (("style", "rounded,filled"), ("fillcolor", "#fafafa"), ("color", "#9e9e9e")),
    "xray_encryption": (("style", "rounded,filled"), ("fillcolor", "#fafafa"), ("color", "#9e9e9e")),
}


def quote(text: str) -> str:
    """A DOT double-quoted string; line breaks become DOT's centred `\\n`."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _attributes(pairs: Iterable[tuple[str, str]]) -> str:
    return ", ".join(f"{key}={quote(value)}" for key, value in pairs)


def _node_line(node: Node, indent: str) -> str:
    return f"{indent}{quote(node.id)} [{_attributes((('label', node.label), *NODE_STYLES.get(node.kind, ())))}];"


def _cluster_lines(cluster: Cluster, indent: str) -> list[str]:
    inner = indent + "  "
    lines = [f"{indent}subgraph {quote('cluster_' + cluster.id)} {{",
             f"{inner}graph [{_attributes((('label', cluster.label), *CLUSTER_STYLES.get(cluster.id, ())))}];"]
    lines += [_node_line(node, inner) for node in cluster.nodes]
    for child in cluster.clusters:
        lines += _cluster_lines(child, inner)
    lines.append(f"{indent}}}")
    return lines


def _edge_line(edge: Edge) -> str:
    pairs = ((("label", edge.label),) if edge.label else ()) + EDGE_STYLES.get(edge.kind, ())
    return f"  {quote(edge.source)} -> {quote(edge.target)} [{_attributes(pairs)}];"


def render_dot(diagram: Diagram) -> str:
    """The DOT text: a header saying how to regenerate, then actors, clusters and edges in model order."""
    lines = [
        f"// {diagram.name}: generated by tools/diagram.py from the synthesized stack; do not edit.",
        f"// Regenerate: python main.py && {REGENERATE}",
        f"digraph {quote(diagram.name)} {{",
        f"  graph [{_attributes((('label', diagram.title), *GRAPH_ATTRIBUTES))}];",
        f"  node [{_attributes(NODE_DEFAULTS)}];",
        f"  edge [{_attributes(EDGE_DEFAULTS)}];",
    ]
    lines += [_node_line(node, "  ") for node in diagram.nodes]
    for cluster in diagram.clusters:
        lines += _cluster_lines(cluster, "  ")
    lines += [_edge_line(edge) for edge in diagram.edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- files and CLI --------------------------------------------------------------------------------


def read_stacks(synth_dir: Path) -> dict[str, dict]:
    """Every synthesized stack by name, from cdktf's manifest."""
    manifest_path = Path(synth_dir) / "manifest.json"
    if not manifest_path.is_file():
        raise DiagramError(f"{manifest_path} not found: synthesize first (python main.py)")
    manifest = json.loads(manifest_path.read_text())
    return {name: json.loads((Path(synth_dir) / entry["synthesizedStackPath"]).read_text())
            for name, entry in sorted(manifest["stacks"].items())}


def environment_stacks(stacks: dict[str, dict]) -> dict[str, dict]:
    """The stacks that are environments: those with a VPC (the bootstrap stack has none)."""
    return {name: body for name, body in sorted(stacks.items()) if body.get("resource", {}).get("aws_vpc")}


def baseline_stacks(stacks: dict[str, dict]) -> dict[str, dict]:
    """The account baseline stacks (`baseline-...`): once-per-account resources, no VPC."""
    return {name: body for name, body in sorted(stacks.items()) if name.startswith(BASELINE_STACK_PREFIX)}


def dot_path(out_dir: Path, environment: str) -> Path:
    return Path(out_dir) / f"architecture-{environment}.dot"


def generate(stacks: dict[str, dict]) -> dict[str, str]:
    """DOT text per environment and per account baseline, by stack name."""
    texts = {name: render_dot(build_diagram(name, body)) for name, body in environment_stacks(stacks).items()}
    texts.update({name: render_dot(build_baseline_diagram(name, body))
                  for name, body in baseline_stacks(stacks).items()})
    return texts


def write_diagrams(texts: dict[str, str], out_dir: Path, renderer: str | None) -> list[Path]:
    """Write the .dot files (and .svg with `renderer`); remove diagrams of environments that no longer exist."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in texts.items():
        path = dot_path(out_dir, name)
        path.write_text(text, encoding="utf-8")
        written.append(path)
        if renderer:
            svg = path.with_suffix(".svg")
            subprocess.run([renderer, "-Tsvg", "-o", str(svg), str(path)], check=True)
            written.append(svg)
    expected = {path.name for path in written}
    for stale in sorted([*out_dir.glob("architecture-*.dot"), *out_dir.glob("architecture-*.svg")]):
        if stale.name not in expected:
            stale.unlink()
            print(f"removed {stale} (no such environment)")
    return written


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Draw one architecture diagram per synthesized environment.")
    parser.add_argument("--synth-dir", type=Path, default=ROOT / "cdktf.out",
                        help="cdktf output folder holding manifest.json (default: cdktf.out)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="where to write the diagrams (default: docs)")
    parser.add_argument("--no-svg", action="store_true", help="write .dot only, even when Graphviz is installed")
    parser.add_argument("--environments-dir", type=Path, default=ROOT / "environments", help=argparse.SUPPRESS)
    return parser


def require_every_stack(stacks: dict[str, dict], synth_dir: Path, environments_dir: Path) -> None:
    """Refuse a partial synthesis (`python main.py dev`): drawing from it would delete the others' diagrams."""
    missing = [name for name in load_project(environments_dir).stack_names if name not in stacks]
    if missing:
        raise DiagramError(f"{synth_dir} lacks {', '.join(missing)} (a partial synthesis): synthesize every "
                           "stack first (python main.py), or their diagrams would be removed as stale")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        stacks = read_stacks(args.synth_dir)
        require_every_stack(stacks, args.synth_dir, args.environments_dir)
        texts = generate(stacks)
    except DiagramError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if not texts:
        print(f"error: no environment stack (a stack with a VPC) in {args.synth_dir}", file=sys.stderr)
        return EXIT_USAGE
    renderer = None if args.no_svg else shutil.which("dot")
    for path in write_diagrams(texts, args.out, renderer):
        print(f"wrote {path}")
    if renderer is None and not args.no_svg:
        print("note: Graphviz `dot` is not installed, so no .svg was written (apt-get install graphviz)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
