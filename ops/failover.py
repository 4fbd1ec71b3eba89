"""Move an environment with a warm standby to its DR region, or back (`python -m ops failover ENV`).

    python -m ops failover ENV --planned         # switchover: both regions healthy, no data lost
    python -m ops failover ENV                   # failover: the home region is lost, recent writes may be
    python -m ops failover ENV --planned --back  # failback once the home region serves again

What it does, in the order that shortens the outage (RTO):

1. the account check of `deploy` (credentials and account only: the state bucket may sit in the lost
   region, and nothing here touches Terraform state);
2. it finds the Aurora Global Database `<app>-<env>-global` and refuses unless the target cluster is a
   member and not already the writer;
3. the typed confirmation of `deploy` (production: the environment's name; `--yes` skips it);
4. `switchover_global_cluster` (planned; Aurora waits until the secondary has caught up, so no data is
   lost) or `failover_global_cluster` with `AllowDataLoss` (unplanned; writes the secondary had not
   received are lost: the replication lag, typically under a second);
5. at once, the target region's API service is scaled to `api.min_tasks` (its autoscaling floor too);
   after a planned move the other region's API is scaled to its idle size, so its load balancer stops
   answering /health and Route 53 failover routing moves `api.<domain>` (its cluster is read-only now);
6. it waits until the target cluster is the writer and the target's API has `api.min_tasks` healthy
   targets, then prints what changed and the command that moves the environment back.

The standby's service and scaling are Terraform's afterwards (`desired_count` is ignored by Terraform;
the autoscaling floor is not): docs/runbooks.md says what to change before deploying while failed over.
Every rule is tested through `ops.tools.Tools` (tests/test_failover.py).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from botocore.parsers import ResponseParserError

from core.access import provider_role
from core.naming import bounded_name, database_cluster_identifier
from environments.model import EnvironmentConfig, ProjectConfig
from ops import preflight
from ops.errors import Refused, UsageError
from ops.project import confirm, load_target
from ops.targets import Kind

if TYPE_CHECKING:
    from ops.tools import Tools

POLL_SECONDS = 15
# Aurora documents a switchover or failover as taking minutes; the API's tasks start in a few more.
WRITER_WAIT_SECONDS = 30 * 60
HEALTH_WAIT_SECONDS = 15 * 60
# The preflight checks that must pass: who we are. The state backend may be in the region that is lost.
IDENTITY_CHECKS = ("credentials", "account")
# What AWS may answer instead of a result: an error, or a page botocore cannot read (an HTML 500).
AWS_FAILURES = (*preflight.AWS_ERRORS, ResponseParserError)
# modules/api.py LOAD_BALANCER_NAME_LIMIT (target group names; tests/test_failover.py pins the equality).
TARGET_GROUP_NAME_LIMIT = 32


@dataclass(frozen=True)
class Side:
    """One region of the environment: its cluster and its API service, by the names the modules give them."""

    region: str
    prefix: str  # `<app>-<env>` or `<app>-<env>-dr`
    idle_tasks: int  # what the API runs when this region does not hold the writer

    @property
    def cluster_identifier(self) -> str:
        return database_cluster_identifier(self.prefix, None)

    @property
    def ecs_cluster(self) -> str:
        return f"{self.prefix}-cluster"

    @property
    def service(self) -> str:
        return f"{self.prefix}-api"

    @property
    def target_group(self) -> str:
        return bounded_name(self.prefix, "api", TARGET_GROUP_NAME_LIMIT)


def sides(env: EnvironmentConfig, back: bool) -> tuple[Side, Side]:
    """(from, to): the region that holds the writer now and the one that takes it."""
    home = Side(env.region, f"{env.application}-{env.name}", idle_tasks=0)
    standby = Side(env.dr.region, env.resource_name("dr"), idle_tasks=env.dr.standby_min_tasks)
    return (standby, home) if back else (home, standby)


def global_identifier(env: EnvironmentConfig) -> str:
    """stacks/dr.py global_cluster_identifier: `<app>-<env>-global`."""
    return env.resource_name("global")


# --- checks --------------------------------------------------------------------------------------

def require_standby(env: EnvironmentConfig) -> None:
    if env.dr is None:
        raise UsageError(f"{env.name} has no [dr] table in {env.source}: there is no region to fail over to")
    if not env.standby:
        raise Refused(f"{env.name}'s [dr] strategy is backup: nothing runs in {env.dr.region} to fail over to; a "
                      f"lost region is recovered by deploying {env.dr_stack_name} (docs/runbooks.md, Region lost)")


def require_identity(tools: Tools, project: ProjectConfig, env: EnvironmentConfig) -> None:
    """The credentials are the configured account's; other preflight findings are shown, never blocking."""
    result = tools.run_preflight(project, env.dr_stack_name)
    preflight.report(result, tools.out, tools.err)
    blocking = [check.name for check in result.failures if check.name in IDENTITY_CHECKS]
    if blocking:
        raise Refused(f"not failing over {env.name}: preflight failed ({', '.join(blocking)}); fix the lines above")


def members(rds, env: EnvironmentConfig) -> dict[str, bool]:
    """Cluster ARN -> is the writer, of the environment's global database; Refused when it does not exist."""
    identifier = global_identifier(env)
    try:
        found = _named(rds.describe_global_clusters(GlobalClusterIdentifier=identifier)["GlobalClusters"], identifier)
    except AWS_FAILURES as error:
        raise Refused(f"cannot read global database {identifier}: {describe(error)} (deploy "
                      f"{env.name}, then {env.dr_stack_name}, first)") from None
    if not found:
        raise Refused(f"global database {identifier} does not exist: deploy {env.name}, then {env.dr_stack_name}")
    return {member["DBClusterArn"]: bool(member.get("IsWriter")) for member in found[0].get("GlobalClusterMembers", [])}


def describe(error: Exception) -> str:
    """One line for any AWS failure (botocore's parse errors quote the whole page they could not read)."""
    return preflight.describe_error(error).splitlines()[0] if str(error) else type(error).__name__


def _named(clusters: list[dict], identifier: str) -> list[dict]:
    """The global database named `identifier` among those listed (AWS lists only it; moto lists all)."""
    return [cluster for cluster in clusters if cluster.get("GlobalClusterIdentifier") == identifier]


def member_arn(found: dict[str, bool], side: Side, env: EnvironmentConfig) -> str:
    """The ARN of `side`'s cluster among the members; Refused when it is not one."""
    for arn in found:
        if arn.endswith(f":cluster:{side.cluster_identifier}"):
            return arn
    raise Refused(f"{side.cluster_identifier} ({side.region}) is not a member of {global_identifier(env)} "
                  f"(members: {', '.join(found) or 'none'}); deploy {env.dr_stack_name} first")


# --- actions -------------------------------------------------------------------------------------

def move_writer(rds, env: EnvironmentConfig, target_arn: str, planned: bool) -> None:
    """Switchover (no data loss, both regions up) or failover (the writer's region is lost)."""
    identifier = global_identifier(env)
    try:
        if planned:
            rds.switchover_global_cluster(GlobalClusterIdentifier=identifier, TargetDbClusterIdentifier=target_arn)
        else:
            rds.failover_global_cluster(GlobalClusterIdentifier=identifier, TargetDbClusterIdentifier=target_arn,
                                        AllowDataLoss=True)
    except AWS_FAILURES as error:
        hint = " (if the writer's region is down, run it without --planned)" if planned else ""
        raise Refused(f"AWS refused to move the writer of {identifier}: {describe(error)}{hint}"
                      ) from None


def scale(tools: Tools, project: ProjectConfig, side: Side, tasks: int, maximum: int) -> int:
    """Set `side`'s API to `tasks` (its autoscaling floor too, so scale-in cannot undo it); returns the old count."""
    ecs = tools.aws(project, "ecs", side.region)
    (service,) = ecs.describe_services(cluster=side.ecs_cluster, services=[side.service])["services"]
    tools.aws(project, "application-autoscaling", side.region).register_scalable_target(
        ServiceNamespace="ecs", ResourceId=f"service/{side.ecs_cluster}/{side.service}",
        ScalableDimension="ecs:service:DesiredCount", MinCapacity=tasks, MaxCapacity=maximum)
    ecs.update_service(cluster=side.ecs_cluster, service=side.service, desiredCount=tasks)
    return service["desiredCount"]


def wait_for(tools: Tools, seconds: int, done, failure: str):
    """Poll `done` (a value when finished, None while not) every POLL_SECONDS for at most `seconds`."""
    for _ in range(max(1, seconds // POLL_SECONDS)):
        result = done()
        if result is not None:
            return result
        tools.sleep(POLL_SECONDS)
    raise Refused(failure)


def writer_moved(rds, env: EnvironmentConfig, target_arn: str):
    """True once the global database is available with the target as its writer; None until then."""
    identifier = global_identifier(env)
    (found,) = _named(rds.describe_global_clusters(GlobalClusterIdentifier=identifier)["GlobalClusters"], identifier)
    writer = [m["DBClusterArn"] for m in found.get("GlobalClusterMembers", []) if m.get("IsWriter")]
    return True if found.get("Status") == "available" and writer == [target_arn] else None


def healthy_targets(tools: Tools, project: ProjectConfig, side: Side, wanted: int):
    """The number of healthy targets once the service runs `wanted` tasks and as many pass /health; else None."""
    ecs = tools.aws(project, "ecs", side.region)
    (service,) = ecs.describe_services(cluster=side.ecs_cluster, services=[side.service])["services"]
    if service["runningCount"] < wanted:
        return None
    elbv2 = tools.aws(project, "elbv2", side.region)
    (group,) = elbv2.describe_target_groups(Names=[side.target_group])["TargetGroups"]
    states = elbv2.describe_target_health(TargetGroupArn=group["TargetGroupArn"])["TargetHealthDescriptions"]
    healthy = sum(1 for state in states if state["TargetHealth"]["State"] == "healthy")
    return healthy if healthy >= wanted else None


# --- the command ---------------------------------------------------------------------------------

def failback_lines(env: EnvironmentConfig, back: bool, planned: bool) -> list[str]:
    """How to undo what was just done."""
    if back:
        return [f"to fail over again: python -m ops failover {env.name} --planned"]
    lines = []
    if not planned:
        lines.append(f"  1. when {env.region} serves again, Aurora rebuilds the old writer there as a secondary: "
                     f"wait until aws rds describe-global-clusters --region {env.dr.region} "
                     f"--global-cluster-identifier {global_identifier(env)} lists it (docs/runbooks.md, Failback)")
    lines.append(f"  {len(lines) + 1}. python -m ops failover {env.name} --planned --back")
    return ["to fail back:", *lines]


def as_deploy_role(tools: Tools, project: ProjectConfig, env: EnvironmentConfig) -> Tools:
    """Every AWS call of the failover as the environment's deploy role, when one is configured (both regions
    are the environment's account): what Terraform deploys it as, under a session named after it."""
    role = provider_role(project, env.name, env)
    aws = tools.aws
    return replace(tools, aws=lambda project, service, region, **_: aws(project, service, region, role=role))


def failover(tools: Tools, name: str, planned: bool, back: bool, yes: bool) -> int:
    project, stack = load_target(tools, name, Kind.ENVIRONMENT)
    env = stack.environment
    tools = as_deploy_role(tools, project, env)
    require_standby(env)
    source, target = sides(env, back)
    require_identity(tools, project, env)
    rds = tools.aws(project, "rds", target.region)
    found = members(rds, env)
    target_arn = member_arn(found, target, env)
    if found[target_arn]:
        raise Refused(f"nothing to do: {target.cluster_identifier} in {target.region} is already the writer of "
                      f"{global_identifier(env)}")
    old_writer = next((arn for arn, writer in found.items() if writer), "none")
    tools.say(f"{env.name}: the writer moves from {old_writer} to {target_arn}, and the API to {target.region}"
              + ("" if planned else " (unplanned: writes not yet replicated are lost)"))
    confirm(tools, env.name, "Switch over" if planned else "Fail over", yes, by_name=stack.guarded,
            doing=f"{'switching' if planned else 'failing'} over")
    move_writer(rds, env, target_arn, planned)
    try:
        moved(tools, project, env, rds, source, target, target_arn, old_writer, planned)
    except AWS_FAILURES as error:
        raise Refused(f"the move of {env.name} to {target.region} stopped: {describe(error)}; "
                      f"see docs/runbooks.md, Failover") from None
    for line in failback_lines(env, back, planned):
        tools.say(line)
    return 0


def moved(tools: Tools, project: ProjectConfig, env: EnvironmentConfig, rds, source: Side, target: Side,
          target_arn: str, old_writer: str, planned: bool) -> None:
    """After the writer was asked to move: the API follows, then both are waited for and reported."""
    before = scale(tools, project, target, env.api.min_tasks, env.api.max_tasks)
    wait_for(tools, WRITER_WAIT_SECONDS, lambda: writer_moved(rds, env, target_arn),
             f"{target.cluster_identifier} is not the writer of {global_identifier(env)} after "
             f"{WRITER_WAIT_SECONDS // 60} minutes: check aws rds describe-global-clusters --region {target.region}")
    if planned:
        scale(tools, project, source, source.idle_tasks, env.api.max_tasks)
    healthy = wait_for(tools, HEALTH_WAIT_SECONDS,
                       lambda: healthy_targets(tools, project, target, env.api.min_tasks),
                       f"the database moved, but {target.service} in {target.region} has not {env.api.min_tasks} "
                       f"healthy targets after {HEALTH_WAIT_SECONDS // 60} minutes: check its events and logs")
    report(tools, env, source, target, old_writer, target_arn, before, healthy, planned)


def report(tools: Tools, env: EnvironmentConfig, source: Side, target: Side, old_writer: str, target_arn: str,
           before: int, healthy: int, planned: bool) -> None:
    """What changed, in the operator's terms."""
    tools.say(f"{env.name}: the writer of {global_identifier(env)} is now {target_arn} (was {old_writer})"
              + ("" if planned else "; writes it had not yet replicated are lost"))
    tools.say(f"{env.name}: {target.service} in {target.region} runs {env.api.min_tasks} tasks (was {before}), "
              f"{healthy} healthy")
    if planned:
        tools.say(f"{env.name}: {source.service} in {source.region} scaled to {source.idle_tasks} (its cluster is "
                  "read-only now)")
    dns = (f"Route 53 sends api.{env.domain} to the healthy region (failover records)" if env.hosted_zone_id else
           f"no hosted zone: point api.{env.domain} at the {target.region} load balancer yourself (output "
           f"ApiLoadBalancerDnsName of {env.name if target.region == env.region else env.dr_stack_name})")
    tools.say(f"{env.name}: {dns}")


def cmd_failover(tools: Tools, args: argparse.Namespace) -> int:
    return failover(tools, args.environment, args.planned, args.back, args.yes)
