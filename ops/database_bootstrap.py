"""The one-off database bootstrap task (modules/database_bootstrap.py): when it runs, and running it.

After an apply, `deploy` runs the task when it has not run for this Aurora cluster with this SQL,
and says so either way. What has run is recorded in an SSM parameter,
`/<app>/<env>/database-bootstrap`, holding "<cluster resource id> <SQL digest>": a new cluster
(restore, replacement) or changed grants run it again, nothing else does.
`python -m ops database-bootstrap ENV` runs it on demand (docs/runbooks.md).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from core.access import provider_role
from environments.model import EnvironmentConfig, ProjectConfig
from ops import preflight
from ops.aws_session import session_for
from ops.errors import Refused
from ops.project import load_target, require_preflight
from ops.targets import Kind
from ops.terraform import synth, terraform_for

if TYPE_CHECKING:
    from ops.tools import Tools

OUTPUT = "DatabaseBootstrap"  # stacks/environment.py: how to run the task
TASK_MINUTES = 15


@dataclass(frozen=True)
class BootstrapRun:
    """One run of an environment's database bootstrap task, from its stack output."""

    environment: str
    record_name: str  # the SSM parameter saying what has run
    cluster: str
    task_definition: str
    subnets: tuple[str, ...]
    security_groups: tuple[str, ...]
    log_group: str
    database_cluster: str  # the Aurora cluster's resource id
    sql_digest: str

    @classmethod
    def from_output(cls, env: EnvironmentConfig, value: Mapping[str, Any]) -> BootstrapRun:
        return cls(
            environment=env.name, record_name=f"/{env.application}/{env.name}/database-bootstrap",
            cluster=value["cluster"], task_definition=value["task_definition"], subnets=tuple(value["subnets"]),
            security_groups=tuple(value["security_groups"]), log_group=value["log_group"],
            database_cluster=value["database_cluster_resource_id"], sql_digest=value["sql_digest"])

    @property
    def fingerprint(self) -> str:
        """What the record holds once this run succeeded."""
        return f"{self.database_cluster} {self.sql_digest}"

    def why_run(self, recorded: str | None) -> str | None:
        """Why the task must run now, or None when this cluster already ran this SQL."""
        if recorded == self.fingerprint:
            return None
        if recorded is None or recorded.split(" ")[0] != self.database_cluster:
            return f"it has not run for database cluster {self.database_cluster} yet"
        return "its SQL changed since it last ran"


class DatabaseBootstrapper(Protocol):
    """The AWS side of a bootstrap run (ECS and SSM); tests pass a fake."""

    def recorded(self, run: BootstrapRun) -> str | None:
        """The record's value, or None when there is none."""

    def run_task(self, run: BootstrapRun) -> str | None:
        """Run the task to its end: None when it exited 0, else why it did not."""

    def record(self, run: BootstrapRun) -> None:
        """Remember that this run succeeded."""


@dataclass
class AwsDatabaseBootstrapper:
    """ECS RunTask in the app subnets, waiting for the task to stop; the record in SSM Parameter Store."""

    region: str
    endpoint: str | None = None
    # The session to run as (the environment's deploy role when configured); None: the caller's own.
    session: object = None

    def _client(self, service: str):
        import boto3

        session = self.session or boto3.session.Session()
        return session.client(service, region_name=self.region, endpoint_url=self.endpoint)

    def recorded(self, run: BootstrapRun) -> str | None:
        ssm = self._client("ssm")
        try:
            return ssm.get_parameter(Name=run.record_name)["Parameter"]["Value"]
        except ssm.exceptions.ParameterNotFound:
            return None

    def run_task(self, run: BootstrapRun) -> str | None:
        ecs = self._client("ecs")
        started = ecs.run_task(
            cluster=run.cluster, taskDefinition=run.task_definition, launchType="FARGATE", count=1,
            networkConfiguration={"awsvpcConfiguration": {
                "subnets": list(run.subnets), "securityGroups": list(run.security_groups),
                "assignPublicIp": "DISABLED"}})
        if not started.get("tasks"):
            return f"ECS did not start it: {started.get('failures')}"
        task_arn = started["tasks"][0]["taskArn"]
        ecs.get_waiter("tasks_stopped").wait(cluster=run.cluster, tasks=[task_arn],
                                             WaiterConfig={"Delay": 10, "MaxAttempts": TASK_MINUTES * 6})
        (task,) = ecs.describe_tasks(cluster=run.cluster, tasks=[task_arn])["tasks"]
        codes = [container.get("exitCode") for container in task.get("containers", [])]
        if codes == [0]:
            return None
        return f"task {task_arn} stopped ({task.get('stoppedReason', 'no reason given')}), exit codes {codes}"

    def record(self, run: BootstrapRun) -> None:
        self._client("ssm").put_parameter(
            Name=run.record_name, Value=run.fingerprint, Type="String", Overwrite=True,
            Description="What the database bootstrap task last ran: <cluster resource id> <SQL digest> (ops)")


def aws_bootstrapper(project: ProjectConfig, env: EnvironmentConfig) -> DatabaseBootstrapper:
    """Runs as the environment's deploy role when one is configured (what Terraform itself deploys as)."""
    role = provider_role(project, env.name, env)
    return AwsDatabaseBootstrapper(env.region, project.emulator.endpoint if project.emulator else None,
                                   session_for(project, role, env.region) if role else None)


def bootstrap_database(tools: Tools, project: ProjectConfig, env: EnvironmentConfig, force: bool = False) -> None:
    """Run the database bootstrap task unless this cluster already ran this SQL (or `force`); say which."""
    run = BootstrapRun.from_output(env, terraform_for(tools, env.name).output(OUTPUT))
    aws_side = tools.database_bootstrapper(project, env)
    try:
        reason = "asked to run it again" if force else run.why_run(aws_side.recorded(run))
        if reason is None:
            tools.say(f"{env.name}: database bootstrap already ran for cluster {run.database_cluster} with this SQL "
                      f"({run.record_name}); not running it")
            return
        tools.say(f"{env.name}: running the database bootstrap task: {reason}")
        failure = aws_side.run_task(run)
        if failure:
            raise Refused(f"{env.name}: the database bootstrap task failed: {failure}; its log is in "
                          f"{run.log_group}; fix it and run: python -m ops database-bootstrap {env.name}")
        aws_side.record(run)
    except preflight.AWS_ERRORS as error:
        raise Refused(f"{env.name}: database bootstrap: {preflight.describe_error(error)}") from None
    tools.say(f"{env.name}: database bootstrap done; recorded in SSM parameter {run.record_name}")


def cmd_database_bootstrap(tools: Tools, args: argparse.Namespace) -> int:
    """Run the bootstrap task of an applied environment again, whatever the record says."""
    project, stack = load_target(tools, args.environment, Kind.ENVIRONMENT)
    require_preflight(tools, project, stack)
    synth(tools, [stack.name])
    terraform_for(tools, stack.name)("init", "-input=false")
    bootstrap_database(tools, project, stack.environment, force=True)
    return 0
