"""Cross-region replication of one SecureBucket into a replica SecureBucket, through a narrow role.

Used for the site bucket (replica in the DR region, the CloudFront failover origin) and the state
bucket (so a lost region never means lost state); a second stack in the DR region can use it too.

Every object and every delete marker is replicated, and objects are re-encrypted with the
replica's own CMK in its region (a KMS key never leaves its region, so the source key would be
useless there). The role may only read the source (its replication configuration, its object
versions, and decrypt with the source key through S3 in the source's region) and only write the
replica (replicate objects, deletes and tags, and encrypt with the replica key through S3 in the
replica's region); the encryption context is the bucket's ARN with S3 Bucket Keys (which
SecureBucket enables) and the object's without, so both are allowed. Both buckets must have
versioning before replication is configured, so the configuration depends on both versioning
resources.
"""

from __future__ import annotations

from dataclasses import dataclass

from constructs import Construct

from core.account import Account
from core.aws import aws
from core.iam import condition, service_role, statement
from modules.secure_bucket import SecureBucket

READ_SOURCE_BUCKET = ("s3:GetReplicationConfiguration", "s3:ListBucket")
READ_SOURCE_OBJECTS = ("s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging")
WRITE_REPLICA_OBJECTS = ("s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags")


@dataclass(frozen=True)
class ReplicationProps:
    name: str  # of the role, `<...>-replication`
    account: Account
    source: SecureBucket
    source_region: str
    source_kms_key_arn: str
    replica: SecureBucket
    replica_region: str
    replica_kms_key_arn: str


class BucketReplication(Construct):
    """Exposes `role_arn`."""

    def __init__(self, scope: Construct, id: str, props: ReplicationProps):
        super().__init__(scope, id)
        role = service_role(
            # S3 User Guide, "Setting up permissions for live replication" (the role S3 assumes).
            self, "role", name=props.name, service="s3.amazonaws.com", account_id=props.account.id,
            description=f"Replicates {props.source.name} to its replica in {props.replica_region}",
            policy_statements=self._statements(props))
        self.role_arn: str = role.arn
        rules = aws.s3_bucket_replication_configuration
        rules.S3BucketReplicationConfigurationA(
            self, "configuration", bucket=props.source.bucket.id, role=role.arn,
            depends_on=[props.source.versioning, props.replica.versioning],
            rule=[rules.S3BucketReplicationConfigurationRule(
                id="everything", status="Enabled", priority=1,
                filter=rules.S3BucketReplicationConfigurationRuleFilter(prefix=""),
                delete_marker_replication=rules.S3BucketReplicationConfigurationRuleDeleteMarkerReplication(
                    status="Enabled"),
                source_selection_criteria=rules.S3BucketReplicationConfigurationRuleSourceSelectionCriteria(
                    sse_kms_encrypted_objects=rules
                    .S3BucketReplicationConfigurationRuleSourceSelectionCriteriaSseKmsEncryptedObjects(
                        status="Enabled")),
                destination=rules.S3BucketReplicationConfigurationRuleDestination(
                    bucket=props.replica.arn, storage_class="STANDARD",
                    encryption_configuration=rules
                    .S3BucketReplicationConfigurationRuleDestinationEncryptionConfiguration(
                        replica_kms_key_id=props.replica_kms_key_arn)),
            )],
        )

    @staticmethod
    def _statements(props: ReplicationProps) -> list:
        source, replica = props.source.arn, props.replica.arn
        return [
            statement("ReadSourceBucket", READ_SOURCE_BUCKET, [source]),
            statement("ReadSourceObjects", READ_SOURCE_OBJECTS, [f"{source}/*"]),
            statement("WriteReplicaObjects", WRITE_REPLICA_OBJECTS, [f"{replica}/*"]),
            statement("DecryptSourceThroughS3", ["kms:Decrypt"], [props.source_kms_key_arn],
                      conditions=_through_s3(props.source_region, source)),
            statement("EncryptReplicaThroughS3", ["kms:Encrypt", "kms:GenerateDataKey"], [props.replica_kms_key_arn],
                      conditions=_through_s3(props.replica_region, replica)),
        ]


def _through_s3(region: str, bucket_arn: str) -> list:
    """The key is used only by S3 in `region`, for this bucket (bucket key) or its objects."""
    return [condition("StringEquals", "kms:ViaService", f"s3.{region}.amazonaws.com"),
            condition("StringLike", "kms:EncryptionContext:aws:s3:arn", bucket_arn, f"{bucket_arn}/*")]
