"""AWS Config (seed 001 FR-5.6, 002): record every resource, deliver to a hardened bucket, check rules.

The managed rules check in the running account what the synthesis tests promise: encrypted
Aurora storage, no public database, TLS-only and private buckets with versioning, a closed
default security group, VPC flow logs, a validated CloudTrail, encrypted log groups, HTTP
redirected to HTTPS, ECR scanning and rotated secrets. A rule turning NON_COMPLIANT reaches the
warning topic through an EventBridge rule on Config's compliance-change events.

A recorder exists once per account and region, so this module belongs to the account baseline
stack, never to an environment (see docs/architecture.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from constructs import Construct

from core.account import Account
from core.aws import aws
from core.iam import condition, principal, service_role, statement
from modules.secure_bucket import SecureBucket, SecureBucketProps

# Config's own rules for what periodic rules run at; once a day is the cheapest AWS offers.
PERIODIC = "TwentyFour_Hours"


@dataclass(frozen=True)
class ManagedRule:
    """An AWS managed Config rule: `identifier` is AWS's SourceIdentifier, `periodic` its trigger type.

    AWS rejects a maximum execution frequency on rules triggered only by configuration changes and
    needs one (or defaults it) on periodic rules, so the trigger type is part of the rule.
    """

    name: str
    identifier: str
    periodic: bool = False


# Trigger types as the AWS Config managed-rules reference lists them.
MANAGED_RULES = (
    ManagedRule("rds-storage-encrypted", "RDS_STORAGE_ENCRYPTED"),
    ManagedRule("rds-instance-public-access-check", "RDS_INSTANCE_PUBLIC_ACCESS_CHECK"),
    ManagedRule("s3-bucket-ssl-requests-only", "S3_BUCKET_SSL_REQUESTS_ONLY"),
    ManagedRule("s3-bucket-public-read-prohibited", "S3_BUCKET_PUBLIC_READ_PROHIBITED"),
    ManagedRule("s3-bucket-public-write-prohibited", "S3_BUCKET_PUBLIC_WRITE_PROHIBITED"),
    ManagedRule("s3-bucket-versioning-enabled", "S3_BUCKET_VERSIONING_ENABLED"),
    ManagedRule("vpc-default-security-group-closed", "VPC_DEFAULT_SECURITY_GROUP_CLOSED"),
    ManagedRule("vpc-flow-logs-enabled", "VPC_FLOW_LOGS_ENABLED", periodic=True),
    ManagedRule("cloudtrail-enabled", "CLOUD_TRAIL_ENABLED", periodic=True),
    ManagedRule("cloudtrail-log-file-validation-enabled", "CLOUD_TRAIL_LOG_FILE_VALIDATION_ENABLED", periodic=True),
    ManagedRule("cloudwatch-log-group-encrypted", "CLOUDWATCH_LOG_GROUP_ENCRYPTED", periodic=True),
    ManagedRule("alb-http-to-https-redirection-check", "ALB_HTTP_TO_HTTPS_REDIRECTION_CHECK", periodic=True),
    ManagedRule("ecr-private-image-scanning-enabled", "ECR_PRIVATE_IMAGE_SCANNING_ENABLED", periodic=True),
    ManagedRule("secretsmanager-rotation-enabled-check", "SECRETSMANAGER_ROTATION_ENABLED_CHECK"),
)


@dataclass(frozen=True)
class ComplianceProps:
    name_prefix: str
    region: str
    account: Account
    # Only one region per account records global resource types (IAM), or each would record them again.
    record_global_resources: bool
    kms_key_arn: str
    retention_days: int
    access_log_bucket: SecureBucket
    # Where NON_COMPLIANT results are announced; its policy must let this module's event rule publish.
    topic_arn: str


def noncompliance_rule_name(name_prefix: str) -> str:
    return f"{name_prefix}-config-noncompliant"


def noncompliance_rule_arn(name_prefix: str, region: str, account: Account) -> str:
    """The EventBridge rule's ARN, known before the rule exists, so the topic's policy can name it."""
    return f"arn:{account.partition}:events:{region}:{account.id}:rule/{noncompliance_rule_name(name_prefix)}"


class Compliance(Construct):
    """Exposes `recorder_name`, `bucket_name`, `rule_names`."""

    def __init__(self, scope: Construct, id: str, props: ComplianceProps):
        super().__init__(scope, id)
        account = props.account
        name = f"{props.name_prefix}-config"
        bucket = self._bucket(name, props)
        role = service_role(
            # AWS Config Developer Guide, "Permissions for the IAM Role Assigned to AWS Config".
            self, "role", name=name, service="config.amazonaws.com", account_id=account.id,
            description="Lets AWS Config read resource configurations and deliver them to its bucket",
            managed_policy_arns=[f"arn:{account.partition}:iam::aws:policy/service-role/AWS_ConfigRole"],
            policy_statements=[
                statement("CheckBucket", ["s3:GetBucketAcl"], [bucket.arn]),
                statement("Deliver", ["s3:PutObject"], [f"{bucket.arn}/AWSLogs/{account.id}/Config/*"]),
                statement("EncryptDeliveries", ["kms:GenerateDataKey", "kms:Decrypt"], [props.kms_key_arn]),
            ])
        config = aws.config_configuration_recorder
        recorder = config.ConfigConfigurationRecorder(
            self, "recorder", name=name, role_arn=role.arn,
            recording_group=config.ConfigConfigurationRecorderRecordingGroup(
                all_supported=True, include_global_resource_types=props.record_global_resources))
        channel = aws.config_delivery_channel.ConfigDeliveryChannel(
            self, "delivery-channel", name=name, s3_bucket_name=bucket.name, s3_kms_key_arn=props.kms_key_arn,
            snapshot_delivery_properties=aws.config_delivery_channel.ConfigDeliveryChannelSnapshotDeliveryProperties(
                delivery_frequency=PERIODIC),
            depends_on=[recorder, bucket.policy])
        aws.config_configuration_recorder_status.ConfigConfigurationRecorderStatus(
            self, "recorder-status", name=recorder.name, is_enabled=True, depends_on=[channel])
        self.rule_names: list[str] = [self._rule(rule, props.name_prefix, recorder) for rule in MANAGED_RULES]
        self._notify_non_compliance(props)
        self.recorder_name: str = recorder.name
        self.bucket_name: str = bucket.name

    def _bucket(self, name: str, props: ComplianceProps) -> SecureBucket:
        """Config checks the bucket's ACL and writes under AWSLogs/<account>/Config, for this account only."""
        account = props.account
        bucket_name = f"{name}-{account.id}"
        # AWS Config Developer Guide, "Permissions for the Amazon S3 Bucket for the AWS Config Delivery Channel".
        config = principal("Service", "config.amazonaws.com")
        own_account = condition("StringEquals", "aws:SourceAccount", account.id)
        return SecureBucket(self, "bucket", SecureBucketProps(
            name=bucket_name, kms_key_arn=props.kms_key_arn, noncurrent_version_days=props.retention_days,
            expiration_days=props.retention_days, access_log_bucket=props.access_log_bucket,
            policy_statements=(
                statement("ConfigChecksBucket", ["s3:GetBucketAcl", "s3:ListBucket"],
                          [f"arn:{account.partition}:s3:::{bucket_name}"], principals=[config],
                          conditions=[own_account]),
                statement("ConfigDelivers", ["s3:PutObject"],
                          [f"arn:{account.partition}:s3:::{bucket_name}/AWSLogs/{account.id}/Config/*"],
                          principals=[config], conditions=[own_account]),
            )))

    def _rule(self, rule: ManagedRule, name_prefix: str, recorder) -> str:
        name = f"{name_prefix}-{rule.name}"
        rules = aws.config_config_rule
        rules.ConfigConfigRule(
            self, f"rule-{rule.name}", name=name,
            description=f"AWS managed rule {rule.identifier}",
            source=rules.ConfigConfigRuleSource(owner="AWS", source_identifier=rule.identifier),
            maximum_execution_frequency=PERIODIC if rule.periodic else None,
            depends_on=[recorder])
        return name

    def _notify_non_compliance(self, props: ComplianceProps) -> None:
        """Any of this module's rules turning NON_COMPLIANT publishes the event to the topic."""
        pattern = {
            "source": ["aws.config"],
            "detail-type": ["Config Rules Compliance Change"],
            "detail": {
                "messageType": ["ComplianceChangeNotification"],
                "configRuleName": self.rule_names,
                "newEvaluationResult": {"complianceType": ["NON_COMPLIANT"]},
            },
        }
        events = aws.cloudwatch_event_rule
        rule = events.CloudwatchEventRule(
            self, "noncompliant", name=noncompliance_rule_name(props.name_prefix),
            description="AWS Config rule results that turned NON_COMPLIANT", event_pattern=json.dumps(pattern))
        aws.cloudwatch_event_target.CloudwatchEventTarget(
            self, "noncompliant-target", rule=rule.name, target_id="warning-topic", arn=props.topic_arn)
