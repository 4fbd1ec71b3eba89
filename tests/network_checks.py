"""Checks of SPEC 4.1 / properties 2 and 8 on one synthesized environment stack.

Shared by the example-based tests (the shipped environments) and the hypothesis properties
(generated environments), so both assert exactly the same rules.
"""

from __future__ import annotations

import ipaddress
import json
import re

from tests.conftest import resources_of

ANYWHERE = "0.0.0.0/0"
REF = re.compile(r"^\$\{([a-z0-9_]+)\.([A-Za-z0-9_-]+)\.([a-z_]+)\}$")


def ref_name(expression: str, resource_type: str) -> str:
    """The logical id a `${type.name.attr}` reference points at (asserting its type)."""
    match = REF.match(expression)
    assert match and match.group(1) == resource_type, f"{expression!r} is not a {resource_type} reference"
    return match.group(2)


# The attributes core.iam.document writes an IAM policy document into (inline JSON, or a reference to
# an `aws_iam_policy_document` data source in stacks built before issue 23 and in hand-made fixtures).
DOCUMENT_ATTRIBUTES = {"aws_iam_role": "assume_role_policy", "aws_iam_role_policy": "policy",
                       "aws_s3_bucket_policy": "policy", "aws_sns_topic_policy": "policy"}
DATA_DOCUMENT = re.compile(r"^\$\{data\.aws_iam_policy_document\.([A-Za-z0-9_-]+)\.json\}$")


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def document_block(policy: dict) -> dict:
    """An inline JSON policy document in the data source's block form (`statement` blocks with `sid`,
    `effect`, `actions`, `resources`, `principals` and `condition`), so every check reads both alike."""
    statements = []
    for item in _as_list(policy["Statement"]):
        block = {"sid": item.get("Sid"), "effect": item.get("Effect", "Allow"), "actions": _as_list(item["Action"])}
        if "Resource" in item:
            block["resources"] = _as_list(item["Resource"])
        principal = item.get("Principal")
        if principal == "*":
            block["principals"] = [{"type": "*", "identifiers": ["*"]}]
        elif principal:
            block["principals"] = [{"type": kind, "identifiers": _as_list(ids)} for kind, ids in principal.items()]
        if item.get("Condition"):
            block["condition"] = [{"test": test, "variable": variable, "values": _as_list(values)}
                                  for test, variables in item["Condition"].items()
                                  for variable, values in variables.items()]
        statements.append({key: value for key, value in block.items() if value is not None})
    unknown = {key for item in _as_list(policy["Statement"]) for key in item} - {
        "Sid", "Effect", "Action", "Resource", "Principal", "Condition"}
    assert not unknown, f"policy elements the checks do not read: {sorted(unknown)}"
    return {"statement": statements}


def policy_document(stack: dict, expression: str) -> dict:
    """The policy document an attribute holds, in block form: its inline JSON converted (document_block),
    or the `aws_iam_policy_document` data source a `${data.aws_iam_policy_document.x.json}` names."""
    match = DATA_DOCUMENT.match(expression)
    if match:
        return stack["data"]["aws_iam_policy_document"][match.group(1)]
    try:
        policy = json.loads(expression)
    except json.JSONDecodeError:
        raise AssertionError(f"{expression!r} is neither a policy document nor a reference to one") from None
    return document_block(policy)


def iam_documents(stack: dict) -> dict[str, dict]:
    """Every IAM policy document of the stack (DOCUMENT_ATTRIBUTES), in block form, by where it is: a data
    source by its logical id, an inline document by `<resource type>.<logical id>` of the resource holding it.
    KMS key and endpoint policies are not in here (tests/iam_checks.py key_policies)."""
    documents = dict(stack.get("data", {}).get("aws_iam_policy_document", {}))
    for resource_type, attribute in DOCUMENT_ATTRIBUTES.items():
        for logical_id, config in stack.get("resource", {}).get(resource_type, {}).items():
            value = config.get(attribute)
            if isinstance(value, str) and not DATA_DOCUMENT.match(value):
                documents[f"{resource_type}.{logical_id}"] = policy_document(stack, value)
    return documents


def edit_documents(stack: dict, edit) -> None:
    """Apply `edit(where, block)` to every IAM policy document of the stack (iam_documents' names) and write
    the edited blocks back: a data source in place, an inline document as JSON rendered from the block."""
    from ops.policy_documents import render_policy_document

    for name, block in stack.get("data", {}).get("aws_iam_policy_document", {}).items():
        edit(name, block)
    for resource_type, attribute in DOCUMENT_ATTRIBUTES.items():
        for logical_id, config in stack.get("resource", {}).get(resource_type, {}).items():
            value = config.get(attribute)
            if isinstance(value, str) and not DATA_DOCUMENT.match(value):
                block = policy_document(stack, value)
                edit(f"{resource_type}.{logical_id}", block)
                config[attribute] = json.dumps(render_policy_document(block))


def subnets_by_tier(stack: dict) -> dict[str, dict[str, dict]]:
    tiers: dict[str, dict[str, dict]] = {}
    for name, subnet in resources_of(stack, "aws_subnet").items():
        tiers.setdefault(subnet["tags"]["Tier"], {})[name] = subnet
    return tiers


def security_group_names(stack: dict) -> dict[str, str]:
    """Logical id -> component ("alb", "api", "database", ...), from the group's Name tag."""
    return {name: group["name"].rsplit("-", 1)[-1] for name, group in resources_of(stack, "aws_security_group").items()}


def check_subnet_layout(stack: dict, vpc_cidr: str, az_count: int) -> None:
    vpc = ipaddress.IPv4Network(vpc_cidr)
    (vpc_resource,) = resources_of(stack, "aws_vpc").values()
    assert vpc_resource["cidr_block"] == vpc_cidr
    assert vpc_resource["enable_dns_support"] is True and vpc_resource["enable_dns_hostnames"] is True
    tiers = subnets_by_tier(stack)
    assert set(tiers) == {"public", "app", "data"}
    networks = []
    for tier, subnets in tiers.items():
        assert len(subnets) == az_count, f"{tier} subnets must span the {az_count} configured zones"
        zones = {subnet["availability_zone"] for subnet in subnets.values()}
        assert len(zones) == az_count, f"{tier} subnets share a zone"
        for subnet in subnets.values():
            network = ipaddress.IPv4Network(subnet["cidr_block"])
            assert network.subnet_of(vpc), f"{network} is outside {vpc}"
            assert subnet["map_public_ip_on_launch"] is False
            networks.append(network)
    for index, network in enumerate(networks):
        for other in networks[:index]:
            assert not network.overlaps(other), f"{network} overlaps {other}"


def routes_of_tier(stack: dict, tier: str) -> list[dict]:
    """Every route (inline or aws_route) of every route table associated with the tier's subnets."""
    subnet_names = set(subnets_by_tier(stack)[tier])
    tables = {
        ref_name(association["route_table_id"], "aws_route_table")
        for association in resources_of(stack, "aws_route_table_association").values()
        if ref_name(association["subnet_id"], "aws_subnet") in subnet_names
    }
    assert tables, f"{tier} subnets have no route table"
    routes = [route for route in resources_of(stack, "aws_route").values()
              if ref_name(route["route_table_id"], "aws_route_table") in tables]
    for table in tables:
        routes.extend(resources_of(stack, "aws_route_table")[table].get("route", []))
    return routes


def vpc_network(stack: dict) -> ipaddress.IPv4Network:
    (vpc,) = resources_of(stack, "aws_vpc").values()
    return ipaddress.IPv4Network(vpc["cidr_block"])


def reaches_outside(vpc: ipaddress.IPv4Network, rule: dict, ipv4: str, ipv6: str, prefix_list: str) -> bool:
    """Whether a rule's or route's peer lies (partly) outside the VPC, i.e. on the internet.

    AWS sends everything outside the VPC's own range out of it, so a rule for 0.0.0.0/1 (half the
    internet), 8.8.8.0/24 or a neighbouring private range opens as surely as 0.0.0.0/0; only a block
    inside this VPC stays internal. The VPC has no IPv6 range, so any IPv6 block is outside, and so
    is a prefix list (its entries are not in the synthesized stack).
    """
    if rule.get(ipv6) or rule.get(prefix_list):
        return True
    cidr = rule.get(ipv4)
    return cidr is not None and not ipaddress.IPv4Network(cidr, strict=False).subnet_of(vpc)


def check_data_tier_is_isolated(stack: dict) -> None:
    """Property 2: no route from the data subnets to an internet or NAT gateway, nor to anywhere outside the VPC."""
    vpc = vpc_network(stack)
    for route in routes_of_tier(stack, "data"):
        assert not route.get("gateway_id") and not route.get("nat_gateway_id"), route
        assert not reaches_outside(vpc, route, "destination_cidr_block", "destination_ipv6_cidr_block",
                                   "destination_prefix_list_id"), route


def check_app_tier_leaves_through_nat(stack: dict) -> None:
    """The application subnets reach the internet, and only through a NAT gateway."""
    routes = routes_of_tier(stack, "app")
    assert routes, "the application subnets have no route out"
    for route in routes:
        assert route["destination_cidr_block"] == ANYWHERE, route
        ref_name(route["nat_gateway_id"], "aws_nat_gateway")
    for endpoint in resources_of(stack, "aws_vpc_endpoint").values():
        assert endpoint["vpc_endpoint_type"] in ("Gateway", "Interface")


def check_security_groups(stack: dict, container_port: int) -> None:
    """Property 8: only the ALB group admits the internet (any source outside the VPC), only on 80/443;
    Aurora only from the API on 5432."""
    names = security_group_names(stack)
    ingress = list(resources_of(stack, "aws_vpc_security_group_ingress_rule").values())
    for group in resources_of(stack, "aws_security_group").values():
        assert "ingress" not in group and "egress" not in group, "rules must be separate, described resources"
    for rule in ingress + list(resources_of(stack, "aws_vpc_security_group_egress_rule").values()):
        assert rule.get("description"), f"undescribed rule {rule}"
        assert rule["ip_protocol"] == "tcp" and rule["from_port"] == rule["to_port"], rule
    vpc = vpc_network(stack)
    for rule in ingress:
        group = names[ref_name(rule["security_group_id"], "aws_security_group")]
        if reaches_outside(vpc, rule, "cidr_ipv4", "cidr_ipv6", "prefix_list_id"):
            assert group == "alb" and rule["from_port"] in (80, 443), f"{group} admits the internet: {rule}"
        if group == "alb":  # .checkov.yaml CKV_AWS_231: nothing admits 3389 (or any other port) here
            assert rule["from_port"] in (80, 443), f"the load balancer admits port {rule['from_port']}: {rule}"
    database = [rule for rule in ingress if names[ref_name(rule["security_group_id"], "aws_security_group")]
                == "database"]
    assert database, "the database group must admit the API"
    for rule in database:
        assert rule["from_port"] == 5432 and "cidr_ipv4" not in rule
        assert names[ref_name(rule["referenced_security_group_id"], "aws_security_group")] == "api"
    api = [rule for rule in ingress if names[ref_name(rule["security_group_id"], "aws_security_group")] == "api"]
    assert [(r["from_port"], names[ref_name(r["referenced_security_group_id"], "aws_security_group")])
            for r in api] == [(container_port, "alb")]


def check_default_security_group_is_empty(stack: dict) -> None:
    (default,) = resources_of(stack, "aws_default_security_group").values()
    assert not default.get("ingress") and not default.get("egress")


def nat_gateway_count(stack: dict) -> int:
    return len(resources_of(stack, "aws_nat_gateway"))


def check_network_acls(stack: dict) -> None:
    """Explicit rules only: no allow-all protocol, every NACL attached to its tier's subnets."""
    for rule in resources_of(stack, "aws_network_acl_rule").values():
        assert rule["protocol"] == "tcp" and rule["rule_action"] == "allow", rule
        assert rule["from_port"] > 0, rule
    acls = resources_of(stack, "aws_network_acl")
    assert len(acls) == 3
    for acl in acls.values():
        assert acl["subnet_ids"], "a NACL without subnets protects nothing"
        assert "ingress" not in acl and "egress" not in acl
    (default,) = resources_of(stack, "aws_default_network_acl").values()
    assert not default.get("ingress") and not default.get("egress"), "the default NACL must deny all"


# Issue 14: what an endpoint lets through. AWS's default policy allows anything, to any account.
ACCOUNT_REF = "${data.aws_caller_identity.caller.account_id}"
OWN_ACCOUNT_ONLY = {"StringEquals": {"aws:PrincipalAccount": ACCOUNT_REF, "aws:ResourceAccount": ACCOUNT_REF}}


def check_endpoint_policies(stack: dict, region: str) -> None:
    """Every endpoint: this account's principals on this account's resources; the S3 endpoint also ECR's layers."""
    endpoints = resources_of(stack, "aws_vpc_endpoint").values()
    assert endpoints
    for endpoint in endpoints:
        assert endpoint.get("policy"), f"{endpoint['service_name']} has AWS's allow-everything default policy"
        statements = json.loads(endpoint["policy"])["Statement"]
        assert all(item["Effect"] == "Allow" and item["Principal"] == {"AWS": "*"} for item in statements)
        broad = [item for item in statements if item["Action"] == "*"]
        assert len(broad) == 1 and broad[0]["Resource"] == "*", statements
        assert broad[0].get("Condition") == OWN_ACCOUNT_ONLY, broad[0]
        narrow = [(item["Action"], item["Resource"]) for item in statements if item not in broad]
        if endpoint["service_name"].endswith(".s3"):
            layers = f"arn:${{data.aws_partition.partition.partition}}:s3:::prod-{region}-starport-layer-bucket/*"
            assert narrow == [("s3:GetObject", [layers])], narrow
        else:
            assert narrow == [], narrow
