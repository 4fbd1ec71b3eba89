"""Data tier (SPEC 4.2): Aurora PostgreSQL Serverless v2, its key, logs, secret and optional cache.

Master credentials: RDS-managed (`manage_master_user_password`; a global database's primary keeps its
own, see below). RDS creates the secret in
Secrets Manager, encrypts it with our CMK and rotates it with a rotation it owns, so there is no
rotation Lambda to package, patch and grant network access to, and the password never appears
in Terraform configuration or state. We only set the rotation schedule (every N days, from
configuration) on that secret. The alternative, an explicit secret plus a rotation function,
buys custom rotation logic we do not need at the price of a Lambda in the VPC.

Restore (`restore_from_snapshot`, written by `python -m ops restore`): the cluster is created from
that snapshot with every setting below (parameter group, key, IAM authentication, subnets, security
group, managed master password, alarms), under a name of its own (core/naming.py), created before the
cluster it replaces is deleted. Changing the snapshot replaces the cluster, which `python -m ops deploy`
refuses for guarded stacks unless the cluster's address is named with `--allow-replace`. The old
cluster is deleted last, with a final snapshot where deletion protection is on (docs/runbooks.md).
The database name and master user come from the snapshot.

Aurora Global Database (`global_database`): the member that `owns` the global cluster creates it
from its existing cluster (`source_db_cluster_identifier`), so an environment's running cluster joins
without being replaced; a secondary member is created into it, with no master user of its own (the
data, users included, replicates from the primary) and encrypted with its own region's key.
RDS cannot manage the master password of a global database's member (Aurora User Guide, "Password
management with Amazon Aurora and AWS Secrets Manager", Limitations), so the owning primary keeps its
own secret instead (core/master_password.py, same JSON shape `username`/`password`, same CMK). Terraform
creates that secret without a value and never reads or writes one: the provider refreshes a secret
version with GetSecretValue, so every identity that plans or deploys would read the password
(hashicorp/terraform-provider-aws issue 42383, write-only or not; fixed after this pin, 5.100, by pull
request 44876). The cluster is created with a throwaway password (generated in the run by an ephemeral
resource, core/ephemeral.py, and sent once through a write-only argument: in no configuration, plan or
state, and known to nobody); `python -m ops` then sets the real one on the cluster and in the secret
(ops/master_password.py).
`replicate_master_secret` keeps a replica of that secret in another region (the global database's
secondary region, under a key of that region), so the password outlives the loss of the home region.

No `availability_zones` on the cluster: AWS picks and reports three zones, and pinning them in
configuration makes every plan want to replace the cluster. Multi-AZ comes from the DB subnet
group (one data subnet per zone) and from the reader instances.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cdktf import TerraformResourceLifecycle
from constructs import Construct

from core.account import Account
from core.aws import aws
from core.ephemeral import random_password
from core.iam import service_role
from core.master_password import MASTER_PASSWORD_LENGTH, THROWAWAY_PASSWORD_VERSION, own_master_secret_name
from core.naming import bounded_name, database_cluster_identifier
from modules.kms_key import KmsKey, KmsKeyProps
from modules.log_group import LogGroup, LogGroupProps

ENGINE = "aurora-postgresql"
ENGINE_VERSION = "16.6"
PARAMETER_FAMILY = "aurora-postgresql16"
DATABASE_NAME = "app"
POSTGRES_PORT = 5432
MASTER_USERNAME = "app_admin"
BACKUP_WINDOW = "03:00-04:00"
# ElastiCache replication group ids: at most 40 characters.
REPLICATION_GROUP_ID_LIMIT = 40
MAINTENANCE_WINDOW = "sun:04:30-sun:05:30"
# SPEC 4.2: TLS only, and every connection attempt in the log (the connection-failure alarm
# counts them through a metric filter). Also schema changes and statements slower than 1 s:
# enough to investigate incidents without logging every query's parameters.
CLUSTER_PARAMETERS = (
    ("rds.force_ssl", "1"),
    ("log_connections", "1"),
    ("log_disconnections", "1"),
    ("log_statement", "ddl"),
    ("log_min_duration_statement", "1000"),
)
CACHE_ENGINE_VERSION = "7.1"
CACHE_PORT = 6379


@dataclass(frozen=True)
class CacheProps:
    security_group_id: str
    node_type: str = "cache.t4g.micro"


@dataclass(frozen=True)
class GlobalDatabaseProps:
    """Membership in an Aurora Global Database."""

    identifier: str  # the global cluster's identifier
    # True: this cluster is the primary and this module creates the global cluster from it.
    # False: this cluster is a secondary, created into the existing global cluster.
    owns: bool


@dataclass(frozen=True)
class SecretReplica:
    """A region the module's own master secret is replicated to, with that region's provider."""

    region: str
    provider: Any  # aliased provider of `region`, passed in by the stack


@dataclass(frozen=True)
class DatabaseProps:
    name_prefix: str  # "<app>-<env>"
    region: str
    account: Account
    subnet_ids: tuple[str, ...]
    security_group_id: str
    min_acu: float
    max_acu: float
    reader_count: int
    backup_retention_days: int
    deletion_protection: bool
    secret_rotation_days: int
    log_retention_days: int
    logs_kms_key_arn: str
    monitoring_interval_seconds: int = 60
    cache: CacheProps | None = None
    restore_from_snapshot: str | None = None  # a cluster snapshot (id or ARN) to create the cluster from
    global_database: GlobalDatabaseProps | None = None


class Database(Construct):
    """Exposes `secret_arn`, `cluster_identifier`, `cluster_arn`, `cluster_resource_id`, `endpoint`, `port`,
    `kms_key_arn` (and `cache_endpoint`, `cache_secret_arn`)."""

    def __init__(self, scope: Construct, id: str, props: DatabaseProps):
        super().__init__(scope, id)
        self.props = props
        self.cluster_identifier = database_cluster_identifier(props.name_prefix, props.restore_from_snapshot)
        self.key = KmsKey(self, "key", KmsKeyProps(
            account=props.account,
            alias=f"alias/{props.name_prefix}-data",
            description=f"Encrypts the {props.name_prefix} database, its snapshots, Performance Insights and secret",
        ))
        self.kms_key_arn: str = self.key.arn
        self._password = random_password(self, "master-password", MASTER_PASSWORD_LENGTH) \
            if self._owns_global else None
        self.log_group = LogGroup(self, "postgresql-log-group", LogGroupProps(
            name=f"/aws/rds/cluster/{self.cluster_identifier}/postgresql",
            retention_days=props.log_retention_days, kms_key_arn=props.logs_kms_key_arn))
        subnet_group = aws.db_subnet_group.DbSubnetGroup(
            self, "subnet-group", name=f"{props.name_prefix}-data",
            description="Isolated data subnets, one per availability zone", subnet_ids=list(props.subnet_ids))
        self.cluster = self._cluster(subnet_group.name, self._parameter_group())
        self.cluster_arn: str = self.cluster.arn
        self._instances(self._monitoring_role())
        self.secret_arn: str | None = None if self._secondary else self._master_secret()
        self.global_cluster = self._global_cluster()
        self.endpoint: str = self.cluster.endpoint
        self.reader_endpoint: str = self.cluster.reader_endpoint
        self.port: int = self.cluster.port
        self.cluster_resource_id: str = self.cluster.cluster_resource_id
        self.cache_secret_arn: str | None = None
        self.cache_endpoint = self._cache(props.cache) if props.cache else None

    @property
    def _secondary(self) -> bool:
        """A global secondary has no master user of its own: its data (users included) replicates in."""
        membership = self.props.global_database
        return membership is not None and not membership.owns

    @property
    def _owns_global(self) -> bool:
        """The primary that owns a global database: RDS may not manage its master password."""
        membership = self.props.global_database
        return membership is not None and membership.owns

    def _master_secret(self) -> str:
        """The RDS-managed master secret, rotated on the configured schedule (or the module's own)."""
        if self._owns_global:
            return self._own_master_secret()
        secret_arn = self.cluster.master_user_secret.get(0).secret_arn
        aws.secretsmanager_secret_rotation.SecretsmanagerSecretRotation(
            self, "secret-rotation", secret_id=secret_arn,
            rotation_rules=aws.secretsmanager_secret_rotation.SecretsmanagerSecretRotationRotationRules(
                automatically_after_days=self.props.secret_rotation_days))
        return secret_arn

    def _own_master_secret(self) -> str:
        """The global primary's master secret, created without a value: ops/master_password.py writes it (and
        the cluster's password), so no Terraform identity ever reads it back."""
        props = self.props
        self._own_secret = aws.secretsmanager_secret.SecretsmanagerSecret(
            self, "master-secret", name=own_master_secret_name(props.name_prefix), kms_key_id=self.kms_key_arn,
            description="Master credentials of the database (a global database's primary: set by python -m ops)",
            recovery_window_in_days=7)
        return self._own_secret.arn

    def replicate_master_secret(self, replica: SecretReplica) -> None:
        """Replicate the module's own master secret to `replica.region`, encrypted with a key of that region
        (Secrets Manager User Guide, "Replicate AWS Secrets Manager secrets across Regions"): Secrets
        Manager copies every value ops writes, so after losing the home region the promoted cluster's password
        is still readable there. Only the owner of a global database keeps its own secret."""
        if not self._owns_global:
            raise ValueError("only a global database's primary keeps its own master secret to replicate")
        key = KmsKey(self, "replica-key", KmsKeyProps(
            account=self.props.account, alias=f"alias/{self.props.name_prefix}-data-{replica.region}",
            description=f"Encrypts the replica of the {self.props.name_prefix} master secret in {replica.region}",
            provider=replica.provider))
        self._own_secret.put_replica([aws.secretsmanager_secret.SecretsmanagerSecretReplica(
            region=replica.region, kms_key_id=key.arn)])

    def _global_cluster(self):
        """The global cluster, made from this (existing) cluster when it is the owning primary.

        Terraform AWS provider docs, aws_rds_global_cluster, "New Global Cluster From Existing DB Cluster":
        `source_db_cluster_identifier` (with `force_destroy`), and `ignore_changes` on the cluster's
        `global_cluster_identifier` rather than a reference back (which would be circular).
        """
        membership = self.props.global_database
        if membership is None or not membership.owns:
            return None
        return aws.rds_global_cluster.RdsGlobalCluster(
            self, "global-cluster", global_cluster_identifier=membership.identifier,
            source_db_cluster_identifier=self.cluster.arn, force_destroy=True,
            deletion_protection=self.props.deletion_protection)

    def _lifecycle(self) -> TerraformResourceLifecycle | None:
        """The cluster's lifecycle: create-before-destroy for a restore; a global member ignores what AWS
        sets on membership (aws_rds_cluster docs: use ignore_changes for replication_source_identifier
        on global members, and for global_cluster_identifier on a cluster a global cluster was made from)."""
        restore = self._replacement()
        if self.props.global_database is None:
            return restore
        return TerraformResourceLifecycle(
            create_before_destroy=True if restore else None,
            ignore_changes=["replication_source_identifier",
                            *(["global_cluster_identifier"] if self.props.global_database.owns else [])])

    def _parameter_group(self) -> str:
        groups = aws.rds_cluster_parameter_group
        group = groups.RdsClusterParameterGroup(
            self, "parameters", name=f"{self.props.name_prefix}-aurora-postgresql16", family=PARAMETER_FAMILY,
            description="Force TLS and log every connection",
            parameter=[groups.RdsClusterParameterGroupParameter(name=name, value=value, apply_method="immediate")
                       for name, value in CLUSTER_PARAMETERS],
        )
        return group.name

    def _replacement(self) -> TerraformResourceLifecycle | None:
        """A restored cluster (and its instances) exist before what they replace is deleted."""
        return TerraformResourceLifecycle(create_before_destroy=True) if self.props.restore_from_snapshot else None

    def _credentials(self) -> dict:
        """Database name and master user: from the snapshot when restoring, from the primary on a secondary
        (Aurora refuses a user name or password for a global database's secondary)."""
        if self._secondary:
            return {"global_cluster_identifier": self.props.global_database.identifier}
        restored = self.props.restore_from_snapshot is not None
        names = {"database_name": None if restored else DATABASE_NAME,
                 "master_username": None if restored else MASTER_USERNAME}
        if self._owns_global:
            return {**names, "master_password_wo": f"${{{self._password}}}",
                    "master_password_wo_version": THROWAWAY_PASSWORD_VERSION}
        return {**names, "manage_master_user_password": True, "master_user_secret_kms_key_id": self.kms_key_arn}

    def _cluster(self, subnet_group: str, parameter_group: str):
        props = self.props
        clusters = aws.rds_cluster
        return clusters.RdsCluster(
            self, "cluster",
            cluster_identifier=self.cluster_identifier,
            snapshot_identifier=props.restore_from_snapshot,
            engine=ENGINE, engine_mode="provisioned", engine_version=ENGINE_VERSION,
            port=POSTGRES_PORT,
            **self._credentials(),
            db_subnet_group_name=subnet_group, vpc_security_group_ids=[props.security_group_id],
            db_cluster_parameter_group_name=parameter_group,
            storage_encrypted=True, kms_key_id=self.kms_key_arn,
            iam_database_authentication_enabled=True,
            backup_retention_period=props.backup_retention_days,
            preferred_backup_window=BACKUP_WINDOW, preferred_maintenance_window=MAINTENANCE_WINDOW,
            copy_tags_to_snapshot=True,
            deletion_protection=props.deletion_protection,
            skip_final_snapshot=not self._final_snapshot,
            final_snapshot_identifier=f"{self.cluster_identifier}-final" if self._final_snapshot else None,
            enabled_cloudwatch_logs_exports=["postgresql"],
            serverlessv2_scaling_configuration=clusters.RdsClusterServerlessv2ScalingConfiguration(
                min_capacity=props.min_acu, max_capacity=props.max_acu),
            depends_on=[self.log_group.group],
            lifecycle=self._lifecycle(),
        )

    @property
    def _final_snapshot(self) -> bool:
        """Protected clusters leave a final snapshot; a secondary holds only a replica of the primary's data."""
        return self.props.deletion_protection and not self._secondary

    def _monitoring_role(self) -> str:
        return service_role(
            self, "monitoring-role", name=f"{self.props.name_prefix}-rds-monitoring",
            # Aurora User Guide, "Setting up and enabling Enhanced Monitoring" (the monitoring role).
            service="monitoring.rds.amazonaws.com", account_id=self.props.account.id,
            description="Lets RDS enhanced monitoring publish OS metrics",
            managed_policy_arns=["arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"],
        ).arn

    def _instances(self, monitoring_role_arn: str) -> None:
        """One writer plus the configured readers, all `db.serverless`, never public."""
        props = self.props
        cluster_id, engine_version = self.cluster.id, self.cluster.engine_version
        for index in range(1 + props.reader_count):
            role = "writer" if index == 0 else f"reader-{index}"
            aws.rds_cluster_instance.RdsClusterInstance(
                self, f"instance-{role}",
                identifier=f"{self.cluster_identifier}-{role}",
                cluster_identifier=cluster_id, instance_class="db.serverless",
                engine=ENGINE, engine_version=engine_version,
                publicly_accessible=False, auto_minor_version_upgrade=True,
                promotion_tier=index,
                performance_insights_enabled=True, performance_insights_kms_key_id=self.kms_key_arn,
                monitoring_interval=props.monitoring_interval_seconds,
                monitoring_role_arn=monitoring_role_arn if props.monitoring_interval_seconds else None,
                copy_tags_to_snapshot=True,
                lifecycle=self._replacement(),
            )

    def _cache(self, cache: CacheProps) -> str:
        """Redis with TLS, encryption at rest and an AUTH token generated and kept in Secrets Manager."""
        props = self.props
        password = aws.data_aws_secretsmanager_random_password.DataAwsSecretsmanagerRandomPassword(
            self, "cache-auth-token", password_length=64, exclude_punctuation=True)
        secret = aws.secretsmanager_secret.SecretsmanagerSecret(
            self, "cache-auth-secret", name=f"{props.name_prefix}-cache-auth", kms_key_id=self.kms_key_arn,
            description="AUTH token of the Redis cache", recovery_window_in_days=7)
        aws.secretsmanager_secret_version.SecretsmanagerSecretVersion(
            self, "cache-auth-secret-value", secret_id=secret.id, secret_string=password.random_password,
            lifecycle=TerraformResourceLifecycle(ignore_changes=["secret_string"]))
        self.cache_secret_arn = secret.arn
        subnet_group = aws.elasticache_subnet_group.ElasticacheSubnetGroup(
            self, "cache-subnets", name=f"{props.name_prefix}-cache", subnet_ids=list(props.subnet_ids),
            description="Isolated data subnets")
        group = aws.elasticache_replication_group.ElasticacheReplicationGroup(
            self, "cache", replication_group_id=bounded_name(props.name_prefix, "cache", REPLICATION_GROUP_ID_LIMIT),
            description=f"{props.name_prefix} Redis cache", engine="redis", engine_version=CACHE_ENGINE_VERSION,
            node_type=cache.node_type, num_cache_clusters=len(props.subnet_ids), port=CACHE_PORT,
            automatic_failover_enabled=True, multi_az_enabled=True,
            subnet_group_name=subnet_group.name, security_group_ids=[cache.security_group_id],
            at_rest_encryption_enabled="true", kms_key_id=self.kms_key_arn, transit_encryption_enabled=True,
            auth_token=password.random_password, auto_minor_version_upgrade="true",
            snapshot_retention_limit=props.backup_retention_days,
            # The generated token is set once; rotating it is an operational task (see docs).
            lifecycle=TerraformResourceLifecycle(ignore_changes=["auth_token"]),
        )
        return group.primary_endpoint_address
