"""Bootstrap: the S3 bucket, DynamoDB lock table and KMS key that hold all Terraform state.

It keeps its own state locally (it cannot live in a bucket it has not created yet); see the
README for moving it into the bucket afterwards. With `state.replica_region`, the state bucket
replicates every object version and delete marker to `<bucket>-replica` in that region (its own
CMK there, access logs to `<bucket>-dr-logs` there), so losing the state's region never means
losing the state (docs/runbooks.md "Region lost"). The local state path is relative, so the
synthesized JSON is identical on every machine and in every checkout.
"""

from __future__ import annotations

from cdktf import LocalBackend, TerraformOutput, TerraformResourceLifecycle, TerraformStack
from constructs import Construct

from bootstrap.access import (
    StackPrincipals,
    StateRoles,
    admitted_principals,
    bucket_boundary,
    key_boundary,
    replica_admitted,
    replication_role_name,
)
from bootstrap.ci import CiIdentities
from core.access import AssumedRole, role_arn, session
from core.account import look_up_account
from core.aws import aws
from core.provider import aws_provider, required_tags, s3_backend
from core.tagging import RequiredTags
from environments.model import BOOTSTRAP_STACK, Access, ProjectConfig
from modules.kms_key import KmsKey, KmsKeyProps
from modules.replication import BucketReplication, ReplicationProps
from modules.secure_bucket import SecureBucket, SecureBucketProps

STACK_NAME = BOOTSTRAP_STACK
# Relative to cdktf.out/stacks/bootstrap, i.e. the repository root: survives re-synthesis
# (cdktf.out is rebuilt) and is ignored by git.
LOCAL_STATE_PATH = "../../../terraform.bootstrap.tfstate"
# The state bucket's access logs go to "<state bucket>-access-logs" and are kept a year.
ACCESS_LOG_SUFFIX = "-access-logs"
ACCESS_LOG_DAYS = 365
# The replica of the state bucket and its access-log sink (both fit S3's 63 characters: bucket <= 51).
REPLICA_SUFFIX, REPLICA_LOG_SUFFIX = "-replica", "-dr-logs"


class BootstrapStack(TerraformStack):
    def __init__(self, scope: Construct, project: ProjectConfig):
        super().__init__(scope, STACK_NAME)
        state = project.state
        if state.bootstrap_state_in_bucket:
            s3_backend(self, state=state, key=state.bootstrap_key, emulator=project.emulator)
        else:
            LocalBackend(self, path=LOCAL_STATE_PATH)
        tags = required_tags(environment="shared", application=project.application,
                             owner=project.owner, cost_center=project.cost_center)
        self.account_id = state.account_id or project.account_id
        self.tags = tags
        self._account_providers: dict[str, object] = {}
        aws_provider(self, region=state.region, account_id=self.account_id, tags=tags, emulator=project.emulator)
        RequiredTags.enforce(self, tags)
        account = self.account = look_up_account(self)
        self.project = project
        admitted = admitted_principals(project) if state.isolated else ()
        key = KmsKey(self, "state-key", KmsKeyProps(
            account=account,
            alias=state.kms_alias,
            description=f"Encrypts the Terraform state and locks of {project.application}",
            prevent_destroy=True,  # losing this key makes every state file unreadable
            policy_statements=(key_boundary(admitted),) if admitted else (),
        ))
        # S3 can deliver server access logs only to an SSE-S3 bucket, hence no CMK here.
        access_logs = SecureBucket(self, "access-logs", SecureBucketProps(
            name=f"{state.bucket}{ACCESS_LOG_SUFFIX}",
            kms_key_arn=None,
            noncurrent_version_days=state.noncurrent_version_days,
            expiration_days=ACCESS_LOG_DAYS,
            s3_access_logs_from_account=account.id,
        ))
        bucket = SecureBucket(self, "state-bucket", SecureBucketProps(
            name=state.bucket,
            kms_key_arn=key.arn,
            noncurrent_version_days=state.noncurrent_version_days,
            prevent_destroy=True,
            access_log_bucket=access_logs,
            policy_statements=(bucket_boundary(f"arn:{account.partition}:s3:::{state.bucket}", admitted),)
            if admitted else (),
        ))
        if state.replica_region:
            self._replica(bucket, key.arn, aws_provider(
                self, region=state.replica_region, account_id=self.account_id, tags=tags,
                emulator=project.emulator, alias="replica"))
        table = self._lock_table(state.lock_table, key.arn)
        if state.isolated:
            self._isolation(key.arn)
        self._outputs(project, bucket.name, table.name, key.arn)

    def _isolation(self, key_arn: str) -> None:
        """Per-stack state roles, trusted by each stack's deployers and planners (and CI's entry roles)."""
        project = self.project
        ci = CiIdentities(self, "ci", project=project, account_provider=self._account_provider) if project.ci else None
        principals = {baseline.stack_name: StackPrincipals(*(((baseline.deploy_role_arn,),) * 2))
                      for baseline in project.baselines if baseline.deploy_role_arn}
        for env in project.environments:
            callers = None
            if ci:
                callers = StackPrincipals((ci.entry_arns[(env.name, Access.DEPLOY)],),
                                          (ci.entry_arns[(env.name, Access.PLAN)],))
            elif env.deploy_role_arn:
                callers = StackPrincipals((env.deploy_role_arn,), (env.deploy_role_arn,))
            if callers:  # the environment's DR-region stack is deployed by the same identities
                principals.update(dict.fromkeys(filter(None, (env.name, env.dr_stack_name)), callers))
        roles = StateRoles(self, "state-roles", project=project, key_arn=key_arn, principals=principals)
        TerraformOutput(self, "state_roles", description="Each stack's state roles (read-write, read-only)",
                        value={stack: {str(access): roles.arns[(stack, access)] for access in Access}
                               for stack in project.state_keys})

    def _account_provider(self, account_id: str):
        """The default provider for the state account; another account through its administrator role, once."""
        if account_id == self.account_id:
            return None
        alias = f"account_{account_id}"
        if alias not in self._account_providers:
            project = self.project
            admin = role_arn(project.partition, account_id, project.ci.account_access_role)
            self._account_providers[alias] = aws_provider(
                self, region=project.state.region, account_id=account_id, tags=self.tags, emulator=project.emulator,
                alias=alias, role=AssumedRole(admin, session(project, STACK_NAME)))
        return self._account_providers[alias]

    def _replica(self, bucket: SecureBucket, kms_key_arn: str, provider) -> None:
        """The state bucket's replica, as hardened as the bucket: own CMK, versioning, prevent_destroy, logs."""
        state, account = self.project.state, self.account
        admitted = replica_admitted(self.project) if state.isolated else ()
        key = KmsKey(self, "replica-key", KmsKeyProps(
            account=account, alias=f"alias/{self.project.application}-state-replica", provider=provider,
            prevent_destroy=True, policy_statements=(key_boundary(admitted),) if admitted else (),
            description=f"Encrypts the replica of the Terraform state of {self.project.application} in "
                        f"{state.replica_region}"))
        logs = SecureBucket(self, "replica-access-logs", SecureBucketProps(
            name=f"{state.bucket}{REPLICA_LOG_SUFFIX}", kms_key_arn=None,
            noncurrent_version_days=state.noncurrent_version_days, expiration_days=ACCESS_LOG_DAYS,
            s3_access_logs_from_account=account.id, provider=provider))
        replica = SecureBucket(self, "state-replica", SecureBucketProps(
            name=f"{state.bucket}{REPLICA_SUFFIX}", kms_key_arn=key.arn,
            noncurrent_version_days=state.noncurrent_version_days, prevent_destroy=True,
            access_log_bucket=logs, provider=provider,
            policy_statements=(bucket_boundary(f"arn:{account.partition}:s3:::{state.bucket}{REPLICA_SUFFIX}",
                                              admitted),) if admitted else ()))
        BucketReplication(self, "state-replication", ReplicationProps(
            name=replication_role_name(self.project), account=account,
            source=bucket, source_region=state.region, source_kms_key_arn=kms_key_arn,
            replica=replica, replica_region=state.replica_region, replica_kms_key_arn=key.arn))
        TerraformOutput(self, "state_replica_bucket", value=replica.name,
                        description=f"Replica of the state bucket in {state.replica_region}")

    def _lock_table(self, name: str, kms_key_arn: str):
        dynamodb = aws.dynamodb_table
        return dynamodb.DynamodbTable(
            self,
            "lock-table",
            name=name,
            billing_mode="PAY_PER_REQUEST",
            hash_key="LockID",
            attribute=[dynamodb.DynamodbTableAttribute(name="LockID", type="S")],
            point_in_time_recovery=dynamodb.DynamodbTablePointInTimeRecovery(enabled=True),
            server_side_encryption=dynamodb.DynamodbTableServerSideEncryption(
                enabled=True, kms_key_arn=kms_key_arn),
            deletion_protection_enabled=True,
            lifecycle=TerraformResourceLifecycle(prevent_destroy=True),
        )

    def _outputs(self, project: ProjectConfig, bucket: str, table: str, key_arn: str) -> None:
        state = project.state
        TerraformOutput(self, "state_bucket", value=bucket, description="S3 bucket holding all state")
        TerraformOutput(self, "lock_table", value=table, description="DynamoDB table for state locks")
        TerraformOutput(self, "kms_key_arn", value=key_arn, description="CMK encrypting state and locks")
        TerraformOutput(
            self,
            "backend_settings",
            description="The S3 backend block every other stack uses (the key varies per stack)",
            value={
                "bucket": bucket,
                "region": state.region,
                "encrypt": True,
                "kms_key_id": state.kms_alias,
                "dynamodb_table": table,
                "use_lockfile": True,
                "keys": project.state_keys,
            },
        )
