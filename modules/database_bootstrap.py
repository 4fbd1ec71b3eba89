"""The one-off database bootstrap task: the only holder of the Aurora master credentials.

The API connects as its own role (`APP_USER`) with IAM database authentication; somebody has to
create that role inside PostgreSQL first, and only the master user can. That somebody is this ECS
task definition: `python -m ops deploy` runs it once per cluster (ops/database_bootstrap.py), it
runs `psql` with the SQL below and exits. Its execution role is the only role of the stack that
may read the master secret; it has no task role at all, so the running container can call no AWS API.

Why the SQL looks the way it does:

- idempotent (a `DO` block guards `CREATE ROLE`, everything else is `IF NOT EXISTS` or a
  `GRANT`/`ALTER` that may repeat), so re-running it after a restore or a changed grant is safe;
- no password anywhere: the cluster logs DDL (`log_statement = ddl`), and `CREATE ROLE ... PASSWORD
  '...'` would put the literal into CloudWatch Logs. The role logs in through `rds_iam` only;
- the attributes are stated, not assumed (`NOCREATEDB NOCREATEROLE`), so a role that someone widened
  by hand is narrowed again on the next run. SUPERUSER, REPLICATION and BYPASSRLS cannot even be
  named by the master user (Aurora has no real superuser), so no role it creates can hold them;
- the app may connect to its database and create objects in its own schema `app` (the schema is
  owned by the master user, so the app cannot drop or re-grant the schema itself); nothing else.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from constructs import Construct

from core.account import Account
from core.aws import aws
from core.iam import condition, service_role, statement
from modules.log_group import LogGroup, LogGroupProps

APP_USER = "app"
APP_SCHEMA = "app"
# Aurora's built-in role that makes a login use IAM database authentication tokens.
IAM_AUTH_ROLE = "rds_iam"
CONTAINER_NAME = "db-bootstrap"
CONTAINER_USER = "1000:1000"  # psql needs no privileges in the container
CPU, MEMORY = 256, 512
# psql: no ~/.psqlrc (the root filesystem is read-only and nothing of the image should change the
# run), stop at the first error, one transaction: the role exists with all its grants or not at all.
PSQL_OPTIONS = ("--no-psqlrc", "--set=ON_ERROR_STOP=1", "--single-transaction")


def execution_role_name(name_prefix: str) -> str:
    """The bootstrap task's execution role: the one role that may read the master secret."""
    return f"{name_prefix}-db-bootstrap-execution"


def bootstrap_sql(database: str, user: str = APP_USER, schema: str = APP_SCHEMA) -> str:
    """The statements the task runs as the master user (see the module docstring for why)."""
    return f"""\
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{user}') THEN
    CREATE ROLE {user} LOGIN;
  END IF;
END
$$;
ALTER ROLE {user} WITH LOGIN NOCREATEDB NOCREATEROLE INHERIT;
GRANT {IAM_AUTH_ROLE} TO {user};
GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {user};
CREATE SCHEMA IF NOT EXISTS {schema};
GRANT USAGE, CREATE ON SCHEMA {schema} TO {user};
ALTER ROLE {user} IN DATABASE {database} SET search_path = {schema};
"""


def psql_command(sql: str) -> list[str]:
    """The container's command: the image's `psql`, connection settings from PG* variables."""
    return ["psql", *PSQL_OPTIONS, f"--command={sql}"]


def sql_digest(sql: str) -> str:
    """Short fingerprint of the SQL: a changed grant means the task must run again."""
    return hashlib.sha256(sql.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class DatabaseBootstrapProps:
    name_prefix: str  # "<app>-<env>"
    environment: str
    region: str
    account: Account
    image: str
    cluster_arn: str  # the ECS cluster it runs in
    subnet_ids: tuple[str, ...]
    security_group_id: str  # a group the database admits on 5432
    database_host: str
    database_port: str
    database_name: str
    database_cluster_resource_id: str
    master_secret_arn: str
    database_kms_key_arn: str
    log_retention_days: int
    logs_kms_key_arn: str


class DatabaseBootstrap(Construct):
    """Exposes `task_definition_arn`, `execution_role_name`, `sql`, `run_settings` (what `ops deploy` needs)."""

    def __init__(self, scope: Construct, id: str, props: DatabaseBootstrapProps):
        super().__init__(scope, id)
        self.props = props
        self.sql = bootstrap_sql(props.database_name)
        self.log_group = LogGroup(self, "log-group", LogGroupProps(
            name=f"/aws/ecs/db-bootstrap-{props.environment}", retention_days=props.log_retention_days,
            kms_key_arn=props.logs_kms_key_arn))
        self.execution_role_name = execution_role_name(props.name_prefix)
        tasks = aws.ecs_task_definition
        definition = tasks.EcsTaskDefinition(
            self, "task-definition", family=f"{props.name_prefix}-db-bootstrap",
            requires_compatibilities=["FARGATE"], network_mode="awsvpc", cpu=str(CPU), memory=str(MEMORY),
            execution_role_arn=self._execution_role(),
            runtime_platform=tasks.EcsTaskDefinitionRuntimePlatform(
                operating_system_family="LINUX", cpu_architecture="X86_64"),
            container_definitions=json.dumps([self._container()]),
        )
        self.task_definition_arn: str = definition.arn
        self.run_settings = {
            "cluster": props.cluster_arn,
            "task_definition": definition.arn,
            "subnets": list(props.subnet_ids),
            "security_groups": [props.security_group_id],
            "log_group": self.log_group.name,
            "database_cluster_resource_id": props.database_cluster_resource_id,
            "sql_digest": sql_digest(self.sql),
        }

    def _execution_role(self) -> str:
        props = self.props
        return service_role(
            self, "execution-role", name=self.execution_role_name,
            # ECS Developer Guide, "Amazon ECS task execution IAM role" (trust policy).
            service="ecs-tasks.amazonaws.com", account_id=props.account.id,
            description="ECS injects the database master secret into the one-off bootstrap task, nothing else",
            policy_statements=[
                statement("WriteBootstrapLogs", ["logs:CreateLogStream", "logs:PutLogEvents"],
                          [f"{self.log_group.arn}:*"]),
                statement("ReadMasterSecret", ["secretsmanager:GetSecretValue"], [props.master_secret_arn]),
                statement("DecryptMasterSecret", ["kms:Decrypt"], [props.database_kms_key_arn],
                          conditions=[condition("StringEquals", "kms:ViaService",
                                                f"secretsmanager.{props.region}.amazonaws.com")]),
            ],
        ).arn

    def _container(self) -> dict:
        """ECS's container definition JSON; the master credentials arrive as PGUSER/PGPASSWORD."""
        props = self.props
        secret = props.master_secret_arn
        return {
            "name": CONTAINER_NAME,
            "image": props.image,
            "essential": True,
            "user": CONTAINER_USER,
            "readonlyRootFilesystem": True,
            "command": psql_command(self.sql),
            "environment": [
                {"name": "PGHOST", "value": props.database_host},
                {"name": "PGPORT", "value": props.database_port},
                {"name": "PGDATABASE", "value": props.database_name},
                # The cluster refuses plain connections (rds.force_ssl); the image has no RDS CA bundle.
                {"name": "PGSSLMODE", "value": "require"},
                {"name": "PGCONNECT_TIMEOUT", "value": "30"},
            ],
            "secrets": [
                {"name": "PGUSER", "valueFrom": f"{secret}:username::"},
                {"name": "PGPASSWORD", "valueFrom": f"{secret}:password::"},
            ],
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": self.log_group.name, "awslogs-region": props.region,
                "awslogs-stream-prefix": CONTAINER_NAME}},
        }
