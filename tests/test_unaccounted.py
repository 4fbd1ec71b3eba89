"""ops/unaccounted.py: what the refreshed state of a security group or role holds beyond the managed resources.

A deploy's settle (a refresh-only apply) records whatever was added by hand, so the drift plan alone
finds nothing; these checks read the refreshed state. Plans here are in the shape of `terraform show
-json` (prior_state, configuration); the emulated deployment checks the real thing
(tests/test_emulated_deploy.py, a rule added by hand, settled, still named).
"""

from __future__ import annotations

import pytest

from ops import plan_report, unaccounted

GROUP = "aws_security_group.network_alb-sg"
ROLE = "aws_iam_role.api_task-role"


def resource(address: str, values: dict, mode: str = "managed") -> dict:
    kind, name = address.removeprefix("data.").split(".")
    return {"address": address, "mode": mode, "type": kind, "name": name, "values": values}


def https_in(cidr: str) -> dict:
    return {"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": [cidr], "ipv6_cidr_blocks": [],
            "prefix_list_ids": [], "security_groups": [], "self": False, "description": ""}


def refreshed(group_ingress: list[dict], inline: list[str], attached: list[str]) -> dict:
    """A refresh-only plan's JSON: a group with its managed rule, a role with its policy and attachment."""
    resources = [
        resource(GROUP, {"id": "sg-1", "ingress": group_ingress, "egress": []}),
        resource("aws_vpc_security_group_ingress_rule.network_alb-https-in", {
            "security_group_id": "sg-1", "ip_protocol": "tcp", "from_port": 443, "to_port": 443,
            "cidr_ipv4": "0.0.0.0/0"}),
        resource(ROLE, {"name": "webapp-dev-api-task", "inline_policy": [{"name": n, "policy": "{}"} for n in inline],
                        "managed_policy_arns": attached}),
        resource("aws_iam_role_policy.api_task-role-policy", {"role": "webapp-dev-api-task", "name": "task"}),
        resource("aws_iam_role_policy_attachment.api_xray", {
            "role": "webapp-dev-api-task", "policy_arn": "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess"}),
    ]
    return {"prior_state": {"values": {"root_module": {"resources": resources}}}}


CLEAN = dict(group_ingress=[https_in("0.0.0.0/0")], inline=["task"],
             attached=["arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess"])


def test_a_state_matching_its_managed_resources_holds_nothing_unaccounted():
    assert unaccounted.unaccounted(refreshed(**CLEAN)) == []


HAND_RULE = refreshed(**{**CLEAN, "group_ingress": [https_in("0.0.0.0/0"), {
    **https_in("198.51.100.0/24"), "from_port": 22, "to_port": 22}]})


def check_hand_rule_named(shown: dict) -> None:
    assert unaccounted.unaccounted(shown) == [f"{GROUP}: ingress tcp 22 from 198.51.100.0/24 is in no rule resource"]


def test_a_rule_added_by_hand_is_named_with_its_group_ports_and_peer():
    check_hand_rule_named(HAND_RULE)


def test_a_peer_added_to_a_managed_rule_entry_is_named_alone():
    """AWS groups peers of equal ports into one entry: each peer is its own rule."""
    entry = https_in("0.0.0.0/0")
    entry["cidr_blocks"].append("203.0.113.0/24")
    assert unaccounted.unaccounted(refreshed(**{**CLEAN, "group_ingress": [entry]})) == [
        f"{GROUP}: ingress tcp 443 from 203.0.113.0/24 is in no rule resource"]


def test_all_traffic_and_self_rules_are_described():
    entry = {**https_in("0.0.0.0/0"), "protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": [],
             "self": True}
    assert unaccounted.unaccounted(refreshed(**{**CLEAN, "group_ingress": [https_in("0.0.0.0/0"), entry]})) == [
        f"{GROUP}: ingress all traffic from sg-1 is in no rule resource"]


def test_a_role_policy_put_or_attached_by_hand_is_named():
    shown = refreshed(**{**CLEAN, "inline": ["task", "debug"],
                         "attached": [*CLEAN["attached"], "arn:aws:iam::aws:policy/AdministratorAccess"]})
    assert unaccounted.unaccounted(shown) == [
        f"{ROLE}: inline policy debug is in no aws_iam_role_policy",
        f"{ROLE}: attached policy arn:aws:iam::aws:policy/AdministratorAccess is in no aws_iam_role_policy_attachment"]


def test_drift_lines_report_unaccounted_things_as_drift():
    lines = plan_report.drift_lines("dev", [], ["aws_security_group.g: ingress tcp 22 from 10.0.0.0/8 is in no rule"])
    assert lines == ["dev: DRIFT: 1 in the state that no managed resource accounts for (added outside Terraform; "
                     "a deploy's refresh keeps it):", "  aws_security_group.g: ingress tcp 22 from 10.0.0.0/8 is in "
                     "no rule"]


def test_bite_a_check_that_trusts_the_groups_own_list_misses_the_hand_added_rule(monkeypatch):
    monkeypatch.setattr(unaccounted, "managed_rules", lambda resources: {
        rule for group in unaccounted._of_type(resources, "aws_security_group") for rule in
        unaccounted.group_rules(group)})
    with pytest.raises(AssertionError, match=r"198\.51\.100\.0/24"):
        check_hand_rule_named(HAND_RULE)
