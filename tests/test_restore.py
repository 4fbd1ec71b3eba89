"""`python -m ops restore`: its rules through the injectable tools (no AWS), its addresses vs the stacks.

The AWS side is a small in-memory fake of the one call ops/restore.py makes (listing cluster
snapshots per region); the preflight is a recorder. The restore drill against the emulator (the
change written, dev deployed onto the restored cluster) is in tests/test_emulated_deploy.py.
"""

from __future__ import annotations

import io
import shutil
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from core.naming import database_cluster_identifier
from environments.loader import load_project
from ops import cli, errors, preflight, restore
from ops import tools as ops_tools
from tests.conftest import ENVIRONMENTS_DIR, resources_of

DR = "eu-central-1"
OLD, NEW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC), datetime(2026, 12, 2, 3, 0, tzinfo=UTC)


def missing(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "not found"}}, "Describe")


def snapshot(identifier: str, cluster: str, created: datetime, kind: str = "awsbackup", status: str = "available",
             region: str = DR) -> dict:
    return {"DBClusterSnapshotIdentifier": identifier,
            "DBClusterSnapshotArn": f"arn:aws:rds:{region}:123456789012:cluster-snapshot:{identifier}",
            "DBClusterIdentifier": cluster, "SnapshotCreateTime": created, "Engine": "aurora-postgresql",
            "EngineVersion": "16.6", "Status": status, "SnapshotType": kind}


@dataclass
class FakeRds:
    """One region's cluster snapshots; records every call so a test can see none was made."""

    snapshots: list[dict] = field(default_factory=list)
    calls: int = 0

    def describe_db_cluster_snapshots(self, DBClusterSnapshotIdentifier=None, SnapshotType=None, Marker=None):
        self.calls += 1
        found = [s for s in self.snapshots
                 if DBClusterSnapshotIdentifier in (None, s["DBClusterSnapshotIdentifier"])
                 and SnapshotType in (None, s["SnapshotType"])]
        if DBClusterSnapshotIdentifier and not found:
            raise missing("DBClusterSnapshotNotFoundFault")
        return {"DBClusterSnapshots": found}


@dataclass
class World:
    """The AWS regions, the checked-out configuration (a copy) and what the preflight says."""

    root: Path
    regions: dict[str, FakeRds]
    preflight_ok: bool = True
    preflights: list[str] = field(default_factory=list)
    roles: list = field(default_factory=list)  # the role each AWS client was made for

    def file(self, name: str) -> Path:
        return self.root / "environments" / f"{name}.toml"

    def environment(self, name: str):
        return load_project(self.root / "environments").environment(name)

    def run_preflight(self, project, name: str) -> preflight.PreflightResult:
        self.preflights.append(name)
        check = preflight.CheckResult("account", self.preflight_ok, "the configured account" if self.preflight_ok
                                      else "credentials are for 999999999999, not the configured account")
        return preflight.PreflightResult(name, "123456789012", (check,))

    def aws(self, project, service: str, region: str, role=None):
        self.roles.append(role)
        return self.regions[region]

    def run(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        tools = ops_tools.Tools(out=out, err=err, root=self.root, environ={}, run_preflight=self.run_preflight,
                                aws=self.aws)
        code = cli.main(["restore", *argv], tools)
        return code, out.getvalue(), err.getvalue()


@pytest.fixture
def world(tmp_path, project) -> World:
    """staging: two copies of its cluster in the DR region, one of another cluster, one still being made;
    at home an AWS Backup recovery point, a manual and an automated snapshot."""
    shutil.copytree(ENVIRONMENTS_DIR, tmp_path / "environments")
    cluster = restore.cluster_identifier(project.environment("staging"))
    home = FakeRds([snapshot("awsbackup:job-1", cluster, OLD, region="eu-west-1"),
                    snapshot("before-migration", cluster, NEW, kind="manual", region="eu-west-1"),
                    snapshot("rds:webapp-staging-db-2026-11-30", cluster, datetime(2026, 11, 30, tzinfo=UTC),
                             kind="automated", region="eu-west-1")])
    dr = FakeRds([snapshot("awsbackup:copyjob-old", cluster, OLD), snapshot("awsbackup:copyjob-new", cluster, NEW),
                  snapshot("other", "someone-elses-db", datetime(2026, 12, 3, tzinfo=UTC)),
                  snapshot("creating", cluster, datetime(2026, 12, 3, tzinfo=UTC), status="creating")])
    return World(tmp_path, {"eu-west-1": home, DR: dr})


def test_without_write_the_change_and_the_deploy_steps_are_printed_and_nothing_is_written(world):
    before = world.file("staging").read_bytes()
    code, out, err = world.run("staging")
    assert code == 0, err
    assert 'environments/staging.toml, [database]: restore_from_snapshot = "before-migration"' in out
    assert "not written; --write writes it" in out
    assert world.file("staging").read_bytes() == before
    assert world.preflights == ["staging"], "the account check runs as for deploy"


def test_write_makes_the_snapshot_the_environments_database(world):
    code, out, err = world.run("staging", "--latest", "--write")
    assert code == 0, err
    env = world.environment("staging")
    assert env.database.restore_from_snapshot == "before-migration"
    document = tomllib.loads(world.file("staging").read_text())
    assert document["database"]["restore_from_snapshot"] == "before-migration"
    new = database_cluster_identifier("webapp-staging", "before-migration")
    assert restore.cluster_identifier(env) == new != "webapp-staging-db"
    assert f"becomes {new}, replacing webapp-staging-db" in out


def test_the_steps_name_every_replaced_address_and_deploy_twice(world, project):
    env = project.environment("production")
    world.regions["eu-west-1"].snapshots.append(
        snapshot("awsbackup:job-9", restore.cluster_identifier(env), NEW, region="eu-west-1"))
    code, out, err = world.run("production", "--snapshot", "awsbackup:job-9")
    assert code == 0, err
    allow = " ".join(f"--allow-replace {address}" for address in restore.replaced_addresses(env))
    assert f"python -m ops deploy production {allow}:" in out
    assert "python -m ops deploy production once more" in out and restore.IAM_AUTH_ISSUE in out
    # production keeps deletion protection: the old cluster can only go (with its final snapshot) once released
    assert ("--db-cluster-identifier webapp-production-db --no-deletion-protection" in out
            and "final snapshot webapp-production-db-final" in out)
    assert "master" not in out.replace("the only holder of the master secret", ""), "no step hands out a secret"


def test_without_deletion_protection_the_operator_is_told_the_old_cluster_leaves_no_final_snapshot(world, project):
    env = project.environment("dev")
    world.regions["eu-west-1"].snapshots.append(
        snapshot("dev-snap", restore.cluster_identifier(env), NEW, kind="manual", region="eu-west-1"))
    code, out, _ = world.run("dev")
    assert code == 0 and "deleted without a final snapshot" in out
    assert "create-db-cluster-snapshot --region eu-west-1 --db-cluster-identifier webapp-dev-db" in out


def test_a_second_run_of_the_same_restore_changes_nothing(world):
    assert world.run("staging", "--write")[0] == 0
    written = world.file("staging").read_bytes()
    for argv in (("staging", "--write"), ("staging", "--snapshot", "before-migration", "--write"), ("staging",)):
        code, out, err = world.run(*argv)
        assert code == 0, err
        assert "nothing to do: staging.toml already restores cluster" in out
        assert world.file("staging").read_bytes() == written


def test_another_snapshot_replaces_the_line_and_snapshots_of_a_restored_cluster_count(world):
    """After one restore the environment's cluster is `<app>-<env>-db-r<digest>`; its snapshots are its own."""
    assert world.run("staging", "--write")[0] == 0
    restored = restore.cluster_identifier(world.environment("staging"))
    world.regions["eu-west-1"].snapshots.append(
        snapshot("after-restore", restored, datetime(2026, 12, 5, tzinfo=UTC), kind="manual", region="eu-west-1"))
    code, out, err = world.run("staging", "--write")
    assert code == 0, err
    assert f"of {restored}" in out and f"replacing {restored}" in out
    text = world.file("staging").read_text()
    assert text.count("restore_from_snapshot") == 1 and 'restore_from_snapshot = "after-restore"' in text


def test_the_recovery_points_are_looked_up_as_the_environment_s_deploy_role(world):
    path = world.file("staging")
    role = 'account_id = "222222222222"\ndeploy_role_arn = "arn:aws:iam::222222222222:role/d"\n'
    path.write_text(path.read_text().replace('region = "eu-west-1"\n', f'region = "eu-west-1"\n{role}', 1))
    code, _, err = world.run("staging")
    assert code == 0, err
    assert world.roles and {(role.role_arn, role.session_name) for role in world.roles} == {
        ("arn:aws:iam::222222222222:role/d", "webapp-staging")}


def test_without_a_deploy_role_the_caller_s_own_credentials_look(world):
    assert world.run("staging")[0] == 0
    assert world.roles and set(world.roles) == {None}


def test_a_named_snapshot_is_used(world):
    code, _, err = world.run("staging", "--snapshot", "awsbackup:job-1", "--write")
    assert code == 0, err
    assert world.environment("staging").database.restore_from_snapshot == "awsbackup:job-1"


@pytest.mark.parametrize(("snapshot_id", "message"), [
    ("other", "belongs to someone-elses-db"),
    ("creating", "is creating, not available"),
    ("nope", "no cluster snapshot nope"),
])
def test_a_named_snapshot_must_be_the_environments_and_available(world, snapshot_id, message):
    code, _, err = world.run("staging", "--region", DR, "--snapshot", snapshot_id)
    assert code == errors.EXIT_REFUSED and message in err


def test_a_cluster_of_a_similarly_named_environment_is_not_this_ones(project):
    env = project.environment("staging")
    assert restore.is_environments_cluster(env, "webapp-staging-db")
    assert restore.is_environments_cluster(env, database_cluster_identifier("webapp-staging", "x"))
    for other in ("webapp-staging2-db", "webapp-staging-db-final", "webapp-staging-db-r1234", "xwebapp-staging-db"):
        assert not restore.is_environments_cluster(env, other), other


def test_no_snapshot_at_all_is_refused(world):
    world.regions[DR].snapshots.clear()
    code, _, err = world.run("staging", "--region", DR)
    assert code == errors.EXIT_REFUSED and "no available snapshot of staging's cluster" in err


def test_the_dr_region_gets_the_change_for_the_dr_region_stack(world):
    before = world.file("staging").read_bytes()
    code, out, err = world.run("staging", "--region", DR, "--latest")
    assert code == 0, err
    assert "recovery point awsbackup:copyjob-new in eu-central-1" in out
    assert ('the change (not written; --write writes it): environments/staging.toml, [dr]: '
            'restore_from_snapshot = "awsbackup:copyjob-new"') in out
    assert "1. python -m ops deploy staging-dr" in out and "master" not in out
    assert world.file("staging").read_bytes() == before


def test_write_in_the_dr_region_makes_the_copy_the_dr_stack_s_database(world, project):
    code, out, err = world.run("staging", "--region", DR, "--write")
    assert code == 0, err
    env = world.environment("staging")
    assert env.dr.restore_from_snapshot == "awsbackup:copyjob-new"
    assert env.database.restore_from_snapshot is None, "the environment's own cluster is untouched"
    assert tomllib.loads(world.file("staging").read_text())["dr"]["restore_from_snapshot"] == "awsbackup:copyjob-new"
    code, out, err = world.run("staging", "--region", DR, "--write")
    assert code == 0 and "nothing to do" in out, "a second run changes nothing"


def test_a_standby_is_not_restored_in_its_dr_region(world):
    code, _, err = world.run("production", "--region", DR, "--write")
    assert code == errors.EXIT_REFUSED and "python -m ops failover production" in err
    assert not world.preflights


def test_only_the_environments_regions_are_allowed(world):
    code, _, err = world.run("staging", "--region", "us-west-2")
    assert code == errors.EXIT_USAGE and "only into eu-west-1 or eu-central-1" in err
    code, _, err = world.run("dev", "--region", DR)
    assert code == errors.EXIT_USAGE and "only into eu-west-1" in err


def test_a_failed_account_check_stops_before_anything_is_looked_up_or_written(world):
    world.preflight_ok = False
    before = world.file("staging").read_bytes()
    code, _, err = world.run("staging", "--write")
    assert code == errors.EXIT_REFUSED and "not restoring staging: preflight failed (account)" in err
    assert world.file("staging").read_bytes() == before
    assert not any(region.calls for region in world.regions.values())


def test_snapshot_and_latest_exclude_each_other(world):
    assert world.run("staging", "--snapshot", "x", "--latest")[0] == errors.EXIT_USAGE


def test_a_setting_the_loader_refuses_is_put_back(world, tmp_path):
    path = world.file("staging")
    before = path.read_bytes()
    tools = ops_tools.Tools(root=world.root, environ={})
    with pytest.raises(errors.UsageError, match=r"database\.restore_from_snapshot: must be a cluster snapshot"):
        restore.write_setting(tools, path, 'restore_from_snapshot = "two--hyphens"')
    assert path.read_bytes() == before


def test_the_setting_is_added_to_the_database_table_only():
    text = '[network]\ncidr = "10.0.0.0/16"\n\n[database]\nmin_acu = 1 # a comment\n\n[api]\ncpu = 256\n'
    added = restore.with_setting(text, 'restore_from_snapshot = "a"')
    assert tomllib.loads(added)["database"] == {"min_acu": 1, "restore_from_snapshot": "a"}
    assert restore.with_setting(added, 'restore_from_snapshot = "b"') == added.replace('"a"', '"b"')
    with pytest.raises(errors.UsageError, match="no \\[database\\] table"):
        restore.with_setting("[api]\ncpu = 256\n", 'restore_from_snapshot = "a"')


def test_the_addresses_are_the_ones_the_stacks_create(stacks, project):
    """The steps name what the deploy guard will ask for: the cluster, every instance and the log group."""
    for name in ("dev", "production"):
        env, stack = project.environment(name), stacks[name]
        cluster_logs = f"/aws/rds/cluster/{restore.cluster_identifier(env)}/postgresql"
        expected = {f"aws_rds_cluster.{key}" for key in resources_of(stack, "aws_rds_cluster")}
        expected |= {f"aws_rds_cluster_instance.{key}" for key in resources_of(stack, "aws_rds_cluster_instance")}
        expected |= {f"aws_cloudwatch_log_group.{key}"
                     for key, group in resources_of(stack, "aws_cloudwatch_log_group").items()
                     if group["name"] == cluster_logs}
        assert set(restore.replaced_addresses(env)) == expected
        assert len(expected) == 3 + env.database.reader_count
        (cluster,) = resources_of(stack, "aws_rds_cluster").values()
        assert cluster["cluster_identifier"] == restore.cluster_identifier(env)
