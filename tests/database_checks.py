"""Checks of SPEC 4.2 / properties 3 and 7 on one synthesized environment stack.

Shared by the example tests (shipped environments) and the hypothesis properties (generated ones).
"""

from __future__ import annotations

from core.master_password import own_master_secret_name
from core.naming import database_cluster_identifier
from environments.model import EnvironmentConfig
from tests.conftest import resources_of
from tests.network_checks import ref_name, subnets_by_tier

MINIMUM_BACKUP_DAYS = 7  # SPEC 2 and property 7


def cluster(stack: dict) -> tuple[str, dict]:
    ((name, found),) = resources_of(stack, "aws_rds_cluster").items()
    return name, found


def check_cluster_follows_configuration(stack: dict, env: EnvironmentConfig) -> None:
    name, db = cluster(stack)
    config = env.database
    scaling = db["serverlessv2_scaling_configuration"]
    assert (scaling["min_capacity"], scaling["max_capacity"]) == (config.min_acu, config.max_acu)
    instances = resources_of(stack, "aws_rds_cluster_instance").values()
    assert len(instances) == 1 + config.reader_count
    assert {instance["instance_class"] for instance in instances} == {"db.serverless"}
    assert all(ref_name(instance["cluster_identifier"], "aws_rds_cluster") == name for instance in instances)
    assert db["backup_retention_period"] == config.backup_retention_days
    assert db["deletion_protection"] is config.deletion_protection
    assert db["skip_final_snapshot"] is (not config.deletion_protection)
    if config.deletion_protection:
        assert db["final_snapshot_identifier"]
    check_master_credentials(stack, env)
    check_restore_follows_configuration(stack, env)


def master_secret(stack: dict) -> str:
    """The master secret's ARN reference: RDS's own, or the module's for a global database's primary."""
    name, db = cluster(stack)
    if db.get("manage_master_user_password"):
        return f"${{aws_rds_cluster.{name}.master_user_secret[0].secret_arn}}"
    (secret,) = [name for name, secret in resources_of(stack, "aws_secretsmanager_secret").items()
                 if secret["name"].endswith("-database-master")]
    return f"${{aws_secretsmanager_secret.{secret}.arn}}"


def check_master_credentials(stack: dict, env: EnvironmentConfig) -> None:
    """RDS manages and rotates the master password, except on a global database's primary, where AWS does not
    support that (Aurora User Guide, Secrets Manager limitations): there the cluster is created with a
    throwaway password generated in the run, sent once through a write-only argument, and the secret is
    created without a value: Terraform never holds (or reads back) the password, `python -m ops` sets it."""
    name, db = cluster(stack)
    assert "master_password" not in db, "a password in the configuration ends up in the state"
    secret = master_secret(stack)
    assert stack["output"]["DatabaseSecretArn"]["value"] == secret
    rotations = list(resources_of(stack, "aws_secretsmanager_secret_rotation").values())
    if not env.standby:
        assert db["manage_master_user_password"] is True and "master_password_wo" not in db
        assert [rotation["secret_id"] for rotation in rotations] == [secret]
        assert rotations[0]["rotation_rules"]["automatically_after_days"] == env.database.secret_rotation_days
        return
    assert "manage_master_user_password" not in db, "RDS refuses a managed password in a global database"
    assert not rotations, "RDS rotates only the secrets it manages"
    (password,) = stack["ephemeral"]["aws_secretsmanager_random_password"]
    settings = stack["ephemeral"]["aws_secretsmanager_random_password"][password]
    assert settings["password_length"] <= 41 and settings["exclude_punctuation"] is True  # RDS: 8-41, no / " @
    assert db["master_password_wo"] == f"${{ephemeral.aws_secretsmanager_random_password.{password}.random_password}}"
    assert db["master_password_wo_version"] == 1, "sent once: raising it would overwrite what ops set"
    secret_id = secret.replace(".arn}", ".id}")
    assert not [value for value in resources_of(stack, "aws_secretsmanager_secret_version").values()
                if value["secret_id"] in (secret, secret_id)], \
        "a secret version in Terraform is read back (GetSecretValue) by every plan and deploy"
    name = secret.removeprefix("${aws_secretsmanager_secret.").removesuffix(".arn}")
    kept = resources_of(stack, "aws_secretsmanager_secret")[name]
    assert kept["name"] == own_master_secret_name(f"{env.application}-{env.name}"), "ops finds it by this name"
    assert kept["kms_key_id"] == db["kms_key_id"], "the database's own CMK"
    (replica,) = kept.get("replica", [None])
    assert replica and replica["region"] == env.dr.region, "the password must outlive the home region"
    key = resources_of(stack, "aws_kms_key")[ref_name(replica["kms_key_id"], "aws_kms_key")]
    assert key["enable_key_rotation"] is True
    providers = {f"aws.{provider['alias']}": provider["region"] for provider in stack["provider"]["aws"]
                 if "alias" in provider}
    assert providers.get(key.get("provider")) == env.dr.region, "a replica is encrypted with a key of its region"


def check_restore_follows_configuration(stack: dict, env: EnvironmentConfig) -> None:
    """`database.restore_from_snapshot`: the cluster is created from it, under its own name, before the old
    one (and its instances) are deleted; without it, a new empty cluster `<app>-<env>-db`."""
    _, db = cluster(stack)
    snapshot = env.database.restore_from_snapshot
    assert db.get("snapshot_identifier") == snapshot, "the cluster must be created from the configured snapshot"
    assert db["cluster_identifier"] == database_cluster_identifier(f"{env.application}-{env.name}", snapshot)
    replacing = {"create_before_destroy": True} if snapshot else None
    assert db.get("lifecycle") == cluster_lifecycle(env, replacing), "a restored cluster exists before the old one " \
                                                                    "is deleted"
    for resource in resources_of(stack, "aws_rds_cluster_instance").values():
        assert resource.get("lifecycle") == replacing, "a restored cluster exists before the old one is deleted"


def cluster_lifecycle(env: EnvironmentConfig, replacing: dict | None) -> dict | None:
    """The primary of a global database also ignores what AWS sets on membership (provider docs)."""
    if not env.standby:
        return replacing
    return {**(replacing or {}), "ignore_changes": ["replication_source_identifier", "global_cluster_identifier"]}


def check_backups(stack: dict) -> None:
    """Property 7: every Aurora cluster keeps backups for at least seven days."""
    for db in resources_of(stack, "aws_rds_cluster").values():
        assert db["backup_retention_period"] >= MINIMUM_BACKUP_DAYS
        assert db["preferred_backup_window"]
        assert db["copy_tags_to_snapshot"] is True


def check_database_is_private_and_encrypted(stack: dict) -> None:
    _, db = cluster(stack)
    assert "availability_zones" not in db, "pinned zones make every plan replace the cluster"
    assert "master_password" not in db
    assert db.get("manage_master_user_password") is True or db["master_password_wo"].startswith("${ephemeral.")
    assert db["storage_encrypted"] is True
    ref_name(db["kms_key_id"], "aws_kms_key")
    for instance in resources_of(stack, "aws_rds_cluster_instance").values():
        assert instance["publicly_accessible"] is False
        assert instance["performance_insights_enabled"] is True
        ref_name(instance["performance_insights_kms_key_id"], "aws_kms_key")
    group = resources_of(stack, "aws_db_subnet_group")[ref_name(db["db_subnet_group_name"], "aws_db_subnet_group")]
    data_subnets = set(subnets_by_tier(stack)["data"])
    assert {ref_name(subnet, "aws_subnet") for subnet in group["subnet_ids"]} == data_subnets
    (group_id,) = db["vpc_security_group_ids"]
    security_group = resources_of(stack, "aws_security_group")[ref_name(group_id, "aws_security_group")]
    assert security_group["name"].endswith("-database")


def check_secrets_use_customer_managed_keys(stack: dict) -> None:
    """Property 3: every secret is encrypted with a CMK of this stack, none with the AWS default key."""
    keys = resources_of(stack, "aws_kms_key")
    clusters = resources_of(stack, "aws_rds_cluster").values()
    secrets = resources_of(stack, "aws_secretsmanager_secret").values()
    secret_keys = [db.get("master_user_secret_kms_key_id", "") for db in clusters
                   if db.get("manage_master_user_password")]
    secret_keys += [secret.get("kms_key_id", "") for secret in secrets]
    assert secret_keys, "no secret found: the check would pass on nothing"
    for key in secret_keys:
        assert ref_name(key, "aws_kms_key") in keys, key
    assert keys
    for key in keys.values():
        assert key["enable_key_rotation"] is True


def check_parameter_group(stack: dict) -> None:
    _, db = cluster(stack)
    group = resources_of(stack, "aws_rds_cluster_parameter_group")[
        ref_name(db["db_cluster_parameter_group_name"], "aws_rds_cluster_parameter_group")]
    assert group["family"] == "aurora-postgresql16"
    parameters = {p["name"]: p["value"] for p in group["parameter"]}
    assert parameters["rds.force_ssl"] == "1"
    assert parameters["log_connections"] == "1"
    assert parameters["log_disconnections"] == "1"


def check_postgresql_log_export(stack: dict, env: EnvironmentConfig) -> None:
    _, db = cluster(stack)
    assert db["enabled_cloudwatch_logs_exports"] == ["postgresql"]
    groups = {group["name"]: (name, group) for name, group in resources_of(stack, "aws_cloudwatch_log_group").items()}
    name, group = groups[f"/aws/rds/cluster/{db['cluster_identifier']}/postgresql"]
    assert group["retention_in_days"] == env.log_retention_days
    ref_name(group["kms_key_id"], "aws_kms_key")
    assert f"aws_cloudwatch_log_group.{name}" in db["depends_on"], "RDS would create the group itself, unencrypted"

