"""Audit trail (SPEC 4.5): a multi-region CloudTrail with log-file validation, KMS and CloudWatch Logs.

One multi-region trail covers a whole account, so the account baseline stack owns it, not an
environment (stacks/baseline.py).

Secrets Manager's GetSecretValue is a management (read) event, so recording all management
events is what makes every read of the database secret auditable: who, when, from where. The
trail also delivers to a CloudWatch Logs group, so a metric filter on that group counts reads of a
database master secret (RDS-managed, `rds!...`, or a global database primary's own) by anyone but a
database bootstrap task's execution role, and an alarm on that count notifies the baseline's warning
topic (docs/runbooks.md calls such a read an incident). Object-level (data) events are recorded for the
buckets named in `data_event_buckets` (the Terraform state buckets), so every read and write of a state
file is on record.
"""

from __future__ import annotations

from dataclasses import dataclass

from constructs import Construct

from core.account import Account
from core.aws import aws
from core.iam import condition, principal, service_role, statement
from core.master_password import OWN_MASTER_SECRET_SUFFIX
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
    # Buckets whose object reads and writes are recorded (S3 data events): the Terraform state and its replica.
    data_event_buckets: tuple[str, ...] = ()
    # Roles allowed to read RDS-managed master secrets (the database bootstrap tasks' execution roles); a read
    # by anyone else raises the alarm, which notifies `alarm_topic_arn`.
    secret_reader_roles: tuple[str, ...] = ()
    alarm_topic_arn: str | None = None


class AuditTrail(Construct):
    """Exposes `trail_arn`, `log_group_name`."""

    def __init__(self, scope: Construct, id: str, props: AuditProps):
        super().__init__(scope, id)
        name = f"{props.name_prefix}-trail"
        trail_arn = f"arn:aws:cloudtrail:{props.region}:{props.account.id}:trail/{name}"
        # CloudTrail User Guide, "Configure AWS KMS key policies for CloudTrail" (the trail's ARN as aws:SourceArn).
        key = KmsKey(self, "key", KmsKeyProps(
            account=props.account,
            alias=f"alias/{name}", description=f"Encrypts the {name} CloudTrail log files",
            service_grants=(ServiceGrant(
                service="cloudtrail.amazonaws.com", actions=("kms:GenerateDataKey*", "kms:DescribeKey"),
                conditions=(("StringEquals", "aws:SourceArn", trail_arn),)),)))
        bucket_name = f"{props.name_prefix}-trail-{props.account.id}"
        # CloudTrail User Guide, "Amazon S3 bucket policy for CloudTrail".
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
        # CloudTrail User Guide, "Sending events to CloudWatch Logs" (the role CloudTrail assumes).
        role = service_role(
            self, "logs-role", name=f"{name}-logs", service="cloudtrail.amazonaws.com",
            account_id=props.account.id, description="Lets CloudTrail deliver to its own log group",
            policy_statements=[statement("DeliverTrail", ["logs:CreateLogStream", "logs:PutLogEvents"],
                                         [f"{logs.arn}:*"])])
        trail = aws.cloudtrail.Cloudtrail(
            self, "trail", name=name, s3_bucket_name=bucket.name, kms_key_id=key.arn,
            is_multi_region_trail=True, include_global_service_events=True, enable_log_file_validation=True,
            cloud_watch_logs_group_arn=f"{logs.arn}:*", cloud_watch_logs_role_arn=role.arn,
            event_selector=[aws.cloudtrail.CloudtrailEventSelector(
                read_write_type="All", include_management_events=True,
                data_resource=self._data_resources(props))],
            depends_on=[bucket.policy])
        self.trail_arn: str = trail.arn
        self.log_group_name: str = logs.name
        self.secret_read_alarm_name: str = self._secret_read_alarm(props, logs.name)

    @staticmethod
    def _data_resources(props: AuditProps) -> list:
        """S3 data events for every object of the named buckets (CloudTrail: the bucket ARN with a slash)."""
        if not props.data_event_buckets:
            return []
        return [aws.cloudtrail.CloudtrailEventSelectorDataResource(
            type="AWS::S3::Object",
            values=[f"arn:{props.account.partition}:s3:::{bucket}/" for bucket in props.data_event_buckets])]

    def _secret_read_alarm(self, props: AuditProps, log_group_name: str) -> str:
        """A metric filter counting reads of RDS master secrets by any other caller, and an alarm on it."""
        name = f"{props.name_prefix}-master-secret-read"
        aws.cloudwatch_log_metric_filter.CloudwatchLogMetricFilter(
            self, "master-secret-reads", name=name, log_group_name=log_group_name,
            pattern=master_secret_read_pattern(props.account, props.secret_reader_roles),
            metric_transformation=aws.cloudwatch_log_metric_filter.CloudwatchLogMetricFilterMetricTransformation(
                name="UnexpectedMasterSecretReads", namespace=f"{props.name_prefix}/audit", value="1",
                default_value="0", unit="Count"))
        actions = [props.alarm_topic_arn] if props.alarm_topic_arn else None
        aws.cloudwatch_metric_alarm.CloudwatchMetricAlarm(
            self, "master-secret-read-alarm", alarm_name=name,
            alarm_description="A database master secret was read by someone other than a database "
                              "bootstrap task: an incident (docs/runbooks.md, 5. Rotate secrets)",
            namespace=f"{props.name_prefix}/audit", metric_name="UnexpectedMasterSecretReads", statistic="Sum",
            period=300, evaluation_periods=1, threshold=0, comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching", alarm_actions=actions)
        return name


def master_secret_read_pattern(account: Account, allowed_roles: tuple[str, ...]) -> str:
    """CloudWatch Logs JSON filter pattern: GetSecretValue on a database master secret (RDS-managed, `rds!...`,
    or a global database primary's own, `...-database-master-...`) by any caller whose identity is not a
    session of one of `allowed_roles` (role names in this account)."""
    terms = ['($.eventSource = "secretsmanager.amazonaws.com")', '($.eventName = "GetSecretValue")',
             f'(($.requestParameters.secretId = "*rds!*") || '
             f'($.requestParameters.secretId = "*{OWN_MASTER_SECRET_SUFFIX}*"))']
    # Wildcards only at the end of a value, as in the CloudWatch Logs guide's examples.
    sessions = f"arn:{account.partition}:sts::{account.id}:assumed-role"
    terms += [f'($.userIdentity.arn != "{sessions}/{role}/*")' for role in allowed_roles]
    return "{ " + " && ".join(terms) + " }"
