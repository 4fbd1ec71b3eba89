"""ops (`python -m ops`): argument handling and the safety rules, without AWS or terraform.

Every side effect of the commands (running main.py and terraform, asking the operator, the
preflight) goes through `ops_tools.Tools`, so these tests replace them with recorders and assert
what would have run. The rules under test are the ones that must never regress: production is
applied only after its name is typed (or `--yes`), production is never destroyed, a failed
preflight stops a deploy before anything is synthesized, and what is applied is the plan shown.

The emulator test at the end is real: the emulator process is started, answers and is stopped.
The real `local-up` (bootstrap + dev through terraform) and `local-down` run in
tests/test_emulated_deploy.py, whose whole flow rides on that deployment.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import boto3
import pytest

from environments.loader import load_project
from ops import cli, database_bootstrap, emulator, emulator_server, errors, local, preflight, project, terraform
from ops import tools as ops_tools
from tests.conftest import ENVIRONMENTS_DIR, ROOT

TERRAFORM = "terraform"
PRODUCTION, DEV = "production", "dev"


@dataclass(frozen=True)
class Call:
    command: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str]

    @property
    def name(self) -> str:
        """`synth`, or the terraform subcommand with its arguments, e.g. `plan -input=false ...`."""
        if self.command[:2] == (sys.executable, str(ROOT / "main.py")):
            return "synth"
        assert self.command[0] == TERRAFORM, self.command
        return " ".join(self.command[1:])

    @property
    def stacks(self) -> tuple[str, ...]:
        """The stacks a synthesis call asks main.py for (empty: every stack)."""
        assert self.name == "synth", self.command
        return self.command[2:]


@dataclass
class World:
    """Recorders and canned answers standing in for the terminal, terraform and AWS."""

    answers: list[str | type[EOFError]] = field(default_factory=list)
    plan_exit: int = terraform.PLAN_CHANGES
    preflight_failures: tuple[str, ...] = ()
    calls: list[Call] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    preflights: list[str | None] = field(default_factory=list)
    environ: dict[str, str] = field(default_factory=dict)
    bucket_status: str = "missing"
    on_synth: Callable[[Call], None] | None = None
    # What `terraform show -json` prints (drift).
    shown: dict = field(default_factory=dict)
    bootstrap_state: Path = ROOT / "no-such-dir" / "terraform.bootstrap.tfstate"
    # The database bootstrap: what the SSM record holds, how a task run ends, which runs happened.
    database_record: str | None = None
    database_failure: str | None = None
    database_runs: list[database_bootstrap.BootstrapRun] = field(default_factory=list)
    # local-up's quiet view: (stack, terraform's log text) for an apply that fails.
    apply_failure: tuple[str, str] | None = None

    def run(self, command: Sequence[str], cwd: Path, env: Mapping[str, str]) -> int:
        call = Call(tuple(command), cwd, dict(env))
        self.calls.append(call)
        if call.name == "synth" and self.on_synth:
            self.on_synth(call)
        return self.plan_exit if call.name.startswith("plan") else 0

    def run_logged(self, command: Sequence[str], cwd: Path, env: Mapping[str, str], log: Path) -> int:
        """As `run`, with what terraform would print appended to `log` (an apply's count line, or an error)."""
        code = self.run(command, cwd, env)
        call = self.calls[-1]
        with log.open("a") as text:
            text.write(f"(terraform {call.name} in {cwd.name})\n")
            if call.name.startswith("apply") and self.apply_failure and cwd.name == self.apply_failure[0]:
                text.write(self.apply_failure[1])
                return 1
            if call.name.startswith("apply"):
                text.write(f"Apply complete! Resources: {len(cwd.name)} added, 0 changed, 0 destroyed.\n")
        return code

    def capture(self, command: Sequence[str], cwd: Path, env: Mapping[str, str]) -> tuple[int, str]:
        """`terraform show -json` answers `shown`; `terraform output -json DatabaseBootstrap` what an applied
        environment stack reports."""
        code = self.run(command, cwd, env)
        if tuple(command[1:]) == ("output", "-json"):
            return code, json.dumps({"stack_name": {"value": cwd.name, "sensitive": False},
                                     "settings": {"value": {"a": [1, 2]}, "sensitive": False},
                                     "secret": {"value": "x", "sensitive": True}})
        if tuple(command[1:3]) == ("output", "-json"):
            assert tuple(command[3:]) == (database_bootstrap.OUTPUT,), command
            return code, json.dumps(BOOTSTRAP_SETTINGS)
        return code, json.dumps(self.shown)

    def ask(self, prompt: str) -> str:
        self.prompts.append(prompt)
        answer = self.answers.pop(0)
        if answer is EOFError:
            raise EOFError
        return answer

    def preflight(self, project, environment):
        self.preflights.append(environment)
        checks = [preflight.CheckResult("credentials", True, "arn:aws:iam::123456789012:user/ci")]
        checks += [preflight.CheckResult(name, False, f"{name} is broken") for name in self.preflight_failures]
        return preflight.PreflightResult(environment or "bootstrap", "123456789012", tuple(checks))

    def tools(self) -> ops_tools.Tools:
        return ops_tools.Tools(run=self.run, capture=self.capture, run_logged=self.run_logged, ask=self.ask,
                               run_preflight=self.preflight,
                           state_bucket_status=lambda project: self.bucket_status, out=io.StringIO(),
                           err=io.StringIO(), environ=self.environ, bootstrap_state=self.bootstrap_state,
                           database_bootstrapper=lambda project, env: FakeDatabase(self),
                           aws=lambda project, service, region, role=None: PasswordAlreadySet())

    def names(self) -> list[str]:
        return [call.name for call in self.calls]

    def applied(self) -> bool:
        return any(name.startswith("apply") for name in self.names())


CLUSTER_RESOURCE_ID = "cluster-ABCDEFGHIJKLMNOPQRSTUVWXY0"
BOOTSTRAP_SETTINGS = {
    "cluster": "arn:aws:ecs:eu-west-1:123456789012:cluster/webapp-dev-cluster",
    "task_definition": "arn:aws:ecs:eu-west-1:123456789012:task-definition/webapp-dev-db-bootstrap:1",
    "subnets": ["subnet-1", "subnet-2"], "security_groups": ["sg-1"], "log_group": "/aws/ecs/db-bootstrap-dev",
    "database_cluster_resource_id": CLUSTER_RESOURCE_ID, "sql_digest": "0123456789abcdef",
}
DONE = f"{CLUSTER_RESOURCE_ID} 0123456789abcdef"  # the record after a successful run of that SQL


class PasswordAlreadySet:
    """RDS and SSM for a standby's primary whose password ops has set (tests/test_master_password.py covers
    setting it): a deploy of production reads the cluster and the record, and changes nothing."""

    CLUSTER: ClassVar[dict] = {"DbClusterResourceId": "cluster-PRODUCTION", "Status": "available",
                               "MasterUsername": "app_admin"}

    def describe_db_clusters(self, DBClusterIdentifier: str) -> dict:
        assert DBClusterIdentifier == "webapp-production-db"
        return {"DBClusters": [self.CLUSTER]}

    def get_parameter(self, Name: str) -> dict:
        assert Name == "/webapp/production/database-master-password"
        return {"Parameter": {"Value": self.CLUSTER["DbClusterResourceId"]}}


@dataclass
class FakeDatabase:
    """The ECS/SSM side of the database bootstrap, answering from the World."""

    world: World

    def recorded(self, run: database_bootstrap.BootstrapRun) -> str | None:
        return self.world.database_record

    def run_task(self, run: database_bootstrap.BootstrapRun) -> str | None:
        self.world.database_runs.append(run)
        return self.world.database_failure

    def record(self, run: database_bootstrap.BootstrapRun) -> None:
        self.world.database_record = run.fingerprint


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str
    world: World


def run_infra(*argv: str, world: World | None = None) -> Outcome:
    world = world or World()
    tools = world.tools()
    code = cli.main(list(argv), tools)
    return Outcome(code, tools.out.getvalue(), tools.err.getvalue(), world)


@pytest.fixture(autouse=True)
def fake_terraform_binary(monkeypatch):
    """The recorder stands in for terraform, so these tests do not depend on it being installed."""
    monkeypatch.setattr(terraform, "terraform_binary", lambda: TERRAFORM)


def deploy_calls(stack: str, action: str = "deploy", destroy: bool = False) -> list[str]:
    plan = f"plan -input=false -detailed-exitcode -out={action}.tfplan" + (" -destroy" if destroy else "")
    settle = [] if destroy else ["apply -refresh-only -auto-approve -input=false"]
    show = [] if destroy else [f"show -json {action}.tfplan"]
    calls = ["synth", "init -input=false", plan, *show, f"apply -input=false {action}.tfplan", *settle]
    if action == "deploy" and stack != "bootstrap":  # then the database bootstrap's settings are read
        calls.append(f"output -json {database_bootstrap.OUTPUT}")
    return calls


# --- argument handling -------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [[], ["deploy"], ["destroy"], ["plan"], ["launch", "dev"],
                                  ["deploy", "dev", "--force"]])
def test_bad_usage_exits_2_and_runs_nothing(argv, capsys):
    outcome = run_infra(*argv)
    assert outcome.code == errors.EXIT_USAGE
    assert "usage: python -m ops" in capsys.readouterr().err
    assert outcome.world.calls == [] and outcome.world.preflights == []


@pytest.mark.parametrize("command", ["plan", "deploy", "destroy", "local-up"])
def test_unknown_environment_is_one_line_and_exit_2(command):
    outcome = run_infra(command, "qa")
    assert outcome.code == errors.EXIT_USAGE
    assert outcome.err == ("ops: unknown stack 'qa': the stacks are bootstrap, baseline-eu-west-1, dev, production, "
                           "production-dr, staging, staging-dr\n")
    assert outcome.world.calls == []


def test_synth_runs_main_py_with_the_same_interpreter():
    outcome = run_infra("synth")
    assert (outcome.code, outcome.world.names()) == (0, ["synth"])
    assert outcome.world.calls[0].cwd == ROOT


def test_synth_passes_the_named_stacks_and_refuses_unknown_ones():
    assert run_infra("synth", "bootstrap", DEV).world.calls[0].stacks == ("bootstrap", DEV)
    outcome = run_infra("synth", DEV, "qa")
    assert outcome.code == errors.EXIT_USAGE and outcome.world.calls == []
    stacks = ", ".join(load_project(ENVIRONMENTS_DIR).stack_names)
    assert outcome.err == f"ops: unknown stack 'qa': the stacks are {stacks}\n"


# command -> the only stacks it may synthesize (environments/ defines three; bootstrap is a fourth)
SYNTHESIZED = {
    ("plan", "staging"): ("staging",),
    ("deploy", DEV, "--yes"): (DEV,),
    ("destroy", DEV, "--yes"): (DEV,),
    ("deploy-bootstrap", "--yes"): ("bootstrap",),
    ("deploy", "bootstrap", "--yes"): ("bootstrap",),
    ("plan", "baseline-eu-west-1"): ("baseline-eu-west-1",),
    ("deploy", "baseline-eu-west-1", "--yes"): ("baseline-eu-west-1",),
}


@pytest.mark.parametrize("argv", sorted(SYNTHESIZED), ids=" ".join)
def test_each_command_synthesizes_only_the_stack_it_runs_terraform_in(argv):
    world = World(environ={terraform.STACKS_VARIABLE: "production"})  # an inherited selection is ignored
    outcome = run_infra(*argv, world=world)
    assert outcome.code == 0, outcome.err
    synth = [call for call in world.calls if call.name == "synth"]
    assert [call.stacks for call in synth] == [SYNTHESIZED[argv]]
    assert terraform.STACKS_VARIABLE not in synth[0].env
    assert {call.cwd.name for call in world.calls if call.name != "synth"} == set(SYNTHESIZED[argv])


# --- drift ---------------------------------------------------------------------------------------------

DRIFT_CALLS = ["synth", "init -input=false", "plan -refresh-only -input=false -lock=false -out=drift.tfplan",
               "show -json drift.tfplan"]
TAGGED_VPC_DRIFT = {"resource_drift": [
    {"address": "aws_vpc.vpc", "mode": "managed", "change": {
        "actions": ["update"], "before": {"id": "vpc-1", "tags": {"Owner": "team"}},
        "after": {"id": "vpc-1", "tags": {"Owner": "someone"}}}},
    {"address": "aws_vpc_security_group_ingress_rule.https", "mode": "managed", "change": {
        "actions": ["delete"], "before": {"id": "sgr-1"}, "after": None}},
    {"address": "data.aws_region.current", "mode": "data", "change": {
        "actions": ["update"], "before": {"name": "a"}, "after": {"name": "b"}}},
]}


def test_drift_is_a_read_only_refresh_and_exits_0_when_clean():
    outcome = run_infra("drift", DEV, world=World(shown={"resource_drift": []}, plan_exit=0))
    assert outcome.code == 0, outcome.err
    assert outcome.world.names() == DRIFT_CALLS and outcome.world.calls[0].stacks == (DEV,)
    assert outcome.world.calls[0].env["INFRA_ACCESS"] == "plan"
    assert outcome.out == "dev: no drift: every resource matches its state\n"
    assert not outcome.world.applied() and outcome.world.preflights == []


def test_drift_takes_any_stack():
    outcome = run_infra("drift", "baseline-eu-west-1", world=World(shown={"resource_drift": []}, plan_exit=0))
    assert outcome.code == 0, outcome.err
    assert outcome.world.calls[0].stacks == ("baseline-eu-west-1",)
    assert {call.cwd.name for call in outcome.world.calls[1:]} == {"baseline-eu-west-1"}


def test_drift_exits_2_naming_each_drifted_resource_and_attribute():
    outcome = run_infra("drift", DEV, world=World(shown=TAGGED_VPC_DRIFT, plan_exit=0))
    assert outcome.code == errors.EXIT_DRIFT == 2
    assert outcome.out.splitlines() == [
        "dev: DRIFT: 2 resources differ from the state (changed outside Terraform):",
        "  aws_vpc.vpc: tags.Owner",
        "  aws_vpc_security_group_ingress_rule.https: deleted outside Terraform",
    ]


@pytest.mark.parametrize("failure", ["unknown environment", "plan fails", "show gives no JSON"])
def test_drift_errors_exit_1_never_2(failure):
    world = World(shown=TAGGED_VPC_DRIFT, plan_exit=0)
    if failure == "plan fails":
        world.plan_exit = 1
    if failure == "show gives no JSON":
        world.capture = lambda command, cwd, env: (0, "Error: not a plan")
    outcome = run_infra("drift", "qa" if failure == "unknown environment" else DEV, world=world)
    assert outcome.code == errors.EXIT_REFUSED, outcome.err
    assert len(outcome.err.splitlines()) == 1 and "DRIFT" not in outcome.out


@pytest.mark.parametrize("stack", ["bootstrap", "baseline-eu-west-1", DEV])
def test_deploy_runs_the_preflight_for_any_stack_and_confirms_shared_stacks_by_name(stack):
    outcome = run_infra("deploy", stack, world=World(answers=[stack if stack != DEV else "yes"]))
    assert outcome.code == 0, outcome.err
    assert outcome.world.preflights == [stack]
    expected = f"type its name ({stack})" if stack != DEV else "type yes"
    assert [expected in prompt for prompt in outcome.world.prompts] == [True]


@pytest.mark.parametrize("stack", ["bootstrap", "baseline-eu-west-1"])
def test_shared_stacks_are_never_destroyed(stack):
    outcome = run_infra("destroy", stack, "--yes")
    assert outcome.code == errors.EXIT_REFUSED and outcome.world.calls == []
    assert outcome.err == (f"ops: refusing to destroy {stack}: it is the {stack.split('-')[0]} stack others depend "
                           "on, and such stacks are never destroyed by this tool\n")


def test_commands_that_need_an_environment_say_so_for_other_stacks():
    outcome = run_infra("database-bootstrap", "baseline-eu-west-1")
    assert outcome.code == errors.EXIT_USAGE and outcome.world.calls == []
    assert outcome.err == ("ops: baseline-eu-west-1 is a baseline stack; this command takes an environment\n")


def test_synthesis_goes_where_terraform_will_run_whatever_cdktf_outdir_says():
    outcome = run_infra("plan", DEV, world=World(environ={terraform.OUTDIR_VARIABLE: "/elsewhere"}))
    synth, *terraform_calls = outcome.world.calls
    assert synth.env[terraform.OUTDIR_VARIABLE] == str(ROOT / "cdktf.out")
    assert {call.cwd for call in terraform_calls} == {ROOT / "cdktf.out" / "stacks" / DEV}


def test_plan_without_changes_says_so():
    outcome = run_infra("plan", DEV, world=World(plan_exit=terraform.PLAN_NO_CHANGES))
    assert outcome.code == 0 and outcome.out.splitlines()[-1] == "dev: no changes"


def test_plan_is_read_only_and_passes_ci_options():
    outcome = run_infra("plan", "staging", "--no-color", "--no-lock")
    assert outcome.code == 0
    assert outcome.world.names() == ["synth", "init -input=false",
                                     "plan -input=false -detailed-exitcode -out=plan.tfplan -no-color -lock=false",
                                     "show -json plan.tfplan"]
    assert outcome.out.splitlines()[-1] == "staging: changes pending"
    assert {call.cwd for call in outcome.world.calls[1:]} == {ROOT / "cdktf.out" / "stacks" / "staging"}
    assert outcome.world.preflights == [] and outcome.world.prompts == []
    assert outcome.world.calls[0].env["INFRA_ACCESS"] == "plan"  # the read-only identities: they cannot lock


def test_a_locking_plan_synthesizes_for_the_deploy_identities_whatever_the_caller_s_environment():
    world = World()
    world.environ = {**world.environ, "INFRA_ACCESS": "plan"}  # never inherited
    assert run_infra("plan", "staging", world=world).world.calls[0].env["INFRA_ACCESS"] == "deploy"


def test_a_failing_step_stops_with_one_line():
    world = World()
    world.run = lambda command, cwd, env: 1  # synthesis fails
    outcome = run_infra("deploy", DEV, "--yes", world=world)
    assert outcome.code == errors.EXIT_REFUSED
    assert outcome.err.splitlines()[-1] == "ops: synthesis failed (exit 1): see the message above"


# --- production confirmation ---------------------------------------------------------------------------

@pytest.mark.parametrize("answer", ["yes", "y", "Production", " production", "production ", "prod", ""])
def test_production_deploy_refused_unless_its_exact_name_is_typed(answer):
    outcome = run_infra("deploy", PRODUCTION, world=World(answers=[answer]))
    assert outcome.code == errors.EXIT_REFUSED
    assert outcome.err.splitlines()[-1] == (f"ops: not deploying production: the answer {answer!r} "
                                            "is not 'production'")
    assert not outcome.world.applied()
    assert "type its name (production)" in outcome.world.prompts[0]


def test_production_deploy_applies_the_shown_plan_once_its_name_is_typed():
    outcome = run_infra("deploy", PRODUCTION, world=World(answers=[PRODUCTION]))
    assert outcome.code == 0, outcome.err
    assert outcome.world.names() == deploy_calls(PRODUCTION)
    assert outcome.world.preflights == [PRODUCTION]
    assert {call.cwd for call in outcome.world.calls[1:]} == {ROOT / "cdktf.out" / "stacks" / PRODUCTION}


def test_production_deploy_with_yes_does_not_ask():
    outcome = run_infra("deploy", PRODUCTION, "--yes")
    assert outcome.code == 0 and outcome.world.prompts == []
    assert outcome.world.names() == deploy_calls(PRODUCTION)


def test_production_deploy_without_a_terminal_is_refused():
    outcome = run_infra("deploy", PRODUCTION, world=World(answers=[EOFError]))
    assert outcome.code == errors.EXIT_REFUSED and not outcome.world.applied()
    assert "there is no terminal to ask (pass --yes" in outcome.err


def test_non_production_deploy_needs_yes_typed():
    accepted = run_infra("deploy", DEV, world=World(answers=["yes"]))
    assert accepted.code == 0 and accepted.world.names() == deploy_calls(DEV)
    refused = run_infra("deploy", DEV, world=World(answers=["y"]))
    assert refused.code == errors.EXIT_REFUSED and not refused.world.applied()


def test_no_changes_means_nothing_to_confirm_or_apply():
    outcome = run_infra("deploy", PRODUCTION, world=World(plan_exit=terraform.PLAN_NO_CHANGES))
    assert outcome.code == 0 and outcome.world.prompts == [] and not outcome.world.applied()
    assert "production: no changes, nothing to deploy" in outcome.out


def test_a_failed_plan_is_never_applied():
    outcome = run_infra("deploy", DEV, "--yes", world=World(plan_exit=1))
    assert outcome.code == errors.EXIT_REFUSED and not outcome.world.applied()
    assert outcome.err.startswith("ops: terraform plan failed (exit 1)")


def test_bootstrap_is_confirmed_by_name():
    """Every environment's state lives in the bootstrap: it is treated like production."""
    refused = run_infra("deploy-bootstrap", world=World(answers=["yes"]))
    assert refused.code == errors.EXIT_REFUSED and not refused.world.applied()
    accepted = run_infra("deploy-bootstrap", world=World(answers=["bootstrap"]))
    assert accepted.code == 0 and accepted.world.names() == deploy_calls("bootstrap")
    assert accepted.world.preflights == ["bootstrap"]


def test_bootstrap_without_its_state_file_is_not_applied_over_an_existing_bucket():
    """A second bootstrap would create an orphan KMS key before failing on the existing bucket."""
    outcome = run_infra("deploy-bootstrap", "--yes", world=World(bucket_status="exists"))
    assert outcome.code == errors.EXIT_REFUSED and outcome.world.calls == []
    assert outcome.err == ("ops: state bucket webapp-terraform-state-example already exists but "
                           "terraform.bootstrap.tfstate is not in this checkout: the bootstrap was deployed from "
                           "elsewhere; copy its state file here first\n")


def test_bootstrap_refuses_a_bucket_name_owned_by_another_account():
    outcome = run_infra("deploy-bootstrap", "--yes", world=World(bucket_status="forbidden"))
    assert outcome.code == errors.EXIT_REFUSED and outcome.world.calls == []
    assert "is taken by another account (403): choose another state.bucket" in outcome.err


def test_bootstrap_with_its_state_file_updates_the_existing_backend(tmp_path):
    state = tmp_path / "terraform.bootstrap.tfstate"
    state.write_text("{}")
    outcome = run_infra("deploy-bootstrap", "--yes", world=World(bucket_status="exists", bootstrap_state=state))
    assert outcome.code == 0 and outcome.world.names() == deploy_calls("bootstrap")


def test_bootstrap_with_its_state_in_the_bucket_needs_no_local_file(monkeypatch):
    real_load = project.load

    def state_in_bucket(*args, **kwargs):
        project = real_load(*args, **kwargs)
        return replace(project, state=replace(project.state, bootstrap_state_in_bucket=True))

    monkeypatch.setattr(project, "load", state_in_bucket)
    outcome = run_infra("deploy-bootstrap", "--yes", world=World(bucket_status="exists"))
    assert outcome.code == 0 and outcome.world.names() == deploy_calls("bootstrap")


# --- destroy ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra", [[], ["--yes"]])
def test_destroying_production_is_refused_before_anything_runs(extra):
    outcome = run_infra("destroy", PRODUCTION, *extra, world=World(answers=[PRODUCTION]))
    assert outcome.code == errors.EXIT_REFUSED
    assert outcome.err == ("ops: refusing to destroy production: environments/production.toml sets "
                           "production = true, and production environments are never destroyed by this tool\n")
    assert outcome.world.calls == [] and outcome.world.preflights == [] and outcome.world.prompts == []


def test_destroying_dev_needs_its_name_and_applies_a_destroy_plan():
    refused = run_infra("destroy", DEV, world=World(answers=["yes"]))
    assert refused.code == errors.EXIT_REFUSED and not refused.world.applied()
    accepted = run_infra("destroy", DEV, world=World(answers=[DEV]))
    assert accepted.code == 0
    assert accepted.world.names() == deploy_calls(DEV, "destroy", destroy=True)


# --- the database bootstrap task after a deploy --------------------------------------------------------

RECORD = "/webapp/dev/database-bootstrap"


def test_first_deploy_runs_the_database_bootstrap_and_records_it():
    outcome = run_infra("deploy", DEV, "--yes")
    assert outcome.code == 0, outcome.err
    (run,) = outcome.world.database_runs
    assert (run.record_name, run.task_definition, run.subnets, run.security_groups) == (
        RECORD, BOOTSTRAP_SETTINGS["task_definition"], ("subnet-1", "subnet-2"), ("sg-1",))
    assert outcome.world.database_record == DONE
    assert (f"dev: running the database bootstrap task: it has not run for database cluster "
            f"{CLUSTER_RESOURCE_ID} yet") in outcome.out
    assert outcome.out.splitlines()[-1] == f"dev: database bootstrap done; recorded in SSM parameter {RECORD}"


def test_a_later_deploy_of_the_same_cluster_and_sql_does_not_run_it_again():
    for plan_exit in (terraform.PLAN_CHANGES, terraform.PLAN_NO_CHANGES):
        outcome = run_infra("deploy", DEV, "--yes", world=World(database_record=DONE, plan_exit=plan_exit))
        assert outcome.code == 0 and outcome.world.database_runs == []
        assert outcome.out.splitlines()[-1] == (
            f"dev: database bootstrap already ran for cluster {CLUSTER_RESOURCE_ID} with this SQL ({RECORD}); "
            "not running it")


@pytest.mark.parametrize(("record", "reason"), [
    ("cluster-OLDCLUSTERFROMBEFOREARESTORE 0123456789abcdef",
     f"it has not run for database cluster {CLUSTER_RESOURCE_ID} yet"),
    (f"{CLUSTER_RESOURCE_ID} fedcba9876543210", "its SQL changed since it last ran"),
])
def test_a_new_cluster_or_changed_sql_runs_it_again(record, reason):
    world = World(database_record=record, plan_exit=terraform.PLAN_NO_CHANGES)
    outcome = run_infra("deploy", DEV, "--yes", world=world)
    assert outcome.code == 0 and len(outcome.world.database_runs) == 1
    assert f"dev: running the database bootstrap task: {reason}" in outcome.out
    assert outcome.world.database_record == DONE


def test_a_failed_bootstrap_task_is_one_line_exit_1_and_not_recorded():
    world = World(database_failure="task t-1 stopped (Essential container in task exited), exit codes [2]")
    outcome = run_infra("deploy", DEV, "--yes", world=world)
    assert outcome.code == errors.EXIT_REFUSED and world.database_record is None
    assert outcome.err == ("ops: dev: the database bootstrap task failed: task t-1 stopped (Essential container in "
                           "task exited), exit codes [2]; its log is in /aws/ecs/db-bootstrap-dev; fix it and run: "
                           "python -m ops database-bootstrap dev\n")


def test_a_refused_apply_runs_no_bootstrap():
    outcome = run_infra("deploy", DEV, world=World(answers=["no"]))
    assert outcome.code == errors.EXIT_REFUSED and outcome.world.database_runs == []
    assert f"output -json {database_bootstrap.OUTPUT}" not in outcome.world.names()


def test_database_bootstrap_command_runs_it_whatever_the_record_says():
    outcome = run_infra("database-bootstrap", DEV, world=World(database_record=DONE))
    assert outcome.code == 0, outcome.err
    assert outcome.world.preflights == [DEV]
    assert outcome.world.names() == ["synth", "init -input=false", f"output -json {database_bootstrap.OUTPUT}"]
    assert len(outcome.world.database_runs) == 1
    assert "dev: running the database bootstrap task: asked to run it again" in outcome.out


def test_an_aws_error_in_the_bootstrap_is_one_line():
    from botocore.exceptions import ClientError

    class Denied(FakeDatabase):
        def recorded(self, run):
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no ssm:GetParameter"}},
                              "GetParameter")

    world = World()
    tools = replace(world.tools(), database_bootstrapper=lambda project, env: Denied(world))
    code = cli.main(["deploy", DEV, "--yes"], tools)
    assert code == errors.EXIT_REFUSED
    assert tools.err.getvalue() == "ops: dev: database bootstrap: AccessDeniedException: no ssm:GetParameter\n"


# --- preflight gates the deploy ---------------------------------------------------------------------

def test_failed_preflight_stops_the_deploy_before_synthesis():
    outcome = run_infra("deploy", PRODUCTION, "--yes", world=World(preflight_failures=("lock table", "account")))
    assert outcome.code == errors.EXIT_REFUSED
    assert outcome.world.calls == [] and outcome.world.prompts == []
    assert outcome.err.splitlines() == [
        "preflight failed: lock table: lock table is broken",
        "preflight failed: account: account is broken",
        "preflight production: 2 of 3 checks failed",
        "ops: not deploying production: preflight failed (lock table, account); fix the lines above first",
    ]


def test_failed_preflight_stops_a_destroy_too():
    outcome = run_infra("destroy", DEV, "--yes", world=World(preflight_failures=("state lock",)))
    assert outcome.code == errors.EXIT_REFUSED and outcome.world.calls == []
    assert outcome.err.splitlines()[-1] == ("ops: not destroying dev: preflight failed (state lock); "
                                            "fix the lines above first")


@pytest.fixture
def mocked_aws(monkeypatch, tmp_path) -> Iterator[None]:
    """moto's in-process mock of boto3, with fake credentials and none of this machine's AWS setup."""
    from moto import mock_aws

    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    with mock_aws():
        yield


def test_deploy_before_the_bootstrap_is_refused_by_the_real_preflight(mocked_aws):
    """The real preflight (boto3 against moto's mock): no state bucket, no table, so no deploy."""
    world = World()
    tools = ops_tools.Tools(run=world.run, ask=world.ask, out=io.StringIO(), err=io.StringIO(), environ={})
    code = cli.main(["deploy", DEV, "--yes"], tools)
    err = tools.err.getvalue()
    assert code == errors.EXIT_REFUSED and world.calls == []
    assert ("preflight failed: state bucket: state bucket webapp-terraform-state-example does not exist: "
            "deploy the bootstrap first (python -m ops deploy-bootstrap)") in err
    assert "preflight failed: lock table: lock table webapp-terraform-locks does not exist" in err
    assert err.splitlines()[-1] == ("ops: not deploying dev: preflight failed (state bucket, lock table); "
                                    "fix the lines above first")


def test_real_preflight_passes_once_the_backend_exists(mocked_aws):
    """The control for the test above: the same command proceeds to terraform when the backend is right."""
    region, state = "eu-west-1", project.load(ops_tools.Tools(environ={})).state
    s3, dynamodb = boto3.client("s3", region_name=region), boto3.client("dynamodb", region_name=region)
    s3.create_bucket(Bucket=state.bucket, CreateBucketConfiguration={"LocationConstraint": region})
    s3.put_bucket_versioning(Bucket=state.bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(Bucket=state.bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]})
    s3.put_public_access_block(Bucket=state.bucket, PublicAccessBlockConfiguration=dict.fromkeys(
        ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True))
    dynamodb.create_table(TableName=state.lock_table, BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}])
    world = World()
    tools = ops_tools.Tools(run=world.run, ask=world.ask, out=io.StringIO(), err=io.StringIO(), environ={},
                        capture=world.capture, database_bootstrapper=lambda project, env: FakeDatabase(world))
    assert cli.main(["deploy", DEV, "--yes"], tools) == 0, tools.err.getvalue()
    assert world.names() == deploy_calls(DEV)


def test_wrong_account_stops_deploy_bootstrap(mocked_aws, monkeypatch):
    real_load = project.load
    monkeypatch.setattr(project, "load", lambda *a, **k: replace(real_load(*a, **k), account_id="210987654321"))
    world = World()
    tools = ops_tools.Tools(run=world.run, ask=world.ask, out=io.StringIO(), err=io.StringIO(), environ={})
    assert cli.main(["deploy-bootstrap", "--yes"], tools) == errors.EXIT_REFUSED
    assert world.calls == []
    assert ("preflight failed: account: the credentials are for account 123456789012, but "
            "environments/project.toml sets account_id = 210987654321") in tools.err.getvalue()


# --- local-up / local-down wiring (recorded) --------------------------------------------------------

def test_local_up_refuses_a_production_environment(tmp_path):
    outcome = run_infra("local-up", PRODUCTION, "--local-dir", str(tmp_path / "local"))
    assert outcome.code == errors.EXIT_USAGE and "production = true" in outcome.err
    assert not (tmp_path / "local").exists()


def test_local_down_never_deletes_a_folder_it_did_not_create(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("keep")
    outcome = run_infra("local-down", "--local-dir", str(precious))
    assert outcome.code == errors.EXIT_USAGE and "was not created by local-up" in outcome.err
    assert (precious / "keep.txt").read_text() == "keep"


# A miniature dev stack: a cache policy moto cannot create, the distribution using it, an alarm on
# the distribution, and a bucket that depends on none of them.
MINI_DEV_STACK = {"resource": {
    "aws_cloudfront_cache_policy": {"cp": {"name": "html"}},
    "aws_cloudfront_distribution": {"dist": {"default_cache_behavior": [
        {"cache_policy_id": "${aws_cloudfront_cache_policy.cp.id}"}]}},
    "aws_cloudwatch_metric_alarm": {"errors": {"dimensions": {
        "DistributionId": "${aws_cloudfront_distribution.dist.id}"}}},
    "aws_s3_bucket": {"site": {"bucket": "site"}},
}}


def fake_synthesis(call: Call) -> None:
    stacks = Path(call.env[terraform.OUTDIR_VARIABLE]) / "stacks"
    for name, body in {"bootstrap": {"resource": {"aws_s3_bucket": {"state": {}}}}, DEV: MINI_DEV_STACK}.items():
        (stacks / name).mkdir(parents=True)
        (stacks / name / "cdk.tf.json").write_text(json.dumps(body))


def test_deployable_leaves_out_what_moto_cannot_create_and_its_dependents():
    targets, left_out = emulator.deployable(MINI_DEV_STACK)
    assert targets == ["aws_s3_bucket.site"]
    assert left_out == {"aws_cloudfront_cache_policy.cp", "aws_cloudfront_distribution.dist",
                        "aws_cloudwatch_metric_alarm.errors"}
    assert emulator.deployable(MINI_DEV_STACK, not_creatable=())[1] == set()


def local_up_world(tmp_path, monkeypatch, **settings) -> tuple[World, Path, str]:
    """A World for local-up: the emulator and the synthesis faked, a provider mirror configured."""
    endpoint = "http://127.0.0.1:45678"
    monkeypatch.setattr(local, "start_emulator", lambda tools, paths, port: endpoint)
    mirror = tmp_path / "mirror"
    (mirror / "registry.terraform.io").mkdir(parents=True)
    world = World(environ={"PATH": os.environ["PATH"], "AWS_PROFILE": "production-admin", "TF_WORKSPACE": "x",
                           "HTTPS_PROXY": "http://corporate:3128", local.MIRROR_VARIABLE: str(mirror)},
                  on_synth=fake_synthesis, **settings)
    return world, mirror, endpoint


LOCAL_APPLY = "apply -input=false -auto-approve -no-color -parallelism=30"
LOCAL_CALLS = ["synth", "init -input=false -no-color", LOCAL_APPLY,
               "init -input=false -no-color", f"{LOCAL_APPLY} -target=aws_s3_bucket.site",
               "output -json", "output -json"]


def test_local_up_deploys_bootstrap_then_dev_through_the_emulator_only(tmp_path, monkeypatch):
    """The order, folders and environment local-up gives terraform (the emulator itself is faked here)."""
    folder = tmp_path / "local"
    world, mirror, endpoint = local_up_world(tmp_path, monkeypatch)

    outcome = run_infra("local-up", "--local-dir", str(folder), world=world)

    assert outcome.code == 0, outcome.err
    assert world.names() == LOCAL_CALLS
    synth, *runs = world.calls
    assert synth.stacks == ("bootstrap", DEV)
    assert synth.env[project.EMULATOR_VARIABLE] == endpoint
    assert synth.env[terraform.OUTDIR_VARIABLE] == str(folder / "cdktf.out")
    assert [call.cwd.name for call in runs] == ["bootstrap"] * 2 + [DEV] * 2 + ["bootstrap", DEV]
    assert all(call.cwd.is_relative_to(folder) for call in runs), "never the real cdktf.out"
    for call in runs:
        assert "AWS_PROFILE" not in call.env and "TF_WORKSPACE" not in call.env
        assert call.env["AWS_ACCESS_KEY_ID"] == "local"
        assert call.env["TF_CLI_CONFIG_FILE"] == str(folder / "terraform.tfrc")
        assert call.env["NO_PROXY"] == "127.0.0.1,localhost"
    applies = [call for call in runs if not call.name.startswith("init")]
    assert {call.env["HTTPS_PROXY"] for call in applies} == {local.DEAD_PROXY}
    assert str(mirror) in (folder / "terraform.tfrc").read_text()
    assert f"local stack up: bootstrap and dev on {endpoint} (fake credentials" in outcome.out


def test_local_up_is_a_short_progress_view_with_outputs_and_what_was_left_out(tmp_path, monkeypatch):
    """Terraform goes to the log; the terminal gets a line per stack start and end, the outputs, the left-out
    summary grouped by gap and type, where the log is, and how to stop it all."""
    folder = tmp_path / "local"
    world, _, endpoint = local_up_world(tmp_path, monkeypatch)
    outcome = run_infra("local-up", "--local-dir", str(folder), world=world)
    assert outcome.code == 0, outcome.err
    assert outcome.out.splitlines() == [
        "bootstrap: applying",
        "bootstrap: 9 added, 0 changed, 0 destroyed in 0 s",
        "dev: applying (leaving out 3 blocks the emulator cannot create)",
        "dev: 3 added, 0 changed, 0 destroyed in 0 s",
        "outputs of bootstrap:", "  secret = (sensitive)", '  settings = {"a":[1,2]}', '  stack_name = "bootstrap"',
        "outputs of dev:", "  secret = (sensitive)", '  settings = {"a":[1,2]}', '  stack_name = "dev"',
        "dev: 3 blocks left out, the rest applied for real (ops/emulator.py EMULATOR_GAPS says why):",
        "  the emulator cannot create (cloudfront-policies): aws_cloudfront_cache_policy x1",
        "  they depend on those: aws_cloudfront_distribution x1, aws_cloudwatch_metric_alarm x1",
        f"full Terraform log: {folder / 'terraform.log'}",
        f"local stack up: bootstrap and dev on {endpoint} (fake credentials; INFRA_AWS_ENDPOINT={endpoint}); "
        f"stop it with: python -m ops local-down --local-dir {folder}",
    ]
    log = (folder / "terraform.log").read_text()
    assert log.count("(terraform init") == 2 and log.count("Apply complete!") == 2 and "(terraform synth" in log
    assert [call.name for call in world.calls if call.name != "synth"] == LOCAL_CALLS[1:]


def test_local_up_verbose_streams_terraform_and_writes_no_log(tmp_path, monkeypatch):
    folder = tmp_path / "local"
    world, _, _ = local_up_world(tmp_path, monkeypatch)
    world.run_logged = None  # any use of the log runner would fail: verbose streams everything
    outcome = run_infra("local-up", "--local-dir", str(folder), "--verbose", world=world)
    assert outcome.code == 0, outcome.err
    assert world.names() == LOCAL_CALLS
    assert not (folder / "terraform.log").exists() and "full Terraform log" not in outcome.out
    assert "dev: applied in 0 s" in outcome.out


TERRAFORM_ERROR = """aws_s3_bucket.site: Creating...

Error: creating S3 Bucket (webapp-dev-site): operation error S3: CreateBucket, BucketAlreadyExists

  with aws_s3_bucket.site,
  on cdk.tf.json line 1234, in resource "aws_s3_bucket" "site":
1234:       },

"""


def test_a_failed_local_apply_prints_the_failing_resource_and_error(tmp_path, monkeypatch):
    folder = tmp_path / "local"
    world, _, _ = local_up_world(tmp_path, monkeypatch, apply_failure=(DEV, TERRAFORM_ERROR))
    outcome = run_infra("local-up", "--local-dir", str(folder), world=world)
    assert outcome.code == errors.EXIT_REFUSED
    assert outcome.err.splitlines() == [
        f"ops: dev: terraform apply failed (exit 1) in {folder / 'cdktf.out' / 'stacks' / DEV}",
        "  aws_s3_bucket.site: creating S3 Bucket (webapp-dev-site): operation error S3: CreateBucket, "
        "BucketAlreadyExists",
        f"  full log: {folder / 'terraform.log'}",
        f"(the emulator keeps running for inspection; stop it with: python -m ops local-down --local-dir {folder})",
    ]


# --- the real emulator process ----------------------------------------------------------------------

def is_running(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie (an exited process its parent has not reaped yet).

    Containers whose PID 1 does not reap orphans keep a stopped emulator as a zombie: it runs no
    code and holds no port, so it counts as gone.
    """
    state = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True, check=False)
    return state.returncode == 0 and bool(state.stdout.strip()) and not state.stdout.strip().startswith("Z")


def read_pid(local: Path) -> int:
    return int((local / "emulator.pid").read_text())


@pytest.mark.emulator
def test_emulator_starts_answers_and_local_down_leaves_nothing_running(tmp_path):
    paths = local.LocalPaths(tmp_path / "local")
    paths.create()
    tools = ops_tools.Tools(out=io.StringIO(), err=io.StringIO())
    endpoint = local.start_emulator(tools, paths, port=0)
    pid = read_pid(paths.root)
    try:
        assert endpoint.startswith("http://127.0.0.1:") and is_running(pid)
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="eu-west-1",
                          aws_access_key_id="local", aws_secret_access_key="local")
        assert s3.list_buckets()["Buckets"] == []
        assert local.start_emulator(tools, paths, port=0) == endpoint, "a second local-up reuses the emulator"
        assert read_pid(paths.root) == pid

        outcome = run_infra("local-down", "--local-dir", str(paths.root))

        assert outcome.code == 0 and f"emulator (pid {pid}) stopped" in outcome.out
        assert not is_running(pid), f"emulator pid {pid} still running after local-down"
        assert not paths.root.exists()
        assert run_infra("local-down", "--local-dir", str(paths.root)).out == "no emulator was running\n"
    finally:
        if is_running(pid):
            os.kill(pid, 9)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com"])
def test_emulator_refuses_to_listen_beyond_loopback(host, capsys):
    """moto accepts any credentials: it must never be reachable from another machine."""
    assert emulator_server.main(["--host", host, "--port", "0"]) == emulator_server.EXIT_USAGE
    assert f"--host {host} is not a loopback address" in capsys.readouterr().err


def test_the_bootstrap_record_is_an_ssm_parameter(mocked_aws):
    """The real AWS side's record (moto): absent before the first run, the fingerprint after it."""
    env = project.load(ops_tools.Tools(environ={})).environment(DEV)
    run = database_bootstrap.BootstrapRun.from_output(env, BOOTSTRAP_SETTINGS)
    aws_side = database_bootstrap.AwsDatabaseBootstrapper(env.region)
    assert aws_side.recorded(run) is None
    aws_side.record(run)
    assert aws_side.recorded(run) == DONE
    stored = boto3.client("ssm", region_name=env.region).get_parameter(Name=RECORD)["Parameter"]
    assert (stored["Value"], stored["Type"]) == (DONE, "String")


def test_production_without_an_account_id_is_never_deployed(mocked_aws):
    """The real preflight refuses before any AWS call, so nothing is synthesized, planned or applied."""
    world = World()
    tools = ops_tools.Tools(run=world.run, ask=world.ask, out=io.StringIO(), err=io.StringIO(), environ={},
                        capture=world.capture, database_bootstrapper=lambda project, env: FakeDatabase(world))
    assert cli.main(["deploy", PRODUCTION, "--yes"], tools) == errors.EXIT_REFUSED
    assert world.calls == [] and world.database_runs == []
    assert tools.err.getvalue().splitlines() == [
        "preflight failed: account: environments/production.toml: account_id: must be set to deploy a production "
        "environment (here or in environments/project.toml), so that no other account can receive it",
        "preflight production: 1 of 1 checks failed",
        "ops: not deploying production: preflight failed (account); fix the lines above first",
    ]


# --- the DR-region stacks (issue 25) -------------------------------------------------------------------

def test_a_standby_dr_stack_deploys_like_its_environment_without_a_database_bootstrap():
    """production-dr: guarded like production (confirmed by name); its database is a global secondary whose
    users replicate from the primary, so no database bootstrap runs after it."""
    outcome = run_infra("deploy", "production-dr", world=World(answers=["production-dr"]))
    assert outcome.code == 0, outcome.err
    assert outcome.world.preflights == ["production-dr"]
    assert ["type its name (production-dr)" in prompt for prompt in outcome.world.prompts] == [True]
    assert outcome.world.names() == deploy_calls("production-dr")[:-1], "no database bootstrap output is read"


def test_a_backup_dr_stack_without_a_recovery_point_is_not_deployed():
    outcome = run_infra("deploy", "staging-dr", "--yes")
    assert outcome.code == errors.EXIT_REFUSED and outcome.world.calls == []
    assert outcome.err == ("ops: not deploying staging-dr: its database starts from a copied recovery point, and "
                           "environments/staging.toml names none; first: python -m ops restore staging --region "
                           "eu-central-1 --write (docs/runbooks.md, Region lost)\n")


def test_dr_stacks_plan_and_drift_by_name():
    for command in ("plan", "drift"):
        outcome = run_infra(command, "staging-dr", world=World(shown={"resource_drift": []}, plan_exit=0))
        assert outcome.code == 0, outcome.err
        assert outcome.world.names()[:2] == ["synth", "init -input=false"]
        assert outcome.world.calls[0].command[-1] == "staging-dr"
