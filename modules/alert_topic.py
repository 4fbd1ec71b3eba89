"""An encrypted SNS topic that exactly the named AWS services may publish to (over TLS), with e-mail subscribers."""

from __future__ import annotations

from dataclasses import dataclass

from constructs import Construct

from core.account import Account
from core.aws import aws
from core.iam import condition, document, principal, statement
from modules.kms_key import KmsKey, KmsKeyProps, ServiceGrant


@dataclass(frozen=True)
class Publisher:
    """An AWS service allowed to publish, on behalf of exactly one source ARN of this account."""

    service: str
    source_arn: str


@dataclass(frozen=True)
class AlertTopicProps:
    name: str
    account: Account
    emails: tuple[str, ...]
    publishers: tuple[Publisher, ...]


class AlertTopic(Construct):
    """Why its own key: a service publishing to an encrypted topic must be allowed to use the key,
    and that grant should reach no other topic. Exposes `arn`."""

    def __init__(self, scope: Construct, id: str, props: AlertTopicProps):
        super().__init__(scope, id)
        account = props.account
        key = KmsKey(self, "key", KmsKeyProps(
            account=account, alias=f"alias/{props.name}", description=f"Encrypts the {props.name} topic",
            service_grants=tuple(ServiceGrant(service=publisher.service,
                                              actions=("kms:Decrypt", "kms:GenerateDataKey*"))
                                 for publisher in props.publishers)))
        topic = aws.sns_topic.SnsTopic(self, "topic", name=props.name, kms_master_key_id=key.arn)
        statements = [
            statement(f"Publisher{index}", ["sns:Publish"], [topic.arn],
                      principals=[principal("Service", publisher.service)],
                      conditions=[condition("ArnEquals", "aws:SourceArn", publisher.source_arn)])
            for index, publisher in enumerate(props.publishers)]
        statements.append(statement(
            "AccountManagesTopic", ["sns:GetTopicAttributes", "sns:SetTopicAttributes", "sns:Subscribe",
                                    "sns:ListSubscriptionsByTopic", "sns:Publish"], [topic.arn],
            principals=[principal("AWS", f"arn:{account.partition}:iam::{account.id}:root")]))
        statements.append(statement(
            "DenyInsecureTransport", ["sns:Publish"], [topic.arn], effect="Deny", principals=[principal("*", "*")],
            conditions=[condition("Bool", "aws:SecureTransport", "false")]))
        aws.sns_topic_policy.SnsTopicPolicy(self, "policy", arn=topic.arn,
                                            policy=document(self, "policy-document", statements))
        for index, email in enumerate(props.emails):
            aws.sns_topic_subscription.SnsTopicSubscription(
                self, f"email-{index}", topic_arn=topic.arn, protocol="email", endpoint=email)
        self.arn: str = topic.arn
