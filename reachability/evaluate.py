"""Can a TCP flow get through, end to end and back? Hop by hop, as AWS evaluates it.

Forward, in order: the source's security groups (egress), the route in the source subnet's route
table (longest prefix; a prefix-list route for the S3 gateway endpoint), the network ACLs of every
subnet boundary the packet crosses (egress where it leaves, ingress where it enters; traffic that
stays inside one subnet crosses none), through a NAT gateway when the route says so (then the NAT
subnet's ACLs and route to the internet gateway), and the destination's security groups (ingress).

Back: security groups are stateful, so replies pass them, but network ACLs are not: every boundary
is crossed again the other way, to the client's ephemeral ports (the whole range its kind of client
may pick), and the reply needs a route. Rules are evaluated in number order, first match wins, and a
port no rule matches is denied (the implicit `*` rule).

A `Verdict` keeps every hop with the rule that decided it, so a blocked flow names the hop and the
rule that stops it (or "implicit deny").
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

from reachability.topology import ALL_PORTS, WIDE_EPHEMERAL, Component, Network, Subnet, Topology, TopologyError

# A NAT gateway picks the source port of each translated connection from this range.
NAT_EPHEMERAL = WIDE_EPHEMERAL

PortRange = tuple[int, int]


@dataclass(frozen=True)
class Place:
    """One instance of a component: inside a subnet, or at an address outside the VPC."""

    component: Component
    address: Network
    subnet: Subnet | None = None

    @property
    def label(self) -> str:
        if self.subnet is None:
            return f"{self.component.name} ({self.address.network_address})"
        return f"{self.component.name} ({self.subnet.zone})"


@dataclass(frozen=True)
class Hop:
    step: str  # what was evaluated, e.g. "return: network ACL egress of app subnet (zone 1)"
    allowed: bool
    rule: str  # the rule(s) that decided, or why nothing could


@dataclass(frozen=True)
class Verdict:
    source: str
    destination: str
    port: int
    hops: tuple[Hop, ...]

    @property
    def allowed(self) -> bool:
        return all(hop.allowed for hop in self.hops)

    @property
    def blocked_by(self) -> Hop | None:
        """The first hop that stops the flow (None when it gets through)."""
        return next((hop for hop in self.hops if not hop.allowed), None)

    def explain(self) -> str:
        blocked = self.blocked_by
        verdict = "allowed" if blocked is None else f"denied at {blocked.step}: {blocked.rule}"
        return f"{self.source} -> {self.destination} tcp/{self.port}: {verdict}"


def places(topology: Topology, name: str) -> list[Place]:
    """Every instance of a component: one per subnet it sits in, or per probe address outside."""
    component = topology.component(name)
    if component.subnets:
        return [Place(component, topology.subnets[subnet].cidr, topology.subnets[subnet])
                for subnet in component.subnets]
    return [Place(component, address) for address in component.external_addresses]


# -- matching ------------------------------------------------------------------------------------


def covers(cidr: Network, address: Network, rule: str) -> bool:
    """Whether a rule's CIDR covers the whole of `address` (a subnet or a probe address)."""
    if address.subnet_of(cidr):
        return True
    if not cidr.overlaps(address):
        return False
    raise TopologyError(f"{rule} ({cidr}) covers only part of {address}; the model judges whole subnets")


def _overlap(ranges: list[PortRange], ports: PortRange) -> list[PortRange]:
    low, high = ports
    return [(max(a, low), min(b, high)) for a, b in ranges if max(a, low) <= min(b, high)]


def _subtract(ranges: list[PortRange], ports: PortRange) -> list[PortRange]:
    low, high = ports
    left = []
    for a, b in ranges:
        if b < low or a > high:
            left.append((a, b))
            continue
        if a < low:
            left.append((a, low - 1))
        if b > high:
            left.append((high + 1, b))
    return left


def format_ports(ranges: Iterable[PortRange]) -> str:
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def _subnet_label(subnet: Subnet) -> str:
    return f"{subnet.tier} subnet ({subnet.zone})"


def acl_hop(topology: Topology, step: str, subnet: Subnet, *, egress: bool, peer: Network,
            ports: PortRange) -> Hop:
    """Does the subnet's network ACL let every port of `ports` to (egress) or from (ingress) `peer`?"""
    direction = "egress" if egress else "ingress"
    where = f"{step}network ACL {direction} of {_subnet_label(subnet)}"
    if subnet.acl is None:
        return Hop(where, False, "the VPC's default network ACL (managed with no rules: denies everything)")
    remaining, deciding = [ports], []
    for rule in topology.acl_rules[subnet.acl]:
        if rule.egress != egress or not _overlap(remaining, rule.ports) or not covers(rule.cidr, peer, rule.name):
            continue
        if not rule.allow:
            denied = format_ports(_overlap(remaining, rule.ports))
            return Hop(where, False, f"rule {rule.number} {rule.name} denies {denied}")
        deciding.append(f"rule {rule.number} {rule.name}")
        remaining = _subtract(remaining, rule.ports)
        if not remaining:
            return Hop(where, True, ", ".join(deciding))
    return Hop(where, False, f"implicit deny: no rule of {subnet.acl} allows tcp/{format_ports(remaining)} "
                             f"{'to' if egress else 'from'} {peer}")


def sg_hop(topology: Topology, step: str, place: Place, *, egress: bool, peer: Place, port: int) -> Hop:
    """Does any security group of `place` allow the flow to (egress) or from (ingress) `peer`?"""
    groups = place.component.security_groups
    names = ", ".join(sorted(topology.group_names.get(group, group) for group in groups)) or "none"
    where = f"{step}security group {'egress' if egress else 'ingress'} of {place.component.name} [{names}]"
    for rule in topology.sg_rules:
        if rule.group not in groups or rule.egress != egress or not rule.ports[0] <= port <= rule.ports[1]:
            continue
        if ((rule.cidr is not None and covers(rule.cidr, peer.address, rule.name))
                or (rule.peer_group is not None and rule.peer_group in peer.component.security_groups)
                or (rule.prefix_list is not None and rule.prefix_list in peer.component.prefix_lists)):
            return Hop(where, True, rule.name)
    return Hop(where, False, f"no rule allows tcp/{port} {'to' if egress else 'from'} {peer.label}")


def route_to(topology: Topology, subnet: Subnet, destination: Place):
    """The route the subnet's table picks for the destination (longest prefix), or None."""
    table = topology.routes.get(subnet.route_table, ()) if subnet.route_table else ()
    candidates = [route for route in table
                  if (route.destination is not None and covers(route.destination, destination.address, route.name))
                  or (route.prefix_list is not None and route.prefix_list in destination.component.prefix_lists)]
    if subnet.route_table is None and destination.address.subnet_of(topology.vpc_cidr):
        return "local"  # the main route table: local routes only
    return max(candidates, key=lambda route: route.length()) if candidates else None


def _route_hop(topology: Topology, step: str, subnet: Subnet, destination: Place, *, expect: str | None = None):
    route = route_to(topology, subnet, destination)
    where = f"{step}route from {_subnet_label(subnet)} to {destination.label}"
    if route is None:
        table = subnet.route_table or "the main route table"
        return None, Hop(where, False, f"no route in {table}")
    if route == "local":
        return "local", Hop(where, True, "local")
    if expect and route.target != expect:
        return route, Hop(where, False, f"{route.name} leads to the {route.target}, not the {expect}")
    return route, Hop(where, True, f"{route.name} -> {route.target}")


def check(topology: Topology, source: Place, destination: Place, port: int) -> Verdict:
    """Every hop of a TCP flow from `source` to `destination:port`: all the way there, then back."""
    forward: list[Hop] = []
    if source.component.has_security_groups:
        forward.append(sg_hop(topology, "", source, egress=True, peer=destination, port=port))
    there, back = (_from_outside if source.subnet is None else _from_inside)(topology, source, destination, port)
    forward += there
    if destination.component.has_security_groups and destination.subnet is not None:
        forward.append(sg_hop(topology, "", destination, egress=False, peer=source, port=port))
    return Verdict(source.label, destination.label, port, tuple(forward + back))


Legs = tuple[list[Hop], list[Hop]]  # (hops there, hops back)


def _crossing(topology: Topology, origin: Subnet, target: Subnet, origin_peer: Network, target_peer: Network,
              port: int, client_ports: PortRange) -> Legs:
    """A subnet boundary crossed there (to `port`) and back (to the client's ports); none inside one subnet.

    `target_peer` is the address the packet is going to (what the ACLs compare with on the way there)
    and `origin_peer` the one it comes from; they differ from the subnets when a NAT gateway is between.
    """
    if origin.id == target.id:
        return [], []
    return ([acl_hop(topology, "", origin, egress=True, peer=target_peer, ports=(port, port)),
             acl_hop(topology, "", target, egress=False, peer=origin_peer, ports=(port, port))],
            [acl_hop(topology, "return: ", target, egress=True, peer=origin_peer, ports=client_ports),
             acl_hop(topology, "return: ", origin, egress=False, peer=target_peer, ports=client_ports)])


def _public_address_hop(step: str, place: Place) -> Hop:
    public = place.component.public_address
    return Hop(step, public, "public address" if public else f"{place.component.name} has no public address")


def _from_outside(topology: Topology, source: Place, destination: Place, port: int) -> Legs:
    """From the internet: only to a public address, through the internet gateway, with a route back."""
    if destination.subnet is None:
        raise TopologyError(f"{source.label} -> {destination.label}: both are outside the VPC")
    subnet = destination.subnet
    there = [_public_address_hop(f"internet gateway to {destination.label}", destination),
             acl_hop(topology, "", subnet, egress=False, peer=source.address, ports=(port, port))]
    back = [acl_hop(topology, "return: ", subnet, egress=True, peer=source.address, ports=source.component.ephemeral),
            _route_hop(topology, "return: ", subnet, source, expect="internet-gateway")[1]]
    return there, back


def _from_inside(topology: Topology, source: Place, destination: Place, port: int) -> Legs:
    subnet, client = source.subnet, source.component.ephemeral
    route, hop = _route_hop(topology, "", subnet, destination)
    if route is None:
        return [hop], []
    if route == "local" or route.target == "local":
        if destination.subnet is None:
            raise TopologyError(f"{destination.label} is outside the VPC but routed locally")
        there, back = _crossing(topology, subnet, destination.subnet, source.address, destination.address, port,
                                client)
        return [hop, *there], back
    if route.target == "nat-gateway":
        there, back = _through_nat(topology, source, destination, port,
                                   topology.subnets[topology.nat_subnets[route.target_id]])
        return [hop, *there], back
    there = [hop]
    if route.target == "internet-gateway":
        there.append(_public_address_hop(f"internet gateway from {source.label}", source))
    # Through the internet gateway or a gateway endpoint, the packet leaves the subnet and its reply comes in.
    there.append(acl_hop(topology, "", subnet, egress=True, peer=destination.address, ports=(port, port)))
    return there, [acl_hop(topology, "return: ", subnet, egress=False, peer=destination.address, ports=client)]


def _through_nat(topology: Topology, source: Place, destination: Place, port: int, nat_subnet: Subnet) -> Legs:
    """To the NAT gateway (the packet still addressed to the destination), then out from the NAT's address."""
    there, back = _crossing(topology, source.subnet, nat_subnet, source.address, destination.address, port,
                            source.component.ephemeral)
    there += [_route_hop(topology, "", nat_subnet, destination, expect="internet-gateway")[1],
              acl_hop(topology, "", nat_subnet, egress=True, peer=destination.address, ports=(port, port))]
    # The reply reaches the NAT's own address on one of its ports, then is forwarded to the source.
    return there, [acl_hop(topology, "return: ", nat_subnet, egress=False, peer=destination.address,
                           ports=NAT_EPHEMERAL), *back]


def port_segments(topology: Topology) -> list[PortRange]:
    """Port ranges within which every rule of the stack decides alike (so one port speaks for each)."""
    bounds = {1, ALL_PORTS[1] + 1}
    for low, high in [rule.ports for rules in topology.acl_rules.values() for rule in rules] + \
            [rule.ports for rule in topology.sg_rules]:
        if low <= high:
            bounds.update({max(low, 1), high + 1})
    edges = sorted(bound for bound in bounds if 1 <= bound <= ALL_PORTS[1] + 1)
    return [(low, high - 1) for low, high in itertools.pairwise(edges)]


def open_ports(topology: Topology, source: Place, destination: Place) -> list[PortRange]:
    """Every TCP port on which the flow gets through, there and back."""
    found: list[PortRange] = []
    for low, high in port_segments(topology):
        if check(topology, source, destination, low).allowed:
            if found and found[-1][1] == low - 1:
                found[-1] = (found[-1][0], high)
            else:
                found.append((low, high))
    return found
