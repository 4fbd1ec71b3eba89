"""The deploying account's id and partition, looked up once per stack and handed to modules."""

from __future__ import annotations

from dataclasses import dataclass

from constructs import Construct

from core.aws import aws


@dataclass(frozen=True)
class Account:
    """Terraform references to the account id and partition (resolved at plan time, never written down).

    One lookup per stack rather than one per module keeps the plan free of dozens of identical
    data sources, and every synthesized resource costs a round trip to jsii's Node process.
    """

    id: str
    partition: str


def look_up_account(scope: Construct) -> Account:
    """Both lookups go through the stack's default provider: every provider of a stack shares its account."""
    identity = aws.data_aws_caller_identity.DataAwsCallerIdentity(scope, "caller")
    partition = aws.data_aws_partition.DataAwsPartition(scope, "partition")
    return Account(id=identity.account_id, partition=partition.partition)
