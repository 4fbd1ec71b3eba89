"""`python -m ops failover`: both modes, the failback and every refusal, through the injectable tools (no AWS).

The fake world holds one Aurora Global Database (its members and which one writes), and per region an ECS
service, its scalable target and its target group. Moving the writer and starting tasks take a few polls,
as in AWS; `Tools.sleep` is a recorder, so the waits cost nothing. moto models neither
`switchover_global_cluster` nor `failover_global_cluster` (ops/emulator.py, the gap table), so the run
against the emulator is limited to what it does model (tests/test_emulated_deploy.py).
"""

from __future__ import annotations

import io
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from modules.api import LOAD_BALANCER_NAME_LIMIT
from ops import cli, errors, failover, preflight
from ops import tools as ops_tools
from tests.conftest import ENVIRONMENTS_DIR, resources_of

HOME, DR = "eu-west-1", "eu-central-1"
ACCOUNT = "123456789012"


def arn(region: str, cluster: str) -> str:
    return f"arn:aws:rds:{region}:{ACCOUNT}:cluster:{cluster}"


@dataclass
class FakeGlobalDatabase:
    """describe/switchover/failover of one global database; the move completes after `moves_after` polls."""

    identifier: str
    writer: str
    secondaries: list[str]
    moves_after: int = 2
    refuse: str | None = None
    exists: bool = True
    pending: str | None = None
    polls: int = 0
    calls: list[tuple] = field(default_factory=list)

    def describe_global_clusters(self, GlobalClusterIdentifier):
        if not self.exists:
            raise ClientError({"Error": {"Code": "GlobalClusterNotFoundFault", "Message": "not found"}}, "Describe")
        if self.pending:
            self.polls += 1
            if self.polls >= self.moves_after:
                self.secondaries = [m for m in [*self.secondaries, self.writer] if m != self.pending]
                self.writer, self.pending = self.pending, None
        members = [{"DBClusterArn": self.writer, "IsWriter": True},
                   *({"DBClusterArn": member, "IsWriter": False} for member in self.secondaries)]
        return {"GlobalClusters": [{"GlobalClusterIdentifier": self.identifier, "GlobalClusterMembers": members,
                                    "Status": "switching-over" if self.pending else "available"}]}

    def _move(self, name, **kwargs):
        self.calls.append((name, kwargs))
        if self.refuse:
            raise ClientError({"Error": {"Code": "InvalidGlobalClusterStateFault", "Message": self.refuse}}, name)
        self.pending = kwargs["TargetDbClusterIdentifier"]

    def switchover_global_cluster(self, **kwargs):
        self._move("switchover", **kwargs)

    def failover_global_cluster(self, **kwargs):
        self._move("failover", **kwargs)


@dataclass
class FakeRegion:
    """One region's API: the ECS service, its scalable target and its target group's health."""

    prefix: str
    desired: int
    running: int | None = None
    starts_after: int = 1
    never_healthy: bool = False
    floor: tuple[int, int] | None = None
    describes: int = 0
    touched: list[str] = field(default_factory=list)

    def describe_services(self, cluster, services):
        assert (cluster, services) == (f"{self.prefix}-cluster", [f"{self.prefix}-api"])
        self.touched.append("describe_services")
        self.describes += 1
        if self.running is None or self.describes > self.starts_after:
            self.running = self.desired
        return {"services": [{"desiredCount": self.desired, "runningCount": self.running}]}

    def update_service(self, cluster, service, desiredCount):
        self.touched.append("update_service")
        self.desired = desiredCount

    def register_scalable_target(self, ServiceNamespace, ResourceId, ScalableDimension, MinCapacity, MaxCapacity):
        assert ResourceId == f"service/{self.prefix}-cluster/{self.prefix}-api"
        self.touched.append("register_scalable_target")
        self.floor = (MinCapacity, MaxCapacity)

    def describe_target_groups(self, Names):
        assert Names == [f"{self.prefix}-api"[:32]]
        return {"TargetGroups": [{"TargetGroupArn": f"arn:tg/{Names[0]}"}]}

    def describe_target_health(self, TargetGroupArn):
        state = "unhealthy" if self.never_healthy else "healthy"
        return {"TargetHealthDescriptions": [{"TargetHealth": {"State": state}}] * (self.running or 0)}


@dataclass
class World:
    root: Path
    database: FakeGlobalDatabase
    regions: dict[str, FakeRegion]
    answer: str | None = None
    identity_ok: bool = True
    state_ok: bool = True
    asked: list[str] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    clients: list[tuple[str, str]] = field(default_factory=list)
    roles: set = field(default_factory=set)  # the role every AWS client was made for

    def ask(self, prompt: str) -> str:
        self.asked.append(prompt)
        if self.answer is None:
            raise EOFError
        return self.answer

    def run_preflight(self, project, name: str) -> preflight.PreflightResult:
        checks = (preflight.CheckResult("account", self.identity_ok, "the configured account" if self.identity_ok
                                        else "credentials are for 999999999999"),
                  preflight.CheckResult("state bucket", self.state_ok, "reachable" if self.state_ok
                                        else "eu-west-1 does not answer"))
        return preflight.PreflightResult(name, ACCOUNT, checks)

    def aws(self, project, service: str, region: str, role=None):
        self.clients.append((service, region))
        self.roles.add(role)
        return self.database if service == "rds" else self.regions[region]

    def run(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        tools = ops_tools.Tools(out=out, err=err, root=self.root, environ={}, run_preflight=self.run_preflight,
                                aws=self.aws, ask=self.ask, sleep=self.sleeps.append)
        code = cli.main(["failover", *argv], tools)
        return code, out.getvalue(), err.getvalue()


def production_world(root: Path, writer_region: str = HOME) -> World:
    shutil.copytree(ENVIRONMENTS_DIR, root / "environments")
    home, dr = arn(HOME, "webapp-production-db"), arn(DR, "webapp-production-dr-db")
    writer, secondary = (home, dr) if writer_region == HOME else (dr, home)
    return World(root, FakeGlobalDatabase("webapp-production-global", writer, [secondary]),
                 {HOME: FakeRegion("webapp-production", desired=3),
                  DR: FakeRegion("webapp-production-dr", desired=1)})


@pytest.fixture
def world(tmp_path) -> World:
    return production_world(tmp_path)


# --- the two modes and the way back --------------------------------------------------------------

def test_a_planned_switchover_moves_the_writer_and_the_api_without_data_loss(world):
    world.answer = "production"
    code, out, err = world.run("production", "--planned")
    assert code == 0, err
    assert world.database.calls == [("switchover", {"GlobalClusterIdentifier": "webapp-production-global",
                                                    "TargetDbClusterIdentifier": arn(DR, "webapp-production-dr-db")})]
    assert world.database.writer == arn(DR, "webapp-production-dr-db")
    dr, home = world.regions[DR], world.regions[HOME]
    assert (dr.desired, dr.floor) == (3, (3, 20)), "the standby takes the primary's minimum, floor included"
    assert (home.desired, home.floor) == (0, (0, 20)), "the old writer's region stops answering /health"
    assert "type its name (production)" in world.asked[0] and world.asked[0].startswith("Switch over production?")
    assert "is now arn:aws:rds:eu-central-1:123456789012:cluster:webapp-production-dr-db" in out
    assert "webapp-production-dr-api in eu-central-1 runs 3 tasks (was 1), 3 healthy" in out
    assert "lost" not in out
    assert "python -m ops failover production --planned --back" in out
    assert "point api.example.com at the eu-central-1 load balancer yourself" in out
    assert world.sleeps, "the move and the tasks were waited for"


def test_without_a_deploy_role_the_caller_s_credentials_move_it(world):
    world.answer = "production"
    assert world.run("production", "--planned")[0] == 0
    assert world.roles == {None}


def test_every_call_runs_as_the_environment_s_deploy_role(world):
    path = world.root / "environments" / "production.toml"
    role = 'account_id = "444444444444"\ndeploy_role_arn = "arn:aws:iam::444444444444:role/deployer"\n'
    path.write_text(path.read_text().replace('region = "eu-west-1"\n', f'region = "eu-west-1"\n{role}', 1))
    world.answer = "production"
    code, _, err = world.run("production", "--planned")
    assert code == 0, err
    assert {(r.role_arn, r.session_name) for r in world.roles} == {
        ("arn:aws:iam::444444444444:role/deployer", "webapp-production")}


def test_an_unplanned_failover_allows_data_loss_and_never_touches_the_lost_region(world):
    world.answer = "production"
    code, out, err = world.run("production")
    assert code == 0, err
    ((name, kwargs),) = world.database.calls
    assert name == "failover" and kwargs["AllowDataLoss"] is True
    assert world.regions[HOME].touched == [], "nothing may wait on the region that is lost"
    assert {region for service, region in world.clients} == {DR}
    assert world.regions[DR].desired == 3
    assert "writes it had not yet replicated are lost" in out
    assert "Aurora rebuilds the old writer there as a secondary" in out and "--planned --back" in out


def test_failback_moves_the_writer_home_and_the_standby_back_to_its_idle_size(tmp_path):
    world = production_world(tmp_path, writer_region=DR)
    world.regions[DR].desired = 3
    code, out, err = world.run("production", "--planned", "--back", "--yes")
    assert code == 0, err
    assert world.database.writer == arn(HOME, "webapp-production-db")
    assert world.regions[HOME].desired == 3
    assert (world.regions[DR].desired, world.regions[DR].floor) == (1, (1, 20)), "standby_min_tasks again"
    assert world.asked == [], "--yes skips the typed confirmation"
    assert "to fail over again: python -m ops failover production --planned" in out


def test_outside_production_yes_confirms(tmp_path):
    world = production_world(tmp_path)
    path = world.root / "environments" / "production.toml"
    path.write_text(path.read_text().replace("production = true", "production = false"))
    world.answer = "yes"
    code, _, err = world.run("production", "--planned")
    assert code == 0, err
    assert "type yes" in world.asked[0]


def test_only_identity_failures_stop_it(world):
    """In a lost region the state bucket may not answer: the failover touches no Terraform state."""
    world.state_ok, world.answer = False, "production"
    code, _, err = world.run("production")
    assert code == 0, err


# --- refusals ------------------------------------------------------------------------------------

def refused(world: World, *argv: str, code: int = errors.EXIT_REFUSED) -> str:
    result, _, err = world.run(*argv)
    assert result == code, err
    assert world.database.calls == [], "nothing was moved"
    assert not [r for r in world.regions.values() if "update_service" in r.touched], "nothing was scaled"
    return err


@pytest.mark.parametrize(("argv", "code", "message"), [
    (("dev",), errors.EXIT_USAGE, "dev has no [dr] table in environments/dev.toml"),
    (("staging",), errors.EXIT_REFUSED, "strategy is backup: nothing runs in eu-central-1 to fail over to; a lost "
                                        "region is recovered by deploying staging-dr"),
    (("qa",), errors.EXIT_USAGE, "unknown stack 'qa'"),
    (("production-dr",), errors.EXIT_USAGE, "production-dr is a DR-region stack; this command takes an environment"),
])
def test_environments_without_a_standby_are_refused(world, argv, code, message):
    assert message in refused(world, *argv, code=code)
    assert world.clients == []


def test_other_credentials_are_refused_before_aws_is_asked(world):
    world.identity_ok = False
    assert "preflight failed (account)" in refused(world, "production")
    assert world.clients == []


def test_a_missing_global_database_is_refused(world):
    world.database.exists = False
    assert "cannot read global database webapp-production-global" in refused(world, "production")


def test_a_target_outside_the_global_database_is_refused(world):
    world.database.secondaries = []
    assert "webapp-production-dr-db (eu-central-1) is not a member of webapp-production-global" in refused(
        world, "production")


def test_a_target_that_already_writes_is_nothing_to_do(tmp_path):
    world = production_world(tmp_path, writer_region=DR)
    assert "nothing to do: webapp-production-dr-db in eu-central-1 is already the writer" in refused(
        world, "production", "--planned")


@pytest.mark.parametrize(("answer", "message"), [
    ("yes", "not switching over production: the answer 'yes' is not 'production'"),
    (None, "not switching over production: confirmation needed, but there is no terminal"),
])
def test_production_must_be_named(world, answer, message):
    world.answer = answer
    assert message in refused(world, "production", "--planned")


def test_aws_refusing_the_switchover_suggests_the_unplanned_failover(world):
    world.database.refuse = "the primary is unavailable"
    code, _, err = world.run("production", "--planned", "--yes")
    assert code == errors.EXIT_REFUSED
    assert "AWS refused to move the writer of webapp-production-global" in err
    assert "run it without --planned" in err
    assert world.regions[DR].touched == []


def test_a_writer_that_never_moves_is_reported_after_the_wait(world):
    world.database.moves_after = 10**6
    code, _, err = world.run("production", "--yes")
    assert code == errors.EXIT_REFUSED
    assert "is not the writer of webapp-production-global after 30 minutes" in err
    assert len(world.sleeps) == failover.WRITER_WAIT_SECONDS // failover.POLL_SECONDS


def test_an_api_that_never_gets_healthy_is_reported(world):
    world.regions[DR].never_healthy = True
    code, _, err = world.run("production", "--yes")
    assert code == errors.EXIT_REFUSED
    assert "the database moved, but webapp-production-dr-api in eu-central-1 has not 3 healthy targets" in err


def test_an_aws_error_after_the_move_is_one_line(world):
    def broken(*args, **kwargs):
        raise ClientError({"Error": {"Code": "ServiceNotFoundException", "Message": "no service"}}, "Describe")

    world.regions[DR].describe_services = broken
    code, _, err = world.run("production", "--yes")
    assert code == errors.EXIT_REFUSED and len(err.strip().splitlines()) == 1
    assert "the move of production to eu-central-1 stopped" in err


# --- the names it uses are the stacks' --------------------------------------------------------------

def test_the_names_are_the_synthesized_ones(stacks, project):
    assert failover.TARGET_GROUP_NAME_LIMIT == LOAD_BALANCER_NAME_LIMIT
    env = project.environment("production")
    for side in failover.sides(env, back=False):
        stack = stacks[env.name if side.region == env.region else env.dr_stack_name]
        ((_, cluster),) = resources_of(stack, "aws_rds_cluster").items()
        assert cluster["cluster_identifier"] == side.cluster_identifier
        assert {s["name"] for s in resources_of(stack, "aws_ecs_service").values()} == {side.service}
        assert {c["name"] for c in resources_of(stack, "aws_ecs_cluster").values()} == {side.ecs_cluster}
        assert {g["name"] for g in resources_of(stack, "aws_lb_target_group").values()} == {side.target_group}
    (global_cluster,) = resources_of(stacks["production"], "aws_rds_global_cluster").values()
    assert global_cluster["global_cluster_identifier"] == failover.global_identifier(env)
