"""An encrypted SNS topic that exactly the named AWS services may publish to (over TLS), with e-mail subscribers."""

from __future__ import annotations

from dataclasses import dataclass

from constructs import Construct

from core.account import Account
from core.aws import aws
from core.iam import condition, document, principal, statement
from modules.kms_key import EVENTBRIDGE_TOPIC_GRANT, KmsKey, KmsKeyProps, ServiceGrant


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


def _key_grant(service: str) -> ServiceGrant:
    """The key statement a publishing service needs: EventBridge's in the one form AWS documents for it (no
    source condition, see EVENTBRIDGE_TOPIC_GRANT), any other service's held to this account."""
    if service == EVENTBRIDGE_TOPIC_GRANT.service:
        return EVENTBRIDGE_TOPIC_GRANT
    # SNS Developer Guide, "Enable compatibility between event sources from AWS services and encrypted topics".
    return ServiceGrant(service=service, actions=("kms:Decrypt", "kms:GenerateDataKey*"))


class AlertTopic(Construct):
    """Why its own key: a service publishing to an encrypted topic must be allowed to use the key,
    and that grant should reach no other topic. Exposes `arn`."""

    def __init__(self, scope: Construct, id: str, props: AlertTopicProps):
        super().__init__(scope, id)
        account = props.account
        key = KmsKey(self, "key", KmsKeyProps(
            account=account, alias=f"alias/{props.name}", description=f"Encrypts the {props.name} topic",
            service_grants=tuple(_key_grant(publisher.service) for publisher in props.publishers)))
        topic = aws.sns_topic.SnsTopic(self, "topic", name=props.name, kms_master_key_id=key.arn)
        statements = [
            # EventBridge User Guide, "Permissions for Amazon SNS": the rule's ARN as aws:SourceArn.
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
                                            policy=document(statements))
        for index, email in enumerate(props.emails):
            aws.sns_topic_subscription.SnsTopicSubscription(
                self, f"email-{index}", topic_arn=topic.arn, protocol="email", endpoint=email)
        self.arn: str = topic.arn
