"""`python -m ops restore`: its safety rules through the injectable tools (no AWS), and its names vs the stacks.

The AWS side is a small in-memory fake of the calls ops/restore.py makes (RDS, EC2, KMS per
region); the restore drill against the emulator is in tests/test_emulated_deploy.py.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError

from ops import cli, errors, restore
from ops import tools as ops_tools
from tests.conftest import ROOT, resources_of

DR = "eu-central-1"
OLD, NEW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC), datetime(2026, 12, 2, 3, 0, tzinfo=UTC)


def missing(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "not found"}}, "Describe")


@dataclass
class Region:
    """What exists in one region, and what the restore created there."""

    snapshots: list[dict] = field(default_factory=list)
    clusters: set[str] = field(default_factory=set)
    instances: set[str] = field(default_factory=set)
    keys: dict[str, str] = field(default_factory=dict)  # alias -> ARN
    subnet_groups: dict[str, str] = field(default_factory=dict)  # name -> VPC
    security_groups: list[dict] = field(default_factory=list)
    parameter_groups: set[str] = field(default_factory=set)
    restored: list[dict] = field(default_factory=list)
    created_instances: list[dict] = field(default_factory=list)


class FakeRds:
    def __init__(self, region: Region):
        self.region = region

    def describe_db_cluster_snapshots(self, DBClusterSnapshotIdentifier=None, DBClusterIdentifier=None,
                                      SnapshotType=None):
        found = [s for s in self.region.snapshots
                 if DBClusterSnapshotIdentifier in (None, s["DBClusterSnapshotIdentifier"])
                 and DBClusterIdentifier in (None, s["DBClusterIdentifier"])
                 and SnapshotType in (None, s["SnapshotType"])]
        if DBClusterSnapshotIdentifier and not found:
            raise missing("DBClusterSnapshotNotFoundFault")
        return {"DBClusterSnapshots": found}

    def describe_db_clusters(self, DBClusterIdentifier):
        if DBClusterIdentifier not in self.region.clusters:
            raise missing("DBClusterNotFoundFault")
        return {"DBClusters": [{"DBClusterIdentifier": DBClusterIdentifier}]}

    def describe_db_instances(self, DBInstanceIdentifier):
        if DBInstanceIdentifier not in self.region.instances:
            raise missing("DBInstanceNotFound")
        return {"DBInstances": [{}]}

    def describe_db_subnet_groups(self, DBSubnetGroupName):
        if DBSubnetGroupName not in self.region.subnet_groups:
            raise missing("DBSubnetGroupNotFoundFault")
        return {"DBSubnetGroups": [{"VpcId": self.region.subnet_groups[DBSubnetGroupName]}]}

    def describe_db_cluster_parameter_groups(self, DBClusterParameterGroupName):
        if DBClusterParameterGroupName not in self.region.parameter_groups:
            raise missing("DBParameterGroupNotFound")
        return {}

    def restore_db_cluster_from_snapshot(self, **request):
        self.region.restored.append(request)
        self.region.clusters.add(request["DBClusterIdentifier"])
        return {"DBCluster": {"Endpoint": f"{request['DBClusterIdentifier']}.cluster-x.rds.amazonaws.com"}}

    def create_db_instance(self, **request):
        self.region.created_instances.append(request)
        self.region.instances.add(request["DBInstanceIdentifier"])


class FakeEc2:
    def __init__(self, region: Region):
        self.region = region

    def describe_security_groups(self, Filters):
        wanted = {f["Name"]: f["Values"][0] for f in Filters}
        return {"SecurityGroups": [g for g in self.region.security_groups
                                   if g["GroupName"] == wanted["group-name"] and g["VpcId"] == wanted["vpc-id"]]}


class FakeKms:
    def __init__(self, region: Region):
        self.region = region

    def describe_key(self, KeyId):
        if KeyId not in self.region.keys:
            raise missing("NotFoundException")
        return {"KeyMetadata": {"Arn": self.region.keys[KeyId]}}


def snapshot(identifier: str, cluster: str, created: datetime, kind: str = "awsbackup", status: str = "available"):
    return {"DBClusterSnapshotIdentifier": identifier, "DBClusterSnapshotArn": f"arn:aws:rds:{DR}:1:{identifier}",
            "DBClusterIdentifier": cluster, "SnapshotCreateTime": created, "Engine": "aurora-postgresql",
            "EngineVersion": "16.6", "Status": status, "SnapshotType": kind}


@pytest.fixture
def world(project) -> dict[str, Region]:
    """staging's DR region with two copies of its cluster, one of another cluster, and its network."""
    env = project.environment("staging")
    cluster = restore.cluster_identifier(env)
    dr = Region(
        snapshots=[snapshot("awsbackup:copyjob-old", cluster, OLD), snapshot("awsbackup:copyjob-new", cluster, NEW),
                   snapshot("other", "someone-elses-db", datetime(2026, 12, 3, tzinfo=UTC)),
                   snapshot("creating", cluster, datetime(2026, 12, 3, tzinfo=UTC), status="creating")],
        keys={restore.key_alias(env, DR): "arn:aws:kms:eu-central-1:1:key/dr"},
        subnet_groups={restore.subnet_group_name(env): "vpc-dr"},
        security_groups=[{"GroupName": restore.security_group_name(env), "VpcId": "vpc-dr", "GroupId": "sg-db"},
                         {"GroupName": restore.security_group_name(env), "VpcId": "vpc-other", "GroupId": "sg-x"}])
    return {env.region: Region(), DR: dr}


def run(world: dict[str, Region], *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    clients = {"rds": FakeRds, "ec2": FakeEc2, "kms": FakeKms}
    tools = ops_tools.Tools(out=out, err=err, root=ROOT, environ={},
                        aws=lambda project, service, region: clients[service](world[region]))
    code = cli.main(["restore", *argv], tools)
    return code, out.getvalue(), err.getvalue()


def test_a_dry_run_prints_the_plan_and_creates_nothing(world, project):
    code, out, _ = run(world, "staging", "--region", DR)
    assert code == 0 and "dry run: nothing created" in out
    assert "awsbackup:copyjob-new" in out and "arn:aws:kms:eu-central-1:1:key/dr" in out and "sg-db" in out
    assert not world[DR].restored and not world[DR].created_instances


def test_yes_restores_the_newest_copy_into_a_new_private_serverless_cluster(world, project):
    env = project.environment("staging")
    code, out, err = run(world, "staging", "--region", DR, "--latest", "--yes")
    assert code == 0, err
    (request,) = world[DR].restored
    assert request["SnapshotIdentifier"].endswith("awsbackup:copyjob-new")
    assert request["DBClusterIdentifier"] == f"{restore.cluster_identifier(env)}-r202612020300"
    assert request["KmsKeyId"] == "arn:aws:kms:eu-central-1:1:key/dr"
    assert request["DBSubnetGroupName"] == restore.subnet_group_name(env)
    assert request["VpcSecurityGroupIds"] == ["sg-db"]
    assert request["ServerlessV2ScalingConfiguration"] == {"MinCapacity": env.database.min_acu,
                                                           "MaxCapacity": env.database.max_acu}
    assert request["DeletionProtection"] is env.database.deletion_protection
    assert "DBClusterParameterGroupName" not in request, "no parameter group exists in the DR region"
    (instance,) = world[DR].created_instances
    assert instance["PubliclyAccessible"] is False and instance["DBInstanceClass"] == "db.serverless"
    assert instance["DBClusterIdentifier"] == request["DBClusterIdentifier"]
    assert f"created {request['DBClusterIdentifier']}" in out and "point the API at it" in out


def test_a_second_run_refuses_to_overwrite(world):
    assert run(world, "staging", "--region", DR, "--yes")[0] == 0
    code, _, err = run(world, "staging", "--region", DR, "--yes")
    assert code == errors.EXIT_REFUSED and "already exists" in err and "refusing to overwrite" in err
    assert len(world[DR].restored) == 1


def test_an_existing_writer_instance_is_not_overwritten_either(world, project):
    cluster = f"{restore.cluster_identifier(project.environment('staging'))}-r202612020300"
    world[DR].instances.add(f"{cluster}-writer")
    code, _, err = run(world, "staging", "--region", DR, "--yes")
    assert code == errors.EXIT_REFUSED and "DB instance" in err and not world[DR].restored


def test_a_named_snapshot_of_the_cluster_is_used(world):
    code, _, _ = run(world, "staging", "--region", DR, "--snapshot", "awsbackup:copyjob-old", "--yes")
    assert code == 0 and world[DR].restored[0]["SnapshotIdentifier"].endswith("copyjob-old")


@pytest.mark.parametrize(("snapshot_id", "message"), [
    ("other", "belongs to someone-elses-db"),
    ("creating", "is creating, not available"),
    ("nope", "no cluster snapshot nope"),
])
def test_a_named_snapshot_must_be_this_clusters_and_available(world, snapshot_id, message):
    code, _, err = run(world, "staging", "--region", DR, "--snapshot", snapshot_id, "--yes")
    assert code == errors.EXIT_REFUSED and message in err and not world[DR].restored


def test_only_the_environments_regions_are_allowed(world):
    code, _, err = run(world, "staging", "--region", "us-west-2")
    assert code == errors.EXIT_USAGE and "only into eu-west-1 or eu-central-1" in err
    code, _, err = run(world, "dev", "--region", DR)
    assert code == errors.EXIT_USAGE and "only into eu-west-1" in err


def test_snapshot_and_latest_exclude_each_other(world):
    assert run(world, "staging", "--snapshot", "x", "--latest")[0] == errors.EXIT_USAGE


@pytest.mark.parametrize(("remove", "message"), [
    (lambda region: region.snapshots.clear(), "no available snapshot of"),
    (lambda region: region.keys.clear(), "no KMS key alias/webapp-staging-backup-dr"),
    (lambda region: region.subnet_groups.clear(), "no DB subnet group webapp-staging-data"),
    (lambda region: region.security_groups.clear(), "expected one security group webapp-staging-database"),
])
def test_what_the_restore_needs_must_exist(world, remove, message):
    remove(world[DR])
    code, _, err = run(world, "staging", "--region", DR, "--yes")
    assert code == errors.EXIT_REFUSED and message in err and not world[DR].restored


def test_another_network_can_be_named(world, project):
    """After losing the region: the network of an environment deployed into the DR region."""
    world[DR].subnet_groups["webapp-staging-dr-data"] = "vpc-new"
    world[DR].security_groups.append({"GroupName": "webapp-staging-dr-database", "VpcId": "vpc-new", "GroupId": "sg-n"})
    code, _, err = run(world, "staging", "--region", DR, "--subnet-group", "webapp-staging-dr-data",
                       "--security-group", "webapp-staging-dr-database", "--yes")
    assert code == 0, err
    (request,) = world[DR].restored
    assert request["DBSubnetGroupName"] == "webapp-staging-dr-data" and request["VpcSecurityGroupIds"] == ["sg-n"]


def test_in_its_own_region_the_database_key_and_parameter_group_are_used(world, project):
    env = project.environment("staging")
    home = world[env.region]
    home.snapshots = [snapshot("awsbackup:job-1", restore.cluster_identifier(env), NEW)]
    home.keys = {restore.key_alias(env, env.region): "arn:aws:kms:eu-west-1:1:key/data"}
    home.subnet_groups = {restore.subnet_group_name(env): "vpc-home"}
    home.security_groups = [{"GroupName": restore.security_group_name(env), "VpcId": "vpc-home", "GroupId": "sg-h"}]
    home.parameter_groups = {restore.parameter_group_name(env)}
    assert run(world, "staging", "--yes")[0] == 0
    (request,) = home.restored
    assert request["KmsKeyId"].endswith("key/data")
    assert request["DBClusterParameterGroupName"] == restore.parameter_group_name(env)


def test_the_names_are_the_ones_the_stacks_create(stacks, project):
    """restore.py looks things up by the modules' naming; the synthesized stacks must agree."""
    env = project.environment("staging")
    stack = stacks["staging"]
    (cluster,) = resources_of(stack, "aws_rds_cluster").values()
    assert cluster["cluster_identifier"] == restore.cluster_identifier(env)
    assert {g["name"] for g in resources_of(stack, "aws_db_subnet_group").values()} == {restore.subnet_group_name(env)}
    assert restore.security_group_name(env) in {g["name"] for g in resources_of(stack, "aws_security_group").values()}
    assert restore.parameter_group_name(env) in {
        g["name"] for g in resources_of(stack, "aws_rds_cluster_parameter_group").values()}
    aliases = {a["name"]: a for a in resources_of(stack, "aws_kms_alias").values()}
    assert "provider" not in aliases[restore.key_alias(env, env.region)]
    assert aliases[restore.key_alias(env, env.dr.region)]["provider"] == "aws.dr"
    copy_key = aliases[restore.key_alias(env, env.dr.region)]["target_key_id"]
    (copy_vault,) = [v for v in resources_of(stack, "aws_backup_vault").values() if v.get("provider") == "aws.dr"]
    assert copy_vault["kms_key_arn"] == copy_key.replace(".key_id}", ".arn}")
