"""Who a KMS key policy lets in: this stack's account, never another one."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from tests.conftest import resources_of
from tests.network_checks import policy_document, ref_name


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


# --- what a role must be able to do (issue 22: required grants, not only forbidden ones) -----------

def iam_glob(pattern: str, value: str) -> bool:
    """Whether an IAM pattern (`*` any run, `?` one character, case-sensitive as for ARNs) matches `value`.

    fnmatch would read `[0]` in `${...master_user_secret[0].secret_arn}` as a character class.
    """
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


def patterns_overlap(left: str, right: str) -> bool:
    """Whether some string matches both IAM patterns (`secretsmanager:Get*` and `*:GetSecretValue`,
    `secret:rds!*` and `arn:*:secretsmanager:*`): either may be the wider one, or neither."""
    @functools.cache
    def meet(i: int, j: int) -> bool:
        if i == len(left) or j == len(right):
            return set(left[i:] + right[j:]) <= {"*"}
        if left[i] == "*" or right[j] == "*":
            return ((left[i] == "*" and (meet(i + 1, j) or meet(i, j + 1)))
                    or (right[j] == "*" and (meet(i, j + 1) or meet(i + 1, j))))
        return (left[i] == right[j] or "?" in (left[i], right[j])) and meet(i + 1, j + 1)
    return meet(0, 0)


def arn_segments(pattern: str) -> list[str]:
    """The six segments of an ARN pattern; a trailing `*` segment (`arn:aws:secretsmanager:*`) spans the rest."""
    parts = pattern.split(":", 5)
    while len(parts) < 6 and parts[-1] == "*":
        parts.append("*")
    return parts


def arns_overlap(left: str, right: str) -> bool:
    """Whether some ARN matches both ARN patterns, segment by segment (a wildcard stays in its segment)."""
    a, b = arn_segments(left), arn_segments(right)
    return len(a) == len(b) == 6 and all(patterns_overlap(x, y) for x, y in zip(a, b, strict=True))


@dataclass(frozen=True)
class Need:
    """One action a role must be allowed on one resource, with the AWS page that documents it.

    `resource` lists the equivalent spellings of the one resource (a reference or its literal ARN).
    """
    action: str
    resource: tuple[str, ...]
    doc: str


def needs(actions: Iterable[str], resource: str | tuple[str, ...], doc: str) -> list[Need]:
    spellings = (resource,) if isinstance(resource, str) else resource
    return [Need(action, spellings, doc) for action in actions]


def allows(statements: Iterable[dict], need: Need) -> bool:
    """Some Allow statement covers the action and one spelling of the resource (conditions may narrow it)."""
    return any(statement.get("effect", "Allow") == "Allow"
               and any(iam_glob(action.lower(), need.action.lower()) for action in statement["actions"])
               and any(iam_glob(pattern, spelling) for pattern in statement.get("resources", [])
                       for spelling in need.resource)
               for statement in statements)


def role_policy_statements(stack: dict, role_ref: str) -> list[dict]:
    """Every statement of the role's inline policies (`aws_iam_role_policy` resources and `inline_policy`)."""
    role = ref_name(role_ref, "aws_iam_role")
    documents = [policy["policy"] for policy in resources_of(stack, "aws_iam_role_policy").values()
                 if ref_name(policy["role"], "aws_iam_role") == role]
    documents += [inline["policy"] for inline in resources_of(stack, "aws_iam_role")[role].get("inline_policy", [])]
    return [statement for document in documents for statement in policy_document(stack, document)["statement"]]


def check_role_can(stack: dict, role_ref: str, required: Iterable[Need], what: str) -> None:
    """The role `role_ref` (a `${aws_iam_role.X.arn}` reference) is allowed every `required` action."""
    statements = role_policy_statements(stack, role_ref)
    missing = [need for need in required if not allows(statements, need)]
    assert not missing, f"the {what} role cannot {missing[0].action} on {missing[0].resource[0]} " \
                        f"(AWS: {missing[0].doc}); {len(missing)} grant(s) missing"


def check_role_carries(stack: dict, role_ref: str, managed_policy: str, what: str, doc: str) -> None:
    """An AWS-managed policy (by its name after `policy/`) is attached to the role."""
    role = ref_name(role_ref, "aws_iam_role")
    attached = [a["policy_arn"] for a in resources_of(stack, "aws_iam_role_policy_attachment").values()
                if ref_name(a["role"], "aws_iam_role") == role]
    attached += resources_of(stack, "aws_iam_role")[role].get("managed_policy_arns", [])
    assert any(arn.endswith(f":policy/{managed_policy}") for arn in attached), \
        f"the {what} role lacks the managed policy {managed_policy} (AWS: {doc})"
