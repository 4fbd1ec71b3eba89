"""Checks of AWS Backup and disaster recovery (issue 15) on one synthesized environment stack.

Shared by the example-based tests (tests/test_backup.py, the shipped environments) and the
hypothesis properties (tests/test_properties.py), so both assert exactly the same rules. Expected
values come from the configuration (`EnvironmentConfig`), never from the synthesized output.
"""

from __future__ import annotations

import json

from environments.model import EnvironmentConfig
from tests.api_checks import role_statements
from tests.conftest import only, resources_of
from tests.iam_checks import Need, check_role_can, needs
from tests.network_checks import ACCOUNT_REF, policy_document, ref_name

DR_ALIAS = "dr"
DR_PROVIDER = f"aws.{DR_ALIAS}"
# EventBridge detail types and the final states that must reach the warning topic.
NOTIFIED = {"Backup Job State Change": {"FAILED", "EXPIRED", "ABORTED"}, "Copy Job State Change": {"FAILED"}}
PARTITION_REF = "${data.aws_partition.partition.partition}"
# What AWS Backup's own managed policy grants for Aurora, which the inline policy narrows to this cluster.
BACKUP_DOC = "managed policy AWSBackupServiceRolePolicyForBackup"
REPLICATION_DOC = "S3 User Guide, Setting up permissions for live replication"
ENCRYPTED_REPLICATION_DOC = "S3 User Guide, Replicating encrypted objects"


def providers_by_alias(stack: dict) -> dict[str | None, dict]:
    return {provider.get("alias"): provider for provider in stack["provider"]["aws"]}


def provider_region(stack: dict, resource: dict) -> str:
    """The region a resource is created in, from the provider it names (the default one if none)."""
    alias = resource.get("provider", "aws").removeprefix("aws").removeprefix(".") or None
    return providers_by_alias(stack)[alias]["region"]


def vaults(stack: dict) -> dict[str, dict]:
    return resources_of(stack, "aws_backup_vault")


def key_of(stack: dict, reference: str) -> dict:
    return resources_of(stack, "aws_kms_key")[ref_name(reference, "aws_kms_key")]


def check_vault(stack: dict, vault: dict, region: str) -> None:
    """Encrypted with its own CMK (rotated, used by nothing else), created in `region`."""
    assert provider_region(stack, vault) == region, vault["name"]
    key = key_of(stack, vault["kms_key_arn"])
    assert key["enable_key_rotation"] is True
    assert provider_region(stack, key) == region, f"the key of {vault['name']} is not in {region}"
    users = [name for name, other in vaults(stack).items() if other["kms_key_arn"] == vault["kms_key_arn"]]
    assert len(users) == 1, f"vault keys must not be shared: {users}"


def plan_rule(stack: dict) -> dict:
    (rule,) = only(stack, "aws_backup_plan")["rule"]
    return rule


def vault_by_reference(stack: dict, reference: str) -> dict:
    return vaults(stack)[ref_name(reference, "aws_backup_vault")]


def check_backup(stack: dict, env: EnvironmentConfig) -> None:
    """Vault, plan from configuration, selection of the cluster only, failure notifications."""
    rule = plan_rule(stack)
    primary = vault_by_reference(stack, rule["target_vault_name"])
    check_vault(stack, primary, env.region)
    assert rule["schedule"] == env.backup_schedule, f"backup schedule {rule['schedule']} is not {env.backup_schedule}"
    assert rule["lifecycle"] == {"delete_after": env.database.backup_retention_days}, \
        f"backup retention {rule['lifecycle']} is not {env.database.backup_retention_days} days"
    selection = only(stack, "aws_backup_selection")
    (cluster,) = resources_of(stack, "aws_rds_cluster")
    assert selection["resources"] == [f"${{aws_rds_cluster.{cluster}.arn}}"], \
        f"the backup selection must be the cluster only: {selection['resources']}"
    assert ref_name(selection["plan_id"], "aws_backup_plan") in resources_of(stack, "aws_backup_plan")
    check_backup_role(stack, selection["iam_role_arn"], cluster)
    check_role_can(stack, selection["iam_role_arn"], backup_needs(stack, cluster), "backup")
    check_notifications(stack)
    check_vault_lock(stack, env)
    copies = rule.get("copy_action") or []
    if env.dr is None:
        assert not copies, "a copy action without [dr]"
        return
    (copy,) = copies
    destination = vault_by_reference(stack, copy["destination_vault_arn"])
    check_vault(stack, destination, env.dr.region)
    assert destination["provider"] == DR_PROVIDER
    assert copy["lifecycle"] == {"delete_after": env.dr.copy_retention_days}, \
        f"copy retention {copy['lifecycle']} is not {env.dr.copy_retention_days} days"


def backup_snapshots(region: str) -> str:
    """The ARN pattern of the cluster snapshots AWS Backup creates in `region`."""
    return f"arn:{PARTITION_REF}:rds:{region}:{ACCOUNT_REF}:cluster-snapshot:awsbackup:*"


def backup_needs(stack: dict, cluster: str) -> list[Need]:
    """What AWS Backup does with the role: snapshot this cluster, tag, copy and expire its recovery points,
    and let RDS use the cluster's and the vaults' keys (a grant, which needs DescribeKey first)."""
    body = resources_of(stack, "aws_rds_cluster")[cluster]
    region = provider_region(stack, body)
    cluster_arn = f"${{aws_rds_cluster.{cluster}.arn}}"
    required = needs(["rds:DescribeDBClusters", "rds:CreateDBClusterSnapshot", "rds:AddTagsToResource",
                      "rds:ListTagsForResource"], cluster_arn, BACKUP_DOC)
    required += needs(["rds:DescribeDBClusterSnapshots", "rds:AddTagsToResource", "rds:ListTagsForResource",
                       "rds:DeleteDBClusterSnapshot"], backup_snapshots(region), BACKUP_DOC)
    rule = plan_rule(stack)
    keys = [body["kms_key_id"], vault_by_reference(stack, rule["target_vault_name"])["kms_key_arn"]]
    for copy in rule.get("copy_action") or []:
        destination = vault_by_reference(stack, copy["destination_vault_arn"])
        required += needs(["backup:CopyIntoBackupVault"], copy["destination_vault_arn"], BACKUP_DOC)
        for snapshots in (backup_snapshots(region), backup_snapshots(provider_region(stack, destination))):
            required += needs(["rds:CopyDBClusterSnapshot"], snapshots, BACKUP_DOC)
        keys.append(destination["kms_key_arn"])
    for key in keys:
        required += needs(["kms:DescribeKey", "kms:CreateGrant"], key, BACKUP_DOC)
    return required


def check_backup_role(stack: dict, role_arn: str, cluster: str) -> None:
    """Assumable only by AWS Backup; acts on this cluster, AWS Backup's snapshots, and its keys and vaults."""
    role = resources_of(stack, "aws_iam_role")[ref_name(role_arn, "aws_iam_role")]
    trust = policy_document(stack, role["assume_role_policy"])["statement"]
    assert [p["identifiers"] for s in trust for p in s["principals"]] == [["backup.amazonaws.com"]]
    allowed_keys = {vault["kms_key_arn"] for vault in vaults(stack).values()}
    allowed_keys.add(only(stack, "aws_rds_cluster")["kms_key_id"])
    for statement in role_statements(stack, role_arn):
        resources = statement["resources"]
        assert "*" not in resources and not any(a.endswith(":*") for a in statement["actions"]), statement
        for resource in resources:
            if resource.startswith("${aws_rds_cluster."):
                assert resource == f"${{aws_rds_cluster.{cluster}.arn}}"
            elif resource.startswith("${aws_kms_key."):
                assert resource in allowed_keys, resource
            elif resource.startswith("${aws_backup_vault."):
                assert ref_name(resource, "aws_backup_vault") in vaults(stack)
            else:
                assert ":cluster-snapshot:awsbackup:" in resource, resource


def warning_topic(stack: dict) -> str:
    """Logical id of the environment's regional warning topic (not the us-east-1 edge topic)."""
    (name,) = [name for name, topic in resources_of(stack, "aws_sns_topic").items()
               if topic["name"].endswith("-warning") and "provider" not in topic]
    return name


def check_notifications(stack: dict) -> None:
    """Failed, expired and aborted backups and failed copies reach the warning topic."""
    rules = resources_of(stack, "aws_cloudwatch_event_rule")
    notified: dict[str, set[str]] = {}
    for target in resources_of(stack, "aws_cloudwatch_event_target").values():
        rule = rules[ref_name(target["rule"], "aws_cloudwatch_event_rule")]
        pattern = json.loads(rule["event_pattern"])
        if pattern.get("source") != ["aws.backup"]:
            continue
        assert ref_name(target["arn"], "aws_sns_topic") == warning_topic(stack)
        for detail_type in pattern["detail-type"]:
            notified.setdefault(detail_type, set()).update(pattern["detail"]["state"])
    assert notified == NOTIFIED, f"backup notifications {notified} are not {NOTIFIED}"
    check_warning_topic_accepts_event_rules(stack)


def check_warning_topic_accepts_event_rules(stack: dict) -> None:
    """EventBridge may publish (policy, scoped to this environment's rules) and encrypt (key)."""
    topics, warning = resources_of(stack, "aws_sns_topic"), warning_topic(stack)
    policies = [p for p in resources_of(stack, "aws_sns_topic_policy").values()
                if p["arn"] == f"${{aws_sns_topic.{warning}.arn}}"]
    (policy,) = policies
    grants = [s for s in policy_document(stack, policy["policy"])["statement"]
              if any("events.amazonaws.com" in p["identifiers"] for p in s.get("principals", []))]
    (grant,) = grants
    assert grant["actions"] == ["sns:Publish"]
    (source,) = grant["condition"]
    assert source["variable"] == "aws:SourceArn" and source["values"][0].endswith(":rule/" + topics[warning]["name"]
                                                                                   .removesuffix("warning") + "*")
    key = json.loads(key_of(stack, topics[warning]["kms_master_key_id"])["policy"])
    assert any(s["Principal"] == {"Service": "events.amazonaws.com"} for s in key["Statement"])


def check_vault_lock(stack: dict, env: EnvironmentConfig) -> None:
    """Compliance mode (changeable_for_days set) on every vault exactly when [dr] vault_lock is on."""
    locks = resources_of(stack, "aws_backup_vault_lock_configuration")
    if not (env.dr and env.dr.vault_lock):
        assert not locks
        return
    locked = {ref_name(lock["backup_vault_name"], "aws_backup_vault"): lock for lock in locks.values()}
    assert set(locked) == set(vaults(stack)), "every vault is locked"
    for name, lock in locked.items():
        vault = vaults(stack)[name]
        assert lock.get("provider") == vault.get("provider")
        assert lock["changeable_for_days"] >= 3, "compliance mode needs a cooling-off period of 3 days or more"
        expected = env.dr.copy_retention_days if vault.get("provider") == DR_PROVIDER \
            else env.database.backup_retention_days
        assert lock["min_retention_days"] == expected, vault["name"]


def dr_resources(stack: dict) -> list[str]:
    """Every resource created through the DR provider."""
    return [f"{kind}.{name}" for kind, named in stack.get("resource", {}).items()
            for name, body in named.items() if body.get("provider") == DR_PROVIDER]


def check_disaster_recovery(stack: dict, env: EnvironmentConfig) -> None:
    """The DR provider exists exactly with [dr], in its region, like the default one otherwise."""
    providers = providers_by_alias(stack)
    if env.dr is None:
        assert DR_ALIAS not in providers
        assert not dr_resources(stack), "DR resources without [dr]"
        check_site_replication(stack, env)
        check_failover(stack, env)
        return
    check_site_replication(stack, env)
    check_failover(stack, env)
    dr, default = providers[DR_ALIAS], providers[None]
    assert dr["region"] == env.dr.region != default["region"]
    same = {key: value for key, value in default.items() if key not in ("region", "alias")}
    assert {key: value for key, value in dr.items() if key not in ("region", "alias")} == same, \
        "the DR provider must carry the same tags, account guard and endpoints"


# --- replication and failover -------------------------------------------------------------------

FAILOVER_STATUS_CODES = {500, 502, 503, 504}  # never 403/404: deleted content stays in the replica
SOURCE_READS = {"s3:GetReplicationConfiguration", "s3:ListBucket", "s3:GetObjectVersionForReplication",
                "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging"}
REPLICA_WRITES = {"s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"}


def bucket_part(stack: dict, resource_type: str, bucket: str) -> dict:
    """The `resource_type` (versioning, encryption...) configuring bucket `bucket` (a logical id)."""
    (found,) = [r for r in resources_of(stack, resource_type).values()
                if r["bucket"] == f"${{aws_s3_bucket.{bucket}.id}}"]
    return found


def replications(stack: dict) -> dict[str, dict]:
    """Replication configurations by the logical id of their source bucket."""
    return {ref_name(config["bucket"], "aws_s3_bucket"): config
            for config in resources_of(stack, "aws_s3_bucket_replication_configuration").values()}


def replicas(stack: dict) -> set[str]:
    """Logical ids of buckets that are a replication destination."""
    return {ref_name(rule["destination"]["bucket"], "aws_s3_bucket")
            for config in resources_of(stack, "aws_s3_bucket_replication_configuration").values()
            for rule in config["rule"]}


def data_buckets(stack: dict) -> set[str]:
    """Buckets holding data: everything but log buckets (access-log sinks, CloudTrail's) and the replicas."""
    sinks = {ref_name(log["target_bucket"], "aws_s3_bucket")
             for log in resources_of(stack, "aws_s3_bucket_logging").values()}
    alb_sinks = {lb["access_logs"]["bucket"] for lb in resources_of(stack, "aws_lb").values() if "access_logs" in lb}
    log_targets = alb_sinks | {trail["s3_bucket_name"] for trail in resources_of(stack, "aws_cloudtrail").values()}
    sinks |= {name for name, bucket in resources_of(stack, "aws_s3_bucket").items()
              if {f"${{aws_s3_bucket.{name}.bucket}}", f"${{aws_s3_bucket.{name}.id}}", bucket["bucket"]} & log_targets}
    return set(resources_of(stack, "aws_s3_bucket")) - sinks - replicas(stack)


def check_replication(stack: dict, source: str, replica_region: str) -> None:
    """All objects and delete markers, re-encrypted with the replica's own key in `replica_region`."""
    config = replications(stack)[source]
    (rule,) = config["rule"]
    assert rule["status"] == "Enabled" and rule["filter"] == {"prefix": ""}, "every object"
    assert rule["delete_marker_replication"] == {"status": "Enabled"}, "delete markers must replicate"
    assert rule["source_selection_criteria"]["sse_kms_encrypted_objects"] == {"status": "Enabled"}
    replica = ref_name(rule["destination"]["bucket"], "aws_s3_bucket")
    replica_bucket = resources_of(stack, "aws_s3_bucket")[replica]
    assert provider_region(stack, replica_bucket) == replica_region, f"the replica is not in {replica_region}"
    replica_default = bucket_part(stack, "aws_s3_bucket_server_side_encryption_configuration", replica)[
        "rule"][0]["apply_server_side_encryption_by_default"]
    replica_key = rule["destination"]["encryption_configuration"]["replica_kms_key_id"]
    assert replica_default == {"sse_algorithm": "aws:kms", "kms_master_key_id": replica_key}, \
        f"replicas are encrypted with {replica_key}, not the replica bucket's own key"
    assert provider_region(stack, key_of(stack, replica_key)) == replica_region
    source_key = bucket_part(stack, "aws_s3_bucket_server_side_encryption_configuration", source)[
        "rule"][0]["apply_server_side_encryption_by_default"]["kms_master_key_id"]
    assert source_key != replica_key
    needed = {name for name, body in resources_of(stack, "aws_s3_bucket_versioning").items()
              if body["bucket"] in (f"${{aws_s3_bucket.{source}.id}}", f"${{aws_s3_bucket.{replica}.id}}")
              and body["versioning_configuration"] == {"status": "Enabled"}}
    depends_on = set(config["depends_on"])
    assert len(needed) == 2 and {f"aws_s3_bucket_versioning.{name}" for name in needed} <= depends_on, \
        "versioning of both buckets first"
    check_replication_role(stack, config["role"], source, replica, source_key, replica_key)
    check_role_can(stack, config["role"], replication_needs(source, replica, source_key, replica_key),
                   f"replication of {source}")


def replication_needs(source: str, replica: str, source_key: str, replica_key: str) -> list[Need]:
    """S3 reads the source's configuration and object versions, writes the replica's objects, decrypts
    with the source's key and encrypts with the replica's."""
    source_arn, replica_arn = f"${{aws_s3_bucket.{source}.arn}}", f"${{aws_s3_bucket.{replica}.arn}}"
    return (needs(["s3:GetReplicationConfiguration", "s3:ListBucket"], source_arn, REPLICATION_DOC)
            + needs(["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging"],
                    f"{source_arn}/*", REPLICATION_DOC)
            + needs(sorted(REPLICA_WRITES), f"{replica_arn}/*", REPLICATION_DOC)
            + needs(["kms:Decrypt"], source_key, ENCRYPTED_REPLICATION_DOC)
            + needs(["kms:Encrypt"], replica_key, ENCRYPTED_REPLICATION_DOC))


def check_replication_role(stack: dict, role_arn: str, source: str, replica: str, source_key: str,
                           replica_key: str) -> None:
    """Assumed by S3 only; reads only the source (and its key), writes only the replica (and its key)."""
    role = resources_of(stack, "aws_iam_role")[ref_name(role_arn, "aws_iam_role")]
    trust = policy_document(stack, role["assume_role_policy"])["statement"]
    assert [p["identifiers"] for s in trust for p in s["principals"]] == [["s3.amazonaws.com"]]
    source_arn, replica_arn = f"${{aws_s3_bucket.{source}.arn}}", f"${{aws_s3_bucket.{replica}.arn}}"
    for statement in role_statements(stack, role_arn):
        actions, resources = set(statement["actions"]), statement["resources"]
        if actions <= SOURCE_READS:
            assert set(resources) <= {source_arn, f"{source_arn}/*"}, statement
        elif actions <= REPLICA_WRITES:
            assert resources == [f"{replica_arn}/*"], statement
        elif actions == {"kms:Decrypt"}:
            assert resources == [source_key], statement
        else:
            assert actions <= {"kms:Encrypt", "kms:GenerateDataKey"} and resources == [replica_key], statement


def check_failover(stack: dict, env: EnvironmentConfig) -> None:
    """With [dr]: every behaviour reads through an origin group failing over from the site to its replica."""
    distribution = only(stack, "aws_cloudfront_distribution")
    if env.dr is None:
        assert "origin_group" not in distribution
        return
    (group,) = distribution["origin_group"]
    codes = set(group["failover_criteria"]["status_codes"])
    assert codes == FAILOVER_STATUS_CODES, f"failover on {sorted(codes)}, not {sorted(FAILOVER_STATUS_CODES)}"
    origins = {origin["origin_id"]: origin for origin in distribution["origin"]}
    primary, secondary = (member["origin_id"] for member in group["member"])
    assert origins[primary]["domain_name"].endswith(f".s3.{env.region}.amazonaws.com")
    assert origins[secondary]["domain_name"].endswith(f".s3.{env.dr.region}.amazonaws.com")
    assert all(origin["origin_access_control_id"] for origin in origins.values())
    behaviours = [distribution["default_cache_behavior"], *distribution.get("ordered_cache_behavior", [])]
    targets = {b["target_origin_id"] for b in behaviours}
    assert targets == {group["origin_id"]}, f"behaviours read {sorted(targets)}, not the failover group"


def check_site_replication(stack: dict, env: EnvironmentConfig) -> None:
    """With [dr], every data bucket of the environment replicates to the DR region; without, none does."""
    if env.dr is None:
        assert not resources_of(stack, "aws_s3_bucket_replication_configuration")
        return
    sources = data_buckets(stack)
    assert sources and sources == set(replications(stack)), "every data bucket replicates"
    for source in sources:
        check_replication(stack, source, env.dr.region)
