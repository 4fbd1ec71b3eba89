"""Small builders for IAM policy documents, written inline as JSON.

A document is the JSON text `aws_iam_policy_document` would render for the same statements (the
same element names, Principal "*" for everyone, one Condition map per operator), built here rather
than by that data source: each data source cost the synthesis two round trips into jsii's Node
process (its construction and its `json` read) and Terraform a data source to read at plan time,
deferred to apply whenever a resource it references changes. Terraform references in the values
(cdktf tokens) land in the JSON string as `${...}` and are resolved by Terraform like any other
interpolation. tests/test_policy_validation.py has the provider render every shipped document from
the equivalent data source and compares the two.
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


def _unique(values: Sequence[str]) -> list[str]:
    """The data source holds these as sets: repeats collapse, the first occurrence keeps its place."""
    return list(dict.fromkeys(values))


def statement(sid: str, actions: Sequence[str], resources: Sequence[str], *, effect: str = "Allow",
              principals: Sequence[Principal] = (), conditions: Sequence[Condition] = ()) -> dict:
    """One statement, as the JSON element of a policy document."""
    rendered: dict = {"Sid": sid, "Effect": effect, "Action": _unique(actions)}
    if resources:
        rendered["Resource"] = _unique(resources)
    if principals:
        if len(principals) == 1 and principals[0] == Principal("*", ("*",)):
            rendered["Principal"] = "*"
        else:
            merged: dict[str, list[str]] = {}
            for item in principals:
                merged.setdefault(item.kind, []).extend(item.identifiers)
            rendered["Principal"] = {kind: _unique(identifiers) for kind, identifiers in merged.items()}
    if conditions:
        tests: dict[str, dict[str, list[str]]] = {}
        for item in conditions:
            tests.setdefault(item.test, {}).setdefault(item.variable, []).extend(item.values)
        rendered["Condition"] = {test: {variable: _unique(values) for variable, values in variables.items()}
                                 for test, variables in tests.items()}
    return rendered


def document(statements: Sequence[dict]) -> str:
    """The policy document holding `statements`, as JSON text (Terraform references inside are resolved at plan)."""
    return json.dumps({"Version": VERSION, "Statement": list(statements)})


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
