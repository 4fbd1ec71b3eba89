"""The environment in its DR region (issue 25): `<env>-dr` stacks, the global database, failover records.

The shipped configuration has both strategies (staging `backup`, production `standby`); variants add a
hosted zone (failover records) and a copied recovery point. Each check of tests/dr_region_checks.py is
broken once in memory and seen to fail.
"""

from __future__ import annotations

import copy
import dataclasses
import json

import cdktf
import pytest

from environments.model import DrStrategy
from stacks import base
from stacks.dr import DisasterRecoveryStack
from stacks.environment import EnvironmentStack
from tests import dr_region_checks as checks
from tests.conftest import resources_of

ZONE = "Z0123456789ABCDEFGHIJ"
DR_SNAPSHOT = "awsbackup:copyjob-0a1b2c3d-4e5f"


def synth_pair(project, env) -> tuple[dict, dict]:
    """The environment's stack and its DR-region stack, synthesized for `env`."""
    primary = json.loads(cdktf.Testing.synth(EnvironmentStack(cdktf.Testing.app(), project, env)))
    dr = json.loads(cdktf.Testing.synth(DisasterRecoveryStack(cdktf.Testing.app(), project, env)))
    return primary, dr


def as_backup(env, **changes):
    return dataclasses.replace(env, dr=dataclasses.replace(env.dr, strategy=DrStrategy.BACKUP, standby_cidr=None,
                                                           standby_min_tasks=0, **changes))


@pytest.fixture(scope="module")
def zoned(project):
    """production and staging with a hosted zone: failover records, standby and backup."""
    return {name: (env, *synth_pair(project, env)) for name, env in (
        (name, dataclasses.replace(project.environment(name), hosted_zone_id=ZONE))
        for name in ("production", "staging"))}


@pytest.mark.parametrize("name", ["production", "staging"])
def test_every_shipped_dr_region_stack_follows_its_configuration(stacks, project, name):
    env = project.environment(name)
    checks.check_dr_region(stacks[name], stacks[f"{name}-dr"], env)


def test_production_runs_a_warm_standby_and_staging_only_backups(stacks, project):
    production, staging = stacks["production-dr"], stacks["staging-dr"]
    assert resources_of(production, "aws_ecs_service") and resources_of(staging, "aws_ecs_service")
    (global_cluster,) = resources_of(stacks["production"], "aws_rds_global_cluster").values()
    assert global_cluster["global_cluster_identifier"] == "webapp-production-global"
    (secondary,) = resources_of(production, "aws_rds_cluster").values()
    assert secondary["global_cluster_identifier"] == "webapp-production-global"
    assert secondary["cluster_identifier"] == "webapp-production-dr-db"
    (service,) = resources_of(production, "aws_ecs_service").values()
    assert service["desired_count"] == project.environment("production").dr.standby_min_tasks == 1
    (service,) = resources_of(staging, "aws_ecs_service").values()
    assert service["desired_count"] == project.environment("staging").api.min_tasks == 2
    assert not resources_of(stacks["staging"], "aws_rds_global_cluster")


def test_dr_stacks_keep_their_own_state_key(stacks, project):
    for env in project.environments:
        if env.dr:
            assert stacks[env.dr_stack_name]["terraform"]["backend"]["s3"]["key"] == env.dr_state_key
            assert project.state_keys[env.dr_stack_name] == env.dr_state_key


def test_dr_names_never_collide_with_the_environment_s(stacks):
    """One account holds both stacks: IAM roles are global, so every name differs."""
    for name in ("staging", "production"):
        roles = {role["name"] for role in resources_of(stacks[name], "aws_iam_role").values()}
        dr_roles = {role["name"] for role in resources_of(stacks[f"{name}-dr"], "aws_iam_role").values()}
        assert dr_roles and not roles & dr_roles
        assert all(role.startswith(f"webapp-{name}-dr-") for role in dr_roles)


@pytest.mark.parametrize("name", ["production", "staging"])
def test_with_a_hosted_zone_the_api_fails_over_between_the_regions(zoned, name):
    env, primary, dr = zoned[name]
    checks.check_dr_region(primary, dr, env)
    (primary_check,) = resources_of(primary, "aws_route53_health_check").values()
    (dr_check,) = resources_of(dr, "aws_route53_health_check").values()
    assert primary_check["resource_path"] == dr_check["resource_path"] == "/health"
    identifiers = {record["set_identifier"] for stack in (primary, dr)
                   for record in resources_of(stack, "aws_route53_record").values() if "set_identifier" in record}
    assert identifiers == {f"webapp-{name}-primary", f"webapp-{name}-dr-secondary"}


def test_without_dr_the_api_keeps_plain_alias_records(project):
    env = dataclasses.replace(project.environment("dev"), hosted_zone_id=ZONE)
    stack = json.loads(cdktf.Testing.synth(EnvironmentStack(cdktf.Testing.app(), project, env)))
    checks.check_failover_records(stack, env, "PRIMARY")
    assert not resources_of(stack, "aws_route53_health_check")


def test_a_backup_dr_stack_restores_the_named_copy(project):
    env = as_backup(project.environment("production"), restore_from_snapshot=DR_SNAPSHOT)
    primary, dr = synth_pair(project, env)
    checks.check_dr_region(primary, dr, env)
    (cluster,) = resources_of(dr, "aws_rds_cluster").values()
    assert cluster["snapshot_identifier"] == DR_SNAPSHOT
    assert cluster["cluster_identifier"].startswith("webapp-production-dr-db-r")


# What a standby changes on the primary's cluster: RDS may not manage a global member's master password
# (Aurora User Guide, Secrets Manager limitations), so it becomes write-only; each is modifiable in place.
MASTER_CREDENTIALS = {"manage_master_user_password", "master_user_secret_kms_key_id", "master_password_wo",
                      "master_password_wo_version", "lifecycle"}


def test_adding_a_standby_changes_the_primary_cluster_only_by_ignored_membership(project):
    """The change that adds a standby must never replace production's cluster: the cluster's arguments are
    identical but for its master credentials (managed by RDS before, write-only after: both modifiable in
    place), and the global cluster is made from it (`source_db_cluster_identifier`), so Terraform plans an
    update in place (its lifecycle is no argument). Proven on the emulator as well (tests/test_emulated_deploy.py,
    the standby added to an applied dev)."""
    standby = project.environment("production")
    before, _ = synth_pair(project, as_backup(standby))
    after, _ = synth_pair(project, standby)
    (old,) = resources_of(before, "aws_rds_cluster").values()
    (new,) = resources_of(after, "aws_rds_cluster").values()
    assert {key: value for key, value in new.items() if key not in MASTER_CREDENTIALS} == \
        {key: value for key, value in old.items() if key not in MASTER_CREDENTIALS}
    assert set(old) - set(new) == {"manage_master_user_password", "master_user_secret_kms_key_id"}
    assert set(new) - set(old) == {"master_password_wo", "master_password_wo_version", "lifecycle"}
    assert "lifecycle" not in old
    assert new["lifecycle"] == {"ignore_changes": ["replication_source_identifier", "global_cluster_identifier"]}
    assert resources_of(before, "aws_rds_cluster_instance") == resources_of(after, "aws_rds_cluster_instance")


def test_every_provider_of_a_dr_stack_comes_from_region_provider(project, monkeypatch):
    """Role assumption and account guards live in EnvironmentStackBase.region_provider: nothing may bypass it."""
    calls = []
    original = base.EnvironmentStackBase.region_provider

    def counting(self, region, alias=None):
        calls.append((region, alias))
        return original(self, region, alias)

    monkeypatch.setattr(base.EnvironmentStackBase, "region_provider", counting)
    env = project.environment("production")
    stack = json.loads(cdktf.Testing.synth(DisasterRecoveryStack(cdktf.Testing.app(), project, env)))
    assert calls == [(env.dr.region, None)]
    assert [(p["region"], p.get("alias")) for p in stack["provider"]["aws"]] == calls


# -- each check bites ------------------------------------------------------------------------------

def _break(stack: dict, resource_type: str, change) -> dict:
    broken = copy.deepcopy(stack)
    for resource in resources_of(broken, resource_type).values():
        change(resource)
    return broken


BREAKAGES = {
    "secondary outside the global database": ("dr", "aws_rds_cluster", lambda r: r.pop("global_cluster_identifier"),
                                              "the DR cluster is the secondary"),
    "secondary with a master user": ("dr", "aws_rds_cluster", lambda r: r.update(master_username="admin"),
                                     "takes its users from the primary"),
    "another engine version": ("dr", "aws_rds_cluster", lambda r: r.update(engine_version="16.4"),
                               "engine and version differ"),
    "unencrypted secondary": ("dr", "aws_rds_cluster", lambda r: r.update(storage_encrypted=False),
                              "must be encrypted"),
    "secondary in the app subnets": ("dr", "aws_db_subnet_group", lambda r: r["subnet_ids"].pop(),
                                     "exactly the DR VPC's data subnets"),
    "standby at full size": ("dr", "aws_ecs_service", lambda r: r.update(desired_count=3), "runs 3 tasks, not 1"),
    "global cluster from nothing": ("primary", "aws_rds_global_cluster",
                                    lambda r: r.update(source_db_cluster_identifier="x"), "existing cluster"),
    "primary referencing the global cluster": ("primary", "aws_rds_cluster",
                                               lambda r: r.update(global_cluster_identifier="x"), "circular"),
    "shared state key": ("dr", None, lambda s: s["terraform"]["backend"]["s3"].update(key="production/x"),
                         "state key is 'production/x'"),
}


@pytest.mark.parametrize("case", sorted(BREAKAGES))
def test_each_dr_check_fails_on_its_defect(stacks, project, case):
    side, resource_type, change, message = BREAKAGES[case]
    pair = {"primary": stacks["production"], "dr": stacks["production-dr"]}
    if resource_type is None:
        pair[side] = copy.deepcopy(pair[side])
        change(pair[side])
    else:
        pair[side] = _break(pair[side], resource_type, change)
    with pytest.raises(AssertionError, match=message):
        checks.check_dr_region(pair["primary"], pair["dr"], project.environment("production"))


def test_the_failover_check_fails_on_a_plain_record(zoned):
    env, primary, dr = zoned["production"]
    broken = _break(dr, "aws_route53_record", lambda r: r.pop("failover_routing_policy", None))
    with pytest.raises(AssertionError, match="failover_routing_policy"):
        checks.check_failover_records(broken, env, "SECONDARY")
    broken = _break(primary, "aws_route53_health_check", lambda r: r.update(resource_path="/"))
    with pytest.raises(AssertionError, match="HTTPS :443 /health"):
        checks.check_failover_records(broken, env, "PRIMARY")
