"""Checks of an environment's DR-region stack (`<env>-dr`, issue 25) against its configuration.

Shared by tests/test_dr_region.py (the shipped environments and variants) and the hypothesis properties
(tests/test_properties.py). Expected values come from `EnvironmentConfig`, never from the synthesized JSON.
"""

from __future__ import annotations

from environments.model import EnvironmentConfig
from modules.api import HEALTH_CHECK
from tests.api_checks import could_read_master_secret, master_secret_ref, role_documents, role_names
from tests.conftest import only, resources_of
from tests.network_checks import policy_document, ref_name, subnets_by_tier

# What a global secondary must not carry: Aurora takes its users and data from the primary.
PRIMARY_ONLY = ("master_username", "master_password", "manage_master_user_password", "database_name",
                "master_user_secret_kms_key_id", "snapshot_identifier")


def global_identifier(env: EnvironmentConfig) -> str:
    return f"{env.application}-{env.name}-global"


def check_dr_stack_home(dr: dict, env: EnvironmentConfig) -> None:
    """Its own state key, and every provider in the DR region (the stack creates nothing elsewhere)."""
    key = dr["terraform"]["backend"]["s3"]["key"]
    assert key == f"{env.name}-dr/terraform.tfstate", f"the DR stack's state key is {key!r}"
    regions = {provider["region"] for provider in dr["provider"]["aws"]}
    assert regions == {env.dr.region}, f"{env.name}-dr has providers in {regions}"
    (vpc,) = resources_of(dr, "aws_vpc").values()
    assert vpc["cidr_block"] == (env.dr.standby_cidr or env.network.cidr)


def _cluster(stack: dict) -> tuple[str, dict]:
    ((name, cluster),) = resources_of(stack, "aws_rds_cluster").items()
    return name, cluster


def check_global_membership(primary: dict, dr: dict, env: EnvironmentConfig) -> None:
    """standby: the primary stack owns the global cluster, made from its own cluster; the DR cluster is its
    secondary, with no master user of its own. backup: no global cluster; the DR cluster is a restore."""
    primary_name, primary_cluster = _cluster(primary)
    _, secondary = _cluster(dr)
    if not env.standby:
        assert not resources_of(primary, "aws_rds_global_cluster") and not resources_of(dr, "aws_rds_global_cluster")
        assert "global_cluster_identifier" not in secondary, "a backup DR stack's cluster joins no global database"
        assert secondary.get("snapshot_identifier") == env.dr.restore_from_snapshot
        assert secondary["manage_master_user_password"] is True
        return
    global_cluster = only(primary, "aws_rds_global_cluster")
    assert global_cluster["global_cluster_identifier"] == global_identifier(env)
    assert global_cluster["source_db_cluster_identifier"] == f"${{aws_rds_cluster.{primary_name}.arn}}", \
        "the global cluster must be made from the environment's existing cluster"
    assert global_cluster["force_destroy"] is True  # the provider requires it with source_db_cluster_identifier
    assert "engine" not in global_cluster, "engine conflicts with source_db_cluster_identifier"
    assert "global_cluster_identifier" not in primary_cluster, "a reference back would be circular"
    assert "global_cluster_identifier" in primary_cluster["lifecycle"]["ignore_changes"]
    assert not resources_of(dr, "aws_rds_global_cluster"), "only the primary stack owns the global cluster"
    assert secondary.get("global_cluster_identifier") == global_identifier(env), "the DR cluster is the secondary"
    assert not [key for key in PRIMARY_ONLY if key in secondary], "a secondary takes its users from the primary"
    assert not resources_of(dr, "aws_secretsmanager_secret_rotation"), "a secondary has no master secret"


def check_engines_match(primary: dict, dr: dict) -> None:
    """Aurora replicates only between clusters of one engine and version: both clusters and every instance."""
    _, primary_cluster = _cluster(primary)
    _, secondary = _cluster(dr)
    engines = {(primary_cluster["engine"], primary_cluster["engine_version"]),
               (secondary["engine"], secondary["engine_version"])}
    assert len(engines) == 1, f"engine and version differ between the regions: {engines}"
    for stack in (primary, dr):
        for instance in resources_of(stack, "aws_rds_cluster_instance").values():
            assert instance["engine"] == primary_cluster["engine"]


def check_secondary_encryption_and_subnets(dr: dict) -> None:
    """Encrypted with a key of the DR stack itself (its region's CMK), in the DR VPC's data subnets only."""
    name, secondary = _cluster(dr)
    assert secondary["storage_encrypted"] is True, "the DR cluster must be encrypted"
    key = resources_of(dr, "aws_kms_key")[ref_name(secondary["kms_key_id"], "aws_kms_key")]
    assert key["enable_key_rotation"] is True
    group = resources_of(dr, "aws_db_subnet_group")[ref_name(secondary["db_subnet_group_name"], "aws_db_subnet_group")]
    assert {ref_name(subnet, "aws_subnet") for subnet in group["subnet_ids"]} == set(subnets_by_tier(dr)["data"]), \
        "the DR cluster's subnet group must be exactly the DR VPC's data subnets"
    for instance in resources_of(dr, "aws_rds_cluster_instance").values():
        assert instance["publicly_accessible"] is False
        assert ref_name(instance["cluster_identifier"], "aws_rds_cluster") == name


def check_no_role_reads_the_master_secret(dr: dict) -> None:
    """Property 3 in the DR region: no database bootstrap runs there (the data, users included, comes from the
    primary or from the copy), so no role may read the master secret and no container gets it."""
    if not any("master_user_secret" in str(v) for v in resources_of(dr, "aws_secretsmanager_secret_rotation").values()):
        return  # a global secondary has no master secret at all
    secret = master_secret_ref(dr)
    names = role_names(dr)
    readers = {names[role] for role, document in role_documents(dr)
               for statement in policy_document(dr, document)["statement"]
               if could_read_master_secret(statement, secret)}
    assert not readers, f"the DR region's master secret is readable by {sorted(readers)}"
    for definition in resources_of(dr, "aws_ecs_task_definition").values():
        assert secret not in definition["container_definitions"], f"{definition['family']} gets the master secret"


def expected_tasks(env: EnvironmentConfig) -> int:
    """A standby idles at standby_min_tasks; a backup DR stack, once deployed, is the environment."""
    return env.dr.standby_min_tasks if env.standby else env.api.min_tasks


def check_standby_capacity(dr: dict, env: EnvironmentConfig) -> None:
    service = only(dr, "aws_ecs_service")
    assert service["desired_count"] == expected_tasks(env), (
        f"the DR service runs {service['desired_count']} tasks, not {expected_tasks(env)}")
    target = only(dr, "aws_appautoscaling_target")
    assert (target["min_capacity"], target["max_capacity"]) == (expected_tasks(env), env.api.max_tasks)


def _api_records(stack: dict, env: EnvironmentConfig) -> list[dict]:
    return [record for record in resources_of(stack, "aws_route53_record").values()
            if record["name"] == f"api.{env.domain}" and record["type"] in ("A", "AAAA")]


def check_failover_records(stack: dict, env: EnvironmentConfig, role: str) -> None:
    """With a hosted zone and a [dr] region, the API's A and AAAA records are the `role` half of Route 53
    failover routing, each health-checked on /health of this stack's load balancer over HTTPS."""
    records = _api_records(stack, env)
    if not env.hosted_zone_id:
        assert not records and not resources_of(stack, "aws_route53_health_check")
        return
    assert sorted(record["type"] for record in records) == ["A", "AAAA"]
    if not env.dr:
        assert not [r for r in records if "failover_routing_policy" in r]
        return
    check = only(stack, "aws_route53_health_check")
    assert (check["type"], check["port"], check["resource_path"]) == ("HTTPS", 443, HEALTH_CHECK["path"]), (
        f"the health check must ask HTTPS :443 {HEALTH_CHECK['path']}")
    assert check["fqdn"] == f"${{aws_lb.{only_name(stack, 'aws_lb')}.dns_name}}", "the check asks this stack's ALB"
    health_check = f"${{aws_route53_health_check.{only_name(stack, 'aws_route53_health_check')}.id}}"
    for record in records:
        assert record.get("failover_routing_policy") == {"type": role}, f"no {role} failover_routing_policy"
        assert record["health_check_id"] == health_check
        assert record["set_identifier"].endswith(role.lower())
        assert record["alias"]["evaluate_target_health"] is True


def only_name(stack: dict, resource_type: str) -> str:
    ((name, _),) = resources_of(stack, resource_type).items()
    return name


def check_dr_region(primary: dict, dr: dict, env: EnvironmentConfig) -> None:
    """Every check of the DR-region stack of `env`, with the environment's own stack."""
    check_dr_stack_home(dr, env)
    check_global_membership(primary, dr, env)
    check_engines_match(primary, dr)
    check_secondary_encryption_and_subnets(dr)
    check_standby_capacity(dr, env)
    check_failover_records(primary, env, "PRIMARY")
    check_failover_records(dr, env, "SECONDARY")
