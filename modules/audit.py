"""Audit trail (SPEC 4.5): a multi-region CloudTrail with log-file validation, KMS and CloudWatch Logs.

One multi-region trail covers a whole account, so the account baseline stack owns it, not an
environment (stacks/baseline.py).

Secrets Manager's GetSecretValue is a management (read) event, so recording all management
events is what makes every read of the database secret auditable: who, when, from where.
"""

from __future__ import annotations

from dataclasses import dataclass

from constructs import Construct

from core.account import Account
from core.aws import aws
from core.iam import condition, principal, service_role, statement
from modules.kms_key import KmsKey, KmsKeyProps, ServiceGrant
from modules.log_group import LogGroup, LogGroupProps
from modules.secure_bucket import SecureBucket, SecureBucketProps


@dataclass(frozen=True)
class AuditProps:
    name_prefix: str
    region: str
    account: Account
    log_retention_days: int
    logs_kms_key_arn: str
    trail_retention_days: int
    access_log_bucket: SecureBucket


class AuditTrail(Construct):
    """Exposes `trail_arn`, `log_group_name`."""

    def __init__(self, scope: Construct, id: str, props: AuditProps):
        super().__init__(scope, id)
        name = f"{props.name_prefix}-trail"
        trail_arn = f"arn:aws:cloudtrail:{props.region}:{props.account.id}:trail/{name}"
        key = KmsKey(self, "key", KmsKeyProps(
            account=props.account,
            alias=f"alias/{name}", description=f"Encrypts the {name} CloudTrail log files",
            service_grants=(ServiceGrant(
                service="cloudtrail.amazonaws.com", actions=("kms:GenerateDataKey*", "kms:DescribeKey"),
                conditions=(("StringEquals", "aws:SourceArn", trail_arn),)),)))
        bucket_name = f"{props.name_prefix}-trail-{props.account.id}"
        cloudtrail = principal("Service", "cloudtrail.amazonaws.com")
        from_trail = condition("StringEquals", "aws:SourceArn", trail_arn)
        bucket = SecureBucket(self, "bucket", SecureBucketProps(
            name=bucket_name, kms_key_arn=key.arn, noncurrent_version_days=props.trail_retention_days,
            expiration_days=props.trail_retention_days, access_log_bucket=props.access_log_bucket,
            policy_statements=(
                statement("CloudTrailChecksBucket", ["s3:GetBucketAcl"], [f"arn:aws:s3:::{bucket_name}"],
                          principals=[cloudtrail], conditions=[from_trail]),
                statement("CloudTrailWrites", ["s3:PutObject"],
                          [f"arn:aws:s3:::{bucket_name}/AWSLogs/{props.account.id}/*"],
                          principals=[cloudtrail], conditions=[from_trail]),
            )))
        logs = LogGroup(self, "log-group", LogGroupProps(
            name=f"/aws/cloudtrail/{name}", retention_days=props.log_retention_days,
            kms_key_arn=props.logs_kms_key_arn))
        role = service_role(
            self, "logs-role", name=f"{name}-logs", service="cloudtrail.amazonaws.com",
            account_id=props.account.id, description="Lets CloudTrail deliver to its own log group",
            policy_statements=[statement("DeliverTrail", ["logs:CreateLogStream", "logs:PutLogEvents"],
                                         [f"{logs.arn}:*"])])
        trail = aws.cloudtrail.Cloudtrail(
            self, "trail", name=name, s3_bucket_name=bucket.name, kms_key_id=key.arn,
            is_multi_region_trail=True, include_global_service_events=True, enable_log_file_validation=True,
            cloud_watch_logs_group_arn=f"{logs.arn}:*", cloud_watch_logs_role_arn=role.arn,
            event_selector=[aws.cloudtrail.CloudtrailEventSelector(read_write_type="All",
                                                                   include_management_events=True)],
            depends_on=[bucket.policy])
        self.trail_arn: str = trail.arn
        self.log_group_name: str = logs.name
