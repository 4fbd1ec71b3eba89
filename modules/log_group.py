"""A CloudWatch log group with the environment's retention and a customer-managed key.

Every log group in the stacks is created through this construct, so none can be left
unencrypted or kept forever by accident.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from constructs import Construct

from core.aws import aws


@dataclass(frozen=True)
class LogGroupProps:
    name: str
    retention_days: int
    kms_key_arn: str
    provider: Any = None  # an aliased provider, for groups that must live in another region


class LogGroup(Construct):
    def __init__(self, scope: Construct, id: str, props: LogGroupProps):
        super().__init__(scope, id)
        self.group = aws.cloudwatch_log_group.CloudwatchLogGroup(
            self, "group", name=props.name, retention_in_days=props.retention_days, kms_key_id=props.kms_key_arn,
            provider=props.provider)
        self.name: str = self.group.name
        self.arn: str = self.group.arn
