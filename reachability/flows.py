"""The flows SPEC section 4.1 requires and forbids, and their judgement on one environment's topology.

Written from the specification, not from the network module: what must get through ("ALB: 443 (and
80 only to redirect) from the internet; API: container port from the ALB group only; Database: 5432
from the API group only"; the cache reachable only from the API; the interface endpoints it names;
S3 through the gateway endpoint; the application tier out through NAT) and what must not (anything
from the internet to the tasks, database or cache; the public subnets to the database; the data tier
to the internet: "no route to the internet"). Each flow is judged for every pair of zones, because
a path that works inside one zone (one subnet, no ACL crossed) can still break across zones.

Expectations:
- `ALLOWED`: the port gets through, there and back, for every pair (and through `via`, when given);
- `ONLY`: as ALLOWED, and no other port gets through;
- `ONLY_THESE`: as ONLY, but the ports in `also` (another flow's) may get through too;
- `DENIED`: no port at all gets through, for any pair (the port given is the one the docs explain).
"""

from __future__ import annotations

from dataclasses import dataclass

from environments.model import EnvironmentConfig
from reachability.evaluate import Place, Verdict, check, format_ports, open_ports, places, route_to
from reachability.topology import Component, Network, SgRule, Topology

ALLOWED, ONLY, ONLY_THESE, DENIED = "allowed", "only this port", "only these ports", "denied"
HTTPS, HTTP, POSTGRES, REDIS = 443, 80, 5432, 6379
# SPEC 4.1: "interface endpoints (ECR api/dkr, CloudWatch Logs, Secrets Manager, KMS) when enabled".
SPEC_INTERFACE_ENDPOINTS = ("ecr.api", "ecr.dkr", "logs", "secretsmanager", "kms")
# A hypothetical host in a public subnet whose security group lets everything out: what the network
# itself (ACLs, the database's group) must stop, whatever someone launches there.
PUBLIC_HOST = "host in a public subnet"
PROBE_GROUP = "probe-allow-all-egress"


@dataclass(frozen=True)
class Flow:
    source: str
    destination: str
    port: int
    expect: str
    spec: str  # the SPEC phrase that asks for it
    via: str | None = None  # the route target the flow must leave through ("nat-gateway", ...)
    across_zones_only: bool = False  # a component talking to itself: only pairs in different zones
    also: tuple[int, ...] = ()  # with ONLY_THESE: the other ports that may get through (another flow's)

    @property
    def title(self) -> str:
        port = "any port" if self.expect == DENIED else f"tcp/{self.port}"
        return f"{self.source} -> {self.destination} ({port})"


@dataclass(frozen=True)
class FlowResult:
    flow: Flow
    verdicts: tuple[Verdict, ...]  # one per pair of places, at the flow's port
    problems: tuple[str, ...]  # empty when the expectation holds

    @property
    def holds(self) -> bool:
        return not self.problems


def spec_flows(env: EnvironmentConfig) -> list[Flow]:
    """The flows SPEC 4.1 asks for, for one environment's configuration."""
    container = env.api.container_port
    flows = [
        Flow("internet", "alb", HTTPS, ONLY_THESE, "ALB: 443 from the internet", also=(HTTP,)),
        Flow("internet", "alb", HTTP, ONLY_THESE, "ALB: 80 only to redirect", also=(HTTPS,)),
        Flow("alb", "tasks", container, ALLOWED, "API: container port from the ALB group only"),
        Flow("tasks", "database", POSTGRES, ONLY, "Database: 5432 from the API group only"),
        Flow("tasks", "s3", HTTPS, ALLOWED, "VPC endpoints: S3 gateway always", via="gateway-endpoint"),
        Flow("tasks", "internet", HTTPS, ALLOWED, "private application subnets (ECS) ... NAT", via="nat-gateway"),
        Flow("internet", "tasks", container, DENIED, "only the load balancer faces the internet"),
        Flow("internet", "database", POSTGRES, DENIED, "isolated data subnets; not publicly accessible"),
        Flow(PUBLIC_HOST, "database", POSTGRES, DENIED, "Database: 5432 from the API group only"),
        Flow("database", "internet", HTTPS, DENIED, "isolated data subnets ... with no route to the internet"),
    ]
    if env.features.cache:
        flows += [
            Flow("tasks", "cache", REDIS, ONLY, "cache ... reachable only from the API"),
            Flow("cache", "cache", REDIS, ALLOWED, "cache nodes replicate across zones", across_zones_only=True),
            Flow("internet", "cache", REDIS, DENIED, "cache in the data subnets"),
            Flow(PUBLIC_HOST, "cache", REDIS, DENIED, "cache ... reachable only from the API"),
            Flow("cache", "internet", HTTPS, DENIED, "isolated data subnets ... with no route to the internet"),
        ]
    if env.features.vpc_interface_endpoints:
        flows += [Flow("tasks", f"endpoint {service}", HTTPS, ALLOWED, "interface endpoints when enabled")
                  for service in SPEC_INTERFACE_ENDPOINTS]
    return flows


def with_public_host(topology: Topology) -> Topology:
    """The topology plus PUBLIC_HOST in every public subnet, its group allowing all egress."""
    host = Component(PUBLIC_HOST, topology.subnets_of_tier("public"), frozenset({PROBE_GROUP}))
    rule = SgRule(name="probe: all traffic out", group=PROBE_GROUP, egress=True, ports=(0, 65535),
                  cidr=Network("0.0.0.0/0"))
    return topology.with_component(host, [rule])


def _pairs(topology: Topology, flow: Flow) -> list[tuple[Place, Place]]:
    pairs = [(source, destination) for source in places(topology, flow.source)
             for destination in places(topology, flow.destination)]
    if flow.across_zones_only:
        pairs = [(a, b) for a, b in pairs if a.subnet and b.subnet and a.subnet.zone != b.subnet.zone]
    return pairs


def _route_target(topology: Topology, source: Place, destination: Place) -> str:
    route = route_to(topology, source.subnet, destination) if source.subnet is not None else None
    return route if route is None or isinstance(route, str) else route.target


def judge(topology: Topology, flow: Flow) -> FlowResult:
    """Whether one flow meets its expectation for every pair of places."""
    pairs = _pairs(topology, flow)
    problems: list[str] = [] if pairs else [f"{flow.title}: no pair of places to check"]
    verdicts = []
    for source, destination in pairs:
        verdict = check(topology, source, destination, flow.port)
        verdicts.append(verdict)
        if flow.expect in (ALLOWED, ONLY, ONLY_THESE):
            if not verdict.allowed:
                problems.append(verdict.explain())
            elif flow.via and _route_target(topology, source, destination) != flow.via:
                problems.append(f"{verdict.source} -> {verdict.destination}: leaves through the "
                                f"{_route_target(topology, source, destination)}, not the {flow.via}")
        if flow.expect in (ONLY, ONLY_THESE, DENIED):
            tolerated = {(port, port) for port in (flow.port, *flow.also)}
            opened = [ports for ports in open_ports(topology, source, destination)
                      if flow.expect == DENIED or ports not in tolerated]
            if opened:
                problems.append(f"{source.label} -> {destination.label}: tcp/{format_ports(opened)} also gets through")
    return FlowResult(flow, tuple(verdicts), tuple(problems))


def evaluate_flows(topology: Topology, env: EnvironmentConfig) -> list[FlowResult]:
    """Every SPEC 4.1 flow of the environment, judged on its synthesized topology."""
    probed = with_public_host(topology)
    return [judge(probed, flow) for flow in spec_flows(env)]
