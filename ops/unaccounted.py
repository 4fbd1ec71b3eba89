"""What the state of a container resource holds that no managed resource accounts for.

`deploy` ends with a refresh-only apply (ops/terraform.py `settle`), so whatever was added by hand
to a security group or a role before a deploy is recorded in the state as if it belonged there, and
a later refresh finds nothing changed. These checks read the refreshed state itself
(`prior_state` of the drift plan) and name every such thing, whatever the settle recorded:

- a security group's rule that no `aws_vpc_security_group_{ingress,egress}_rule` resource manages;
- a role's inline policy that no `aws_iam_role_policy` manages, and an attached managed policy that
  no `aws_iam_role_policy_attachment` manages.

A bucket policy (or a role's trust policy) needs no such check: `aws_s3_bucket_policy` owns the whole
document, so a statement added by hand is a change the deploy's own plan reverts before the settle,
and the drift refresh reports it until then. (Comparing statements here was tried: on the emulator
the refreshed documents differ from the data sources' renderings in form, which would report every
log bucket's policy; a whole-document resource does not need it.)

Only addresses, directions, protocols, ports, peers and policy names are printed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

RULE_TYPES = {"ingress": "aws_vpc_security_group_ingress_rule", "egress": "aws_vpc_security_group_egress_rule"}
# A security group's rule list names its peers in these keys; a rule resource in these.
PEER_KEYS = {"cidr_blocks": "cidr_ipv4", "ipv6_cidr_blocks": "cidr_ipv6", "prefix_list_ids": "prefix_list_id",
             "security_groups": "referenced_security_group_id"}

Resource = Mapping[str, Any]
Rule = tuple[str, str, str, int, int, str, str]  # group id, direction, protocol, from, to, peer kind, peer


def state_resources(shown: Mapping[str, Any]) -> list[Resource]:
    """Every resource (and data source) of the refreshed state in a `terraform show -json` plan."""
    module = (shown.get("prior_state") or {}).get("values", {}).get("root_module", {})
    found: list[Resource] = []
    stack = [module]
    while stack:
        current = stack.pop()
        found.extend(current.get("resources", []))
        stack.extend(current.get("child_modules", []))
    return found


def _of_type(resources: list[Resource], kind: str, mode: str = "managed") -> Iterator[Resource]:
    return (resource for resource in resources if resource.get("type") == kind and resource.get("mode") == mode)


def _ports(protocol: str, low: Any, high: Any) -> tuple[str, int, int]:
    """One spelling for "every port": a group lists protocol -1 with 0-0, a rule resource with nulls."""
    protocol = str(protocol).lower()
    if protocol in ("-1", "all"):
        return "-1", 0, 0
    return protocol, int(low if low is not None else 0), int(high if high is not None else 0)


def managed_rules(resources: list[Resource]) -> set[Rule]:
    rules = set()
    for direction, kind in RULE_TYPES.items():
        for resource in _of_type(resources, kind):
            values = resource["values"]
            protocol, low, high = _ports(values.get("ip_protocol"), values.get("from_port"), values.get("to_port"))
            for peer_kind in PEER_KEYS.values():
                if values.get(peer_kind):
                    rules.add((values["security_group_id"], direction, protocol, low, high, peer_kind,
                               values[peer_kind]))
    return rules


def group_rules(group: Resource) -> Iterator[Rule]:
    """Each (peer-by-peer) rule a security group's state lists in `ingress` and `egress`."""
    values = group["values"]
    for direction in RULE_TYPES:
        for entry in values.get(direction) or []:
            protocol, low, high = _ports(entry.get("protocol"), entry.get("from_port"), entry.get("to_port"))
            for group_key, peer_kind in PEER_KEYS.items():
                for peer in entry.get(group_key) or []:
                    if group_key == "security_groups":  # another account's group reads "<account>/sg-..."
                        peer = peer.split("/")[-1]
                    yield values["id"], direction, protocol, low, high, peer_kind, peer
            if entry.get("self"):
                yield values["id"], direction, protocol, low, high, "referenced_security_group_id", values["id"]


def _describe_rule(rule: Rule) -> str:
    _, direction, protocol, low, high, _, peer = rule
    ports = "all traffic" if protocol == "-1" else f"{protocol} {low}" + (f"-{high}" if high != low else "")
    return f"{direction} {ports} {'from' if direction == 'ingress' else 'to'} {peer}"


def unaccounted_rules(resources: list[Resource]) -> Iterator[str]:
    managed = managed_rules(resources)
    for group in _of_type(resources, "aws_security_group"):
        for rule in sorted(set(group_rules(group)) - managed):
            yield f"{group['address']}: {_describe_rule(rule)} is in no rule resource"


def unaccounted_role_policies(resources: list[Resource]) -> Iterator[str]:
    inline = {(r["values"]["role"], r["values"]["name"]) for r in _of_type(resources, "aws_iam_role_policy")}
    attached = {(r["values"]["role"], r["values"]["policy_arn"])
                for r in _of_type(resources, "aws_iam_role_policy_attachment")}
    for role in _of_type(resources, "aws_iam_role"):
        name = role["values"].get("name")
        for policy in role["values"].get("inline_policy") or []:
            if policy.get("name") and (name, policy["name"]) not in inline:
                yield f"{role['address']}: inline policy {policy['name']} is in no aws_iam_role_policy"
        for arn in role["values"].get("managed_policy_arns") or []:
            if (name, arn) not in attached:
                yield f"{role['address']}: attached policy {arn} is in no aws_iam_role_policy_attachment"


def unaccounted(shown: Mapping[str, Any]) -> list[str]:
    """Every line of the three checks above, for a refresh-only plan (`terraform show -json`)."""
    resources = state_resources(shown)
    return [*unaccounted_rules(resources), *unaccounted_role_policies(resources)]
