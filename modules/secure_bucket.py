"""One hardened S3 bucket: the only way this project creates buckets.

State, access logs, the frontend origin and the audit trail all need the same guard rails, so
they live here once: versioning, default encryption, all four public-access blocks, owner-
enforced object ownership, a TLS-only (and, with a CMK, KMS-only upload) bucket policy, and a
lifecycle that expires old versions and abandoned multipart uploads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cdktf import TerraformResourceLifecycle
from constructs import Construct

from core.aws import aws
from core.iam import condition, document, principal, statement


@dataclass(frozen=True)
class SecureBucketProps:
    name: str
    # A customer-managed key; None means SSE-S3, which some AWS log deliveries (ALB) require.
    kms_key_arn: str | None
    noncurrent_version_days: int
    abort_incomplete_upload_days: int = 7
    prevent_destroy: bool = False
    # Delete current objects after this many days (log buckets); None keeps them.
    expiration_days: int | None = None
    # Move current objects to Intelligent-Tiering after this many days; None leaves them in Standard.
    intelligent_tiering_after_days: int | None = None
    # The sink (another SecureBucket that accepts S3 access logs) for this bucket's access logs.
    access_log_bucket: SecureBucket | None = None
    # Let `terraform destroy` delete a bucket that still holds objects (disposable environments).
    force_destroy: bool = False
    # An account id: this bucket is the sink for S3 server access logs of that account's buckets.
    s3_access_logs_from_account: str | None = None
    # Extra statements (core.iam.statement) such as a service's write access.
    policy_statements: tuple[Any, ...] = ()
    # An aliased provider, for a bucket in another region (a replica in the DR region).
    provider: Any = None


class SecureBucket(Construct):
    def __init__(self, scope: Construct, id: str, props: SecureBucketProps):
        super().__init__(scope, id)
        lifecycle = TerraformResourceLifecycle(prevent_destroy=True) if props.prevent_destroy else None
        provider = props.provider
        self.bucket = aws.s3_bucket.S3Bucket(self, "bucket", bucket=props.name, lifecycle=lifecycle,
                                             force_destroy=props.force_destroy or None, provider=provider)
        self.name: str = self.bucket.bucket
        self.arn: str = self.bucket.arn
        bucket_id = self.bucket.id

        versioning = aws.s3_bucket_versioning
        # Exposed: replication may only be configured once both buckets have versioning.
        self.versioning = versioning.S3BucketVersioningA(
            self, "versioning", bucket=bucket_id, provider=provider,
            versioning_configuration=versioning.S3BucketVersioningVersioningConfiguration(status="Enabled"),
        )
        self._encryption(bucket_id, props.kms_key_arn, provider)
        access_block = aws.s3_bucket_public_access_block.S3BucketPublicAccessBlock(
            self, "public-access-block", bucket=bucket_id, provider=provider,
            block_public_acls=True, block_public_policy=True,
            ignore_public_acls=True, restrict_public_buckets=True,
        )
        ownership = aws.s3_bucket_ownership_controls
        ownership.S3BucketOwnershipControls(
            self, "ownership", bucket=bucket_id, provider=provider,
            rule=ownership.S3BucketOwnershipControlsRule(object_ownership="BucketOwnerEnforced"),
        )
        self._lifecycle(bucket_id, props)
        if props.access_log_bucket:
            # After the sink's policy exists: S3 checks that log delivery may write there.
            sink = props.access_log_bucket
            aws.s3_bucket_logging.S3BucketLoggingA(
                self, "access-logging", bucket=bucket_id, target_bucket=sink.name,
                target_prefix=f"{props.name}/", depends_on=[sink.policy], provider=provider,
            )
        # The public-access block must exist first, or S3 may judge the policy before it applies.
        self.policy = aws.s3_bucket_policy.S3BucketPolicy(
            self, "policy", bucket=bucket_id, policy=self._policy_document(props), depends_on=[access_block],
            provider=provider,
        )

    def _encryption(self, bucket_id: str, kms_key_arn: str | None, provider: Any) -> None:
        sse = aws.s3_bucket_server_side_encryption_configuration
        default = sse.S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA(
            sse_algorithm="aws:kms" if kms_key_arn else "AES256",
            kms_master_key_id=kms_key_arn,
        )
        sse.S3BucketServerSideEncryptionConfigurationA(
            self, "encryption", bucket=bucket_id, provider=provider,
            rule=[sse.S3BucketServerSideEncryptionConfigurationRuleA(
                apply_server_side_encryption_by_default=default,
                bucket_key_enabled=True if kms_key_arn else None,
            )],
        )

    def _lifecycle(self, bucket_id: str, props: SecureBucketProps) -> None:
        rules = aws.s3_bucket_lifecycle_configuration
        rules.S3BucketLifecycleConfiguration(
            self, "lifecycle", bucket=bucket_id, provider=props.provider,
            rule=[rules.S3BucketLifecycleConfigurationRule(
                id="expire-noncurrent-and-abandoned-uploads",
                status="Enabled",
                filter=[rules.S3BucketLifecycleConfigurationRuleFilter(prefix="")],
                expiration=[rules.S3BucketLifecycleConfigurationRuleExpiration(days=props.expiration_days)]
                if props.expiration_days else None,
                transition=[rules.S3BucketLifecycleConfigurationRuleTransition(
                    days=props.intelligent_tiering_after_days, storage_class="INTELLIGENT_TIERING")]
                if props.intelligent_tiering_after_days else None,
                noncurrent_version_expiration=[
                    rules.S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration(
                        noncurrent_days=props.noncurrent_version_days)],
                abort_incomplete_multipart_upload=[
                    rules.S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload(
                        days_after_initiation=props.abort_incomplete_upload_days)],
            )],
        )

    def _policy_document(self, props: SecureBucketProps) -> str:
        everyone = principal("*", "*")
        statements = [statement(
            "DenyInsecureTransport", ["s3:*"], [self.arn, f"{self.arn}/*"], effect="Deny",
            principals=[everyone], conditions=[condition("Bool", "aws:SecureTransport", "false")])]
        if props.kms_key_arn:
            # IfExists: uploads without the header fall back to the bucket's default (our CMK).
            statements.append(statement(
                "DenyUploadsNotEncryptedWithKms", ["s3:PutObject"], [f"{self.arn}/*"], effect="Deny",
                principals=[everyone],
                conditions=[condition("StringNotEqualsIfExists", "s3:x-amz-server-side-encryption", "aws:kms")]))
        if props.s3_access_logs_from_account:
            # S3 User Guide, "Enabling Amazon S3 server access logging" (bucket policy for logging.s3.amazonaws.com).
            # S3's log delivery may write here, but only for buckets of this account.
            statements.append(statement(
                "AllowS3ServerAccessLogDelivery", ["s3:PutObject"], [f"{self.arn}/*"],
                principals=[principal("Service", "logging.s3.amazonaws.com")],
                conditions=[condition("StringEquals", "aws:SourceAccount", props.s3_access_logs_from_account)]))
        statements.extend(props.policy_statements)
        return document(statements)
