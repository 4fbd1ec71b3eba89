"""AWS Backup of the Aurora cluster: a vault per region, a plan, a narrow role, failure notifications.

Aurora's own continuous backups (point-in-time restore) live in the cluster's region and die with
it. AWS Backup adds recovery points on a schedule from configuration, kept in a vault encrypted
with its own CMK, and, where the stack passes a `BackupCopy`, a copy of every recovery point into
a vault in a second region (its own CMK there). Cross-region copies of Aurora snapshots are
re-encrypted with the destination vault's key, so that key is what a restore in the second region
uses (`python -m ops restore`).

Vault lock: compliance mode, not governance. A governance lock can be lifted by anyone holding
`backup:DeleteBackupVaultLockConfiguration`, which is exactly what stolen administrator
credentials (or a hurried operator) have; the point of the lock is that no one, the account's root
user included, can delete a recovery point before its retention ends. Compliance mode becomes
immutable after `changeable_for_days` (the 3-day minimum here, time enough to notice a wrong
setting); from then on the vault cannot be deleted while it holds recovery points and its minimum
retention cannot be lowered. Whether a stack locks its vaults is configuration (`[dr] vault_lock`),
which the loader requires for production environments.

Failure notifications go through EventBridge, not vault notifications: the vault events for
failed and expired backup jobs (BACKUP_JOB_FAILED, BACKUP_JOB_EXPIRED) are deprecated and no
longer sent, and the supported BACKUP_JOB_COMPLETED would also report every success. EventBridge's
"Backup Job State Change" and "Copy Job State Change" events carry the final state, so the rules
below forward only failed, expired and aborted backups and failed copies to the warning topic.

Every resource in another region is created through a provider the stack passes in; the module
never decides which regions those are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from constructs import Construct

from core.account import Account
from core.aws import aws
from core.iam import condition, service_role, statement
from modules.kms_key import KmsKey, KmsKeyProps

# The minimum AWS accepts: days during which a compliance-mode lock can still be removed.
LOCK_CHANGEABLE_DAYS = 3
# Backup job states that mean no recovery point was made; copy job states that mean no copy exists.
FAILED_BACKUP_STATES = ("FAILED", "EXPIRED", "ABORTED")
FAILED_COPY_STATES = ("FAILED",)
# Snapshots AWS Backup creates for RDS and Aurora are named `awsbackup:<job id>`.
BACKUP_SNAPSHOT_PREFIX = "awsbackup:"
RDS_BACKUP_ACTIONS = ("rds:DescribeDBClusters", "rds:CreateDBClusterSnapshot", "rds:ListTagsForResource",
                      "rds:AddTagsToResource")
# On any of AWS Backup's snapshots (their names carry no environment): reading, and copying, which also needs
# this environment's keys, so another environment's snapshot (under its own keys) cannot be copied.
RECOVERY_POINT_READS = ("rds:DescribeDBClusterSnapshots", "rds:CopyDBClusterSnapshot", "rds:ListTagsForResource")
KEY_ACTIONS = ("kms:DescribeKey", "kms:Decrypt", "kms:Encrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*")


@dataclass(frozen=True)
class BackupVaultProps:
    name: str
    account: Account
    region: str
    # Compliance-mode lock with this minimum retention (days); None leaves the vault unlocked.
    lock_min_retention_days: int | None = None
    provider: Any = None  # an aliased provider, for a vault in another region


class BackupVault(Construct):
    """A vault encrypted with its own CMK (alias `alias/<name>`), optionally locked.

    Exposes `name`, `arn`, `kms_key_arn`. A stack in another region can build its own with the
    provider of that region.
    """

    def __init__(self, scope: Construct, id: str, props: BackupVaultProps):
        super().__init__(scope, id)
        key = KmsKey(self, "key", KmsKeyProps(
            account=props.account, alias=f"alias/{props.name}", provider=props.provider,
            description=f"Encrypts the recovery points in backup vault {props.name} ({props.region})"))
        vault = aws.backup_vault.BackupVault(self, "vault", name=props.name, kms_key_arn=key.arn,
                                             provider=props.provider)
        if props.lock_min_retention_days is not None:
            aws.backup_vault_lock_configuration.BackupVaultLockConfiguration(
                self, "lock", backup_vault_name=vault.name, min_retention_days=props.lock_min_retention_days,
                changeable_for_days=LOCK_CHANGEABLE_DAYS, provider=props.provider)
        self.name: str = vault.name
        self.arn: str = vault.arn
        self.kms_key_arn: str = key.arn


@dataclass(frozen=True)
class BackupCopy:
    """Where every recovery point is copied: another region, through that region's provider."""

    region: str
    provider: Any
    retention_days: int


@dataclass(frozen=True)
class BackupProps:
    name_prefix: str  # "<app>-<env>"
    account: Account
    region: str
    cluster_arn: str
    cluster_kms_key_arn: str
    schedule: str  # cron(...): the BackupRule API takes no rate(...)
    # (key, value) of the tag that marks this environment's resources; AWS Backup copies the cluster's tags to
    # its recovery points (AWS Backup Developer Guide, "Copying tags onto backups"), and the role may tag and
    # delete only snapshots that carry it.
    recovery_point_tag: tuple[str, str]
    retention_days: int
    notification_topic_arn: str
    vault_lock: bool = False
    copy: BackupCopy | None = None


class Backup(Construct):
    """Exposes `vault` and `copy_vault` (None without a copy) and `plan_id`."""

    def __init__(self, scope: Construct, id: str, props: BackupProps):
        super().__init__(scope, id)
        self.props = props
        self.vault = BackupVault(self, "vault", BackupVaultProps(
            name=f"{props.name_prefix}-backup", account=props.account, region=props.region,
            lock_min_retention_days=props.retention_days if props.vault_lock else None))
        self.copy_vault: BackupVault | None = None
        if props.copy:
            self.copy_vault = BackupVault(self, "copy-vault", BackupVaultProps(
                name=f"{props.name_prefix}-backup-dr", account=props.account, region=props.copy.region,
                provider=props.copy.provider,
                lock_min_retention_days=props.copy.retention_days if props.vault_lock else None))
        plan = self._plan()
        self.plan_id: str = plan.id
        aws.backup_selection.BackupSelection(
            self, "selection", name=f"{props.name_prefix}-database", plan_id=plan.id,
            iam_role_arn=self._role().arn, resources=[props.cluster_arn])
        self._notifications()

    def _plan(self):
        props, plans = self.props, aws.backup_plan
        copy_action = None
        if props.copy:
            copy_action = [plans.BackupPlanRuleCopyAction(
                destination_vault_arn=self.copy_vault.arn,
                lifecycle=plans.BackupPlanRuleCopyActionLifecycle(delete_after=props.copy.retention_days))]
        return plans.BackupPlan(
            self, "plan", name=f"{props.name_prefix}-database",
            rule=[plans.BackupPlanRule(
                rule_name="scheduled", target_vault_name=self.vault.name, schedule=props.schedule,
                lifecycle=plans.BackupPlanRuleLifecycle(delete_after=props.retention_days),
                copy_action=copy_action)])

    def _snapshot_arns(self) -> list[str]:
        """AWS Backup's snapshots of this account, in the cluster's region and the copy's."""
        account, regions = self.props.account, [self.props.region]
        if self.props.copy:
            regions.append(self.props.copy.region)
        return [f"arn:{account.partition}:rds:{region}:{account.id}:cluster-snapshot:{BACKUP_SNAPSHOT_PREFIX}*"
                for region in regions]

    def _own_recovery_point_statements(self) -> list:
        """Delete only this environment's recovery points; tag a fresh copy (no tags yet) or one of its own.

        Amazon RDS's Service Authorization Reference lists aws:ResourceTag/<key> for the cluster-snapshot
        resource and aws:RequestTag/<key> for AddTagsToResource, so another environment's snapshot in this
        account (tagged with its own environment) can neither be deleted nor re-tagged into this one.
        """
        key, value = self.props.recovery_point_tag
        snapshots = self._snapshot_arns()
        return [
            statement("TagItsRecoveryPoints", ["rds:AddTagsToResource"], snapshots, conditions=[
                condition("StringEqualsIfExists", f"aws:ResourceTag/{key}", value),
                condition("StringEqualsIfExists", f"aws:RequestTag/{key}", value)]),
            statement("DeleteItsRecoveryPoints", ["rds:DeleteDBClusterSnapshot"], snapshots,
                      conditions=[condition("StringEquals", f"aws:ResourceTag/{key}", value)]),
        ]

    def _role(self):
        """Backs up this one cluster and manages its own recovery points; nothing else."""
        props = self.props
        keys = [props.cluster_kms_key_arn, self.vault.kms_key_arn]
        vaults = [self.vault.arn]
        if self.copy_vault:
            keys.append(self.copy_vault.kms_key_arn)
            vaults.append(self.copy_vault.arn)
        statements = [
            statement("SnapshotTheCluster", RDS_BACKUP_ACTIONS, [props.cluster_arn]),
            statement("ReadAndCopyRecoveryPoints", RECOVERY_POINT_READS, self._snapshot_arns()),
            *self._own_recovery_point_statements(),
            statement("UseTheKeys", KEY_ACTIONS, keys),
            statement("GrantRdsUseOfTheKeys", ["kms:CreateGrant"], keys,
                      conditions=[condition("Bool", "kms:GrantIsForAWSResource", "true")]),
            statement("UseTheVaults", ["backup:DescribeBackupVault", "backup:CopyIntoBackupVault"], vaults),
        ]
        # AWS Backup Developer Guide, "IAM service roles" (the role AWS Backup assumes).
        return service_role(
            self, "role", name=f"{props.name_prefix}-backup", service="backup.amazonaws.com",
            account_id=props.account.id, description="Lets AWS Backup snapshot and copy the database cluster only",
            policy_statements=statements)

    def _notifications(self) -> None:
        """Failed, expired or aborted backups and failed copies, to the notification topic."""
        prefix = self.props.name_prefix
        for name, detail_type, states in (("backup-failed", "Backup Job State Change", FAILED_BACKUP_STATES),
                                          ("copy-failed", "Copy Job State Change", FAILED_COPY_STATES)):
            pattern = {"source": ["aws.backup"], "detail-type": [detail_type], "detail": {"state": list(states)}}
            rule = aws.cloudwatch_event_rule.CloudwatchEventRule(
                self, f"{name}-rule", name=f"{prefix}-{name}", event_pattern=json.dumps(pattern),
                description=f"AWS Backup: {detail_type} to {', '.join(states)}")
            aws.cloudwatch_event_target.CloudwatchEventTarget(
                self, f"{name}-target", rule=rule.name, arn=self.props.notification_topic_arn)
