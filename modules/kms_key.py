"""A customer-managed KMS key with rotation, an alias and an explicit key policy."""

from __future__ import annotations

from dataclasses import dataclass

from cdktf import TerraformResourceLifecycle
from constructs import Construct

from core.aws import aws


@dataclass(frozen=True)
class ServiceGrant:
    """Lets an AWS service principal use the key, limited to this account's resources."""

    service: str
    actions: tuple[str, ...] = ("kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                                "kms:DescribeKey")


@dataclass(frozen=True)
class KmsKeyProps:
    alias: str
    description: str
    service_grants: tuple[ServiceGrant, ...] = ()
    deletion_window_days: int = 30
    prevent_destroy: bool = False


class KmsKey(Construct):
    """Why a construct: every tier needs a CMK, and every CMK needs the same guard rails.

    The key policy delegates administration to the account's IAM (the documented default) so
    access is granted by named IAM roles, and adds service principals only where a service must
    encrypt on its own behalf (CloudWatch Logs, SNS publishing from CloudWatch, ...).
    """

    def __init__(self, scope: Construct, id: str, props: KmsKeyProps):
        super().__init__(scope, id)
        identity = aws.data_aws_caller_identity.DataAwsCallerIdentity(self, "caller")
        partition = aws.data_aws_partition.DataAwsPartition(self, "partition")
        document = aws.data_aws_iam_policy_document
        statements = [
            document.DataAwsIamPolicyDocumentStatement(
                sid="AccountAdministration",
                actions=["kms:*"],
                resources=["*"],
                principals=[document.DataAwsIamPolicyDocumentStatementPrincipals(
                    type="AWS",
                    identifiers=[f"arn:{partition.partition}:iam::{identity.account_id}:root"],
                )],
            ),
        ]
        for grant in props.service_grants:
            statements.append(document.DataAwsIamPolicyDocumentStatement(
                sid="Service" + "".join(part.title() for part in grant.service.split(".")[0].split("-")),
                actions=list(grant.actions),
                resources=["*"],
                principals=[document.DataAwsIamPolicyDocumentStatementPrincipals(
                    type="Service", identifiers=[grant.service])],
                condition=[document.DataAwsIamPolicyDocumentStatementCondition(
                    test="StringEquals", variable="aws:SourceAccount", values=[identity.account_id])],
            ))
        policy = document.DataAwsIamPolicyDocument(self, "policy", statement=statements)
        self.key = aws.kms_key.KmsKey(
            self,
            "key",
            description=props.description,
            enable_key_rotation=True,
            deletion_window_in_days=props.deletion_window_days,
            policy=policy.json,
            lifecycle=TerraformResourceLifecycle(prevent_destroy=True) if props.prevent_destroy else None,
        )
        aws.kms_alias.KmsAlias(self, "alias", name=props.alias, target_key_id=self.key.key_id)
        self.arn: str = self.key.arn
