"""A customer-managed KMS key with rotation, an alias and an explicit key policy."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cdktf import TerraformResourceLifecycle
from constructs import Construct

from core.account import Account
from core.aws import aws

USE_ACTIONS = ("kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey")


@dataclass(frozen=True)
class ServiceGrant:
    """Lets an AWS service principal use the key, limited to this account's resources.

    Conditions are (test, variable, value) triples; `{account}` and `{partition}` in a value are
    replaced with this account's id and partition.
    """

    service: str
    actions: tuple[str, ...] = USE_ACTIONS
    conditions: tuple[tuple[str, str, str], ...] = (("StringEquals", "aws:SourceAccount", "{account}"),)


# EventBridge rules publishing to a topic encrypted with the key. No source condition: the SNS developer guide
# ("Enable compatibility between event sources from AWS services and encrypted topics") says aws:SourceAccount,
# aws:SourceArn and aws:SourceOrgID are not supported in this statement for EventBridge (KMS would refuse every
# event). What confines EventBridge is the topic policy, which admits only this account's named rules.
EVENTBRIDGE_TOPIC_GRANT = ServiceGrant(service="events.amazonaws.com",
                                       actions=("kms:Decrypt", "kms:GenerateDataKey*"), conditions=())


def logs_grant(region: str) -> ServiceGrant:
    """CloudWatch Logs of `region` may use the key, for this account's log groups only."""
    # CloudWatch Logs User Guide, "Encrypt log data in CloudWatch Logs using AWS Key Management Service".
    return ServiceGrant(
        service=f"logs.{region}.amazonaws.com",
        conditions=(("ArnLike", "kms:EncryptionContext:aws:logs:arn",
                     f"arn:{{partition}}:logs:{region}:{{account}}:log-group:*"),))


@dataclass(frozen=True)
class KmsKeyProps:
    alias: str
    account: Account
    description: str
    service_grants: tuple[ServiceGrant, ...] = ()
    deletion_window_days: int = 30
    prevent_destroy: bool = False
    provider: Any = None  # an aliased provider, for keys that must live in another region
    # The policy as its own resource (aws_kms_key_policy): for a key whose grants name a resource that
    # is created later (a CloudFront distribution), so the key and everything it encrypts need not wait.
    separate_policy: bool = False
    # Further key policy statements, as key policy JSON objects (for example a deny that bounds who uses the key).
    policy_statements: tuple[dict, ...] = ()


class KmsKey(Construct):
    """Why a construct: every tier needs a CMK, and every CMK needs the same guard rails.

    The key policy delegates administration to the account's IAM (AWS's documented default), so
    access is granted to named IAM roles by their own policies, and adds service principals only
    where a service must encrypt on its own behalf. It is written as a key policy document, not
    through `aws_iam_policy_document`: in a key policy `Resource: "*"` means "this key", and
    scanners that read IAM identity policies would otherwise mistake it for a wildcard grant.
    """

    def __init__(self, scope: Construct, id: str, props: KmsKeyProps):
        super().__init__(scope, id)
        account = props.account
        root = f"arn:{account.partition}:iam::{account.id}:root"
        statements = [{
            "Sid": "AccountAdministration",
            "Effect": "Allow",
            "Principal": {"AWS": root},
            "Action": "kms:*",
            "Resource": "*",
        }]
        for grant in props.service_grants:
            grant_statement = {
                "Sid": "Service" + "".join(ch for ch in grant.service.split(".")[0].title() if ch.isalnum()),
                "Effect": "Allow",
                "Principal": {"Service": grant.service},
                "Action": list(grant.actions),
                "Resource": "*",
            }
            if grant.conditions:
                grant_statement["Condition"] = self._conditions(grant, account.id, account.partition)
            statements.append(grant_statement)
        statements.extend(props.policy_statements)
        policy = json.dumps({"Version": "2012-10-17", "Statement": statements})
        self.key = aws.kms_key.KmsKey(
            self,
            "key",
            description=props.description,
            enable_key_rotation=True,
            deletion_window_in_days=props.deletion_window_days,
            policy=None if props.separate_policy else policy,
            lifecycle=TerraformResourceLifecycle(prevent_destroy=True) if props.prevent_destroy else None,
            provider=props.provider,
        )
        if props.separate_policy:
            # Until it is attached the key has AWS's default policy: the account-administration
            # statement above, without the service grants.
            aws.kms_key_policy.KmsKeyPolicy(self, "policy", key_id=self.key.key_id, policy=policy,
                                            provider=props.provider)
        aws.kms_alias.KmsAlias(self, "alias", name=props.alias, target_key_id=self.key.key_id,
                               provider=props.provider)
        self.arn: str = self.key.arn

    @staticmethod
    def _conditions(grant: ServiceGrant, account: str, partition: str) -> dict:
        result: dict[str, dict[str, str]] = {}
        for test, variable, value in grant.conditions:
            # str.replace, not str.format: values may embed cdktf tokens, which contain braces.
            result.setdefault(test, {})[variable] = value.replace("{account}", account).replace(
                "{partition}", partition)
        return result
