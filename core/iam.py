"""Small builders for IAM policy documents, written inline as JSON.

A document is the JSON text `aws_iam_policy_document` renders (its `json` attribute) for the same
statements: its element order, one value without a list, Principal "*" for everyone, principals and
conditions merged and sorted by key, two-space indentation; only several values of one element keep
the order they were given in (the provider sorts them once it has resolved the references in them:
AWS reads them as a set either way). It is built here rather
than by that data source: each data source cost the synthesis two round trips into jsii's Node
process (its construction and its `json` read) and Terraform a data source to read at plan time,
deferred to apply whenever a resource it references changes. Terraform references in the values
(cdktf tokens) land in the JSON string as `${...}` and are resolved by Terraform like any other
interpolation. tests/test_policy_validation.py has the provider render every shipped document from
the equivalent data source and compares the texts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from constructs import Construct

from core.aws import aws

VERSION = "2012-10-17"


@dataclass(frozen=True)
class Condition:
    test: str
    variable: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Principal:
    kind: str
    identifiers: tuple[str, ...]


def condition(test: str, variable: str, *values: str) -> Condition:
    return Condition(test, variable, values)


def principal(kind: str, *identifiers: str) -> Principal:
    return Principal(kind, identifiers)


def _values(values: Sequence[str]) -> str | list[str]:
    """As the data source renders a set of strings: without repeats, one written without a list. Several
    keep the order they were given in: the provider sorts them once the references are resolved, which
    synthesis cannot do (sorting the unresolved text would depend on how a reference is written)."""
    unique = list(dict.fromkeys(values))
    return unique[0] if len(unique) == 1 else unique


def statement(sid: str, actions: Sequence[str], resources: Sequence[str], *, effect: str = "Allow",
              principals: Sequence[Principal] = (), conditions: Sequence[Condition] = ()) -> dict:
    """One statement, as the JSON element of a policy document."""
    rendered: dict = {"Sid": sid, "Effect": effect, "Action": _values(actions)}
    if resources:
        rendered["Resource"] = _values(resources)
    if principals:
        if len(principals) == 1 and principals[0] == Principal("*", ("*",)):
            rendered["Principal"] = "*"
        else:
            merged: dict[str, list[str]] = {}
            for item in principals:
                merged.setdefault(item.kind, []).extend(item.identifiers)
            rendered["Principal"] = {kind: _values(merged[kind]) for kind in sorted(merged)}
    if conditions:
        tests: dict[str, dict[str, list[str]]] = {}
        for item in conditions:
            tests.setdefault(item.test, {}).setdefault(item.variable, []).extend(item.values)
        rendered["Condition"] = {test: {variable: _values(tests[test][variable]) for variable in sorted(tests[test])}
                                 for test in sorted(tests)}
    return rendered


def document(statements: Sequence[dict]) -> str:
    """The policy document holding `statements`, as JSON text (Terraform references inside are resolved at plan)."""
    text = json.dumps({"Version": VERSION, "Statement": list(statements)}, indent=2)
    # Go's encoder (the provider's) escapes these three for HTML; Python's does not.
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def service_role(scope: Construct, id: str, *, name: str, service: str, account_id: str, description: str,
                 policy_statements: Sequence[dict] = (), managed_policy_arns: Sequence[str] = ()):
    """A role only `service` may assume, on behalf of this account only.

    Permissions: one inline policy from `policy_statements` and/or AWS-managed policies.
    """
    # IAM User Guide, "The confused deputy problem" (cross-service): aws:SourceAccount in a service's trust
    # policy; each caller names the page of its service's role (tests/test_service_grants.py holds the table).
    trust = document([statement("ServiceAssumesRole", ["sts:AssumeRole"], [],
                                principals=[principal("Service", service)],
                                conditions=[condition("StringEquals", "aws:SourceAccount", account_id)])])
    role = aws.iam_role.IamRole(scope, id, name=name, description=description, assume_role_policy=trust)
    if policy_statements:
        aws.iam_role_policy.IamRolePolicy(scope, f"{id}-policy", name=f"{name}-policy", role=role.id,
                                          policy=document(policy_statements))
    for index, arn in enumerate(managed_policy_arns):
        aws.iam_role_policy_attachment.IamRolePolicyAttachment(scope, f"{id}-managed-{index}", role=role.name,
                                                               policy_arn=arn)
    return role
