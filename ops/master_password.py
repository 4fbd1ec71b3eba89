"""The master password of a global database's primary, set by ops and never by Terraform.

RDS may not manage the master password of an Aurora global database's member (core/master_password.py), so
an environment with a standby keeps it in its own secret, `<app>-<env>-database-master`. Terraform creates
that secret without a value, and creates the cluster with a throwaway password nobody knows; it never
writes or reads the secret's value, because the AWS provider refreshes a secret version with
GetSecretValue, so every identity that plans or deploys would read the password. This module sets it:

    python -m ops deploy ENV                  # after the apply, when the cluster has no password from ops yet
    python -m ops rotate-master-password ENV  # a new one now (production: confirmed by name)

Which cluster got its password is recorded in the SSM parameter `/<app>/<env>/database-master-password`
(the cluster's resource id), like the database bootstrap's record: a new cluster (first deploy, restore)
gets one at the next deploy, nothing else does. The steps follow Secrets Manager's rotation (User Guide,
"Rotation by Lambda function", createSecret, setSecret, finishSecret): the new value is stored under
AWSPENDING, set on the cluster (ModifyDBCluster, applied immediately) and waited for, and only then labelled
AWSCURRENT, so readers never get a password the cluster has not accepted (a secret's first version is
AWSCURRENT at once: there was no password to keep). Nothing here reads the secret's value. Every rule is
tested through `ops.tools.Tools` (tests/test_master_password.py).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.access import provider_role
from core.master_password import MASTER_PASSWORD_LENGTH, own_master_secret_name
from core.naming import database_cluster_identifier
from environments.model import EnvironmentConfig, ProjectConfig
from ops import preflight
from ops.errors import Refused
from ops.project import confirm, load_target, require_preflight
from ops.targets import Kind

if TYPE_CHECKING:
    from ops.tools import Tools

POLL_SECONDS = 10
# RDS applies a new master password in seconds to minutes (status `resetting-master-credentials`).
APPLY_WAIT_SECONDS = 15 * 60
CURRENT, PENDING = "AWSCURRENT", "AWSPENDING"


@dataclass(frozen=True)
class MasterPassword:
    """Where one environment's master password lives: its cluster, its secret, the record of what was set."""

    environment: str
    region: str
    cluster: str  # the cluster identifier the database module gives it
    secret: str  # the secret's name
    record_name: str  # the SSM parameter: the resource id of the cluster that got the password

    @classmethod
    def of(cls, env: EnvironmentConfig) -> MasterPassword:
        prefix = f"{env.application}-{env.name}"
        return cls(environment=env.name, region=env.region,
                   cluster=database_cluster_identifier(prefix, env.database.restore_from_snapshot),
                   secret=own_master_secret_name(prefix),
                   record_name=f"/{env.application}/{env.name}/database-master-password")


class Clients:
    """The environment's RDS, Secrets Manager and SSM, as its deploy role when one is configured."""

    def __init__(self, tools: Tools, project: ProjectConfig, env: EnvironmentConfig):
        role = provider_role(project, env.name, env)
        self.rds, self.secrets, self.ssm = (tools.aws(project, service, env.region, role)
                                            for service in ("rds", "secretsmanager", "ssm"))


def keep_master_password(tools: Tools, project: ProjectConfig, env: EnvironmentConfig) -> None:
    """After a deploy: set the password of a cluster that has none from ops yet; say which, either way."""
    if not env.standby:
        return  # RDS manages (and rotates) the master password
    where, clients = MasterPassword.of(env), Clients(tools, project, env)
    try:
        cluster = described(clients.rds, where)
        if recorded(clients.ssm, where) == cluster["DbClusterResourceId"]:
            tools.say(f"{env.name}: master password already set by ops for cluster {where.cluster} "
                      f"({where.record_name}); not changing it")
            return
        tools.say(f"{env.name}: setting the master password of cluster {where.cluster}: it has none from ops yet")
        set_password(tools, clients, where, cluster)
    except preflight.AWS_ERRORS as error:
        raise Refused(f"{env.name}: master password: {preflight.describe_error(error)}; when it is fixed, run: "
                      f"python -m ops rotate-master-password {env.name}") from None


def set_password(tools: Tools, clients: Clients, where: MasterPassword, cluster: dict) -> None:
    """Generate, stage, set on the cluster, wait, promote, record: the steps of a rotation. The user name is
    the cluster's own (a restored cluster's comes from its snapshot)."""
    username = cluster["MasterUsername"]
    password = clients.secrets.get_random_password(
        PasswordLength=MASTER_PASSWORD_LENGTH, ExcludePunctuation=True, RequireEachIncludedType=True,
    )["RandomPassword"]
    version = clients.secrets.put_secret_value(
        SecretId=where.secret, SecretString=json.dumps({"username": username, "password": password}),
        VersionStages=[PENDING])["VersionId"]
    clients.rds.modify_db_cluster(DBClusterIdentifier=where.cluster, MasterUserPassword=password,
                                  ApplyImmediately=True)
    wait_until_applied(tools, clients.rds, where)
    promote(clients.secrets, where.secret, version)
    clients.ssm.put_parameter(
        Name=where.record_name, Value=cluster["DbClusterResourceId"], Type="String", Overwrite=True,
        Description="The cluster whose master password ops last set: its resource id (ops/master_password.py)")
    tools.say(f"{where.environment}: master password set on cluster {where.cluster} and in secret {where.secret} "
              f"(version {version}); recorded in SSM parameter {where.record_name}")


def described(rds, where: MasterPassword) -> dict:
    """The environment's cluster, as DescribeDBClusters gives it."""
    (cluster,) = rds.describe_db_clusters(DBClusterIdentifier=where.cluster)["DBClusters"]
    return cluster


def recorded(ssm, where: MasterPassword) -> str | None:
    try:
        return ssm.get_parameter(Name=where.record_name)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        return None


def wait_until_applied(tools: Tools, rds, where: MasterPassword) -> None:
    """Until the cluster is available with no master password pending: then it accepts the new one."""
    waited = 0
    while True:
        cluster = described(rds, where)
        pending = "MasterUserPassword" in cluster.get("PendingModifiedValues", {})
        if cluster["Status"] == "available" and not pending:
            return
        if waited >= APPLY_WAIT_SECONDS:
            raise Refused(f"{where.environment}: cluster {where.cluster} is still {cluster['Status']} after "
                          f"{APPLY_WAIT_SECONDS // 60} minutes; the new password waits under {PENDING} in "
                          f"{where.secret}; once the cluster is available, run: python -m ops rotate-master-password "
                          f"{where.environment}")
        tools.sleep(POLL_SECONDS)
        waited += POLL_SECONDS


def promote(secrets, secret: str, version: str) -> None:
    """Make `version` AWSCURRENT (unless it is the first, which already is) and take AWSPENDING off it."""
    stages = secrets.describe_secret(SecretId=secret).get("VersionIdsToStages", {})
    current = [other for other, labels in stages.items() if CURRENT in labels and other != version]
    if current:
        secrets.update_secret_version_stage(SecretId=secret, VersionStage=CURRENT, MoveToVersionId=version,
                                            RemoveFromVersionId=current[0])
    secrets.update_secret_version_stage(SecretId=secret, VersionStage=PENDING, RemoveFromVersionId=version)


def cmd_rotate_master_password(tools: Tools, args: argparse.Namespace) -> int:
    """A new master password now, on the cluster and in its secret (environments with a standby only)."""
    project, stack = load_target(tools, args.environment, Kind.ENVIRONMENT)
    env = stack.environment
    if not env.standby:
        raise Refused(f"{env.name} has no standby: RDS manages its master password and rotates it every "
                      f"{env.database.secret_rotation_days} days; to rotate it now: aws secretsmanager rotate-secret "
                      "(docs/runbooks.md, Rotate secrets)")
    doing = "rotating the master password of"
    require_preflight(tools, project, stack, doing=doing)
    confirm(tools, stack.name, "Rotate the master password of", args.yes, by_name=stack.guarded, doing=doing)
    where = MasterPassword.of(env)
    clients = Clients(tools, project, env)
    try:
        set_password(tools, clients, where, described(clients.rds, where))
    except preflight.AWS_ERRORS as error:
        raise Refused(f"{env.name}: master password not rotated: {preflight.describe_error(error)}") from None
    return 0
