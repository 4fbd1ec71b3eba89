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


def check_key_policy_principals(stack: dict, key: dict) -> None:
    """Every AWS principal of a key policy is this account's root or a role of this stack.

    A literal account (another environment's, a vendor's) or `*` would let someone outside the
    account use or administer the key; service principals are checked by the tests of their tier.
    """
    own_root, roles = account_root(stack), resources_of(stack, "aws_iam_role")
    statements = json.loads(key["policy"])["Statement"]
    assert statements, "an empty key policy locks the account out"
    for statement in statements:
        for identifier in aws_principals(statement):
            if isinstance(identifier, str) and identifier.startswith("${aws_iam_role."):
                assert ref_name(identifier, "aws_iam_role") in roles, statement
            else:
                assert identifier == own_root, f"{identifier!r} is not this account: {statement}"
