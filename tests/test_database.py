"""SPEC 4.2, the data tier, on the shipped environments (properties 3 and 7 included)."""

from __future__ import annotations

import copy
import dataclasses
import json

import cdktf
import pytest

from environments.model import DrStrategy
from ops.master_password import MasterPassword
from stacks.environment import EnvironmentStack
from tests import api_checks
from tests import database_checks as checks
from tests.conftest import resources_of
from tests.iam_checks import check_key_policy_principals
from tests.network_checks import check_security_groups, ref_name, security_group_names, subnets_by_tier

# SPEC section 2, the defaults table: (min ACU, max ACU, readers, backup days, deletion protection).
SPEC_DATABASE = {
    "dev": (0.5, 2, 0, 7, False),
    "staging": (1, 4, 1, 7, True),
    "production": (2, 16, 1, 30, True),
}



def test_shipped_environments_get_the_spec_sizes(stacks):
    for name, (min_acu, max_acu, readers, backup_days, protected) in SPEC_DATABASE.items():
        _, db = checks.cluster(stacks[name])
        assert db["serverlessv2_scaling_configuration"] == {"min_capacity": min_acu, "max_capacity": max_acu}
        assert len(resources_of(stacks[name], "aws_rds_cluster_instance")) == 1 + readers
        assert db["backup_retention_period"] == backup_days
        assert db["deletion_protection"] is protected


def test_cluster_follows_its_environment_configuration(env_stack):
    env, stack = env_stack
    checks.check_cluster_follows_configuration(stack, env)


def test_backups_are_kept_at_least_a_week(env_stack):
    checks.check_backups(env_stack[1])


def test_database_is_private_encrypted_and_in_the_data_subnets(env_stack):
    checks.check_database_is_private_and_encrypted(env_stack[1])


def test_engine_is_a_current_postgresql_16(env_stack):
    _, db = checks.cluster(env_stack[1])
    assert db["engine"] == "aurora-postgresql" and db["engine_mode"] == "provisioned"
    assert db["engine_version"].startswith("16.")


def test_secrets_are_encrypted_with_customer_managed_keys(env_stack):
    checks.check_secrets_use_customer_managed_keys(env_stack[1])


def test_parameter_group_forces_tls_and_logs_connections(env_stack):
    checks.check_parameter_group(env_stack[1])


def test_postgresql_logs_go_to_a_precreated_encrypted_group(env_stack):
    env, stack = env_stack
    checks.check_postgresql_log_export(stack, env)


def test_master_secret_rotates_every_thirty_days_and_is_an_output(env_stack):
    """SPEC 2: every environment rotates its RDS-managed master secret every 30 days; production's cluster is a
    global database's primary, where RDS manages no password (its own secret: tested below)."""
    env, stack = env_stack
    name, _ = checks.cluster(stack)
    checks.check_master_credentials(stack, env)
    if env.standby:
        return
    (rotation,) = resources_of(stack, "aws_secretsmanager_secret_rotation").values()
    assert rotation["rotation_rules"]["automatically_after_days"] == 30
    assert rotation["secret_id"] == f"${{aws_rds_cluster.{name}.master_user_secret[0].secret_arn}}"


def test_the_global_primary_s_password_is_never_in_terraform(env_stack):
    """Production (standby): the cluster's first password is a throwaway generated in the run; no resource
    argument carries a password and the secret has no version in Terraform (ops/master_password.py sets both)."""
    env, stack = env_stack
    if not env.standby:
        assert "ephemeral" not in stack
        return
    assert '"master_password"' not in json.dumps(stack["resource"]), "a password argument ends up in the state"
    checks.check_master_credentials(stack, env)  # no secret version, the throwaway sent once
    where, (_, db) = MasterPassword.of(env), checks.cluster(stack)
    secret = checks.master_secret(stack).removeprefix("${aws_secretsmanager_secret.").removesuffix(".arn}")
    assert (where.cluster, where.secret) == (db["cluster_identifier"],
                                              resources_of(stack, "aws_secretsmanager_secret")[secret]["name"]), \
        "ops sets the password of the cluster and secret this stack creates"


def test_data_key_rotates_and_administration_stays_with_the_account(env_stack):
    _, stack = env_stack
    _, db = checks.cluster(stack)
    key_id = ref_name(db["kms_key_id"], "aws_kms_key")
    assert resources_of(stack, "aws_kms_key")[key_id]["enable_key_rotation"] is True
    check_key_policy_principals(stack, key_id)


def test_every_key_policy_admits_only_this_account(env_stack):
    _, stack = env_stack
    keys = resources_of(stack, "aws_kms_key")
    assert keys
    for key_id in keys:
        check_key_policy_principals(stack, key_id)


def test_enhanced_monitoring_uses_its_own_role(env_stack):
    _, stack = env_stack
    for instance in resources_of(stack, "aws_rds_cluster_instance").values():
        assert instance["monitoring_interval"] > 0
        role = resources_of(stack, "aws_iam_role")[ref_name(instance["monitoring_role_arn"], "aws_iam_role")]
        assert "monitoring" in role["name"]


def test_staging_and_production_ship_with_the_cache(project):
    """Seed 004 asks for a configured Redis cluster: the shipped staging and production run one."""
    assert {env.name: env.features.cache for env in project.environments} == {
        "dev": False, "staging": True, "production": True}


def test_no_cache_unless_enabled(stacks, project):
    for env in project.environments:
        assert bool(resources_of(stacks[env.name], "aws_elasticache_replication_group")) is env.features.cache


@pytest.fixture(scope="module")
def cached(project) -> dict:
    env = project.environment("dev")
    env = dataclasses.replace(env, features=dataclasses.replace(env.features, cache=True))
    return json.loads(cdktf.Testing.synth(EnvironmentStack(cdktf.Testing.app(), project, env)))


def test_cache_is_encrypted_authenticated_and_in_the_data_subnets(cached):
    (cache,) = resources_of(cached, "aws_elasticache_replication_group").values()
    assert cache["at_rest_encryption_enabled"] == "true" and cache["transit_encryption_enabled"] is True
    ref_name(cache["kms_key_id"], "aws_kms_key")
    assert cache["auth_token"].startswith("${data.aws_secretsmanager_random_password.")
    (subnet_group,) = resources_of(cached, "aws_elasticache_subnet_group").values()
    data_subnets = {f"${{aws_subnet.{name}.id}}" for name in subnets_by_tier(cached)["data"]}
    assert set(subnet_group["subnet_ids"]) == data_subnets
    checks.check_secrets_use_customer_managed_keys(cached)


def test_cache_is_reachable_only_from_the_api(cached):
    groups = security_group_names(cached)
    (cache,) = resources_of(cached, "aws_elasticache_replication_group").values()
    (group_ref,) = cache["security_group_ids"]
    assert groups[ref_name(group_ref, "aws_security_group")] == "cache"
    sources = [groups[ref_name(rule["referenced_security_group_id"], "aws_security_group")]
               for rule in resources_of(cached, "aws_vpc_security_group_ingress_rule").values()
               if groups[ref_name(rule["security_group_id"], "aws_security_group")] == "cache"]
    # the API, and the cache's own nodes replicating across zones (tests/test_reachability.py follows both flows)
    assert sorted(sources) == ["api", "cache"]
    check_security_groups(cached, 8080)


def test_cache_endpoint_and_token_reach_the_api_without_the_value(cached):
    container = api_checks.container(cached)
    secrets = {s["name"]: s["valueFrom"] for s in container["secrets"]}
    (secret_name,) = resources_of(cached, "aws_secretsmanager_secret")
    assert secrets["REDIS_AUTH_TOKEN"] == f"${{aws_secretsmanager_secret.{secret_name}.arn}}"
    variables = {v["name"]: v["value"] for v in container["environment"]}
    assert variables["REDIS_HOST"].startswith("${aws_elasticache_replication_group.")
    assert "random_password" not in api_checks.api_task_definition(cached)["container_definitions"]


# --- restore through Terraform (`database.restore_from_snapshot`, written by `python -m ops restore`) ---------

SNAPSHOT = "awsbackup:job-0123abcd"
# What a restore changes in the stack, by resource type: the cluster's restore settings and its name, which
# the instances, the RDS log group and the metrics that name the cluster follow. Nothing else.
RESTORE_CHANGES = {
    "aws_rds_cluster": {"snapshot_identifier", "cluster_identifier", "final_snapshot_identifier", "lifecycle",
                        "database_name", "master_username"},
    "aws_rds_cluster_instance": {"identifier", "lifecycle"},
    "aws_cloudwatch_log_group": {"name"},
    "aws_cloudwatch_metric_alarm": {"dimensions"},
    "aws_cloudwatch_dashboard": {"dashboard_body"},
}


def _synth(project, env) -> dict:
    return json.loads(cdktf.Testing.synth(EnvironmentStack(cdktf.Testing.app(), project, env)))


@pytest.fixture(scope="module")
def restore_pair(project) -> tuple:
    """production as shipped but with a backup DR strategy (a standby's primary is never restored in place: the
    loader refuses it), and restored from SNAPSHOT (deletion protection on, one reader)."""
    shipped = project.environment("production")
    env = dataclasses.replace(shipped, dr=dataclasses.replace(shipped.dr, strategy=DrStrategy.BACKUP,
                                                              standby_cidr=None, standby_min_tasks=0))
    restored = dataclasses.replace(env, database=dataclasses.replace(env.database, restore_from_snapshot=SNAPSHOT))
    return env, _synth(project, env), restored, _synth(project, restored)


def _changed(before: dict, after: dict) -> dict[str, set[str]]:
    """Resource type -> attributes that differ between two stacks (resources on one side only: '<added>')."""
    changed: dict[str, set[str]] = {}
    for kind in set(before["resource"]) | set(after["resource"]):
        old, new = before["resource"].get(kind, {}), after["resource"].get(kind, {})
        for name in set(old) | set(new):
            if name not in old or name not in new:
                changed.setdefault(kind, set()).add("<added or removed>")
                continue
            keys = {key for key in set(old[name]) | set(new[name]) if old[name].get(key) != new[name].get(key)}
            if keys:
                changed.setdefault(kind, set()).update(keys)
    return changed


def test_a_restore_creates_the_cluster_from_the_snapshot_with_every_setting_of_the_module(restore_pair):
    _, stack, restored_env, restored = restore_pair
    checks.check_restore_follows_configuration(restored, restored_env)
    checks.check_cluster_follows_configuration(restored, restored_env)
    _, before = checks.cluster(stack)
    _, after = checks.cluster(restored)
    assert after["snapshot_identifier"] == SNAPSHOT
    assert after["cluster_identifier"].startswith("webapp-production-db-r")
    assert after["final_snapshot_identifier"] == f"{after['cluster_identifier']}-final"
    # the parameter group, the key, IAM authentication, subnets, security group, managed master password ...
    kept = set(before) - RESTORE_CHANGES["aws_rds_cluster"]
    assert {key: after.get(key) for key in kept} == {key: before[key] for key in kept}
    for key in ("db_cluster_parameter_group_name", "kms_key_id", "iam_database_authentication_enabled",
                "manage_master_user_password", "master_user_secret_kms_key_id", "db_subnet_group_name",
                "vpc_security_group_ids", "deletion_protection"):
        assert key in kept, key
    # ... and the database and its master user come from the snapshot
    assert "database_name" not in after and "master_username" not in after
    (logs,) = [g for g in resources_of(restored, "aws_cloudwatch_log_group").values()
               if g["name"].startswith("/aws/rds/cluster/")]
    assert logs["name"] == f"/aws/rds/cluster/{after['cluster_identifier']}/postgresql"


def test_without_the_setting_the_stack_is_as_before_and_with_it_only_the_database_changes(restore_pair):
    """The shipped stacks synthesize byte for byte as before this setting existed (checked when it was added):
    here, the restore touches nothing but RESTORE_CHANGES, and the shipped cluster has no restore settings."""
    env, stack, _, restored = restore_pair
    assert _changed(stack, restored) == RESTORE_CHANGES
    checks.check_restore_follows_configuration(stack, env)
    _, db = checks.cluster(stack)
    assert "snapshot_identifier" not in db and "lifecycle" not in db
    assert db["cluster_identifier"] == "webapp-production-db"


def test_the_restore_check_catches_a_cluster_that_ignores_the_snapshot(restore_pair):
    _, _, restored_env, restored = restore_pair
    broken = copy.deepcopy(restored)
    (db,) = resources_of(broken, "aws_rds_cluster").values()
    del db["snapshot_identifier"]
    with pytest.raises(AssertionError, match="created from the configured snapshot"):
        checks.check_restore_follows_configuration(broken, restored_env)
    broken = copy.deepcopy(restored)
    for instance in resources_of(broken, "aws_rds_cluster_instance").values():
        del instance["lifecycle"]
    with pytest.raises(AssertionError, match="exists before the old one is deleted"):
        checks.check_restore_follows_configuration(broken, restored_env)
