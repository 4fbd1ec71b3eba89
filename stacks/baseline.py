"""The account baseline: what exists once per account and region, whichever environments share it.

AWS Config allows one configuration recorder per account and region, one multi-region CloudTrail
covers the whole account, and X-Ray has one encryption setting per account and region.
Environments may share an account (the shipped ones do), so none of these can belong to an
environment stack: two environments would deploy two recorders (AWS refuses the second), two
trails (paying twice for the same events) or fight over X-Ray's key. One baseline stack per
`[[baseline]]` in project.toml owns them, with its own state key, and the loader rejects two
baselines for one account and region or two trails in one account.
"""

from __future__ import annotations

from cdktf import TerraformOutput, TerraformStack
from constructs import Construct

from core.access import backend_role, provider_role, stack_account
from core.account import look_up_account
from core.aws import aws
from core.provider import aws_provider, required_tags, s3_backend
from core.tagging import RequiredTags
from environments.model import BaselineConfig, ProjectConfig
from modules.alert_topic import AlertTopic, AlertTopicProps, Publisher
from modules.audit import AuditProps, AuditTrail
from modules.compliance import Compliance, ComplianceProps, noncompliance_rule_arn
from modules.database_bootstrap import execution_role_name
from modules.kms_key import KmsKey, KmsKeyProps, ServiceGrant, logs_grant
from modules.secure_bucket import SecureBucket, SecureBucketProps

# The Environment tag of account-level resources, which belong to no single environment.
SHARED_ENVIRONMENT_TAG = "shared"
# Configuration history, trail log files and their access logs are kept a year.
RETENTION_DAYS = 365


class BaselineStack(TerraformStack):
    def __init__(self, scope: Construct, project: ProjectConfig, baseline: BaselineConfig):
        super().__init__(scope, baseline.stack_name)
        self.baseline = baseline
        tags = required_tags(environment=SHARED_ENVIRONMENT_TAG, application=project.application,
                             owner=project.owner, cost_center=project.cost_center)
        aws_provider(self, region=baseline.region, account_id=stack_account(project, baseline), tags=tags,
                     emulator=project.emulator, role=provider_role(project, baseline.stack_name, baseline))
        s3_backend(self, state=project.state, key=baseline.state_key, emulator=project.emulator,
                   role=backend_role(project, baseline.stack_name))
        RequiredTags.enforce(self, tags)
        self.account = look_up_account(self)
        self.name_prefix = f"{project.application}-{baseline.region}"
        access_logs = self._access_log_sink()
        self.topic_arn = self._warning_topic() if (baseline.config or baseline.cloudtrail) else None
        if baseline.config:
            self._config(access_logs)
        if baseline.cloudtrail:
            self._trail(project, access_logs)
        if baseline.xray_encryption:
            self._xray_encryption()

    def _access_log_sink(self) -> SecureBucket:
        """S3 delivers server access logs only to an SSE-S3 bucket, hence no CMK here."""
        return SecureBucket(self, "access-logs", SecureBucketProps(
            name=f"{self.name_prefix}-access-logs-{self.account.id}", kms_key_arn=None,
            noncurrent_version_days=RETENTION_DAYS, expiration_days=RETENTION_DAYS,
            s3_access_logs_from_account=self.account.id))

    def _warning_topic(self) -> str:
        """Config's NON_COMPLIANT events (EventBridge rule) and the trail's alarms (CloudWatch) arrive here."""
        baseline, account, prefix = self.baseline, self.account, self.name_prefix
        publishers = []
        if baseline.config:
            publishers.append(Publisher("events.amazonaws.com",
                                        noncompliance_rule_arn(prefix, baseline.region, account)))
        if baseline.cloudtrail:
            alarm = f"arn:{account.partition}:cloudwatch:{baseline.region}:{account.id}:alarm:{prefix}-*"
            publishers.append(Publisher("cloudwatch.amazonaws.com", alarm))
        topic = AlertTopic(self, "compliance-topic", AlertTopicProps(
            name=f"{prefix}-compliance-warning", account=account, emails=baseline.alarm_emails,
            publishers=tuple(publishers)))
        TerraformOutput(self, "ComplianceTopicArn", value=topic.arn,
                        description="Warnings: a Config rule turned NON_COMPLIANT, a master secret read")
        return topic.arn

    def _config(self, access_logs: SecureBucket) -> None:
        baseline, account, prefix = self.baseline, self.account, self.name_prefix
        key = KmsKey(self, "config-key", KmsKeyProps(
            account=account, alias=f"alias/{prefix}-config",
            description=f"Encrypts the AWS Config history of {baseline.account_label} in {baseline.region}",
            # AWS Config Developer Guide, "Permissions for the KMS Key" (delivery channel to an encrypted bucket).
            service_grants=(ServiceGrant(service="config.amazonaws.com",
                                         actions=("kms:Decrypt", "kms:GenerateDataKey")),)))
        compliance = Compliance(self, "compliance", ComplianceProps(
            name_prefix=prefix, region=baseline.region, account=account,
            record_global_resources=baseline.record_global_resources, kms_key_arn=key.arn,
            retention_days=RETENTION_DAYS, access_log_bucket=access_logs, topic_arn=self.topic_arn))
        TerraformOutput(self, "ConfigRecorderName", value=compliance.recorder_name,
                        description="AWS Config recorder of this account and region")
        TerraformOutput(self, "ConfigBucketName", value=compliance.bucket_name,
                        description="Configuration history and snapshots")

    def _xray_encryption(self) -> None:
        """X-Ray has one encryption setting per account and region: every trace here uses this CMK.

        No statement for X-Ray in the key policy: X-Ray uses the key through grants it creates as the caller
        of PutEncryptionConfig (X-Ray Developer Guide, "Data protection in AWS X-Ray"), so the deploying role
        needs kms:CreateGrant and kms:DescribeKey on the key, and whoever reads traces needs kms:Decrypt
        (docs/architecture.md, "Tracing").
        """
        baseline = self.baseline
        key = KmsKey(self, "xray-key", KmsKeyProps(
            account=self.account, alias=f"alias/{self.name_prefix}-xray",
            description=f"Encrypts the X-Ray traces of {baseline.account_label} in {baseline.region}"))
        aws.xray_encryption_config.XrayEncryptionConfig(self, "xray-encryption", type="KMS", key_id=key.arn)
        TerraformOutput(self, "XRayKeyArn", value=key.arn, description="CMK encrypting this account's X-Ray traces")

    def _trail(self, project: ProjectConfig, access_logs: SecureBucket) -> None:
        baseline = self.baseline
        state = project.state
        state_buckets = (state.bucket, *((f"{state.bucket}-replica",) if state.replica_region else ()))
        # Every environment of this account may have run its bootstrap task; no other role reads a master secret.
        readers = tuple(execution_role_name(f"{env.application}-{env.name}") for env in project.environments
                        if env.account_id == baseline.account_id)
        logs_key = KmsKey(self, "logs-key", KmsKeyProps(
            account=self.account, alias=f"alias/{self.name_prefix}-logs",
            description=f"Encrypts the baseline's CloudWatch log groups in {baseline.region}",
            service_grants=(logs_grant(baseline.region),)))
        trail = AuditTrail(self, "audit", AuditProps(
            name_prefix=self.name_prefix, region=baseline.region, account=self.account,
            log_retention_days=baseline.log_retention_days, logs_kms_key_arn=logs_key.arn,
            trail_retention_days=RETENTION_DAYS, access_log_bucket=access_logs,
            data_event_buckets=state_buckets, secret_reader_roles=readers, alarm_topic_arn=self.topic_arn))
        TerraformOutput(self, "TrailArn", value=trail.trail_arn,
                        description="The account's multi-region CloudTrail")

