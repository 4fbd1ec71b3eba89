"""Where moto differs from AWS for these stacks (the gap table), and the workarounds that let them deploy.

moto 5.2.5 differs from AWS in a few ways that stop `terraform apply` of the stacks; each one is
described in `EMULATOR_GAPS` and, where it can be, worked around by `work_around_emulator_gaps`:
monkeypatches that take effect inside the process running moto (ops/emulator_server.py, which
`python -m ops local-up` starts) or, in the emulated-deployment tests, through
`work_around_emulator_gaps(monkeypatch)`. What moto cannot create at all is listed in
`NOT_CREATABLE`; `deployable()` gives the `-target` list that deploys everything else.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Gap:
    """One way moto 5.2.5 differs from AWS that deploying these stacks runs into, and what is done about it."""

    # What moto does, the workaround, and what an emulated deployment therefore does not prove.
    reason: str
    # Resource types moto cannot create: `deployable()` leaves them, and every block that references
    # them, out of the apply (`-target` for the rest), so the rest of the stack still deploys.
    not_creatable: tuple[str, ...] = ()
    # Resource types moto does not read back as written, each with the attribute paths it gets wrong
    # (dotted, list indices left out): a plan after apply may change exactly these attributes of
    # exactly these types, and must change nothing else.
    drifts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Resource types moto cannot delete: they have to be removed from state before `destroy`.
    forgotten_before_destroy: tuple[str, ...] = ()


# Every difference between moto 5.2.5 and AWS that deploying these stacks runs into, in one place:
# `work_around_emulator_gaps` (used by `python -m ops local-up` and the emulated-deployment tests)
# implements the workarounds named here, and the tests check the resource types against the stacks.
EMULATOR_GAPS: dict[str, Gap] = {
    "s3-policy-conditions": Gap(
        "moto enforces bucket-policy statements whose Principal is '*' but ignores their Condition "
        "blocks, so SecureBucket's conditional Deny statements (TLS only, KMS-only uploads) become "
        "unconditional and every state read/write gets 403. Workaround: statements that carry a "
        "Condition are not evaluated. The policy is still stored as written."
    ),
    "s3-logging-precheck": Gap(
        "moto's PutBucketLogging insists the target bucket's policy already grants "
        "logging.s3.amazonaws.com, and fails with HTTP 500 (retried by the provider for over 10 "
        "minutes) on any statement whose Principal is the string '*', which every SecureBucket policy "
        "has (DenyInsecureTransport), so creating the sink's policy first (depends_on) does not help. "
        "Workaround: the pre-check is skipped; the emulated-deployment test checks the grant after apply."
    ),
    "iam-managed-policies": Gap(
        "moto knows AWS-managed IAM policies only when MOTO_IAM_LOAD_MANAGED_POLICIES=true, which is set."
    ),
    "cloudfront-policies": Gap(
        "moto has no CloudFront cache-policy or response-headers-policy API (HTTP 404), so the "
        "distribution and what references it (site bucket policy, log delivery, alarm, dashboard) "
        "are not deployed; the frontend tier is covered by synthesis tests and `terraform validate` only.",
        not_creatable=("aws_cloudfront_cache_policy", "aws_cloudfront_response_headers_policy"),
    ),
    "cloudfront-function-publish": Gap(
        "moto creates CloudFront functions but has no PublishFunction (HTTP 404).",
        not_creatable=("aws_cloudfront_function",),
    ),
    "appautoscaling-tags": Gap(
        "moto has no Application Auto Scaling ListTagsForResource; the provider retries its HTTP 500 "
        "for over 10 minutes. The scalable target and its scaling policies are not deployed.",
        not_creatable=("aws_appautoscaling_target",),
    ),
    "ecs-service-readback": Gap(
        "moto's DescribeServices omits capacityProviderStrategy, availabilityZoneRebalancing, "
        "enableECSManagedTags, enableExecuteCommand, healthCheckGracePeriodSeconds and the deployment "
        "controller, so a plan after apply wants to replace the service (capacity_provider_strategy "
        "forces it). The ECS settings themselves are checked by the synthesis tests only.",
        drifts={"aws_ecs_service": ("capacity_provider_strategy", "availability_zone_rebalancing",
                                    "enable_ecs_managed_tags", "enable_execute_command",
                                    "health_check_grace_period_seconds", "deployment_controller")},
    ),
    "rds-readback": Gap(
        "moto reports a Serverless v1 scaling_configuration for every Aurora cluster (ours is provisioned "
        "with Serverless v2 scaling) and drops performance_insights_enabled and its KMS key on instances.",
        drifts={"aws_rds_cluster": ("scaling_configuration",),
                "aws_rds_cluster_instance": ("performance_insights_enabled", "performance_insights_kms_key_id")},
    ),
    "security-group-rule-description": Gap(
        "moto drops the description of aws_vpc_security_group_ingress_rule / _egress_rule.",
        drifts={"aws_vpc_security_group_ingress_rule": ("description",),
                "aws_vpc_security_group_egress_rule": ("description",)},
    ),
    "secretsmanager-managed-rotation": Gap(
        "moto's CancelRotateSecret refuses a secret that has no rotation Lambda, and RDS-managed "
        "rotation has none, so destroying aws_secretsmanager_secret_rotation fails. It is removed from "
        "state before destroy (the secret itself goes with the RDS cluster). Not verified here: "
        "whether AWS accepts CancelRotateSecret for an RDS-managed secret.",
        forgotten_before_destroy=("aws_secretsmanager_secret_rotation",),
    ),
    "s3-synchronous-access-logs": Gap(
        "moto writes a server access log object into the target bucket during every request (AWS "
        "delivers them best-effort, hours later), so destroy's own requests to a logged bucket refill "
        "its log bucket just before that is deleted (BucketNotEmpty). No workaround: the buckets of "
        "environments without deletion protection have force_destroy, and the provider empties such a "
        "bucket again whenever DeleteBucket answers BucketNotEmpty. A stack whose buckets lack "
        "force_destroy cannot be destroyed on the emulator. Delivery timing is not proven."
    ),
    "budgets-tags": Gap(
        "moto's Budgets has CreateBudget and notifications but no tagging API (ListTagsForResource, "
        "TagResource), which the provider calls for every budget (default tags), so the budget is not "
        "deployed; its amount, filter and notifications are covered by synthesis tests and `terraform validate`.",
        not_creatable=("aws_budgets_budget",),
    ),
    "cost-anomaly-detection": Gap(
        "moto's Cost Explorer has cost categories only, no anomaly monitors or subscriptions, so neither is "
        "deployed; their scope, threshold and subscriber are covered by synthesis tests and `terraform validate`.",
        not_creatable=("aws_ce_anomaly_monitor", "aws_ce_anomaly_subscription"),
    ),
    "xray-configuration": Gap(
        "moto's X-Ray accepts trace segments and telemetry but has no sampling-rule or encryption-config API, "
        "so neither the sampling rules (staging, production) nor the account baseline's X-Ray CMK setting is "
        "deployed; rates and the key are covered by synthesis tests and `terraform validate`.",
        not_creatable=("aws_xray_sampling_rule", "aws_xray_encryption_config"),
    ),
    "backup-selection": Gap(
        "moto's AWS Backup has vaults, plans (with copy actions) and vault locks but no backup selections "
        "(CreateBackupSelection answers HTTP 500, not implemented), so the selection of the Aurora cluster is "
        "not deployed and no backup or copy job ever runs on the emulator. Not proven here: that AWS Backup "
        "accepts the selection role, and that a scheduled job and its cross-region copy succeed. The restore "
        "drill copies a cluster snapshot to the DR region itself, as the copy job would.",
        not_creatable=("aws_backup_selection",),
    ),
    "backup-tags": Gap(
        "moto's AWS Backup ListTags returns no tags for vaults and plans created with tags, so a plan after "
        "apply wants to add the provider's default tags again. Tagging of these resources is proven by the "
        "synthesis tests (default tags on every provider) only.",
        drifts={"aws_backup_vault": ("tags_all",), "aws_backup_plan": ("tags_all",)},
    ),
    "s3-replication-readback": Gap(
        "moto stores a bucket's replication configuration but reads DeleteMarkerReplication back as Disabled "
        "and drops SourceSelectionCriteria (SSE-KMS objects), so a plan after apply wants to set both again; "
        "and it never copies an object to the replica. Proven here: the configuration is accepted (versioning "
        "first, the replica and its key in the other region). Not proven: that objects, delete markers and "
        "KMS-encrypted objects really arrive in the replica; the synthesis tests pin the rule.",
        drifts={"aws_s3_bucket_replication_configuration": ("rule.delete_marker_replication.status",
                                                           "rule.source_selection_criteria")},
    ),
    "rds-restore-managed-password": Gap(
        "moto's RestoreDBClusterFromSnapshot fails with HTTP 500 (KeyError '_master_user_password') when the "
        "snapshot's cluster has an RDS-managed master password, as ours does. Workaround: the cluster's "
        "configuration is read with no password when it has none. Proven on the emulator (the restore drill): "
        "after the provider's ModifyDBCluster (ManageMasterUserPassword, our key), the restored cluster has a "
        "managed secret of its own, which only the bootstrap task's role may read. Not proven: that AWS creates "
        "that secret for a cluster restored from a snapshot (the provider's documented path), nor its rotation."
    ),
    "rds-modify-iam-authentication": Gap(
        "moto's ModifyDBCluster stores EnableIAMDatabaseAuthentication where its own reads ignore it, so IAM "
        "authentication can never be turned on after creation. Workaround: the cluster reports the modified "
        "value. It matters for a restore: the provider sends RestoreDBClusterFromSnapshot without IAM "
        "authentication (hashicorp/terraform-provider-aws#35189) and turns it on in the next apply, which the "
        "restore drill runs; that AWS then accepts the API's IAM login is not proven here."
    ),
    "rds-restore-snapshot-arn": Gap(
        "moto's RestoreDBClusterFromSnapshot finds a snapshot by its identifier only and refuses its ARN "
        "(DBClusterSnapshotNotFoundFault), which AWS accepts. `python -m ops restore` writes the identifier "
        "(the snapshot is in the environment's own region and account); the ARN form `restore_from_snapshot` "
        "also accepts is checked by the loader only."
    ),
    "elasticache-member-clusters": Gap(
        "moto's CreateReplicationGroup ignores NumCacheClusters (one member only) and creates no cache cluster "
        "for the members it names, so the provider's DescribeCacheClusters of the primary answers "
        "CacheClusterNotFound and the apply fails. Workaround: the group gets NumCacheClusters members, each "
        "created as a cache cluster from the group's settings (its security groups and at-rest encryption, "
        "which the provider reads from the primary). Not proven: the members' placement across zones "
        "(multi_az) and failover."
    ),
    "elasticache-subnet-group-delete": Gap(
        "moto has no DeleteCacheSubnetGroup (HTTP 500, not implemented); the provider retries it until its "
        "timeout. The subnet group is removed from state before destroy (the emulator is discarded anyway).",
        forgotten_before_destroy=("aws_elasticache_subnet_group",),
    ),
    "elasticache-delete-never-completes": Gap(
        "moto's DeleteReplicationGroup only marks the group 'deleting' and keeps listing it, so the provider "
        "waits for its deletion until it times out. Workaround: the group and its member clusters are removed."
    ),
    "secretsmanager-default-stage": Gap(
        "moto's GetSecretValue without VersionStage keeps answering with the version it first labelled "
        "AWSCURRENT after UpdateSecretVersionStage has moved that label to another version (AWS answers with "
        "the version AWSCURRENT is on). Nothing the deployment reads has been rotated; tests/test_master_password.py "
        "(ops setting and rotating a standby primary's master password, against moto in its process) names the "
        "stage it reads. Not proven here: what the bootstrap task reads after a rotation against AWS (it reads "
        "the default, AWSCURRENT)."
    ),
    "rds-global-failover": Gap(
        "moto has no SwitchoverGlobalCluster and no FailoverGlobalCluster (HTTP 500, not implemented), so "
        "`python -m ops failover` runs on the emulator up to the move of the writer and stops there, refused, "
        "with nothing scaled. Not proven here: the switchover, the failover, the promoted cluster's endpoint "
        "taking writes, the API scaling and health waits against AWS (unit-tested through Tools only), and the "
        "RPO/RTO of either (docs/runbooks.md states AWS's figures)."
    ),
    "rds-global-source": Gap(
        "moto's CreateGlobalCluster with SourceDBClusterIdentifier looks for the source cluster in us-east-1 only "
        "(DBClusterNotFoundFault for a cluster in eu-west-1, which AWS accepts), and lists a source it finds as a "
        "member but not as the writer (IsWriter false). So the environment's `aws_rds_global_cluster` is not "
        "applied on the emulator: the flow proves its side by a plan (the global database created from the "
        "existing cluster's ARN, the cluster neither replaced nor destroyed) and makes the global database for "
        "the DR-region stack from a stand-in cluster that joins an empty one. Not proven: that AWS accepts the "
        "source (with its RDS-managed master password: docs/runbooks.md, 12, Known limit)."
    ),
    "plain-http": Gap("the emulator listens on plain HTTP on loopback; TLS-only access is not exercised."),
    "no-authorization": Gap(
        "moto evaluates neither IAM, trust policies, bucket policies' conditions nor KMS key policies (any "
        "signed request is allowed), and STS AssumeRole hands out credentials for any role ARN, existing or "
        "not, trusting the caller or not. The cross-account flow therefore proves where resources and state "
        "land (dev's resources in dev's account through its deploy role, its state in the state account), "
        "not who may do it: least privilege, the key policies, every trust policy and per-stack state "
        "isolation (no state role reaches another stack's state) are proven by the synthesis and property "
        "tests (tests/test_accounts.py) only."
    ),
    "kms-no-crypto": Gap(
        "moto records SSE-KMS metadata without encrypting, and keeps the key id exactly as sent (the "
        "alias) where S3 would record the key ARN; the emulated-deployment test resolves it through KMS."
    ),
}


def gap_types(attribute: str) -> set[str]:
    """Resource types named by any gap's `attribute` (not_creatable, drifts, forgotten_before_destroy)."""
    return {kind for gap in EMULATOR_GAPS.values() for kind in getattr(gap, attribute)}


def drifting_attributes() -> dict[str, set[str]]:
    """Attribute paths moto reads back wrongly, by resource type (every gap's `drifts`)."""
    drifting: dict[str, set[str]] = {}
    for gap in EMULATOR_GAPS.values():
        for kind, paths in gap.drifts.items():
            drifting.setdefault(kind, set()).update(paths)
    return drifting


# Resource types moto cannot create at all, by gap. `python -m ops local-up` leaves them, and every
# block that references them, out of the apply (`-target` for the rest), so the rest still deploys.
NOT_CREATABLE: dict[str, tuple[str, ...]] = {
    name: gap.not_creatable for name, gap in EMULATOR_GAPS.items() if gap.not_creatable
}
REFERENCE = re.compile(r"(?<![\w.])((?:data\.)?aws_[a-z0-9_]+\.[A-Za-z0-9_-]+)")


def stack_blocks(stack: dict) -> dict[str, dict]:
    """Every resource and data source of a synthesized stack, by Terraform address."""
    blocks = {f"{kind}.{name}": body for kind, named in stack.get("resource", {}).items()
              for name, body in named.items()}
    blocks.update({f"data.{kind}.{name}": body for kind, named in stack.get("data", {}).items()
                   for name, body in named.items()})
    return blocks


def _references(body: dict, known: set[str]) -> set[str]:
    """Addresses a block refers to, in expressions or depends_on (cdktf's `//` metadata ignored)."""
    text = json.dumps({key: value for key, value in body.items() if key != "//"})
    return set(REFERENCE.findall(text)) & known


def deployable(stack: dict, not_creatable: Iterable[str] | None = None) -> tuple[list[str], set[str]]:
    """(resource addresses to apply with -target, addresses left out) for a synthesized stack.

    Left out: every resource of a type the emulator cannot create and, transitively, every block
    that references one, so targeting the rest never pulls in anything the emulator would fail on.
    """
    kinds = set(not_creatable if not_creatable is not None else gap_types("not_creatable"))
    blocks = stack_blocks(stack)
    known = set(blocks)
    references = {address: _references(body, known) for address, body in blocks.items()}
    left_out = {address for address in blocks if address.split(".")[-2] in kinds}
    while True:
        dependents = {address for address, refs in references.items() if refs & left_out} - left_out
        if not dependents:
            break
        left_out |= dependents
    targets = sorted(address for address in blocks if not address.startswith("data.") and address not in left_out)
    return targets, left_out


class Patcher(Protocol):
    """What the workarounds need: `pytest.MonkeyPatch` fits, and so does `PermanentPatch`."""

    def setattr(self, target: Any, name: str, value: Any) -> None: ...

    def setenv(self, name: str, value: str) -> None: ...


class PermanentPatch:
    """Patches for a process that exists only to run the emulator: nothing needs undoing."""

    def setattr(self, target: Any, name: str, value: Any) -> None:
        setattr(target, name, value)

    def setenv(self, name: str, value: str) -> None:
        os.environ[name] = value


def _statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    statements = policy.get("Statement", [])
    return statements if isinstance(statements, list) else [statements]


def work_around_emulator_gaps(patch: Patcher) -> None:
    """Apply the workarounds named in EMULATOR_GAPS to moto in this process (before it serves requests)."""
    from moto.iam.access_control import IAMPolicy, PermissionResult
    from moto.rds.models import DBCluster
    from moto.s3.models import FakeBucket

    def get_permission(bucket, action: str, resource: str):
        """s3-policy-conditions: evaluate only the statements moto can evaluate correctly."""
        if bucket.policy is None:
            return PermissionResult.NEUTRAL
        policy = json.loads(bucket.policy)
        unconditional = [s for s in _statements(policy) if "Condition" not in s]
        if not unconditional:
            return PermissionResult.NEUTRAL
        return IAMPolicy(json.dumps({**policy, "Statement": unconditional})).is_action_permitted(action, resource)

    patch.setattr(FakeBucket, "get_permission", get_permission)
    # s3-logging-precheck
    patch.setattr(FakeBucket, "_log_permissions_enabled_policy",
                  staticmethod(lambda target_bucket, target_prefix: True))
    # rds-restore-managed-password
    read_configuration = DBCluster.get_cfg

    def get_cfg(cluster):
        if hasattr(cluster, "_master_user_password"):
            return read_configuration(cluster)
        cluster._master_user_password = None
        try:
            return read_configuration(cluster)
        finally:
            del cluster._master_user_password

    patch.setattr(DBCluster, "get_cfg", get_cfg)
    # rds-modify-iam-authentication: ModifyDBCluster sets `enable_iam_database_authentication`
    patch.setattr(DBCluster, "iam_database_authentication_enabled", property(
        lambda cluster: bool(getattr(cluster, "enable_iam_database_authentication", cluster.iam_auth))))
    _work_around_elasticache(patch)
    # iam-managed-policies (read when moto creates its IAM backend, i.e. after this)
    patch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")


def _work_around_elasticache(patch: Patcher) -> None:
    """elasticache-member-clusters and elasticache-delete-never-completes."""
    import inspect

    from moto.elasticache.models import CacheCluster, ElastiCacheBackend

    create_group = ElastiCacheBackend.create_replication_group
    delete_group = ElastiCacheBackend.delete_replication_group
    member_settings = set(inspect.signature(CacheCluster.__init__).parameters) - {"self"}

    def create_replication_group(backend, **settings):
        group = create_group(backend, **settings)
        wanted = settings.get("num_cache_clusters") or len(group.member_clusters)
        group.member_clusters += [f"{group.replication_group_id}-{index:03}"
                                  for index in range(len(group.member_clusters) + 1, wanted + 1)]
        for member in group.member_clusters:
            if member not in backend.cache_clusters:
                given = {name: settings.get(name) for name in member_settings}
                cluster = CacheCluster(**{
                    **given, "account_id": backend.account_id, "region_name": backend.region_name,
                    "cache_cluster_id": member, "replication_group_id": group.replication_group_id,
                    "num_cache_nodes": 1, "tags": None})
                cluster.at_rest_encryption_enabled = bool(settings.get("at_rest_encryption_enabled"))
                cluster.security_groups = [{"SecurityGroupId": group_id, "Status": "active"}
                                           for group_id in settings.get("security_group_ids") or []]
                backend.cache_clusters[member] = cluster
        return group

    def delete_replication_group(backend, replication_group_id, retain_primary_cluster):
        group = delete_group(backend, replication_group_id, retain_primary_cluster)
        del backend.replication_groups[replication_group_id]
        for member in [name for name, cluster in backend.cache_clusters.items()
                       if getattr(cluster, "replication_group_id", None) == replication_group_id]:
            del backend.cache_clusters[member]
        return group

    patch.setattr(ElastiCacheBackend, "create_replication_group", create_replication_group)
    patch.setattr(ElastiCacheBackend, "delete_replication_group", delete_replication_group)
