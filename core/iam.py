"""Small builders for IAM policy documents, always through the provider's typed structs."""

from __future__ import annotations

from collections.abc import Sequence

from constructs import Construct

from core.aws import aws


def condition(test: str, variable: str, *values: str):
    return aws.data_aws_iam_policy_document.DataAwsIamPolicyDocumentStatementCondition(
        test=test, variable=variable, values=list(values))


def principal(kind: str, *identifiers: str):
    return aws.data_aws_iam_policy_document.DataAwsIamPolicyDocumentStatementPrincipals(
        type=kind, identifiers=list(identifiers))


def statement(sid: str, actions: Sequence[str], resources: Sequence[str], *, effect: str = "Allow",
              principals: Sequence = (), conditions: Sequence = ()):
    return aws.data_aws_iam_policy_document.DataAwsIamPolicyDocumentStatement(
        sid=sid, effect=effect, actions=list(actions), resources=list(resources) or None,
        principals=list(principals) or None, condition=list(conditions) or None)


def document(scope: Construct, id: str, statements: Sequence) -> str:
    """Render statements as a policy document; returns its JSON (a Terraform reference)."""
    return aws.data_aws_iam_policy_document.DataAwsIamPolicyDocument(
        scope, id, statement=list(statements)).json


def service_role(scope: Construct, id: str, *, name: str, service: str, account_id: str, description: str,
                 policy_statements: Sequence = (), managed_policy_arns: Sequence[str] = ()):
    """A role only `service` may assume, on behalf of this account only.

    Permissions: one inline policy from `policy_statements` and/or AWS-managed policies.
    """
    # IAM User Guide, "The confused deputy problem" (cross-service): aws:SourceAccount in a service's trust
    # policy; each caller names the page of its service's role (tests/test_service_grants.py holds the table).
    trust = document(scope, f"{id}-trust", [
        aws.data_aws_iam_policy_document.DataAwsIamPolicyDocumentStatement(
            sid="ServiceAssumesRole", effect="Allow", actions=["sts:AssumeRole"],
            principals=[principal("Service", service)],
            condition=[condition("StringEquals", "aws:SourceAccount", account_id)],
        ),
    ])
    role = aws.iam_role.IamRole(scope, id, name=name, description=description, assume_role_policy=trust)
    if policy_statements:
        aws.iam_role_policy.IamRolePolicy(scope, f"{id}-policy", name=f"{name}-policy", role=role.id,
                                          policy=document(scope, f"{id}-policy-document", policy_statements))
    for index, arn in enumerate(managed_policy_arns):
        aws.iam_role_policy_attachment.IamRolePolicyAttachment(scope, f"{id}-managed-{index}", role=role.name,
                                                               policy_arn=arn)
    return role
