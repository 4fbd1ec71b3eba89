"""Issue 21: every statement granting an AWS service principal follows a form AWS documents.

The table names, for each (statement id, service principal) the shipped stacks synthesize, the AWS
documentation page whose form the statement follows (the same page the code's one-line comment names).
A new statement, or an existing one granted to another service, is not in the table and fails until
someone finds AWS's page for it; a row no stack uses any more fails too, so the table stays true.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re

import cdktf
import pytest

from stacks.environment import EnvironmentStack
from tests.iam_checks import key_policies
from tests.network_checks import edit_documents, iam_documents

SNS_ENCRYPTED = "SNS Developer Guide: Enable compatibility between event sources from AWS services and encrypted topics"
ECS_EXECUTION = "ECS Developer Guide: Amazon ECS task execution IAM role / Amazon ECS task IAM role"
CLOUDTRAIL_BUCKET = "CloudTrail User Guide: Amazon S3 bucket policy for CloudTrail"
DOCUMENTED_FORMS = {
    ("AllowS3ServerAccessLogDelivery", "logging.s3.amazonaws.com"):
        "S3 User Guide: Enabling Amazon S3 server access logging",
    ("BudgetsPublish", "budgets.amazonaws.com"):
        "Cost Management User Guide: Creating an Amazon SNS topic for budget notifications",
    ("CostalertsPublish", "costalerts.amazonaws.com"):
        "Cost Management User Guide: Creating an Amazon SNS topic for anomaly notifications",
    ("CloudFrontLogDelivery", "delivery.logs.amazonaws.com"):
        "CloudWatch Logs User Guide: Enable logging from AWS services, Logs sent to Amazon S3",
    ("CloudFrontLogDeliveryAclCheck", "delivery.logs.amazonaws.com"):
        "CloudWatch Logs User Guide: Enable logging from AWS services, Logs sent to Amazon S3",
    ("CloudTrailChecksBucket", "cloudtrail.amazonaws.com"): CLOUDTRAIL_BUCKET,
    ("CloudTrailWrites", "cloudtrail.amazonaws.com"): CLOUDTRAIL_BUCKET,
    ("CloudWatchAlarmsPublish", "cloudwatch.amazonaws.com"): "CloudWatch User Guide: Confused deputy prevention",
    ("ConfigChecksBucket", "config.amazonaws.com"):
        "AWS Config Developer Guide: Permissions for the Amazon S3 Bucket for the AWS Config Delivery Channel",
    ("ConfigDelivers", "config.amazonaws.com"):
        "AWS Config Developer Guide: Permissions for the Amazon S3 Bucket for the AWS Config Delivery Channel",
    ("EnvironmentEventRulesPublish", "events.amazonaws.com"): "EventBridge User Guide: Permissions for Amazon SNS",
    ("Publisher0", "events.amazonaws.com"): "EventBridge User Guide: Permissions for Amazon SNS",
    ("Publisher1", "cloudwatch.amazonaws.com"): "CloudWatch User Guide: Confused deputy prevention",
    ("OnlyThisDistributionReads", "cloudfront.amazonaws.com"):
        "CloudFront Developer Guide: Restrict access to an Amazon S3 origin",
    ("AlbLogDelivery", "logdelivery.elasticloadbalancing.amazonaws.com"):
        "ELB User Guide for ALBs: Enable access logs for your Application Load Balancer",
    ("ServiceAssumesRole", "backup.amazonaws.com"): "AWS Backup Developer Guide: IAM service roles",
    ("ServiceAssumesRole", "cloudtrail.amazonaws.com"): "CloudTrail User Guide: Sending events to CloudWatch Logs",
    ("ServiceAssumesRole", "config.amazonaws.com"):
        "AWS Config Developer Guide: Permissions for the IAM Role Assigned to AWS Config",
    ("ServiceAssumesRole", "ecs-tasks.amazonaws.com"): ECS_EXECUTION,
    ("ServiceAssumesRole", "monitoring.rds.amazonaws.com"):
        "Aurora User Guide: Setting up and enabling Enhanced Monitoring",
    ("ServiceAssumesRole", "s3.amazonaws.com"): "S3 User Guide: Setting up permissions for live replication",
    ("ServiceAssumesRole", "vpc-flow-logs.amazonaws.com"):
        "VPC User Guide: IAM role for publishing flow logs to CloudWatch Logs",
    ("ServiceBudgets", "budgets.amazonaws.com"): SNS_ENCRYPTED,
    ("ServiceCostalerts", "costalerts.amazonaws.com"): SNS_ENCRYPTED,
    ("ServiceCloudwatch", "cloudwatch.amazonaws.com"): SNS_ENCRYPTED,
    ("ServiceEvents", "events.amazonaws.com"): SNS_ENCRYPTED,
    ("ServiceCloudfront", "cloudfront.amazonaws.com"):
        "CloudFront Developer Guide: Restrict access to an Amazon S3 origin (SSE-KMS)",
    ("ServiceCloudtrail", "cloudtrail.amazonaws.com"):
        "CloudTrail User Guide: Configure AWS KMS key policies for CloudTrail",
    ("ServiceConfig", "config.amazonaws.com"): "AWS Config Developer Guide: Permissions for the KMS Key",
    ("ServiceLogs", "logs.{region}.amazonaws.com"):
        "CloudWatch Logs User Guide: Encrypt log data in CloudWatch Logs using AWS Key Management Service",
}


def _regionless(service: str) -> str:
    """`logs.eu-west-1.amazonaws.com` -> `logs.{region}.amazonaws.com`: one row for every region."""
    parts = service.split(".")
    if len(parts) == 4 and re.fullmatch(r"[a-z]{2}(-[a-z]+)+-[0-9]", parts[1]):
        return ".".join([parts[0], "{region}", *parts[2:]])
    return service


def service_grants(stack: dict) -> set[tuple[str, str]]:
    """(statement id, service principal) of every statement granting a service, in policy documents and keys."""
    found = set()
    for document in iam_documents(stack).values():
        for item in document["statement"]:
            for principals in item.get("principals", []):
                if principals["type"] == "Service":
                    found.update((item.get("sid", ""), _regionless(s)) for s in principals["identifiers"])
    for policy in key_policies(stack).values():
        for item in policy["Statement"]:
            if "Service" in item["Principal"]:
                found.add((item.get("Sid", ""), _regionless(item["Principal"]["Service"])))
    return found


def check_grants_are_documented(stacks: dict[str, dict]) -> None:
    """Every service grant of every stack has a documented form in the table; every row is still used."""
    used = {grant: name for name, stack in stacks.items() for grant in service_grants(stack)}
    unknown = {grant: name for grant, name in used.items() if grant not in DOCUMENTED_FORMS}
    assert not unknown, f"service grants without a documented form in the table: {unknown}"
    stale = set(DOCUMENTED_FORMS) - set(used)
    assert not stale, f"table rows no stack uses: {sorted(stale)}"


@pytest.fixture(scope="module")
def every_form(stacks, project) -> dict[str, dict]:
    """The shipped stacks and dev in a region opened after August 2022 (the ALB log service principal)."""
    env = dataclasses.replace(project.environment("dev"), region="eu-south-2")
    newer = json.loads(cdktf.Testing.synth(EnvironmentStack(cdktf.Testing.app(), project, env)))
    return {**stacks, "dev-eu-south-2": newer}


def test_every_service_grant_follows_a_documented_form(every_form):
    check_grants_are_documented(every_form)


@pytest.mark.parametrize(("breakage", "match"), [
    ("new-service", "without a documented form"),
    ("stale-row", "table rows no stack uses"),
])
def test_an_undocumented_or_stale_grant_is_caught(every_form, breakage, match):
    broken = copy.deepcopy(every_form)
    def edit(_, document: dict) -> None:
        for item in document["statement"]:
            for principals in item.get("principals", []):
                if breakage == "new-service" and item.get("sid") == "AlbLogDelivery":
                    principals["type"], principals["identifiers"] = "Service", ["delivery.logs.amazonaws.com"]
                if breakage == "stale-row" and principals["identifiers"] == ["monitoring.rds.amazonaws.com"]:
                    principals["identifiers"] = ["ecs-tasks.amazonaws.com"]
    edit_documents(broken["production"], edit)
    if breakage == "stale-row":
        for name in ("dev", "staging", "dev-eu-south-2"):
            broken.pop(name)
    with pytest.raises(AssertionError, match=match):
        check_grants_are_documented(broken)
