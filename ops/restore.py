"""Restore an environment's Aurora cluster from a recovery point into a NEW cluster (`python -m ops restore`).

The recovery points are cluster snapshots: AWS Backup's in the environment's region (encrypted with
the database key) and their copies in the DR region (re-encrypted with the DR backup vault's key),
plus any manual or automated snapshot of the same cluster. The newest available one is used unless
a snapshot is named.

Safety rules (unit-tested in tests/test_restore.py through `infra.Tools`):

- only into the environment's own region or its `[dr]` region;
- a named snapshot must be a snapshot of this environment's cluster and available;
- nothing that exists is ever modified: the new cluster's and instance's identifiers are derived
  from the snapshot's time, and if either exists the restore is refused (so running it twice
  refuses the second time);
- the key, DB subnet group and security group must already exist in the target region (the
  environment's own by default; in the DR region, those of a stack deployed there, named with
  `--subnet-group` / `--security-group` when they are not the environment's names);
- without `--yes` nothing is created: the plan is printed (a dry run).

Resource names follow the modules (modules/database.py, modules/network.py, modules/backup.py);
tests/test_restore.py checks them against the synthesized stacks, so they cannot drift apart.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from environments.model import EnvironmentConfig
from ops import preflight
from ops.errors import Refused, UsageError
from ops.project import load_target
from ops.targets import Kind

if TYPE_CHECKING:
    from ops.tools import Tools

# What RestoreDBClusterFromSnapshot and CreateDBInstance need that the snapshot does not carry.
INSTANCE_CLASS = "db.serverless"
LOG_EXPORTS = ["postgresql"]
# Snapshot kinds RDS lists separately: AWS Backup's (and their copies), manual, automated.
SNAPSHOT_TYPES = ("awsbackup", "manual", "automated")
TIMESTAMP = "%Y%m%d%H%M"
NO_PARAMETER_GROUP = "none in this region: the engine default (no TLS-only rule)"


class RestoreRefused(Exception):
    """A safety rule stopped the restore: one line, nothing created."""


class RestoreUsageError(Exception):
    """The request itself is wrong (a region the environment does not use): exit status 2."""


# --- names the modules give things ---------------------------------------------------------------

def cluster_identifier(env: EnvironmentConfig) -> str:
    return env.resource_name("db")  # modules/database.py: "<prefix>-db"


def subnet_group_name(env: EnvironmentConfig) -> str:
    return env.resource_name("data")  # modules/database.py: the DB subnet group of the data subnets


def security_group_name(env: EnvironmentConfig) -> str:
    return env.resource_name("database")  # modules/network.py: "<prefix>-database"


def parameter_group_name(env: EnvironmentConfig) -> str:
    return env.resource_name("aurora-postgresql16")  # modules/database.py: TLS only, connection logging


def key_alias(env: EnvironmentConfig, region: str) -> str:
    """The key a recovery point in `region` is encrypted with: the database's, or the DR vault's."""
    if region == env.region:
        return f"alias/{env.resource_name('data')}"  # modules/database.py
    return f"alias/{env.resource_name('backup-dr')}"  # modules/backup.py: the copy vault's own key


# --- the plan ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Snapshot:
    identifier: str
    arn: str
    created: datetime
    engine: str
    engine_version: str


@dataclass(frozen=True)
class RestorePlan:
    """Everything the restore will create, decided before anything is."""

    environment: str
    region: str
    snapshot: Snapshot
    cluster_id: str
    writer_id: str
    kms_key_arn: str
    subnet_group: str
    vpc_id: str
    security_group_id: str
    parameter_group: str | None
    min_acu: float
    max_acu: float
    deletion_protection: bool

    def lines(self) -> list[str]:
        snapshot = self.snapshot
        return [
            f"restore {self.environment} in {self.region} from {snapshot.identifier} "
            f"(taken {snapshot.created:%Y-%m-%d %H:%M} UTC, {snapshot.engine} {snapshot.engine_version})",
            f"  new cluster      {self.cluster_id} (Serverless v2, {self.min_acu:g}-{self.max_acu:g} ACU, "
            f"deletion protection {'on' if self.deletion_protection else 'off'})",
            f"  writer instance  {self.writer_id} ({INSTANCE_CLASS}, not publicly accessible)",
            f"  encrypted with   {self.kms_key_arn}",
            f"  subnet group     {self.subnet_group} (VPC {self.vpc_id})",
            f"  security group   {self.security_group_id}",
            f"  parameter group  {self.parameter_group or NO_PARAMETER_GROUP}",
        ]


Client = Callable[[str, str], Any]  # (service, region) -> a boto3 client


def _error_code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _snapshot(raw: dict) -> Snapshot:
    return Snapshot(identifier=raw["DBClusterSnapshotIdentifier"], arn=raw["DBClusterSnapshotArn"],
                    created=raw["SnapshotCreateTime"], engine=raw["Engine"], engine_version=raw["EngineVersion"])


def find_snapshot(rds, env: EnvironmentConfig, region: str, name: str | None) -> Snapshot:
    """The named snapshot, or the newest available one, of this environment's cluster."""
    source = cluster_identifier(env)
    if name:
        try:
            found = rds.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=name)["DBClusterSnapshots"]
        except Exception as error:  # botocore's ClientError; its code says what went wrong
            if _error_code(error) == "DBClusterSnapshotNotFoundFault":
                raise RestoreRefused(f"no cluster snapshot {name} in {region}") from None
            raise
        if not found or found[0]["DBClusterIdentifier"] != source:
            owner = found[0]["DBClusterIdentifier"] if found else "nothing"
            raise RestoreRefused(f"snapshot {name} in {region} belongs to {owner}, not to {source} ({env.name})")
        if found[0]["Status"] != "available":
            raise RestoreRefused(f"snapshot {name} is {found[0]['Status']}, not available")
        return _snapshot(found[0])
    candidates = [raw for kind in SNAPSHOT_TYPES
                  for raw in rds.describe_db_cluster_snapshots(DBClusterIdentifier=source, SnapshotType=kind)[
                      "DBClusterSnapshots"]
                  if raw["DBClusterIdentifier"] == source and raw["Status"] == "available"]
    if not candidates:
        raise RestoreRefused(f"no available snapshot of {source} in {region}: nothing to restore "
                             "(AWS Backup copies arrive after the first scheduled backup)")
    return _snapshot(max(candidates, key=lambda raw: raw["SnapshotCreateTime"]))


def _refuse_existing(rds, cluster_id: str, writer_id: str, region: str) -> None:
    """Never overwrite: an existing cluster or instance of that name stops the restore."""
    checks = (("cluster", "DBClusterNotFoundFault", lambda: rds.describe_db_clusters(DBClusterIdentifier=cluster_id)),
              ("instance", "DBInstanceNotFound", lambda: rds.describe_db_instances(DBInstanceIdentifier=writer_id)))
    for kind, missing, describe in checks:
        name = cluster_id if kind == "cluster" else writer_id
        try:
            describe()
        except Exception as error:
            if _error_code(error) == missing:
                continue
            raise
        raise RestoreRefused(f"a DB {kind} named {name} already exists in {region}: refusing to overwrite it "
                             "(this snapshot was restored before; delete that one or name another snapshot)")


def _key_arn(kms, env: EnvironmentConfig, region: str) -> str:
    alias = key_alias(env, region)
    try:
        return kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"]
    except Exception as error:
        if _error_code(error) == "NotFoundException":
            raise RestoreRefused(f"no KMS key {alias} in {region}: deploy {env.name} (with [dr] for the DR "
                                 "region) first") from None
        raise


def _network(rds, ec2, region: str, group: str, name: str) -> tuple[str, str, str]:
    """(subnet group, its VPC, the security group `name` in that VPC), which must exist in `region`."""
    try:
        (subnets,) = rds.describe_db_subnet_groups(DBSubnetGroupName=group)["DBSubnetGroups"]
    except Exception as error:
        if _error_code(error) == "DBSubnetGroupNotFoundFault":
            raise RestoreRefused(f"no DB subnet group {group} in {region}: a network must exist there first "
                                 "(docs/runbooks.md, Region lost; --subnet-group names another)") from None
        raise
    vpc = subnets["VpcId"]
    groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [name]},
                                                   {"Name": "vpc-id", "Values": [vpc]}])["SecurityGroups"]
    if len(groups) != 1:
        raise RestoreRefused(f"expected one security group {name} in {vpc} ({region}), found {len(groups)}")
    return group, vpc, groups[0]["GroupId"]


def _parameter_group(rds, env: EnvironmentConfig) -> str | None:
    name = parameter_group_name(env)
    try:
        rds.describe_db_cluster_parameter_groups(DBClusterParameterGroupName=name)
    except Exception as error:
        if _error_code(error) == "DBParameterGroupNotFound":
            return None
        raise
    return name


def plan_restore(env: EnvironmentConfig, region: str, snapshot_name: str | None, client: Client,
                 subnet_group: str | None = None, security_group: str | None = None) -> RestorePlan:
    """Check every rule and look everything up; create nothing.

    The network is the environment's own (its modules' names) unless other names are given, such
    as those of an environment deployed into the DR region after the primary was lost.
    """
    allowed = [env.region] + ([env.dr.region] if env.dr else [])
    if region not in allowed:
        raise RestoreUsageError(f"{env.name} restores only into {' or '.join(allowed)} (its region"
                                f"{' or its [dr] region' if env.dr else ''}), not {region}")
    rds = client("rds", region)
    snapshot = find_snapshot(rds, env, region, snapshot_name)
    cluster_id = f"{cluster_identifier(env)}-r{snapshot.created:{TIMESTAMP}}"
    writer_id = f"{cluster_id}-writer"
    _refuse_existing(rds, cluster_id, writer_id, region)
    subnet_group, vpc, security_group = _network(rds, client("ec2", region), region,
                                                 subnet_group or subnet_group_name(env),
                                                 security_group or security_group_name(env))
    return RestorePlan(
        environment=env.name, region=region, snapshot=snapshot, cluster_id=cluster_id, writer_id=writer_id,
        kms_key_arn=_key_arn(client("kms", region), env, region), subnet_group=subnet_group, vpc_id=vpc,
        security_group_id=security_group, parameter_group=_parameter_group(rds, env),
        min_acu=env.database.min_acu, max_acu=env.database.max_acu,
        deletion_protection=env.database.deletion_protection)


def restore_tags(env: EnvironmentConfig, plan: RestorePlan) -> list[dict[str, str]]:
    """The environment's cost and ownership tags; not `ManagedBy: cdktf`, since no stack manages it."""
    tags = {"Environment": env.name, "Application": env.application, "Project": env.application,
            "Owner": env.owner, "CostCenter": env.cost_center, "ManagedBy": "ops restore",
            "RestoredFrom": plan.snapshot.arn}
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def apply_restore(env: EnvironmentConfig, plan: RestorePlan, client: Client) -> dict:
    """Create the cluster from the snapshot, then its writer; returns the new cluster's description."""
    rds = client("rds", plan.region)
    options = {"DBClusterParameterGroupName": plan.parameter_group} if plan.parameter_group else {}
    cluster = rds.restore_db_cluster_from_snapshot(
        DBClusterIdentifier=plan.cluster_id, SnapshotIdentifier=plan.snapshot.identifier,
        Engine=plan.snapshot.engine, EngineVersion=plan.snapshot.engine_version, EngineMode="provisioned",
        DBSubnetGroupName=plan.subnet_group, VpcSecurityGroupIds=[plan.security_group_id],
        KmsKeyId=plan.kms_key_arn, DeletionProtection=plan.deletion_protection, CopyTagsToSnapshot=True,
        EnableCloudwatchLogsExports=LOG_EXPORTS, EnableIAMDatabaseAuthentication=True,
        ServerlessV2ScalingConfiguration={"MinCapacity": plan.min_acu, "MaxCapacity": plan.max_acu},
        Tags=restore_tags(env, plan), **options)["DBCluster"]
    rds.create_db_instance(
        DBInstanceIdentifier=plan.writer_id, DBClusterIdentifier=plan.cluster_id, DBInstanceClass=INSTANCE_CLASS,
        Engine=plan.snapshot.engine, PubliclyAccessible=False, Tags=restore_tags(env, plan))
    return cluster


def next_steps(env: EnvironmentConfig, plan: RestorePlan, endpoint: str) -> list[str]:
    """How to point the API at the restored cluster."""
    region = plan.region
    return [
        f"created {plan.cluster_id} and its writer {plan.writer_id} in {region}; endpoint {endpoint}",
        "next steps:",
        f"  1. wait until it is available: aws rds wait db-instance-available --region {region} "
        f"--db-instance-identifier {plan.writer_id}",
        "  2. its master password is the one the snapshot holds; hand it to RDS again (a new managed secret): "
        f"aws rds modify-db-cluster --region {region} --db-cluster-identifier {plan.cluster_id} "
        f"--manage-master-user-password --master-user-secret-kms-key-id {plan.kms_key_arn} --apply-immediately",
        f"  3. point the API at it: its tasks read DB_HOST and the secret named in DB_SECRET_ARN; set DB_HOST to "
        f"{endpoint} and the secret to the one step 2 printed in a new task-definition revision of the "
        f"{env.resource_name('api')} service (in {region}), or make it permanent by renaming the lost cluster "
        f"away and this one to {cluster_identifier(env)}, then `python -m ops plan {env.name}` "
        "to reconcile (docs/runbooks.md, Region lost)",
    ]


def cmd_restore(tools: Tools, args: argparse.Namespace) -> int:
    """Plan the restore (always shown), and carry it out with --yes."""
    project, stack = load_target(tools, args.environment, Kind.ENVIRONMENT)
    env = stack.environment
    region = args.region or env.region

    def client(service: str, service_region: str):
        return tools.aws(project, service, service_region)

    try:
        plan = plan_restore(env, region, args.snapshot, client, args.subnet_group, args.security_group)
        for line in plan.lines():
            tools.say(line)
        if not args.yes:
            tools.say("dry run: nothing created; add --yes to restore")
            return 0
        cluster = apply_restore(env, plan, client)
    except RestoreUsageError as error:
        raise UsageError(str(error)) from None
    except RestoreRefused as error:
        raise Refused(f"not restoring {env.name}: {error}") from None
    except preflight.AWS_ERRORS as error:
        raise Refused(f"not restoring {env.name}: {preflight.describe_error(error)}") from None
    for line in next_steps(env, plan, cluster.get("Endpoint", "(not reported yet)")):
        tools.say(line)
    return 0
