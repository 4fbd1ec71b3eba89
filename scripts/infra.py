"""The one entry point for synthesizing, reviewing, deploying and destroying the infrastructure.

    python scripts/infra.py synth [STACK ...]       # every stack (or the named ones) into cdktf.out/
    python scripts/infra.py plan dev                # what a deploy of dev would change
    python scripts/infra.py drift dev               # changed behind Terraform's back? exit 0 no, 2 yes, 1 error
    python scripts/infra.py deploy-bootstrap        # once: state bucket, lock table, KMS key
    python scripts/infra.py deploy dev [--yes]      # preflight, plan, confirm, apply that plan, database bootstrap
    python scripts/infra.py database-bootstrap dev  # run the database bootstrap task again
    python scripts/infra.py destroy dev [--yes]     # never for an environment with production = true
    python scripts/infra.py restore dev [--region R] [--snapshot ID|--latest] [--subnet-group G] [--yes]
                                                    # newest (or named) recovery point into a NEW cluster
    python scripts/infra.py local-up                # moto on 127.0.0.1, bootstrap + dev applied to it
    python scripts/infra.py local-down              # stop the emulator, remove .local/

The safety rules live here rather than in people's heads:

- `deploy` runs `scripts/preflight.py` first and stops when any check fails (missing bootstrap
  bucket or table, wrong account, a lock held on the environment's state, ...);
- what is applied is exactly the plan that was shown (`plan -out`, then `apply <planfile>`), and
  afterwards the state is refreshed (`apply -refresh-only`) so that `drift` compares against what
  was deployed;
- applying needs a typed confirmation: the environment's name for `production = true`
  environments, `yes` for others; `--yes` skips it (CI, where GitHub environment approval is the
  confirmation);
- `destroy` refuses production environments outright, and asks for the environment's name;
- after an apply, `deploy` runs the one-off database bootstrap task (modules/database_bootstrap.py)
  when it has not run for this Aurora cluster with this SQL, and says so either way. What has run
  is recorded in an SSM parameter, `/<app>/<env>/database-bootstrap`, holding "<cluster resource
  id> <SQL digest>": a new cluster (restore, replacement) or changed grants run it again, nothing
  else does. `database-bootstrap ENV` runs it on demand (docs/runbooks.md).
- `restore` creates a new cluster and never touches an existing one; without `--yes` it only
  prints what it would create (scripts/restore.py has its rules).

Terraform is called directly (not `cdktf deploy`), so nothing here needs the network beyond AWS
itself; `local-up` needs none at all when `TF_PROVIDER_MIRROR` names a provider mirror.
A refusal or failure is one line on stderr with exit status 1; bad usage or configuration exits 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from environments.loader import ConfigError, load_project  # noqa: E402
from environments.model import EnvironmentConfig, ProjectConfig  # noqa: E402
from scripts import emulator, plan_report, preflight, restore  # noqa: E402
from scripts.terraform_cli_config import MIRROR_VARIABLE, MirrorError, mirror_root, write_cli_config  # noqa: E402

BOOTSTRAP = "bootstrap"
EXIT_REFUSED = 1
EXIT_USAGE = 2
# `drift`: the deployed environment differs from its state (any error is EXIT_REFUSED).
EXIT_DRIFT = 2
EMULATOR_VARIABLE = "INFRA_AWS_ENDPOINT"
OUTDIR_VARIABLE = "CDKTF_OUTDIR"
STACKS_VARIABLE = "INFRA_STACKS"
LOOPBACK = "127.0.0.1"
LOCAL_ENVIRONMENT = "dev"
# `terraform plan -detailed-exitcode`: 0 no changes, 1 error, 2 changes present.
PLAN_NO_CHANGES, PLAN_CHANGES = 0, 2
EMULATOR_START_SECONDS = 60
EMULATOR_STOP_SECONDS = 15
# The emulator answers at once; the provider's own waits (KMS, S3 lifecycle) dominate, so run many at once.
LOCAL_PARALLELISM = "-parallelism=30"
# Inherited TF_* variables kept for terraform: logging, and the CLI config unless a mirror replaces it.
KEPT_TF_VARIABLES = ("TF_LOG", "TF_LOG_PATH", "TF_LOG_PROVIDER", "TF_LOG_CORE", "TF_CLI_CONFIG_FILE")
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
# Requests for anything but loopback go here, where nothing listens: the local stack never reaches AWS.
DEAD_PROXY = f"http://{LOOPBACK}:1"


class Refused(Exception):
    """A safety rule or a failed step stopped the command: shown as one line, exit status 1."""


class UsageError(Exception):
    """The command line or the configuration is wrong: shown as one line, exit status 2."""


Runner = Callable[[Sequence[str], Path, Mapping[str, str]], int]
Capturer = Callable[[Sequence[str], Path, Mapping[str, str]], tuple[int, str]]


def run_streaming(command: Sequence[str], cwd: Path, env: Mapping[str, str]) -> int:
    """Run a command with its output going straight to the terminal; return its exit status."""
    return subprocess.run(list(command), cwd=cwd, env=dict(env), check=False).returncode


def run_capturing(command: Sequence[str], cwd: Path, env: Mapping[str, str]) -> tuple[int, str]:
    """Run a command and return its exit status and standard output (stderr still goes to the terminal)."""
    result = subprocess.run(list(command), cwd=cwd, env=dict(env), stdout=subprocess.PIPE, text=True, check=False)
    return result.returncode, result.stdout


# --- the database bootstrap task ------------------------------------------------------------------

BOOTSTRAP_OUTPUT = "DatabaseBootstrap"  # stacks/environment.py: how to run the task
BOOTSTRAP_TASK_MINUTES = 15


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

    def _client(self, service: str):
        import boto3

        return boto3.session.Session().client(service, region_name=self.region, endpoint_url=self.endpoint)

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
                                             WaiterConfig={"Delay": 10, "MaxAttempts": BOOTSTRAP_TASK_MINUTES * 6})
        (task,) = ecs.describe_tasks(cluster=run.cluster, tasks=[task_arn])["tasks"]
        codes = [container.get("exitCode") for container in task.get("containers", [])]
        if codes == [0]:
            return None
        return f"task {task_arn} stopped ({task.get('stoppedReason', 'no reason given')}), exit codes {codes}"

    def record(self, run: BootstrapRun) -> None:
        self._client("ssm").put_parameter(
            Name=run.record_name, Value=run.fingerprint, Type="String", Overwrite=True,
            Description="What the database bootstrap task last ran: <cluster resource id> <SQL digest> (infra.py)")


def aws_database_bootstrapper(project: ProjectConfig, env: EnvironmentConfig) -> DatabaseBootstrapper:
    return AwsDatabaseBootstrapper(env.region, project.emulator.endpoint if project.emulator else None)


def aws_client(project: ProjectConfig, service: str, region: str):
    """A boto3 client in `region`, pointed at the emulator when INFRA_AWS_ENDPOINT names one."""
    import boto3

    endpoint = project.emulator.endpoint if project.emulator else None
    return boto3.session.Session().client(service, region_name=region, endpoint_url=endpoint,
                                          config=preflight.CLIENT_CONFIG)


def ask_terminal(prompt: str) -> str:
    """Read one answer from the terminal; EOFError when there is nobody to ask (CI, a pipe)."""
    if not sys.stdin.isatty():
        raise EOFError
    return input(prompt)


@dataclass
class Tools:
    """Everything with a side effect, so the safety rules can be tested without AWS or terraform."""

    run: Runner = run_streaming
    capture: Capturer = run_capturing
    ask: Callable[[str], str] = ask_terminal
    run_preflight: Callable[[ProjectConfig, str | None], preflight.PreflightResult] = preflight.run_preflight
    state_bucket_status: Callable[[ProjectConfig], str] = preflight.state_bucket_status
    database_bootstrapper: Callable[[ProjectConfig, EnvironmentConfig], DatabaseBootstrapper] = (
        aws_database_bootstrapper)
    aws: Callable[[ProjectConfig, str, str], object] = aws_client
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    root: Path = ROOT
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    # Where the bootstrap keeps its state (bootstrap/stack.py: LOCAL_STATE_PATH, the repository root).
    bootstrap_state: Path = ROOT / "terraform.bootstrap.tfstate"
    # Where stacks are synthesized and terraform runs; None: cdktf.out/ under `root`.
    synth_dir: Path | None = None

    def say(self, message: str) -> None:
        print(message, file=self.out, flush=True)

    @property
    def outdir(self) -> Path:
        return self.synth_dir or self.root / "cdktf.out"


# --- configuration and confirmation -------------------------------------------------------------

def load(tools: Tools, environment: str | None = None, endpoint: str | None = None) -> ProjectConfig:
    """The validated configuration, which must contain `environment` when one is given.

    The emulator endpoint is `endpoint`, else INFRA_AWS_ENDPOINT, exactly as main.py will see it.
    """
    directory = tools.root / "environments"
    try:
        project = load_project(directory, endpoint or tools.environ.get(EMULATOR_VARIABLE) or None)
    except ConfigError as error:
        raise UsageError(f"configuration error: {error}") from None
    names = [env.name for env in project.environments]
    if environment is not None and environment not in names:
        raise UsageError(f"unknown environment {environment!r}: {directory.name}/ defines {', '.join(names)}")
    return project


def confirm(tools: Tools, env_name: str, action: str, yes: bool, by_name: bool) -> None:
    """Ask for the typed confirmation `action` needs; raise Refused unless the answer is exact.

    Production, the shared bootstrap and every destroy must be named, not just approved: typing
    a name is a deliberate act that `yes`-by-habit is not.
    """
    if yes:
        return
    expected = env_name if by_name else "yes"
    what = f"type its name ({env_name})" if by_name else "type yes"
    try:
        answer = tools.ask(f"{action} {env_name}? To continue, {what}: ")
    except EOFError:
        raise Refused(f"not {action.lower()}ing {env_name}: confirmation needed, but there is no terminal to "
                      "ask (pass --yes where an approval happened elsewhere)") from None
    if answer != expected:
        raise Refused(f"not {action.lower()}ing {env_name}: the answer {answer!r} is not {expected!r}")


def refuse_destroying_production(env: EnvironmentConfig) -> None:
    if env.production:
        raise Refused(f"refusing to destroy {env.name}: {env.source} sets production = true, and production "
                      "environments are never destroyed by this tool")


def require_preflight(tools: Tools, project: ProjectConfig, environment: str | None, action: str = "Deploy") -> None:
    """Run scripts/preflight.py's checks, show them, and stop unless every one passed."""
    result = tools.run_preflight(project, environment)
    preflight.report(result, tools.out, tools.err)
    if not result.ok:
        raise Refused(f"not {action.lower()}ing {environment or BOOTSTRAP}: preflight failed "
                      f"({', '.join(check.name for check in result.failures)}); fix the lines above first")


# --- synthesis and terraform --------------------------------------------------------------------

def terraform_binary() -> str:
    binary = shutil.which("terraform")
    if binary is None:
        raise Refused("terraform is not on PATH: install Terraform >= 1.10")
    return binary


def synth(tools: Tools, stacks: Sequence[str] = (), outdir: Path | None = None, endpoint: str | None = None) -> None:
    """Synthesize `stacks` (every stack when empty) with main.py (the same interpreter) into `outdir`.

    A command synthesizes only the stacks it runs terraform in: with a dozen environments, planning
    one of them must not pay for the other eleven. main.py still validates the whole configuration.
    """
    env = {**tools.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
           OUTDIR_VARIABLE: str(outdir or tools.outdir)}
    env.pop(STACKS_VARIABLE, None)  # the stacks are named on the command line, never inherited
    if endpoint is not None:
        env[EMULATOR_VARIABLE] = endpoint
    code = tools.run([sys.executable, str(tools.root / "main.py"), *stacks], tools.root, env)
    if code != 0:
        raise Refused(f"synthesis failed (exit {code}): see the message above")


@dataclass
class Terraform:
    """Terraform in one synthesized stack's folder."""

    tools: Tools
    stack_dir: Path
    env: Mapping[str, str]

    def __call__(self, *args: str, allowed: Sequence[int] = (0,)) -> int:
        code = self.tools.run([terraform_binary(), *args], self.stack_dir, self.env)
        if code not in allowed:
            raise Refused(f"terraform {args[0]} failed (exit {code}) in {self.stack_dir}")
        return code

    def show_json(self, planfile: str) -> dict:
        """`terraform show -json PLANFILE`: the plan as data (scripts/plan_report.py reads it)."""
        code, output = self.tools.capture([terraform_binary(), "show", "-json", planfile], self.stack_dir, self.env)
        if code != 0:
            raise Refused(f"terraform show failed (exit {code}) in {self.stack_dir}")
        try:
            return json.loads(output)
        except json.JSONDecodeError as error:
            raise Refused(f"terraform show -json gave no JSON in {self.stack_dir}: {error}") from None

    def output(self, name: str) -> Any:
        """One output of the applied stack, decoded from `terraform output -json NAME`."""
        code, text = self.tools.capture([terraform_binary(), "output", "-json", name], self.stack_dir, self.env)
        if code != 0:
            raise Refused(f"terraform output {name} failed (exit {code}) in {self.stack_dir}")
        return json.loads(text)


def terraform_for(tools: Tools, stack: str, outdir: Path | None = None,
                  env: Mapping[str, str] | None = None) -> Terraform:
    base = {**tools.environ, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}
    return Terraform(tools, (outdir or tools.outdir) / "stacks" / stack, env or base)


def plan_and_apply(tools: Tools, stack: str, action: str, yes: bool, by_name: bool, destroy: bool = False) -> int:
    """Plan to a file, show it, confirm, apply exactly that file. No changes: nothing to confirm."""
    terraform = terraform_for(tools, stack)
    terraform("init", "-input=false")
    planfile = f"{action.lower()}.tfplan"
    mode = ["-destroy"] if destroy else []
    code = terraform("plan", "-input=false", "-detailed-exitcode", f"-out={planfile}", *mode,
                     allowed=(PLAN_NO_CHANGES, PLAN_CHANGES))
    if code == PLAN_NO_CHANGES:
        tools.say(f"{stack}: no changes, nothing to {action.lower()}")
        return 0
    confirm(tools, stack, action, yes, by_name)
    terraform("apply", "-input=false", planfile)
    if not destroy:
        settle(terraform)
    tools.say(f"{stack}: {action.lower()} complete")
    return 0


def settle(terraform: Terraform) -> None:
    """Record what was just deployed as AWS now reports it (a refresh-only apply, nothing changes in AWS).

    Terraform saves a resource's attributes when it creates or updates it; attributes that other
    resources change afterwards (a security group's rules, a bucket's versioning, a certificate's
    status) stay stale in the state until the next refresh, and the daily drift check would
    report them as changed outside Terraform. Right after the apply, AWS holds what was deployed.
    """
    terraform("apply", "-refresh-only", "-auto-approve", "-input=false")


# --- commands -----------------------------------------------------------------------------------

def cmd_synth(tools: Tools, args: argparse.Namespace) -> int:
    known = load(tools).stack_names
    unknown = [name for name in args.stacks if name not in known]
    if unknown:
        raise UsageError(f"unknown stack {unknown[0]!r}: the stacks are {', '.join(known)}")
    synth(tools, args.stacks)
    return 0


def cmd_plan(tools: Tools, args: argparse.Namespace) -> int:
    """Plan one environment, then summarize it: counts per action, and every stateful resource lost."""
    project = load(tools, args.environment)
    synth(tools, [args.environment])
    terraform = terraform_for(tools, args.environment)
    terraform("init", "-input=false")
    options = ["-no-color"] if args.no_color else []
    if args.no_lock:
        options.append("-lock=false")
    planfile = "plan.tfplan"
    code = terraform("plan", "-input=false", "-detailed-exitcode", f"-out={planfile}", *options,
                     allowed=(PLAN_NO_CHANGES, PLAN_CHANGES))
    summary = plan_report.summarize_plan(terraform.show_json(planfile), state_backend_names(project))
    for line in plan_report.summary_lines(args.environment, summary):
        tools.say(line)
    if args.summary:
        args.summary.write_text(plan_report.summary_markdown(args.environment, summary))
    tools.say(f"{args.environment}: " + ("changes pending" if code == PLAN_CHANGES else "no changes"))
    return 0


def state_backend_names(project: ProjectConfig) -> frozenset[str]:
    """Names of the resources that hold every environment's state: flagged whenever a plan loses them."""
    return frozenset({project.state.bucket, project.state.lock_table})


def cmd_drift(tools: Tools, args: argparse.Namespace) -> int:
    """Refresh-only plan: does the deployed environment still match its state? Exit 0 no, 2 yes, 1 error.

    Read-only: the plan is never applied and the state lock is not taken (the scheduled workflow
    runs this with the read-only plan role). Exit status 2 means drift here, so a configuration
    error is reported as an error (1), never as drift.
    """
    try:
        load(tools, args.environment)
    except UsageError as error:
        raise Refused(str(error)) from None
    synth(tools, [args.environment])
    terraform = terraform_for(tools, args.environment)
    terraform("init", "-input=false", *(["-no-color"] if args.no_color else []))
    planfile = "drift.tfplan"
    terraform("plan", "-refresh-only", "-input=false", "-lock=false", f"-out={planfile}",
              *(["-no-color"] if args.no_color else []))
    drifts = plan_report.drift_of(terraform.show_json(planfile))
    for line in plan_report.drift_lines(args.environment, drifts):
        tools.say(line)
    return EXIT_DRIFT if drifts else 0


def refuse_second_bootstrap(tools: Tools, project: ProjectConfig) -> None:
    """Without its local state, applying the bootstrap would try to create a second state backend.

    Terraform would fail on the existing bucket only after creating a new KMS key, and leave it
    behind; so when the bucket exists but the state file is not here, nothing is applied.
    """
    if project.state.bootstrap_state_in_bucket or tools.bootstrap_state.exists():
        return  # terraform init finds the existing state (in the bucket, or the local file)
    bucket = project.state.bucket
    try:
        status = tools.state_bucket_status(project)
    except preflight.AWS_ERRORS as error:
        raise Refused(f"cannot tell whether state bucket {bucket} exists: {preflight.describe_error(error)}") from None
    if status == "exists":
        raise Refused(f"state bucket {bucket} already exists but {tools.bootstrap_state.name} is not in this "
                      "checkout: the bootstrap was deployed from elsewhere; copy its state file here first")
    if status == "forbidden":
        raise Refused(f"state bucket name {bucket} is taken by another account (403): choose another "
                      "state.bucket in environments/project.toml")


def cmd_deploy_bootstrap(tools: Tools, args: argparse.Namespace) -> int:
    project = load(tools)
    require_preflight(tools, project, None)
    refuse_second_bootstrap(tools, project)
    synth(tools, [BOOTSTRAP])
    # The bootstrap holds every environment's state, production's included: name it to apply it.
    return plan_and_apply(tools, BOOTSTRAP, "Deploy", args.yes, by_name=True)


def bootstrap_database(tools: Tools, project: ProjectConfig, env: EnvironmentConfig, force: bool = False) -> None:
    """Run the database bootstrap task unless this cluster already ran this SQL (or `force`); say which."""
    run = BootstrapRun.from_output(env, terraform_for(tools, env.name).output(BOOTSTRAP_OUTPUT))
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
                          f"{run.log_group}; fix it and run: python scripts/infra.py database-bootstrap {env.name}")
        aws_side.record(run)
    except preflight.AWS_ERRORS as error:
        raise Refused(f"{env.name}: database bootstrap: {preflight.describe_error(error)}") from None
    tools.say(f"{env.name}: database bootstrap done; recorded in SSM parameter {run.record_name}")


def cmd_deploy(tools: Tools, args: argparse.Namespace) -> int:
    project = load(tools, args.environment)
    env = project.environment(args.environment)
    require_preflight(tools, project, env.name)
    synth(tools, [env.name])
    plan_and_apply(tools, env.name, "Deploy", args.yes, by_name=env.production)
    bootstrap_database(tools, project, env)
    return 0


def cmd_database_bootstrap(tools: Tools, args: argparse.Namespace) -> int:
    """Run the bootstrap task of an applied environment again, whatever the record says."""
    project = load(tools, args.environment)
    env = project.environment(args.environment)
    require_preflight(tools, project, env.name)
    synth(tools, [env.name])
    terraform_for(tools, env.name)("init", "-input=false")
    bootstrap_database(tools, project, env, force=True)
    return 0


def cmd_destroy(tools: Tools, args: argparse.Namespace) -> int:
    project = load(tools, args.environment)
    env = project.environment(args.environment)
    refuse_destroying_production(env)
    require_preflight(tools, project, env.name, "Destroy")
    synth(tools, [env.name])
    # Destroying is always confirmed by name, whatever the environment.
    return plan_and_apply(tools, env.name, "Destroy", args.yes, by_name=True, destroy=True)


def cmd_restore(tools: Tools, args: argparse.Namespace) -> int:
    project = load(tools, args.environment)
    env = project.environment(args.environment)
    region = args.region or env.region

    def client(service: str, service_region: str):
        return tools.aws(project, service, service_region)

    try:
        plan = restore.plan_restore(env, region, args.snapshot, client, args.subnet_group, args.security_group)
        for line in plan.lines():
            tools.say(line)
        if not args.yes:
            tools.say("dry run: nothing created; add --yes to restore")
            return 0
        cluster = restore.apply_restore(env, plan, client)
    except restore.RestoreUsageError as error:
        raise UsageError(str(error)) from None
    except restore.RestoreRefused as error:
        raise Refused(f"not restoring {env.name}: {error}") from None
    except preflight.AWS_ERRORS as error:
        raise Refused(f"not restoring {env.name}: {preflight.describe_error(error)}") from None
    for line in restore.next_steps(env, plan, cluster.get("Endpoint", "(not reported yet)")):
        tools.say(line)
    return 0


# --- the local emulator -------------------------------------------------------------------------

@dataclass(frozen=True)
class LocalPaths:
    """Everything local-up creates lives in one folder, so local-down can remove all of it."""

    root: Path

    MARKER = ".created-by-infra-local-up"

    @property
    def marker(self) -> Path:
        return self.root / self.MARKER

    @property
    def pid_file(self) -> Path:
        return self.root / "emulator.pid"

    @property
    def endpoint_file(self) -> Path:
        return self.root / "emulator.endpoint"

    @property
    def log(self) -> Path:
        return self.root / "emulator.log"

    @property
    def outdir(self) -> Path:
        # The bootstrap's local state lands three levels above its stack folder: in this folder,
        # never on top of the real terraform.bootstrap.tfstate at the repository root.
        return self.root / "cdktf.out"

    def create(self) -> None:
        if self.root.exists() and not self.marker.exists() and any(self.root.iterdir()):
            raise UsageError(f"{self.root} exists and was not created by local-up; choose another --local-dir")
        self.root.mkdir(parents=True, exist_ok=True)
        self.marker.touch()


def process_command(pid: int) -> str | None:
    """The command line of a live process, or None when it is gone (a zombie counts as gone)."""
    result = subprocess.run(["ps", "-ww", "-o", "stat=", "-o", "command=", "-p", str(pid)],
                            capture_output=True, text=True, check=False)
    line = result.stdout.strip()
    if result.returncode != 0 or not line:
        return None
    state, _, command = line.partition(" ")
    return None if state.startswith("Z") else command.strip()


def running_emulator(local: LocalPaths) -> int | None:
    """The pid of the emulator this folder's local-up started, if it still runs.

    The command line must name this folder's ready file: a pid file outliving its process must
    never lead to signalling whatever process was later given the same pid.
    """
    try:
        pid = int(local.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    command = process_command(pid)
    if command and "emulator.py" in command and str(local.endpoint_file) in command:
        return pid
    return None


def start_emulator(tools: Tools, local: LocalPaths, port: int) -> str:
    """The endpoint of this folder's emulator, started in the background (own session) if needed."""
    if running_emulator(local) and local.endpoint_file.exists():
        endpoint = local.endpoint_file.read_text().strip()
        tools.say(f"emulator already running at {endpoint}")
        return endpoint
    local.endpoint_file.unlink(missing_ok=True)
    with local.log.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, str(tools.root / "scripts" / "emulator.py"), "--host", LOOPBACK, "--port", str(port),
             "--ready-file", str(local.endpoint_file)],
            cwd=local.root, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # survives this command; Ctrl-C here does not stop it
        )
    local.pid_file.write_text(f"{process.pid}\n")
    deadline = time.monotonic() + EMULATOR_START_SECONDS
    while not local.endpoint_file.exists():
        if process.poll() is not None:
            raise Refused(f"the emulator exited with status {process.returncode}: see {local.log}")
        if time.monotonic() > deadline:
            raise Refused(f"the emulator did not start within {EMULATOR_START_SECONDS}s: see {local.log}")
        time.sleep(0.1)
    endpoint = local.endpoint_file.read_text().strip()
    tools.say(f"emulator running at {endpoint} (pid {process.pid}, log {local.log})")
    return endpoint


def stop_emulator(local: LocalPaths) -> int | None:
    """Stop this folder's emulator (SIGTERM, then SIGKILL); return its pid, or None if none ran."""
    pid = running_emulator(local)
    if pid is None:
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + EMULATOR_STOP_SECONDS
    while _reap(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _reap(pid):
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + EMULATOR_STOP_SECONDS
        while _reap(pid):
            if time.monotonic() > deadline:
                raise Refused(f"the emulator (pid {pid}) survived SIGKILL; {local.root} is left in place")
            time.sleep(0.1)
    return pid


def _reap(pid: int) -> bool:
    """True while `pid` still runs; collects its exit status when it is our own child."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    return process_command(pid) is not None


def local_terraform_env(tools: Tools, local: LocalPaths, region: str, offline: bool) -> dict[str, str]:
    """Terraform's environment for the emulator: fake credentials, nothing of this machine's AWS setup.

    With `offline`, every non-loopback request goes to a dead proxy, so nothing can reach AWS even
    if an endpoint were missing; `init` runs without it so that, with no mirror, providers can
    still be downloaded from the registry.
    """
    inherited = tools.environ
    env = {name: value for name, value in inherited.items()
           if not name.startswith("AWS_") and name.lower() not in PROXY_VARIABLES
           and (not name.startswith("TF_") or name in KEPT_TF_VARIABLES)}
    env.update({
        "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_REGION": region, "AWS_DEFAULT_REGION": region,
        "AWS_CONFIG_FILE": str(local.root / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(local.root / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": f"{LOOPBACK},localhost", "no_proxy": f"{LOOPBACK},localhost",
        "TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1",
    })
    if inherited.get(MIRROR_VARIABLE):
        try:
            mirror = mirror_root(inherited)
        except MirrorError as error:
            raise UsageError(str(error)) from None
        env["TF_CLI_CONFIG_FILE"] = str(write_cli_config(local.root / "terraform.tfrc", mirror))
    if offline:
        env.update({"HTTP_PROXY": DEAD_PROXY, "HTTPS_PROXY": DEAD_PROXY})
    return env


def local_down_command(local_dir: Path) -> str:
    command = "python scripts/infra.py local-down"
    return command if local_dir.resolve() == default_local_dir() else f"{command} --local-dir {local_dir}"


def emulated_targets(tools: Tools, local: LocalPaths, stack: str) -> list[str]:
    """`-target` options that leave out what the emulator cannot create (none when it can create everything)."""
    synthesized = json.loads((local.outdir / "stacks" / stack / "cdk.tf.json").read_text())
    targets, left_out = emulator.deployable(synthesized)
    if not left_out:
        return []
    uncreatable = {kind for kinds in emulator.NOT_CREATABLE.values() for kind in kinds}
    kinds = sorted({address.split(".")[-2] for address in left_out} & uncreatable)
    tools.say(f"{stack}: leaving out {len(left_out)} blocks: the emulator cannot create {', '.join(kinds)}, "
              "and the rest depend on those (scripts/emulator.py NOT_CREATABLE)")
    return [f"-target={address}" for address in targets]


def deploy_locally(tools: Tools, local: LocalPaths, endpoint: str, stacks: Sequence[str]) -> None:
    """Synthesize for the emulator into the local folder, then init + apply each stack, then print outputs."""
    project = load(tools, endpoint=endpoint)  # validates the endpoint as synthesis will
    synth(tools, stacks, local.outdir, endpoint)
    init_env = local_terraform_env(tools, local, project.state.region, offline=False)
    apply_env = local_terraform_env(tools, local, project.state.region, offline=True)
    for stack in stacks:
        terraform_for(tools, stack, local.outdir, init_env)("init", "-input=false", "-no-color")
        terraform_for(tools, stack, local.outdir, apply_env)(
            "apply", "-input=false", "-auto-approve", "-no-color", LOCAL_PARALLELISM,
            *emulated_targets(tools, local, stack))
    for stack in stacks:
        tools.say(f"--- outputs of {stack} ---")
        terraform_for(tools, stack, local.outdir, apply_env)("output", "-no-color")


def cmd_local_up(tools: Tools, args: argparse.Namespace) -> int:
    local = LocalPaths(args.local_dir.resolve())
    project = load(tools, args.environment)
    if project.environment(args.environment).production:
        raise UsageError(f"local-up deploys a development environment; {args.environment} has production = true")
    local.create()
    down = local_down_command(args.local_dir)
    endpoint = start_emulator(tools, local, args.port)
    stacks = (BOOTSTRAP,) if args.bootstrap_only else (BOOTSTRAP, args.environment)
    try:
        deploy_locally(tools, local, endpoint, stacks)
    except (Refused, UsageError) as error:
        raise type(error)(f"{error} (the emulator keeps running for inspection; stop it with: {down})") from None
    tools.say(f"local stack up: {' and '.join(stacks)} on {endpoint} (fake credentials; "
              f"INFRA_AWS_ENDPOINT={endpoint}); stop it with: {down}")
    return 0


def cmd_local_down(tools: Tools, args: argparse.Namespace) -> int:
    local = LocalPaths(args.local_dir.resolve())
    if local.root.exists() and not local.marker.exists():
        raise UsageError(f"{local.root} was not created by local-up; not touching it")
    pid = stop_emulator(local)
    tools.say(f"emulator (pid {pid}) stopped" if pid else "no emulator was running")
    if local.root.exists():
        shutil.rmtree(local.root)
        tools.say(f"removed {local.root}")
    return 0


# --- command line -------------------------------------------------------------------------------

def default_local_dir() -> Path:
    return ROOT / ".local"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="infra", description="Synthesize, review, deploy and destroy safely.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    synth_ = commands.add_parser("synth", help="synthesize every stack (or the named ones) into cdktf.out/")
    synth_.add_argument("stacks", nargs="*", metavar="STACK", help="bootstrap or an environment (default: all)")
    synth_.set_defaults(handler=cmd_synth)

    plan = commands.add_parser("plan", help="terraform plan for one environment")
    plan.add_argument("environment")
    plan.add_argument("--no-color", action="store_true", help="plain text output (for CI comments)")
    plan.add_argument("--no-lock", action="store_true",
                      help="do not take the state lock (read-only credentials, e.g. pull-request plans)")
    plan.add_argument("--summary", type=Path, metavar="FILE",
                      help="also write the summary table (Markdown) here (the pull-request comment's start)")
    plan.set_defaults(handler=cmd_plan)

    drift = commands.add_parser("drift", help="refresh-only plan: exit 0 no drift, 2 drift, 1 error (read-only)")
    drift.add_argument("environment")
    drift.add_argument("--no-color", action="store_true", help="plain text output (for CI)")
    drift.set_defaults(handler=cmd_drift)

    bootstrap = commands.add_parser("deploy-bootstrap", help="create/update the state bucket, lock table, KMS key")
    bootstrap.add_argument("--yes", action="store_true", help="apply without the typed confirmation")
    bootstrap.set_defaults(handler=cmd_deploy_bootstrap)

    deploy = commands.add_parser("deploy", help="preflight, plan and apply one environment")
    deploy.add_argument("environment")
    deploy.add_argument("--yes", action="store_true", help="apply without the typed confirmation (CI)")
    deploy.set_defaults(handler=cmd_deploy)

    database = commands.add_parser("database-bootstrap",
                                   help="run an applied environment's database bootstrap task again")
    database.add_argument("environment")
    database.set_defaults(handler=cmd_database_bootstrap)

    destroy = commands.add_parser("destroy", help="destroy one non-production environment")
    destroy.add_argument("environment")
    destroy.add_argument("--yes", action="store_true", help="destroy without the typed confirmation")
    destroy.set_defaults(handler=cmd_destroy)

    back = commands.add_parser("restore", help="restore the database's newest (or a named) recovery point into a "
                                                "new cluster (dry run without --yes)")
    back.add_argument("environment")
    back.add_argument("--region", help="the environment's region (default) or its [dr] region")
    which = back.add_mutually_exclusive_group()
    which.add_argument("--snapshot", metavar="ID", help="this cluster snapshot instead of the newest")
    which.add_argument("--latest", action="store_true", help="the newest available snapshot (the default)")
    back.add_argument("--subnet-group", help="DB subnet group to restore into (default: the environment's)")
    back.add_argument("--security-group", help="name of the security group in that subnet group's VPC "
                                               "(default: the environment's database group)")
    back.add_argument("--yes", action="store_true", help="create the cluster (without it: print the plan only)")
    back.set_defaults(handler=cmd_restore)

    up = commands.add_parser("local-up", help="run the emulator and deploy bootstrap + an environment to it")
    up.add_argument("environment", nargs="?", default=LOCAL_ENVIRONMENT)
    up.add_argument("--port", type=int, default=0, help="emulator port on 127.0.0.1 (default: any free port)")
    up.add_argument("--bootstrap-only", action="store_true", help="deploy only the state backend")
    up.set_defaults(handler=cmd_local_up)

    down = commands.add_parser("local-down", help="stop the emulator and remove everything local-up created")
    down.set_defaults(handler=cmd_local_down)
    for sub in (up, down):
        sub.add_argument("--local-dir", type=Path, default=default_local_dir(), help="default: .local/")
    return parser


def main(argv: Sequence[str] | None = None, tools: Tools | None = None) -> int:
    tools = tools or Tools()
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:  # argparse has printed the usage error
        return int(exit_.code or 0)
    try:
        return args.handler(tools, args)
    except UsageError as error:
        print(f"infra: {error}", file=tools.err)
        return EXIT_USAGE
    except Refused as error:
        print(f"infra: {error}", file=tools.err)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        print("infra: interrupted", file=tools.err)
        return 130


if __name__ == "__main__":
    sys.exit(main())
