"""Who a KMS key policy lets in: this stack's account, never another one."""

from __future__ import annotations

import json

from tests.conftest import resources_of
from tests.network_checks import ref_name


def account_root(stack: dict) -> str:
    """The account root principal of the account the stack is applied in, as the stack spells it."""
    (partition,) = stack["data"]["aws_partition"]
    (caller,) = stack["data"]["aws_caller_identity"]
    return (f"arn:${{data.aws_partition.{partition}.partition}}:iam::"
            f"${{data.aws_caller_identity.{caller}.account_id}}:root")


def aws_principals(statement: dict) -> list:
    principal = statement["Principal"]
    if not isinstance(principal, dict):
        return [principal]  # "*": everyone
    identifiers = principal.get("AWS", [])
    return identifiers if isinstance(identifiers, list) else [identifiers]


def key_policies(stack: dict) -> dict[str, dict]:
    """Every key's policy document by the key's logical id, written on the key or attached to it by an
    `aws_kms_key_policy`: exactly one of the two (both would fight over it; neither leaves AWS's default)."""
    attached = {ref_name(body["key_id"], "aws_kms_key"): body["policy"]
                for body in resources_of(stack, "aws_kms_key_policy").values()}
    policies = {}
    for key_id, key in resources_of(stack, "aws_kms_key").items():
        assert ("policy" in key) != (key_id in attached), f"{key_id}: policy on the key, attached: {key_id in attached}"
        policies[key_id] = json.loads(key["policy"] if "policy" in key else attached[key_id])
    return policies


def check_key_policy_principals(stack: dict, key_id: str) -> None:
    """Every AWS principal of a key policy is this account's root or a role of this stack.

    A literal account (another environment's, a vendor's) or `*` would let someone outside the
    account use or administer the key; service principals are checked by the tests of their tier.
    """
    own_root, roles = account_root(stack), resources_of(stack, "aws_iam_role")
    statements = key_policies(stack)[key_id]["Statement"]
    assert statements, "an empty key policy locks the account out"
    for statement in statements:
        for identifier in aws_principals(statement):
            if isinstance(identifier, str) and identifier.startswith("${aws_iam_role."):
                assert ref_name(identifier, "aws_iam_role") in roles, statement
            else:
                assert identifier == own_root, f"{identifier!r} is not this account: {statement}"
