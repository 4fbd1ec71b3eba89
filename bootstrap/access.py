"""Per-stack state isolation: each stack reaches only its own state, through its own roles.

With `state.account_id` configured, the bootstrap creates for every stack kept in the state bucket
(each environment, each baseline) two roles in the state account (names in core/access.py):

- read-write: its own state object and S3 lock file, its own lock items in the lock table
  (`dynamodb:LeadingKeys`), a listing of its own prefix only, and the state key only through S3 and
  DynamoDB (`kms:ViaService`);
- read-only: the same object and prefix, read only, and the key for decryption only; it can neither
  write nor lock, so plans with it run with `-lock=false`.

The bucket, its replica and both keys then deny object and key use to every principal but these
roles, the administrators and the replication role (`aws:PrincipalArn`), so a role with broad
rights elsewhere in the state account still cannot read another stack's state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from constructs import Construct

from core.access import STATE_ROLE_PATH, state_role_arn, state_role_name
from core.aws import aws
from core.iam import condition, principal, statement
from environments.model import Access, ProjectConfig

# The key's cryptographic use (its administration stays with the account's IAM, as for every key here).
KEY_USE_ACTIONS = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*")
OBJECT_ACTIONS = ("s3:GetObject*", "s3:PutObject*", "s3:DeleteObject*", "s3:RestoreObject")
# Terraform's S3 lock file sits next to the state object (Terraform docs, "Backend Type: s3", use_lockfile).
LOCK_FILE_SUFFIX = ".tflock"
# The DynamoDB lock item is `<bucket>/<key>`, the state's digest item `<bucket>/<key>-md5` (same page).
DIGEST_SUFFIX = "-md5"


@dataclass(frozen=True)
class StackPrincipals:
    """Who may assume a stack's state roles: deployers the read-write one, planners the read-only one."""

    deployers: tuple[str, ...]
    planners: tuple[str, ...]


def replication_role_name(project: ProjectConfig) -> str:
    return f"{project.application}-state-replication"


def admitted_principals(project: ProjectConfig) -> tuple[str, ...]:
    """Every principal the state bucket and key still serve: the stacks' state roles, administrators, replication."""
    roles = [state_role_arn(project, stack, access) for stack in project.state_keys for access in Access]
    if project.state.replica_region:
        roles.append(f"arn:{project.partition}:iam::{project.state.account_id}:role/{replication_role_name(project)}")
    return (*roles, *project.state.administrators)


def replica_admitted(project: ProjectConfig) -> tuple[str, ...]:
    """The replica is read by no stack: only S3 replication writes it, and administrators restore from it."""
    return (f"arn:{project.partition}:iam::{project.state.account_id}:role/{replication_role_name(project)}",
            *project.state.administrators)


def key_boundary(admitted: tuple[str, ...]) -> dict:
    """A key policy statement: nobody but `admitted` (and AWS services acting through grants) uses the key."""
    # IAM User Guide, "AWS global condition context keys": aws:PrincipalArn is the role's ARN for assumed roles;
    # aws:PrincipalIsAWSService keeps service principals (DynamoDB's grant on the lock table) out of the deny.
    return {
        "Sid": "OnlyTheStateRolesUseTheKey",
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": list(KEY_USE_ACTIONS),
        "Resource": "*",
        "Condition": {"ArnNotLike": {"aws:PrincipalArn": list(admitted)},
                      "Bool": {"aws:PrincipalIsAWSService": "false"}},
    }


def bucket_boundary(bucket_arn: str, admitted: tuple[str, ...]):
    """A bucket policy statement: nobody but `admitted` reads, writes or deletes an object of the bucket."""
    return statement(
        "OnlyTheStateRolesTouchObjects", list(OBJECT_ACTIONS), [f"{bucket_arn}/*"], effect="Deny",
        principals=[principal("*", "*")],
        conditions=[condition("ArnNotLike", "aws:PrincipalArn", *admitted),
                    condition("Bool", "aws:PrincipalIsAWSService", "false")])


class StateRoles(Construct):
    """The read-write and read-only state roles of every stack; exposes their ARNs by stack and access."""

    def __init__(self, scope: Construct, id: str, *, project: ProjectConfig, key_arn: str,
                 principals: dict[str, StackPrincipals]):
        super().__init__(scope, id)
        self.project, self.key_arn = project, key_arn
        self.arns: dict[tuple[str, Access], str] = {}
        for stack, state_key in project.state_keys.items():
            allowed = principals.get(stack, StackPrincipals((), ()))
            self._role(stack, state_key, Access.DEPLOY, allowed.deployers)
            self._role(stack, state_key, Access.PLAN, allowed.planners)

    def _role(self, stack: str, state_key: str, access: Access, callers: tuple[str, ...]) -> None:
        project = self.project
        name = state_role_name(project, stack, access)
        trusted = (*callers, *project.state.administrators)
        trust = {"Version": "2012-10-17", "Statement": [{
            "Sid": "StackCallers", "Effect": "Allow", "Principal": {"AWS": list(trusted)},
            "Action": "sts:AssumeRole"}]}
        role = aws.iam_role.IamRole(
            self, f"{stack}-{access}", name=name, path=STATE_ROLE_PATH, assume_role_policy=json.dumps(trust),
            description=f"{'Reads and writes' if access is Access.DEPLOY else 'Reads'} the Terraform state of "
                        f"{stack} only")
        policy = state_policy(project, state_key, self.key_arn, access)
        aws.iam_role_policy.IamRolePolicy(self, f"{stack}-{access}-policy", name=f"{name}-state", role=role.id,
                                          policy=json.dumps(policy))
        self.arns[(stack, access)] = role.arn


def state_policy(project: ProjectConfig, state_key: str, key_arn: str, access: Access) -> dict:
    """The one stack's state: its object (and lock file), its lock items, its prefix, the key through S3/DynamoDB."""
    state, partition = project.state, project.partition
    bucket_arn = f"arn:{partition}:s3:::{state.bucket}"
    table_arn = f"arn:{partition}:dynamodb:{state.region}:{state.account_id}:table/{state.lock_table}"
    prefix = state_key.rsplit("/", 1)[0]
    lock_items = [f"{state.bucket}/{state_key}{DIGEST_SUFFIX}"]
    writes = access is Access.DEPLOY
    if writes:
        lock_items.insert(0, f"{state.bucket}/{state_key}")
    via = [f"s3.{state.region}.amazonaws.com", f"dynamodb.{state.region}.amazonaws.com"]
    statements = [
        # Terraform docs, "Backend Type: s3", permissions: s3:ListBucket limited by s3:prefix to one state's path
        # (Terraform >= 1.7 lists workspaces under workspace_key_prefix, which the backend keeps in this prefix).
        {"Sid": "ListOwnPrefix", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket_arn,
         "Condition": {"StringLike": {"s3:prefix": [f"{prefix}/*"]}}},
        {"Sid": "OwnStateObject", "Effect": "Allow",
         "Action": ["s3:GetObject", "s3:PutObject"] if writes else ["s3:GetObject"],
         "Resource": f"{bucket_arn}/{state_key}"},
        # What `python -m ops preflight` checks as this role: versioning, default encryption, public access blocks.
        {"Sid": "StateBucketSettings", "Effect": "Allow",
         "Action": ["s3:GetBucketVersioning", "s3:GetEncryptionConfiguration", "s3:GetBucketPublicAccessBlock"],
         "Resource": bucket_arn},
        {"Sid": "LockTable", "Effect": "Allow", "Action": "dynamodb:DescribeTable", "Resource": table_arn},
        # DynamoDB Developer Guide, "Using IAM policy conditions for fine-grained access control" (LeadingKeys).
        {"Sid": "OwnLockItems", "Effect": "Allow",
         "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"] if writes else ["dynamodb:GetItem"],
         "Resource": table_arn,
         "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": lock_items}}},
        # AWS KMS Developer Guide, "kms:ViaService": the key only inside S3 and DynamoDB requests.
        {"Sid": "StateKeyThroughS3AndDynamoDB", "Effect": "Allow",
         "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"] if writes else ["kms:Decrypt"],
         "Resource": key_arn, "Condition": {"StringEquals": {"kms:ViaService": via}}},
    ]
    if writes:
        statements.insert(3, {"Sid": "OwnLockFile", "Effect": "Allow",
                              "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                              "Resource": f"{bucket_arn}/{state_key}{LOCK_FILE_SUFFIX}"})
    return {"Version": "2012-10-17", "Statement": statements}
