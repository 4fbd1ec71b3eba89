"""Emulated deployment tier: the real terraform CLI deploys the synthesized stacks to moto.

One module-scoped flow, in the order an operator follows, riding on one deployment:

1. `python -m ops local-up`, exactly as a newcomer runs it (a copy of the product whose
   dev has DR_TABLE): its own emulator (a moto server process on 127.0.0.1), bootstrap applied
   with local state (state bucket and its replica, lock table, KMS keys), then dev with its state
   in that bucket; both stacks' outputs printed; the preflight passes against that bootstrap;
2. in the background, the account baseline stack (AWS Config, CloudTrail) and the README's
   `npx cdktf deploy bootstrap` / `npx cdktf diff <env>` of production (not deployed here);
3. the state object is in the bucket, KMS-encrypted with the bootstrap key; backups and replication;
4. a second terraform process holds the state lock; a concurrent `plan` is refused, both by
   the S3 lock file and, for CLIs that only know it, by the DynamoDB lock; then the lock is
   released and both lock records are gone;
5. a second plan of the whole stack changes nothing but the attributes moto reads back wrongly
   (named per type in EMULATOR_GAPS), compared attribute by attribute in `terraform show -json`;
   `python -m ops drift` names changes made behind Terraform's back;
   nightly only (issue 25; too long for the per-commit budget): dev made a standby, planned against dev's
   state (its database neither replaced nor destroyed, its master password moved off RDS management in
   place, the global database created from the cluster's ARN), dev-dr applied into the second region, its
   cluster joining a global database; `python -m ops failover dev` run against it until moto lacks the
   switchover and the failover (gaps rds-global-source, rds-global-failover);
6. a restore drill: `python -m ops restore dev --write` (the same restore again changes nothing), then
   the deploy onto the restored cluster, checked in AWS; `destroy` of dev succeeds (both nightly only);
   `destroy` of bootstrap is refused by Terraform because the bucket, table and key carry `prevent_destroy`;
7. `python -m ops local-down` stops the emulator and removes local-up's folder, which discards the
   protected bootstrap resources with everything else (never destroyed, by design).

Nothing is written outside pytest's tmp dirs, and any request for a non-loopback address fails
(see DEAD_PROXY). The refusal checks ask a second moto, inside this process, so they need no
deployment.

Every step runs once (see `Deployment.step`); a test whose prerequisite step failed reports that
step instead of a confusing follow-on error, and any single test can still be run alone.

Everything moto cannot model, and what is done about it, is listed in `EMULATOR_GAPS` of
ops/emulator.py, which also holds the workarounds (the same ones `python -m ops local-up` uses).
Each type it calls not creatable or not destroyable is asked of moto first (`REFUSALS`), so a gap
that moto has since closed, or one added without cause, fails here.
"""

from __future__ import annotations

import copy
import fnmatch
import functools
import io
import json
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from _pytest.mark.expression import Expression

from bootstrap.stack import STACK_NAME as BOOTSTRAP_STACK
from environments.loader import load_project
from environments.model import EnvironmentConfig, ProjectConfig
from ops import cli, database_bootstrap, emulator, errors, plan_report, preflight, project, restore
from ops import local as ops_local
from ops import tools as ops_tools
from ops.database_bootstrap import BootstrapRun
from tests.conftest import ENVIRONMENTS_DIR, ROOT, read_stacks, synthesize
from tests.moto_server import loopback_moto
from tests.terraform_tools import hermetic_environment, run_terraform, terraform_binary, unavailable
from tests.test_emulator_left_out import ACCOUNTS, STATE_ACCOUNT, emulated_files, pinned_left_out
from tests.test_infra_cli import is_running, read_pid
from tests.test_main_cli import copy_product
from tools.terraform_cli_config import write_cli_config

# One worker runs the whole flow under `pytest -n N --dist loadgroup` (what `make test` uses).
pytestmark = [pytest.mark.terraform, pytest.mark.emulator, pytest.mark.slow, pytest.mark.xdist_group("emulated-deploy")]

LOOPBACK = emulator.LOOPBACK
DEPLOYED_ENVIRONMENT = "dev"
# Any request for a non-loopback address goes to this proxy, where nothing listens, so it fails
# at once instead of reaching AWS (Go's HTTP client never proxies loopback addresses).
DEAD_PROXY = f"http://{LOOPBACK}:1"
# A resource a plan's text says it changes: "will be created/updated/destroyed" or "must be replaced".
PLANNED_CHANGE = re.compile(r"# (aws_[a-z0-9_]+)\.\S+ (?:will be|must be)")
LOCK_ERROR = "Error acquiring the state lock"
LOCK_WAIT_SECONDS = 120
LOCK_RELEASE_SECONDS = 60
APPLY_TIMEOUT_SECONDS = 900
LOCAL_UP_TIMEOUT_SECONDS = 600
# moto answers at once; the provider's own waits (KMS propagation, S3 lifecycle) dominate, so
# running more of them side by side is what makes the tier faster.
PARALLELISM = "-parallelism=30"
# The same for the plans the product's commands run here (`ops drift`, `ops deploy`): Terraform reads it.
PLANS_IN_PARALLEL = {"TF_CLI_ARGS_plan": PARALLELISM}
# dev's own account (the state stays in moto's default account): bucket names that embed the account
# (`<app>-<env>-site-<account>`) use it, and every check of dev's resources asks in it.
ACCOUNT = ACCOUNTS[DEPLOYED_ENVIRONMENT]


# Every gap between moto and AWS this flow runs into (reason, workaround, what is not proven) is in
# ops/emulator.py EMULATOR_GAPS, next to the workarounds that `python -m ops local-up` uses too;
# emulator.gap_types() gives the resource types each kind of gap names.


# --- the emulator --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def emulator_endpoint() -> Iterator[str]:
    """moto server on a free loopback port, inside this process; reset and stopped at module end."""
    try:
        import moto.server  # noqa: F401  (moto[server] provides the threaded server)
    except ImportError as error:
        unavailable(f"moto[server] is not installed: {error}")
    with pytest.MonkeyPatch.context() as patch:
        emulator.work_around_emulator_gaps(patch)
        requests_log = logging.getLogger("werkzeug")  # one line per request: thousands per run
        level = requests_log.level
        requests_log.setLevel(logging.WARNING)
        try:
            with loopback_moto(patch) as endpoint:
                yield endpoint
        finally:
            requests_log.setLevel(level)


def _emulator_environment(base: Mapping[str, str], region: str, scratch: Path) -> dict[str, str]:
    """The terraform environment plus fake credentials; no inherited AWS or proxy setting survives."""
    proxy_names = {"http_proxy", "https_proxy", "no_proxy", "all_proxy"}
    env = {name: value for name, value in base.items()
           if not name.startswith("AWS_") and name.lower() not in proxy_names}
    env.update({
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        # No profile or credentials file of this machine may be read.
        "AWS_CONFIG_FILE": str(scratch / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(scratch / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    })
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env[name] = DEAD_PROXY
    for name in ("NO_PROXY", "no_proxy"):
        env[name] = f"{LOOPBACK},localhost"
    return env


def _moto_client(endpoint: str, service: str, region: str, attempts: int = 3, account: str | None = None):
    """A client in moto's default account (the state account), or in `account` through an assumed role:
    moto keeps every account's resources apart and answers for the account of the credentials."""
    import boto3
    from botocore.config import Config

    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    if account is not None:
        sts = boto3.client("sts", endpoint_url=endpoint, region_name=region, **credentials)
        assumed = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/emulated-checks",
                                  RoleSessionName="emulated-checks")["Credentials"]
        credentials = {"aws_access_key_id": assumed["AccessKeyId"], "aws_secret_access_key": assumed["SecretAccessKey"],
                       "aws_session_token": assumed["SessionToken"]}
    return boto3.client(service, endpoint_url=endpoint, region_name=region,
                        config=Config(retries={"total_max_attempts": attempts}), **credentials)


@dataclass
class _Failed:
    error: BaseException


@dataclass
class Deployment:
    """Everything the steps share: the emulator, the synthesized app and terraform's environment."""

    endpoint: str
    project: ProjectConfig
    outdir: Path
    product: Path  # the copy of the product (code and configuration) everything synthesizes from
    scratch: Path
    local: Path  # local-up's folder: its emulator, synthesis, terraform folders and bootstrap state
    local_up: subprocess.Popen  # still applying dev when the flow starts
    env: dict[str, str]
    stacks: dict[str, dict]
    targets: list[str]
    left_out: set[str]
    mirror: Path  # the provider mirror, for terraform CLI configurations of the flow's own
    outcomes: dict[str, Any] = field(default_factory=dict)
    # Work running in the background (the account baseline and the cdktf CLI overlap the dev apply), by step name.
    background: dict[str, Future] = field(default_factory=dict)
    cdktf: CdktfCli | None = None  # the checkout the README's cdktf commands run in
    # Whether this run includes the (nightly) standby checks: then their work overlaps the others'.
    standby_selected: bool = False

    @property
    def state(self):
        return self.project.state

    @property
    def environment(self):
        return self.project.environment(DEPLOYED_ENVIRONMENT)

    @property
    def baseline(self):
        """The account baseline of the deployed environment's account and region."""
        env = self.environment
        (baseline,) = [b for b in self.project.baselines if (b.account_id, b.region) == (env.account_id, env.region)]
        return baseline

    @property
    def config_root(self) -> Path:
        """The product copy holding the deployed configuration (`environments/`, with DR_TABLE for dev)."""
        return self.product

    def stack_dir(self, name: str) -> Path:
        """Where local-up ran terraform for the stacks it deployed; the app's own synthesis for the rest."""
        deployed = self.local / "cdktf.out" / "stacks" / name
        return deployed if deployed.is_dir() else self.outdir / "stacks" / name

    def terraform(self, stack: str, command: str, *args: str, check: bool = True, cwd: Path | None = None,
                  timeout: float = APPLY_TIMEOUT_SECONDS):
        """`terraform COMMAND -no-color ARGS`; COMMAND may be two words, such as "state rm"."""
        return run_terraform([*command.split(), "-no-color", *args], cwd or self.stack_dir(stack), self.env,
                             check=check, timeout=timeout)

    def client(self, service: str, region: str | None = None):
        """A client in the state account (the bootstrap's)."""
        return _moto_client(self.endpoint, service, region or self.state.region)

    def dev_client(self, service: str, region: str | None = None):
        """A client in dev's own account, where dev and its account baseline are deployed."""
        return _moto_client(self.endpoint, service, region or self.environment.region, account=ACCOUNT)

    def step(self, name: str, action: Callable[[], Any]) -> Any:
        """Run `action` once; later callers get its result, or a failure naming this step."""
        if name in self.outcomes:
            outcome = self.outcomes[name]
            if isinstance(outcome, _Failed):
                pytest.fail(f"prerequisite step '{name}' failed earlier:\n{outcome.error}", pytrace=False)
            return outcome
        try:
            result = action()
        except BaseException as error:  # pytest.fail() raises BaseException subclasses too
            self.outcomes[name] = _Failed(error)
            raise
        self.outcomes[name] = result
        return result


def _product_with_dr(root: Path) -> Path:
    """A copy of the product (code and shipped files) in which the deployed environment has DR_TABLE.

    Everything that synthesizes during the flow (the deployment itself, `python -m ops drift`, `python -m ops
    restore`, the README's cdktf commands) reads this copy, so all of them see the same configuration.
    """
    product = copy_product(root / "product")  # ops/ and tools/ included
    emulated_files(product / ENVIRONMENTS_DIR.name)
    return product


def _start_local_up(product: Path, local: Path, mirror: Path, scratch: Path) -> subprocess.Popen:
    """Start `python -m ops local-up` of the product copy, exactly as a newcomer runs it: no
    AWS settings of this machine, providers from the mirror. It starts its own emulator (a moto server
    process on loopback) and applies bootstrap, then dev, to it."""
    env = {name: value for name, value in hermetic_environment({}).items()
           if not name.startswith("AWS_") and name != project.EMULATOR_VARIABLE}
    env.update({ops_local.MIRROR_VARIABLE: str(mirror), "NO_PROXY": f"{LOOPBACK},localhost",
                "no_proxy": f"{LOOPBACK},localhost", "AWS_CONFIG_FILE": str(scratch / "no-aws-config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(scratch / "no-aws-credentials"),
                "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"})
    command = [sys.executable, "-m", "ops", "local-up", "--local-dir", str(local)]
    # Files, not pipes: nobody reads while it runs, and a full pipe would stall it.
    with (scratch / "local-up.out").open("w") as out, (scratch / "local-up.err").open("w") as err:
        return subprocess.Popen(command, cwd=product, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)


def _local_up_output(scratch: Path) -> tuple[str, str]:
    return (scratch / "local-up.out").read_text(), (scratch / "local-up.err").read_text()


def _bootstrap_done(process: subprocess.Popen, local: Path, scratch: Path) -> None:
    """Wait until local-up has applied the bootstrap: it initialises dev only after that apply."""
    deadline = time.monotonic() + LOCAL_UP_TIMEOUT_SECONDS
    dev_backend = local / "cdktf.out" / "stacks" / DEPLOYED_ENVIRONMENT / ".terraform"
    while not dev_backend.exists():
        if process.poll() is not None:
            out, err = _local_up_output(scratch)
            pytest.fail(f"local-up exited {process.returncode} before dev:\n{out[-4000:]}\n{err[-4000:]}")
        assert time.monotonic() < deadline, f"local-up did not reach dev within {LOCAL_UP_TIMEOUT_SECONDS}s"
        time.sleep(0.5)


def _stop_local_emulator(local: Path) -> None:
    """What local-down would do, for a flow that ended before its local-down test ran."""
    if (local / "emulator.pid").exists() and is_running(read_pid(local)):
        os.kill(read_pid(local), signal.SIGKILL)


@pytest.fixture(scope="module")
def deployment(terraform_tools, terraform_env, tmp_path_factory, request) -> Iterator[Deployment]:
    """`python -m ops local-up` of the checked-in configuration plus DR_TABLE for dev; every check rides on it.

    Ready once the bootstrap is applied (dev still applying: see `environment_applied`). The whole app
    is also synthesized (same configuration, same emulator) into a folder of its own, for the stacks
    local-up does not deploy (the account baseline) and for commands that synthesize again.
    """
    root = tmp_path_factory.mktemp("emulated")
    product = _product_with_dr(root)
    scratch, local = root / "scratch", root / "local"
    scratch.mkdir()
    process = _start_local_up(product, local, terraform_tools.mirror, scratch)
    try:
        _bootstrap_done(process, local, scratch)
        endpoint = (local / "emulator.endpoint").read_text().strip()
        project = load_project(product / ENVIRONMENTS_DIR.name, emulator_endpoint=endpoint)
        outdir = root / "cdktf.out"
        synthesize(project, outdir)
        stacks = read_stacks(outdir)
        targets, left_out = emulator.deployable(stacks[DEPLOYED_ENVIRONMENT])
        yield Deployment(
            endpoint=endpoint, project=project, outdir=outdir, product=product, scratch=scratch, local=local,
            local_up=process, env=_emulator_environment(terraform_env, project.state.region, scratch),
            stacks=stacks, targets=targets, left_out=left_out, mirror=terraform_tools.mirror,
            standby_selected=nightly_selected(request.config),
        )
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        _stop_local_emulator(local)


# --- steps ---------------------------------------------------------------------------------------

def bootstrap_applied(deployment: Deployment) -> dict[str, Any]:
    """Bootstrap deployed (by local-up), and the work that needs only it started; returns its outputs."""
    baseline_started(deployment)
    cdktf_cli_started(deployment)

    def outputs() -> dict[str, Any]:
        shown = json.loads(deployment.terraform(BOOTSTRAP_STACK, "output", "-json").stdout)
        return {name: output["value"] for name, output in shown.items()}

    return deployment.step("bootstrap outputs", outputs)


def baseline_started(deployment: Deployment) -> None:
    """Start applying the account baseline in the background: it needs only the bootstrap, and runs
    next to the cdktf CLI and the checks that follow."""
    if "baseline apply" in deployment.background:
        return
    name = deployment.baseline.stack_name
    targets, _ = emulator.deployable(deployment.stacks[name])

    # `init` in the foreground: Terraform's plugin cache (one per worker) is not safe for concurrent
    # inits; the apply itself never touches the cache.
    deployment.terraform(name, "init", "-input=false")

    def apply() -> dict[str, Any]:
        deployment.terraform(name, "apply", "-auto-approve", "-input=false", PARALLELISM, *_target_flags(targets))
        outputs = json.loads(deployment.terraform(name, "output", "-json").stdout)
        return {key: output["value"] for key, output in outputs.items()}

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="baseline-apply")
    deployment.background["baseline apply"] = executor.submit(apply)
    executor.shutdown(wait=False)


def baseline_applied(deployment: Deployment) -> dict[str, Any]:
    """The account baseline deployed (its state in the bucket, under its own key); returns its outputs."""
    baseline_started(deployment)
    return deployment.step("baseline apply", deployment.background["baseline apply"].result)


def _target_flags(addresses: Iterable[str]) -> list[str]:
    return [f"-target={address}" for address in sorted(addresses)]


def local_up_finished(deployment: Deployment) -> str:
    """local-up's exit, successful; returns what it printed."""
    def finish() -> str:
        deployment.local_up.wait(timeout=LOCAL_UP_TIMEOUT_SECONDS)
        out, err = _local_up_output(deployment.scratch)
        log = deployment.local / "terraform.log"
        tail = log.read_text()[-4000:] if log.exists() else "(no terraform log)"
        assert deployment.local_up.returncode == 0, f"local-up failed:\n{out[-4000:]}\n{err[-4000:]}\n{tail}"
        return out

    return deployment.step("local-up", finish)


def environment_applied(deployment: Deployment) -> None:
    """dev deployed by local-up, with its state in the bootstrap bucket; the standby's work started if selected."""
    bootstrap_applied(deployment)
    local_up_finished(deployment)
    if deployment.standby_selected:
        standby_started(deployment)


# --- dev with a warm standby (issue 25), next to the rest ------------------------------------------

# The marks of the standby's checks: its work starts only where a run selects them.
NIGHTLY_MARKS = frozenset({"nightly", *(mark.name for mark in pytestmark)})

# dev's [dr] table (the file's last) made a standby: a network of its own, no API task until a failover.
STANDBY_SETTINGS = 'strategy = "standby"\nstandby_cidr = "10.40.0.0/16"\nstandby_min_tasks = 0\n'
# moto cannot make a global database from a cluster outside us-east-1 (gap rds-global-source), and applying
# the standby to dev itself would change what every later step of this flow checks: the global database is
# made from a stand-in cluster; dev's side is proven by a plan of the standby configuration against dev's state.
STANDBY_SOURCE = "webapp-dev-standby-source"


@dataclass(frozen=True)
class Standby:
    """The standby configuration of dev: its folder (`environments/`), project and synthesized stacks."""

    root: Path
    project: ProjectConfig
    outdir: Path

    def stack_dir(self, name: str) -> Path:
        return self.outdir / "stacks" / name

    @property
    def environment(self) -> EnvironmentConfig:
        return self.project.environment(DEPLOYED_ENVIRONMENT)


def standby_configuration(deployment: Deployment) -> Standby:
    """dev as deployed, plus STANDBY_SETTINGS; dev and dev-dr synthesized and initialised (in the foreground:
    jsii and Terraform's plugin cache are not for concurrent use)."""
    def prepare() -> Standby:
        from stacks.app import build_app

        root = deployment.scratch / "standby"
        shutil.copytree(deployment.product / ENVIRONMENTS_DIR.name, root / ENVIRONMENTS_DIR.name)
        dev = root / ENVIRONMENTS_DIR.name / f"{DEPLOYED_ENVIRONMENT}.toml"
        assert dev.read_text().rstrip().endswith("vault_lock = true"), "dev's [dr] table is no longer its last"
        dev.write_text(dev.read_text() + STANDBY_SETTINGS)
        project = load_project(root / ENVIRONMENTS_DIR.name, emulator_endpoint=deployment.endpoint)
        standby = Standby(root, project, root / "cdktf.out")
        names = [DEPLOYED_ENVIRONMENT, standby.environment.dr_stack_name]
        build_app(project, standby.outdir, stacks=names).synth()
        for name in names:
            deployment.terraform(name, "init", "-input=false", cwd=standby.stack_dir(name))
        return standby

    return deployment.step("standby configuration", prepare)


def nightly_selected(config: pytest.Config) -> bool:
    """Whether this run's `-m` expression selects tests marked nightly (the session's items cannot say: an
    xdist worker holds every collected test, deselected ones included)."""
    expression = config.getoption("markexpr") or ""
    return not expression or Expression.compile(expression).evaluate(lambda name, **_: name in NIGHTLY_MARKS)


def standby_started(deployment: Deployment) -> None:
    """In the background, once dev is applied: plan the standby against dev's state (read-only, no lock),
    make the global database, apply dev-dr into it. It overlaps the checks that follow, in runs that include
    the (nightly) standby checks only: on two cores it costs the per-commit run more than its budget allows."""
    if "standby" in deployment.background:
        return
    try:
        standby = standby_configuration(deployment)
    except Exception:  # only the standby's own tests depend on it: they report the step's failure
        return
    stacks = read_stacks(standby.outdir)
    env = standby.environment

    def run() -> dict[str, Any]:
        planfile = deployment.scratch / "standby-dev.tfplan"
        targets, _ = emulator.deployable(stacks[DEPLOYED_ENVIRONMENT])
        deployment.terraform(DEPLOYED_ENVIRONMENT, "plan", "-input=false", "-lock=false", PARALLELISM,
                             f"-out={planfile}", *_target_flags(targets), cwd=standby.stack_dir(DEPLOYED_ENVIRONMENT))
        plan = json.loads(deployment.terraform(DEPLOYED_ENVIRONMENT, "show", "-json", str(planfile),
                                               cwd=standby.stack_dir(DEPLOYED_ENVIRONMENT)).stdout)
        source = _stand_in_global_database(deployment.dev_client("rds", env.region), f"{env.application}-"
                                           f"{env.name}-global", STANDBY_SOURCE)
        name = env.dr_stack_name
        targets, _ = emulator.deployable(stacks[name])
        deployment.terraform(name, "apply", "-auto-approve", "-input=false", PARALLELISM, *_target_flags(targets),
                             cwd=standby.stack_dir(name))
        return {"plan": plan, "source": source}

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="standby")
    deployment.background["standby"] = executor.submit(run)
    executor.shutdown(wait=False)


def standby_applied(deployment: Deployment) -> dict[str, Any]:
    environment_applied(deployment)
    standby_started(deployment)
    standby_configuration(deployment)  # its failure, if preparing it failed
    return deployment.step("standby", deployment.background["standby"].result)


def second_plan(deployment: Deployment) -> dict[str, Any]:
    """A plan of the whole deployed stack right after apply, as `terraform show -json` gives it."""
    def plan() -> dict[str, Any]:
        planfile = deployment.scratch / "second.tfplan"
        deployment.terraform(DEPLOYED_ENVIRONMENT, "plan", "-input=false", PARALLELISM, f"-out={planfile}",
                             *_target_flags(deployment.targets))
        return json.loads(deployment.terraform(DEPLOYED_ENVIRONMENT, "show", "-json", str(planfile)).stdout)

    environment_applied(deployment)
    return deployment.step("second plan", plan)


def stack_second_plan(deployment: Deployment, name: str) -> dict[str, Any]:
    """A plan of the bootstrap or the account baseline right after its apply, as `terraform show -json` gives it.

    The bootstrap's plan waits for the README's `cdktf deploy bootstrap` (run in the background), which
    holds the same local state while it runs.
    """
    def plan() -> dict[str, Any]:
        targets, left_out = emulator.deployable(deployment.stacks[name])
        planfile = deployment.scratch / f"second-{name}.tfplan"
        deployment.terraform(name, "plan", "-input=false", PARALLELISM, f"-out={planfile}",
                             *(_target_flags(targets) if left_out else []))
        return json.loads(deployment.terraform(name, "show", "-json", str(planfile)).stdout)

    if name == BOOTSTRAP_STACK:
        environment_applied(deployment)
        if "cdktf cli" in deployment.background:  # not started where npx cdktf cannot run (Node.js 24)
            deployment.step("cdktf cli", deployment.background["cdktf cli"].result)
    else:
        baseline_applied(deployment)
    return deployment.step(f"second plan of {name}", plan)


# --- what a plan changes, attribute by attribute ---------------------------------------------------

EMPTY = (None, "", [], {})  # the provider treats an unset, empty string, list or map alike
EXPLAINABLE_ACTIONS = (["update"], ["delete", "create"], ["create", "delete"])


def _changed_paths(before: Any, after: Any, unknown: Any, count_unknown: bool, path: tuple = ()) -> set[tuple]:
    """Leaf paths where the planned value differs from the state's (or, if counted, becomes unknown)."""
    if unknown is True:
        return {path} if count_unknown else set()
    if isinstance(before, dict) and isinstance(after, dict):
        unknown = unknown if isinstance(unknown, dict) else {}
        return {changed for key in before.keys() | after.keys()
                for changed in _changed_paths(before.get(key), after.get(key), unknown.get(key), count_unknown,
                                              (*path, key))}
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        unknown = unknown if isinstance(unknown, list) else [None] * len(after)
        return {changed for index, (old, new) in enumerate(zip(before, after, strict=True))
                for changed in _changed_paths(old, new, unknown[index], count_unknown, (*path, index))}
    return set() if before == after or (before in EMPTY and after in EMPTY) else {path}


def _attribute(path: tuple | list) -> str:
    """A path as EMULATOR_GAPS names it: dotted, without list indices."""
    return ".".join(str(part) for part in path if not isinstance(part, int))


def _named_by(attribute: str, named: set[str]) -> str | None:
    """The drifting attribute path that covers `attribute` (itself or an ancestor), if any."""
    return next((path for path in named if attribute == path or attribute.startswith(f"{path}.")), None)


def _changed_attributes(change: dict) -> set[str]:
    """What a resource change alters. A replacement recomputes the computed attributes (unknown until
    created), so only its known differences and the paths that force it count; an update counts all."""
    details = change["change"]
    replaced = "delete" in details["actions"] and "create" in details["actions"]
    paths = _changed_paths(details.get("before"), details.get("after"), details.get("after_unknown"), not replaced)
    paths |= {tuple(path) for path in details.get("replace_paths", [])}
    return {_attribute(path) for path in paths}


def _reference_parts(reference: str) -> tuple[str, list[str | int]]:
    """("aws_rds_cluster.db", ["master_user_secret", 0, "secret_arn"]) from a plan's reference string."""
    parts = [int(part) if part.isdigit() else part for part in re.findall(r"[^.\[\]]+", reference)]
    size = 3 if reference.startswith("data.") else 2
    return ".".join(map(str, parts[:size])), parts[size:]


def _most_specific(references: Iterable[str]) -> set[str]:
    """Drop the references the plan lists only as prefixes of longer ones (`x.a` beside `x.a[0].b`)."""
    references = set(references)
    return {ref for ref in references
            if not any(other != ref and other.startswith((f"{ref}.", f"{ref}[")) for other in references)}


def _references(expression: Any) -> list[str]:
    """Every reference in a configuration expression (nested blocks included)."""
    if isinstance(expression, list):
        return [ref for item in expression for ref in _references(item)]
    if not isinstance(expression, dict):
        return []
    return [*expression.get("references", []),
            *(ref for key, value in expression.items() if key != "references" for ref in _references(value))]


def _value_unchanged(changes: Mapping[str, dict], reference: str) -> bool:
    """Whether what `reference` reads is known now and the same as in the state."""
    address, path = _reference_parts(reference)
    change = changes.get(address)
    if change is None or change["change"]["actions"] == ["no-op"]:
        return True
    if address.startswith("data.") or change["change"]["actions"] != ["update"]:
        return False
    before, after, unknown = (change["change"].get(key) for key in ("before", "after", "after_unknown"))
    for part in path:
        if unknown is True:
            return False
        before, after, unknown = (value[part] if isinstance(value, (dict, list)) and
                                  (part in value if isinstance(value, dict) else part < len(value)) else None
                                  for value in (before, after, unknown))
    return unknown is not True and before == after


def deferred_documents_with_unchanged_inputs(plan: dict) -> set[str]:
    """Policy documents read again at apply whose every input is known and unchanged.

    Terraform defers a data source to apply time when a resource it references has any pending
    change (action_reason read_because_dependency_pending), which turns its output, and every
    attribute built from it, unknown in the plan. `aws_iam_policy_document` is a pure function of its
    inputs, so when each value it reads is known and equal to the state's, its JSON is the same.
    The shipped stacks write their documents inline (core/iam.py, issue 23), which Terraform never defers,
    so this explains only a data-source document a change brings back; test_a_deferred_document_explains_
    only_what_its_unchanged_inputs_build proves it on a plan of that shape.
    """
    changes = {change["address"]: change for change in plan.get("resource_changes", [])}
    config = {block["address"]: block for block in plan["configuration"]["root_module"].get("resources", [])}
    return {address for address, change in changes.items()
            if change["type"] == "aws_iam_policy_document" and change["change"]["actions"] == ["read"]
            and all(_value_unchanged(changes, reference)
                    for reference in _most_specific(_references(config[address]["expressions"])))}


def _read_again_unchanged(plan: dict, change: dict, attribute: str, documents: set[str]) -> bool:
    """Whether an unknown attribute is built only from such unchanged, deferred policy documents."""
    config = {block["address"]: block for block in plan["configuration"]["root_module"].get("resources", [])}
    expression = config[change["address"]]["expressions"].get(attribute.split(".")[0], {})
    references = _most_specific(_references(expression))
    return bool(references) and all(_reference_parts(reference)[0] in documents for reference in references)


def plan_against_gaps(plan: dict, drifting: Mapping[str, set[str]]) -> tuple[dict[str, Any], dict[str, set[str]]]:
    """(changes no gap explains, by address; the drifting attribute paths the plan did change, by type).

    Explained: an in-place update or a replacement of a drifting type that alters only that type's
    named attributes, and an attribute that is unknown only because it is built from a policy document
    re-read with unchanged inputs (above). Not explained: anything else, including any resource to
    create or destroy and any output that changes.
    """
    documents = deferred_documents_with_unchanged_inputs(plan)
    unexplained: dict[str, Any] = {}
    seen: dict[str, set[str]] = {}
    for change in plan.get("resource_changes", []):
        actions = change["change"]["actions"]
        if change["mode"] != "managed" or actions == ["no-op"]:
            continue
        if actions not in EXPLAINABLE_ACTIONS:
            unexplained[change["address"]] = actions
            continue
        named = drifting.get(change["type"], set())
        attributes = _changed_attributes(change)
        others = {attribute for attribute in attributes if not _named_by(attribute, named)
                  and not (actions == ["update"] and _read_again_unchanged(plan, change, attribute, documents))}
        if others or not attributes:
            unexplained[change["address"]] = sorted(others) or actions
        seen.setdefault(change["type"], set()).update(
            path for attribute in attributes if (path := _named_by(attribute, named)))
    for name, output in plan.get("output_changes", {}).items():
        if output["actions"] != ["no-op"]:
            unexplained[f"output.{name}"] = output["actions"]
    return unexplained, seen


# --- helpers for the assertions ------------------------------------------------------------------

def _statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    statements = policy.get("Statement", [])
    return statements if isinstance(statements, list) else [statements]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _lock_id(deployment: Deployment) -> str:
    """The DynamoDB key Terraform's S3 backend uses for the state lock."""
    return f"{deployment.state.bucket}/{deployment.environment.state_key}"


def _s3_lock(deployment: Deployment) -> dict | None:
    s3 = deployment.client("s3")
    try:
        body = s3.get_object(Bucket=deployment.state.bucket, Key=f"{deployment.environment.state_key}.tflock")
    except s3.exceptions.NoSuchKey:
        return None
    return json.loads(body["Body"].read())


def _dynamodb_lock(deployment: Deployment) -> dict | None:
    item = deployment.client("dynamodb").get_item(
        TableName=deployment.state.lock_table, Key={"LockID": {"S": _lock_id(deployment)}}, ConsistentRead=True,
    ).get("Item")
    return json.loads(item["Info"]["S"]) if item else None


@contextmanager
def _state_lock_held_by_another_terraform(deployment: Deployment) -> Iterator[str]:
    """A second, real terraform process holding the dev state lock; yields the lock's ID.

    `terraform console` takes the state lock like any operation and keeps it while it waits for
    input on stdin; closing stdin ends it normally, which releases the lock.
    """
    log = deployment.scratch / "lock-holder.log"
    with log.open("w") as output:
        holder = subprocess.Popen(
            [terraform_binary(), "console", "-no-color"], cwd=deployment.stack_dir(DEPLOYED_ENVIRONMENT),
            env=deployment.env, stdin=subprocess.PIPE, stdout=output, stderr=subprocess.STDOUT, text=True,
        )
    try:
        yield _wait_for_both_locks(deployment, holder, log)
        holder.stdin.close()
        code = holder.wait(timeout=LOCK_RELEASE_SECONDS)
        assert code == 0, f"the lock holder exited with {code}:\n{log.read_text()}"
    finally:
        if holder.poll() is None:  # only on failure: end the process this test started
            holder.kill()
            holder.wait()


def _wait_for_both_locks(deployment: Deployment, holder: subprocess.Popen, log: Path) -> str:
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while time.monotonic() < deadline:
        if holder.poll() is not None:
            pytest.fail(f"the lock holder exited ({holder.returncode}) before locking:\n{log.read_text()}")
        s3_lock, table_lock = _s3_lock(deployment), _dynamodb_lock(deployment)
        if s3_lock and table_lock:
            assert s3_lock["ID"] == table_lock["ID"], f"two different locks: {s3_lock} / {table_lock}"
            return s3_lock["ID"]
        time.sleep(0.2)
    pytest.fail(f"the state lock did not appear within {LOCK_WAIT_SECONDS}s:\n{log.read_text()}")


def _dynamodb_only_client(deployment: Deployment) -> Path:
    """A working directory for a client that knows only the DynamoDB lock (use_lockfile=false)."""
    workdir = deployment.scratch / "dynamodb-only-client"
    workdir.mkdir(exist_ok=True)
    shutil.copy(deployment.stack_dir(DEPLOYED_ENVIRONMENT) / "cdk.tf.json", workdir)
    deployment.terraform(DEPLOYED_ENVIRONMENT, "init", "-input=false", "-backend-config=use_lockfile=false",
                         cwd=workdir)
    return workdir


def _state_resources(deployment: Deployment, stack: str) -> list[dict]:
    """Managed resources in a stack's state: address, type, name and attribute values of each instance.

    From `terraform state pull`, which reads the backend only (`show -json` starts every provider).
    """
    state = json.loads(deployment.terraform(stack, "state pull").stdout or "{}")
    return [{"address": resource["type"] + "." + resource["name"] + (
                f"[{json.dumps(instance['index_key'])}]" if "index_key" in instance else ""),
             "type": resource["type"], "name": resource["name"], "values": instance["attributes"]}
            for resource in state.get("resources", []) if resource["mode"] == "managed"
            for instance in resource["instances"]]


def _prevent_destroy_addresses(stack: dict) -> set[str]:
    return {address for address, body in emulator.stack_blocks(stack).items()
            if not address.startswith("data.") and body.get("lifecycle", {}).get("prevent_destroy")}


def _address_of(stack: dict, kind: str, name: str) -> str:
    matches = [f"{kind}.{logical}" for logical, body in stack["resource"].get(kind, {}).items()
               if name in (body.get("bucket"), body.get("name"))]
    assert len(matches) == 1, f"expected one {kind} named {name}, found {matches}"
    return matches[0]


# --- the ordered tests ---------------------------------------------------------------------------

def test_every_emulator_gap_is_still_needed(stacks):
    """A gap whose resource type left every stack is stale: delete it, so the list stays the truth.

    Every shipped stack counts, not only the one deployed here: `python -m ops local-up` deploys any of them.
    """
    declared = {address.split(".")[-2] for stack in stacks.values() for address in emulator.stack_blocks(stack)}
    named = {kind for attribute in ("not_creatable", "drifts", "forgotten_before_destroy")
             for kind in emulator.gap_types(attribute)}
    stale = named - declared
    assert not stale, f"EMULATOR_GAPS names resource types no shipped stack has any more: {stale}"


# --- what moto still cannot do, asked of moto itself ----------------------------------------------

MOTO_ACCOUNT = "123456789012"  # the account moto answers as for any credentials


@dataclass(frozen=True)
class Refusal:
    """The call the provider makes for a resource type, and moto's answer that makes it a gap."""

    call: Callable[[Callable[..., Any]], None]  # given a client factory, makes the call (and cleans up)
    status: int  # the HTTP status moto answers with
    code: str  # the error code (botocore gives the status when moto answers an unknown API without one)
    # With a 500: moto's own words for an action it lacks ("The <action> action has not been implemented"),
    # which tells "not implemented" from a crash (both reach the client as the same HTML 500 page).
    not_implemented: str = ""


def _create_cache_policy(client: Callable[..., Any]) -> None:
    client("cloudfront").create_cache_policy(CachePolicyConfig={
        "Name": "gap-probe", "MinTTL": 0, "ParametersInCacheKeyAndForwardedToOrigin": {
            "EnableAcceptEncodingGzip": True, "HeadersConfig": {"HeaderBehavior": "none"},
            "CookiesConfig": {"CookieBehavior": "none"}, "QueryStringsConfig": {"QueryStringBehavior": "none"}}})


def _create_response_headers_policy(client: Callable[..., Any]) -> None:
    client("cloudfront").create_response_headers_policy(ResponseHeadersPolicyConfig={
        "Name": "gap-probe", "SecurityHeadersConfig": {"ContentTypeOptions": {"Override": True}}})


def _publish_function(client: Callable[..., Any]) -> None:
    """moto creates the function; publishing it (what the provider does next) is what fails."""
    cloudfront = client("cloudfront")
    etag = cloudfront.create_function(Name="gap-probe", FunctionConfig={"Comment": "", "Runtime": "cloudfront-js-2.0"},
                                      FunctionCode=b"function handler(event) { return event.request; }")["ETag"]
    try:
        cloudfront.publish_function(Name="gap-probe", IfMatch=etag)
    finally:
        cloudfront.delete_function(Name="gap-probe", IfMatch=etag)


def _list_scalable_target_tags(client: Callable[..., Any]) -> None:
    """A real scalable target (of a real ECS service) first; reading its tags is what fails."""
    ecs, scaling = client("ecs"), client("application-autoscaling")
    ecs.create_cluster(clusterName="gap-probe")
    definition = ecs.register_task_definition(family="gap-probe", containerDefinitions=[
        {"name": "probe", "image": "probe", "memory": 128}])["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster="gap-probe", serviceName="gap-probe", taskDefinition=definition, desiredCount=1)
    target = {"ServiceNamespace": "ecs", "ResourceId": "service/gap-probe/gap-probe",
              "ScalableDimension": "ecs:service:DesiredCount"}
    scaling.register_scalable_target(**target, MinCapacity=1, MaxCapacity=2)
    try:
        (registered,) = scaling.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
        scaling.list_tags_for_resource(ResourceARN=registered["ScalableTargetARN"])
    finally:
        scaling.deregister_scalable_target(**target)
        ecs.delete_service(cluster="gap-probe", service="gap-probe", force=True)
        ecs.delete_cluster(cluster="gap-probe")


def _cancel_managed_rotation(client: Callable[..., Any]) -> None:
    """A secret rotated without a Lambda (as RDS-managed rotation is); destroying the rotation cancels it."""
    secrets = client("secretsmanager")
    arn = secrets.create_secret(Name="gap-probe", SecretString="probe")["ARN"]
    try:
        secrets.rotate_secret(SecretId=arn, RotationRules={"AutomaticallyAfterDays": 30})
        secrets.cancel_rotate_secret(SecretId=arn)
    finally:
        secrets.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)


def _list_budget_tags(client: Callable[..., Any]) -> None:
    """moto creates the budget; reading its tags (what the provider does next) is what fails."""
    budgets = client("budgets")
    budgets.create_budget(AccountId=MOTO_ACCOUNT, Budget={
        "BudgetName": "gap-probe", "BudgetLimit": {"Amount": "10", "Unit": "USD"}, "TimeUnit": "MONTHLY",
        "BudgetType": "COST"})
    try:
        budgets.list_tags_for_resource(ResourceARN=f"arn:aws:budgets::{MOTO_ACCOUNT}:budget/gap-probe")
    finally:
        budgets.delete_budget(AccountId=MOTO_ACCOUNT, BudgetName="gap-probe")


def _create_anomaly_monitor(client: Callable[..., Any]) -> None:
    client("ce").create_anomaly_monitor(AnomalyMonitor={
        "MonitorName": "gap-probe", "MonitorType": "DIMENSIONAL", "MonitorDimension": "SERVICE"})


def _create_anomaly_subscription(client: Callable[..., Any]) -> None:
    """Its parent, a monitor, cannot be created on moto either (the gap above), so none exists here."""
    client("ce").create_anomaly_subscription(AnomalySubscription={
        "MonitorArnList": [f"arn:aws:ce::{MOTO_ACCOUNT}:anomalymonitor/gap-probe"], "Frequency": "DAILY",
        "Subscribers": [{"Address": "gap-probe@example.com", "Type": "EMAIL"}], "SubscriptionName": "gap-probe"})


def _create_sampling_rule(client: Callable[..., Any]) -> None:
    client("xray").create_sampling_rule(SamplingRule={
        "RuleName": "gap-probe", "ResourceARN": "*", "Priority": 1, "FixedRate": 0.05, "ReservoirSize": 1,
        "ServiceName": "*", "ServiceType": "*", "Host": "*", "HTTPMethod": "*", "URLPath": "*", "Version": 1})


def _put_xray_encryption(client: Callable[..., Any]) -> None:
    client("xray").put_encryption_config(Type="KMS", KeyId="alias/gap-probe")


def _create_backup_selection(client: Callable[..., Any]) -> None:
    """A real backup plan first; selecting resources for it is what fails."""
    backup = client("backup")  # a name of its own per call: moto keeps a deleted plan's name taken
    plan = backup.create_backup_plan(BackupPlan={"BackupPlanName": f"gap-probe-{time.time_ns()}", "Rules": [
        {"RuleName": "gap-probe", "TargetBackupVaultName": "Default"}]})["BackupPlanId"]
    try:
        backup.create_backup_selection(BackupPlanId=plan, BackupSelection={
            "SelectionName": "gap-probe", "IamRoleArn": f"arn:aws:iam::{MOTO_ACCOUNT}:role/gap-probe",
            "Resources": [f"arn:aws:rds:us-east-1:{MOTO_ACCOUNT}:cluster:gap-probe"]})
    finally:
        backup.delete_backup_plan(BackupPlanId=plan)


def _delete_cache_subnet_group(client: Callable[..., Any]) -> None:
    """A real subnet group first; deleting it is what fails. ElastiCache speaks XML, so botocore cannot parse
    moto's HTML error page: that is turned into the ClientError it stands for (the cause is checked apart)."""
    from botocore.exceptions import ClientError
    from botocore.parsers import ResponseParserError

    ec2, cache = client("ec2"), client("elasticache")
    vpc = ec2.create_vpc(CidrBlock="10.250.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.250.0.0/24")["Subnet"]["SubnetId"]
    name = f"gap-probe-{time.time_ns()}"
    cache.create_cache_subnet_group(CacheSubnetGroupName=name, CacheSubnetGroupDescription="probe", SubnetIds=[subnet])
    try:
        cache.delete_cache_subnet_group(CacheSubnetGroupName=name)
    except ResponseParserError as error:
        if "500 Internal Server Error" not in str(error):
            raise
        raise ClientError({"Error": {"Code": "500", "Message": "HTML error page"},
                           "ResponseMetadata": {"HTTPStatusCode": 500}}, "DeleteCacheSubnetGroup") from error


# One entry per type EMULATOR_GAPS lists as not creatable or forgotten before destroy.
REFUSALS = {
    "aws_cloudfront_cache_policy": Refusal(_create_cache_policy, 404, "404"),
    "aws_cloudfront_response_headers_policy": Refusal(_create_response_headers_policy, 404, "404"),
    "aws_cloudfront_function": Refusal(_publish_function, 404, "404"),
    "aws_appautoscaling_target": Refusal(_list_scalable_target_tags, 500, "500", "list_tags_for_resource"),
    "aws_secretsmanager_secret_rotation": Refusal(_cancel_managed_rotation, 400, "InvalidRequestException"),
    "aws_budgets_budget": Refusal(_list_budget_tags, 500, "500", "list_tags_for_resource"),
    "aws_ce_anomaly_monitor": Refusal(_create_anomaly_monitor, 500, "500", "create_anomaly_monitor"),
    "aws_ce_anomaly_subscription": Refusal(_create_anomaly_subscription, 500, "500", "create_anomaly_subscription"),
    "aws_xray_sampling_rule": Refusal(_create_sampling_rule, 404, "404"),
    "aws_xray_encryption_config": Refusal(_put_xray_encryption, 404, "404"),
    "aws_backup_selection": Refusal(_create_backup_selection, 500, "500", "create_backup_selection"),
    "aws_elasticache_subnet_group": Refusal(_delete_cache_subnet_group, 500, "500", "delete_cache_subnet_group"),
}


def _assert_refusals_cover_the_gaps() -> None:
    named = emulator.gap_types("not_creatable") | emulator.gap_types("forgotten_before_destroy")
    assert set(REFUSALS) == named, "each type in EMULATOR_GAPS needs the call that proves moto fails on it"


@contextmanager
def _moto_not_implemented() -> Iterator[list[str]]:
    """The "not implemented" errors the in-process moto server raises meanwhile (its client sees only a 500)."""
    from moto.core.responses import BaseResponse

    raised: list[str] = []
    call_action = BaseResponse.call_action

    def recording(self):
        try:
            return call_action(self)
        except NotImplementedError as error:
            raised.append(str(error))
            raise

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BaseResponse, "call_action", recording)
        yield raised


def _assert_moto_refuses(endpoint: str, refusal: Refusal) -> None:
    from botocore.exceptions import ClientError

    # No error: moto handles it now, so the gap is stale.
    with _moto_not_implemented() as raised, pytest.raises(ClientError, match=f"\\({refusal.code}\\)") as caught:
        refusal.call(lambda service: _moto_client(endpoint, service, "us-east-1", attempts=1))
    response = caught.value.response
    assert (response["ResponseMetadata"]["HTTPStatusCode"], response["Error"].get("Code", "")) == (
        refusal.status, refusal.code), response
    if refusal.status == 500:
        assert refusal.not_implemented, "a 500 proves nothing alone: name the action moto must say it lacks"
        expected = f"The {refusal.not_implemented} action has not been implemented"
        assert expected in raised, f"moto failed otherwise (a crash, not a missing action): {raised or response}"


def test_every_type_moto_cannot_handle_has_a_refusal():
    _assert_refusals_cover_the_gaps()


@pytest.mark.parametrize("kind", sorted(REFUSALS))
def test_moto_still_refuses_what_the_gap_table_says(emulator_endpoint, kind):
    """The call the provider makes for this type fails on the running moto, as the gap says it does."""
    _assert_moto_refuses(emulator_endpoint, REFUSALS[kind])


def test_a_gap_without_cause_is_caught(emulator_endpoint, monkeypatch):
    """A type moto does create, added to the table with a call moto answers, fails both checks."""
    gaps = {**emulator.EMULATOR_GAPS, "made-up": emulator.Gap("no cause", not_creatable=("aws_sns_topic",))}
    monkeypatch.setattr(emulator, "EMULATOR_GAPS", gaps)
    with pytest.raises(AssertionError, match="needs the call"):
        _assert_refusals_cover_the_gaps()

    def create_topic(client: Callable[..., Any]) -> None:
        sns = client("sns")
        sns.delete_topic(TopicArn=sns.create_topic(Name="gap-probe")["TopicArn"])

    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        _assert_moto_refuses(emulator_endpoint, Refusal(create_topic, 404, "404"))
    # A 500 for another reason than the one named (here: the action named is not the one moto lacks).
    with pytest.raises(AssertionError, match="moto failed otherwise"):
        _assert_moto_refuses(emulator_endpoint, Refusal(_create_backup_selection, 500, "500", "delete_backup_plan"))


# The gaps worked around by patching moto (emulator.work_around_emulator_gaps) or in the tests, each probed on
# an unpatched moto in a process of its own: the script prints the symptom the gap describes, or nothing
# once moto behaves like AWS (then the workaround, and the gap, are to be retired).
WORKAROUND_PROBE = """
import json, boto3
from botocore.exceptions import ClientError
from moto import mock_aws

def probe(name, call):
    try:
        call()
    except ClientError as error:
        print(name, "ClientError", error.response["ResponseMetadata"]["HTTPStatusCode"])
    except Exception as error:
        print(name, type(error).__name__, str(error)[:200].replace(chr(10), " "))

ONLY_OVER_TLS = {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": [
    "arn:aws:s3:::probe", "arn:aws:s3:::probe/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
LOG_DELIVERY = {"Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"}, "Action": "s3:PutObject",
                "Resource": "arn:aws:s3:::probe/*"}

with mock_aws():
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="probe")
    s3.put_bucket_policy(Bucket="probe", Policy=json.dumps({"Version": "2012-10-17", "Statement": [ONLY_OVER_TLS]}))
    # Over TLS (as boto3 talks), AWS's condition is false: the put is allowed.
    probe("s3-policy-conditions", lambda: s3.put_object(Bucket="probe", Key="k", Body=b"x"))
    s3.put_bucket_policy(Bucket="probe", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        ONLY_OVER_TLS, LOG_DELIVERY]}))
    s3.create_bucket(Bucket="source")
    probe("s3-logging-precheck", lambda: s3.put_bucket_logging(Bucket="source", BucketLoggingStatus={
        "LoggingEnabled": {"TargetBucket": "probe", "TargetPrefix": "logs/"}}))
    rds = boto3.client("rds", region_name="us-east-1")
    rds.create_db_cluster(DBClusterIdentifier="probe", Engine="aurora-postgresql", MasterUsername="probe",
                          ManageMasterUserPassword=True)
    rds.create_db_cluster_snapshot(DBClusterIdentifier="probe", DBClusterSnapshotIdentifier="probe")
    probe("rds-restore-managed-password", lambda: rds.restore_db_cluster_from_snapshot(
        DBClusterIdentifier="restored", SnapshotIdentifier="probe", Engine="aurora-postgresql"))
    cache = boto3.client("elasticache", region_name="us-east-1")
    cache.create_replication_group(ReplicationGroupId="probe", ReplicationGroupDescription="probe", Engine="redis",
                                   CacheNodeType="cache.t4g.micro", NumCacheClusters=2)
    probe("elasticache-member-clusters", lambda: cache.describe_cache_clusters(CacheClusterId="probe-001"))

    def listed_after_delete():
        cache.delete_replication_group(ReplicationGroupId="probe")
        (group,) = cache.describe_replication_groups(ReplicationGroupId="probe")["ReplicationGroups"]
        raise RuntimeError("listed after delete, " + group["Status"])

    probe("elasticache-delete-never-completes", listed_after_delete)
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    secrets.create_secret(Name="probe")
    first = secrets.put_secret_value(SecretId="probe", SecretString="first")["VersionId"]
    second = secrets.put_secret_value(SecretId="probe", SecretString="second", VersionStages=["AWSPENDING"])
    secrets.update_secret_version_stage(SecretId="probe", VersionStage="AWSCURRENT",
                                        MoveToVersionId=second["VersionId"], RemoveFromVersionId=first)

    def default_is_not_current():
        value = secrets.get_secret_value(SecretId="probe")["SecretString"]
        if value != "second":
            raise RuntimeError("the default stage answers " + value)

    probe("secretsmanager-default-stage", default_is_not_current)
"""
# What each probe prints while moto still behaves as the gap says.
WORKAROUND_SYMPTOMS = {
    "s3-policy-conditions": "ClientError 403",  # the conditional Deny applied unconditionally
    "s3-logging-precheck": "AttributeError",  # `"*".get(...)`: the string Principal breaks the pre-check
    "rds-restore-managed-password": "KeyError '_master_user_password'",
    "elasticache-member-clusters": "ClientError 404",  # CacheClusterNotFound for the group's own primary
    "elasticache-delete-never-completes": "RuntimeError listed after delete, deleting",
    "secretsmanager-default-stage": "RuntimeError the default stage answers first",
}


def test_moto_still_needs_every_workaround():
    """Each patched gap still shows its symptom on a moto without the patch (a fixed moto retires it)."""
    result = subprocess.run([sys.executable, "-c", WORKAROUND_PROBE], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
                            check=False)
    assert result.returncode == 0, result.stderr
    printed = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert set(printed) <= set(WORKAROUND_SYMPTOMS), printed
    stale = {gap: printed.get(gap, "no error (as AWS)") for gap, symptom in WORKAROUND_SYMPTOMS.items()
             if not printed.get(gap, "").startswith(symptom)}
    assert not stale, f"moto no longer shows these gaps' symptoms; retire their workarounds: {stale}"
    assert set(WORKAROUND_SYMPTOMS) <= set(emulator.EMULATOR_GAPS), "a probe for a gap the table no longer has"


def test_moto_still_hands_out_any_role_to_anyone(emulator_endpoint):
    """no-authorization: AWS refuses AssumeRole of a role that does not exist (AccessDenied); moto answers with
    credentials of that account. Stale once moto checks roles and trust: then the isolation can be run here."""
    sts = _moto_client(emulator_endpoint, "sts", "us-east-1", attempts=1)
    assumed = sts.assume_role(RoleArn="arn:aws:iam::999999999999:role/gap-probe-no-such-role",
                              RoleSessionName="gap-probe")
    expected = "arn:aws:sts::999999999999:assumed-role/gap-probe-no-such-role/gap-probe"
    assert assumed["AssumedRoleUser"]["Arn"] == expected


def test_moto_still_refuses_a_snapshot_arn_in_a_restore(emulator_endpoint):
    """rds-restore-snapshot-arn: the reason `python -m ops restore` writes identifiers; stale once moto takes ARNs."""
    from botocore.exceptions import ClientError

    rds = _moto_client(emulator_endpoint, "rds", "us-east-1", attempts=1)
    rds.create_db_cluster(DBClusterIdentifier="gap-probe", Engine="aurora-postgresql", MasterUsername="probe",
                          MasterUserPassword="probe-password")
    arn = rds.create_db_cluster_snapshot(DBClusterIdentifier="gap-probe", DBClusterSnapshotIdentifier="gap-probe")[
        "DBClusterSnapshot"]["DBClusterSnapshotArn"]
    try:
        with pytest.raises(ClientError) as caught:
            rds.restore_db_cluster_from_snapshot(DBClusterIdentifier="gap-probe-restored", SnapshotIdentifier=arn,
                                                 Engine="aurora-postgresql")
        assert caught.value.response["Error"]["Code"] == "DBClusterSnapshotNotFoundFault", caught.value.response
    finally:
        rds.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier="gap-probe")
        rds.delete_db_cluster(DBClusterIdentifier="gap-probe", SkipFinalSnapshot=True)


def _stand_in_global_database(rds, name: str, source: str) -> str:
    """An empty global database and a stand-in writer cluster in `rds`'s region joining it (moto cannot make one
    from a cluster outside us-east-1: gap rds-global-source); returns the writer's ARN."""
    rds.create_global_cluster(GlobalClusterIdentifier=name, Engine="aurora-postgresql", EngineVersion="16.6",
                              StorageEncrypted=True)
    return rds.create_db_cluster(DBClusterIdentifier=source, Engine="aurora-postgresql", EngineVersion="16.6",
                                 MasterUsername="probe", MasterUserPassword="probe-password", StorageEncrypted=True,
                                 GlobalClusterIdentifier=name)["DBCluster"]["DBClusterArn"]


@pytest.mark.parametrize("action", ["switchover_global_cluster", "failover_global_cluster"])
def test_moto_still_cannot_move_a_global_database_s_writer(emulator_endpoint, action):
    """rds-global-failover: the two calls `python -m ops failover` makes; stale once moto implements them.
    (Names of their own per call: moto keeps the probes' global databases, and the emulator is discarded.)"""
    suffix = time.time_ns()
    rds = _moto_client(emulator_endpoint, "rds", "us-east-1", attempts=1)
    _stand_in_global_database(rds, f"gap-probe-global-{suffix}", f"gap-probe-primary-{suffix}")
    target = _moto_client(emulator_endpoint, "rds", "us-west-2", attempts=1).create_db_cluster(
        DBClusterIdentifier=f"gap-probe-secondary-{suffix}", Engine="aurora-postgresql", EngineVersion="16.6",
        GlobalClusterIdentifier=f"gap-probe-global-{suffix}", StorageEncrypted=True)["DBCluster"]["DBClusterArn"]
    extra = {"AllowDataLoss": True} if action == "failover_global_cluster" else {}

    def move(client: Callable[..., Any]) -> None:
        """RDS speaks XML, so botocore cannot parse moto's HTML error page: that becomes the ClientError it is."""
        from botocore.exceptions import ClientError
        from botocore.parsers import ResponseParserError

        try:
            getattr(client("rds"), action)(GlobalClusterIdentifier=f"gap-probe-global-{suffix}",
                                           TargetDbClusterIdentifier=target, **extra)
        except ResponseParserError as error:
            if "500 Internal Server Error" not in str(error):
                raise
            raise ClientError({"Error": {"Code": "500", "Message": "HTML error page"},
                               "ResponseMetadata": {"HTTPStatusCode": 500}}, action) from error

    _assert_moto_refuses(emulator_endpoint, Refusal(move, 500, "500", action))


@pytest.mark.parametrize("region", ["eu-west-1", "us-east-1"])
def test_moto_still_mishandles_a_global_database_made_from_a_cluster(emulator_endpoint, region):
    """rds-global-source: outside us-east-1 the source is not found; in us-east-1 it is listed as no writer.
    Stale once moto finds the source in its own region and reports it as the writer, as AWS does."""
    from botocore.exceptions import ClientError

    suffix = time.time_ns()
    rds = _moto_client(emulator_endpoint, "rds", region, attempts=1)
    arn = rds.create_db_cluster(DBClusterIdentifier=f"gap-probe-source-db-{suffix}", Engine="aurora-postgresql",
                                EngineVersion="16.6", MasterUsername="probe", MasterUserPassword="probe-password",
                                StorageEncrypted=True)["DBCluster"]["DBClusterArn"]
    name = f"gap-probe-source-{suffix}"
    if region != "us-east-1":
        with pytest.raises(ClientError, match="DBClusterNotFoundFault"):
            rds.create_global_cluster(GlobalClusterIdentifier=name, SourceDBClusterIdentifier=arn)
        return
    rds.create_global_cluster(GlobalClusterIdentifier=name, SourceDBClusterIdentifier=arn)
    # moto also ignores the identifier and lists every global database (the failover command selects by name).
    (found,) = [cluster for cluster in rds.describe_global_clusters(GlobalClusterIdentifier=name)["GlobalClusters"]
                if cluster["GlobalClusterIdentifier"] == name]
    assert [(member["DBClusterArn"], member["IsWriter"]) for member in found["GlobalClusterMembers"]] == [
        (arn, False)], found


def test_bootstrap_creates_the_state_backend(deployment):
    outputs = bootstrap_applied(deployment)
    state = deployment.state
    s3, kms = deployment.client("s3"), deployment.client("kms")

    assert (deployment.local / "terraform.bootstrap.tfstate").is_file(), \
        "bootstrap's local state must land three levels above cdktf.out/stacks/bootstrap, inside --local-dir"
    assert outputs["state_bucket"] == state.bucket and outputs["lock_table"] == state.lock_table
    key = kms.describe_key(KeyId=state.kms_alias)["KeyMetadata"]
    assert key["Arn"] == outputs["kms_key_arn"] and key["KeyState"] == "Enabled"
    assert s3.get_bucket_versioning(Bucket=state.bucket)["Status"] == "Enabled"
    rule = s3.get_bucket_encryption(Bucket=state.bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms",
                                                          "KMSMasterKeyID": outputs["kms_key_arn"]}
    table = deployment.client("dynamodb").describe_table(TableName=state.lock_table)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "LockID", "KeyType": "HASH"}]
    assert table.get("DeletionProtectionEnabled") is True
    _assert_access_log_delivery_is_granted(deployment, s3)


def test_local_up_prints_a_short_view_with_both_stacks_outputs_and_its_bootstrap_passes_the_preflight(deployment):
    """What a newcomer sees: at most 60 lines (Terraform's thousands go to the log), each stack's start and
    end, both stacks' outputs, what was left out grouped by gap; what the real bootstrap created passes the
    preflight every deploy runs."""
    up = local_up_finished(deployment)
    lines = up.splitlines()
    assert len(lines) <= 60, f"local-up printed {len(lines)} lines:\n{up[:4000]}"
    assert f"{DEPLOYED_ENVIRONMENT}: applying (leaving out " in up and "Apply complete!" not in up
    assert re.search(rf"^{DEPLOYED_ENVIRONMENT}: \d+ added, \d+ changed, \d+ destroyed in \d+ s$", up, re.M), up
    left_out = [line for line in lines if line.startswith("  the emulator cannot create (")]
    assert left_out and len(left_out) <= len(emulator.NOT_CREATABLE), left_out
    log = (deployment.local / "terraform.log").read_text()
    assert log.count("Apply complete!") == 2 and f"full Terraform log: {deployment.local / 'terraform.log'}" in up
    assert "outputs of bootstrap:" in up and f'  state_bucket = "{deployment.state.bucket}"' in up
    dev_outputs = up.split(f"outputs of {DEPLOYED_ENVIRONMENT}:", 1)
    assert len(dev_outputs) == 2, f"dev was not brought up:\n{up[-4000:]}"
    assert "VpcId = " in dev_outputs[1] and "DatabaseSecretArn = " in dev_outputs[1], dev_outputs[1][:2000]
    assert f"local stack up: bootstrap and {DEPLOYED_ENVIRONMENT} on {deployment.endpoint}" in up
    checked = subprocess.run([sys.executable, "-m", "ops", "preflight", DEPLOYED_ENVIRONMENT],
                             cwd=deployment.product,
                             env={**deployment.env, project.EMULATOR_VARIABLE: deployment.endpoint},
                             capture_output=True, text=True, timeout=120, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _assert_access_log_delivery_is_granted(deployment: Deployment, s3) -> None:
    """Compensates the skipped s3-logging-precheck: the grant moto would have checked, after apply."""
    logging = s3.get_bucket_logging(Bucket=deployment.state.bucket).get("LoggingEnabled")
    assert logging, "server access logging of the state bucket is not enabled"
    target = logging["TargetBucket"]
    policy = json.loads(s3.get_bucket_policy(Bucket=target)["Policy"])
    grants = [s for s in _statements(policy)
              if s.get("Effect") == "Allow" and "s3:PutObject" in _as_list(s.get("Action"))
              and isinstance(s.get("Principal"), dict)
              and "logging.s3.amazonaws.com" in _as_list(s["Principal"].get("Service"))]
    assert grants, f"the access-log bucket {target} does not let S3 log delivery write: {policy}"


README_CDKTF_MARKER = "<!-- cdktf-cli-commands: tests/test_emulated_deploy.py runs this block -->"
CDKTF_TIMEOUT_SECONDS = 600


def readme_cdktf_commands() -> list[list[str]]:
    """The README's cdktf CLI lines, each split into words (environment assignments first)."""
    text = (ROOT / "README.md").read_text()
    assert README_CDKTF_MARKER in text, "the README lost its cdktf CLI block"
    block = text.split(README_CDKTF_MARKER, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line) for line in block.splitlines() if line.strip()]


def _cdktf_command(words: list[str], environment: str | None = None) -> tuple[list[str], dict[str, str]]:
    """(argv, variables) of a README line, for `environment` where the line names dev."""
    swap = (lambda word: word.replace(DEPLOYED_ENVIRONMENT, environment)) if environment else (lambda word: word)
    words = [swap(word) for word in words]
    variables = dict(word.split("=", 1) for word in words if re.fullmatch(r"[A-Z_]+=\S*", word))
    argv = [word for word in words if not re.fullmatch(r"[A-Z_]+=\S*", word)]
    return argv, variables


def user_shell(environment: dict[str, str]) -> dict[str, str]:
    """`environment` as a user's shell has it: outside the virtualenv `pipenv run pytest` activated.

    cdktf.json runs `python3 -m pipenv run python main.py`; inside the activated virtualenv `python3`
    is the project's interpreter, which has no pipenv (make installs pipenv for the system Python).
    """
    venv = environment.get("VIRTUAL_ENV")
    path = [entry for entry in environment.get("PATH", "").split(os.pathsep)
            if not (venv and entry.startswith(venv))]
    shell = {name: value for name, value in environment.items() if name not in ("VIRTUAL_ENV", "PIPENV_ACTIVE")}
    return {**shell, "PATH": os.pathsep.join(path)}


@dataclass(frozen=True)
class CdktfCli:
    """The README's cdktf commands, run in a user's checkout of the product (a copy) against the emulator."""

    repo: Path
    env: dict[str, str]

    def run(self, words: list[str], environment: str | None = None, *extra: str) -> str:
        argv, variables = _cdktf_command(words, environment)
        assert environment is None or (environment in argv and variables.get("INFRA_STACKS") == environment), argv
        result = subprocess.run([*argv, *extra], cwd=self.repo, env={**self.env, **variables}, capture_output=True,
                                text=True, stdin=subprocess.DEVNULL, timeout=CDKTF_TIMEOUT_SECONDS, check=False)
        assert result.returncode == 0, f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        return result.stdout


def _cdktf_cli(deployment: Deployment) -> CdktfCli:
    """A checkout holding the bootstrap state the flow created and the deployed configuration (dev with
    DR_TABLE: diffing dev without it would drop its DR provider), with the toolchains linked in.

    Its own plugin cache: its inits overlap the dev init, and Terraform's cache is not safe for that.
    """
    repo = copy_product(deployment.scratch / "cdktf-repo")
    for name in ("Pipfile", "Pipfile.lock", "package.json", "package-lock.json"):
        shutil.copy(ROOT / name, repo / name)
    for name in (".venv", "node_modules"):
        (repo / name).symlink_to(ROOT / name)
    shutil.copy(deployment.local / "terraform.bootstrap.tfstate", repo / "terraform.bootstrap.tfstate")
    for deployed in (deployment.config_root / ENVIRONMENTS_DIR.name).glob("*.toml"):  # every account's settings
        shutil.copy(deployed, repo / ENVIRONMENTS_DIR.name / deployed.name)
    config = write_cli_config(deployment.scratch / "cdktf.tfrc", deployment.mirror, deployment.scratch / "cdktf-cache")
    env = {**user_shell(deployment.env), "TF_CLI_CONFIG_FILE": str(config), "INFRA_AWS_ENDPOINT": deployment.endpoint,
           "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", "CI": "1", "FORCE_COLOR": "0"}
    return CdktfCli(repo=repo, env=env)


def readme_deploy_and_diff() -> tuple[list[str], list[str]]:
    """The README's one `npx cdktf deploy bootstrap` line and its one `npx cdktf diff` line."""
    commands = readme_cdktf_commands()
    deploys = [words for words in commands if _cdktf_command(words)[0][:4] == ["npx", "cdktf", "deploy", "bootstrap"]]
    diffs = [words for words in commands if _cdktf_command(words)[0][:3] == ["npx", "cdktf", "diff"]]
    assert len(deploys) == 1 and len(diffs) == 1, commands
    return deploys[0], diffs[0]


@functools.cache
def cdktf_cli_unavailable() -> str | None:
    """Why `npx cdktf` cannot run with this Node.js (tools/node-pty-guard's one line), or None when it can.

    On Node.js 24 the cdktf CLI's terminal library has no binary (README, Prerequisites): its tests
    skip there with that reason, and run (and must pass) on 20 and 22, which CI uses.
    """
    loaded = subprocess.run(["node", "-e", "require('@cdktf/node-pty-prebuilt-multiarch')"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    return None if loaded.returncode == 0 else (loaded.stderr.strip() or f"node exited {loaded.returncode}")


def cdktf_cli_started(deployment: Deployment) -> None:
    """Start the README's `npx cdktf deploy bootstrap`, then `npx cdktf diff` of production, in the background:
    they need only the bootstrap and overlap the dev apply, which mostly waits on the provider's pollers.
    Returns (from the future) each command's output. One environment not deployed is enough to prove the
    README's line for them (the same command, another stack); production is the one with the most parts
    (its own account, a standby). Every environment's stacks are validated by Terraform elsewhere, and
    staging's diff would cost the per-commit run a full plan for nothing more."""
    if "cdktf cli" in deployment.background or cdktf_cli_unavailable():
        return
    deploy, diff = readme_deploy_and_diff()
    cli = deployment.cdktf = _cdktf_cli(deployment)
    others = [env.name for env in deployment.project.environments if env.production]

    def run() -> dict[str, str]:
        outputs = {BOOTSTRAP_STACK: cli.run(deploy, None, "--auto-approve")}  # no terminal to approve in
        outputs.update({environment: cli.run(diff, environment) for environment in others})
        return outputs

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cdktf-cli")
    deployment.background["cdktf cli"] = executor.submit(run)
    executor.shutdown(wait=False)


def test_the_cdktf_cli_deploys_the_bootstrap_and_diffs_environments_as_the_readme_says(deployment):
    """`npx cdktf deploy bootstrap` and `npx cdktf diff <env>`, as documented, on a mirror-only machine.

    The checkout holds the bootstrap state the flow created, so the deploy finds the backend it
    manages, plans no change and succeeds; each diff initialises against the state bucket and plans
    its environment (dev: deployed; production: everything to create). Registry access is impossible
    here (DEAD_PROXY); providers come from the mirror only.
    """
    if cdktf_cli_unavailable():
        pytest.skip(f"npx cdktf cannot run with this Node.js: {cdktf_cli_unavailable()}")
    environment_applied(deployment)
    outputs = dict(deployment.step("cdktf cli", deployment.background["cdktf cli"].result))
    _, diff = readme_deploy_and_diff()
    outputs[DEPLOYED_ENVIRONMENT] = deployment.cdktf.run(diff, DEPLOYED_ENVIRONMENT)
    deployed = outputs.pop(BOOTSTRAP_STACK)
    changed = set(PLANNED_CHANGE.findall(deployed))
    assert "No changes" in deployed or changed <= emulator.gap_types("drifts"), deployed  # moto's read-back gaps only
    assert set(outputs) == {DEPLOYED_ENVIRONMENT, "production"}
    for output in outputs.values():
        assert re.search(r"Plan: \d+ to add, \d+ to change, \d+ to destroy", output), output


def test_the_planned_change_pattern_sees_every_kind_of_change():
    """A replacement is a change too (the bootstrap re-deploy check once read only "will be")."""
    text = "\n".join(["  # aws_s3_bucket.state must be replaced", "  # aws_kms_key.key will be updated in-place",
                      "  # aws_dynamodb_table.locks will be destroyed", "  # aws_iam_role.r will be created",
                      "  # (aws_s3_bucket_policy.p unchanged attributes hidden)"])
    assert PLANNED_CHANGE.findall(text) == ["aws_s3_bucket", "aws_kms_key", "aws_dynamodb_table", "aws_iam_role"]


def test_backend_accepts_the_kms_alias_and_rejects_a_bare_name(deployment):
    """The backend's kms_key_id is an alias name; Terraform checks its form at init, before any request."""
    environment_applied(deployment)  # local-up's init succeeded with kms_key_id = "alias/..."
    backend = deployment.stacks[DEPLOYED_ENVIRONMENT]["terraform"]["backend"]["s3"]
    assert backend["kms_key_id"] == deployment.state.kms_alias
    # Negative control: the same init with the alias' bare name must fail, so the check is real.
    workdir = deployment.scratch / "bare-kms-name"
    workdir.mkdir()
    shutil.copy(deployment.stack_dir(DEPLOYED_ENVIRONMENT) / "cdk.tf.json", workdir)
    bare_name = deployment.state.kms_alias.removeprefix("alias/")
    result = deployment.terraform(DEPLOYED_ENVIRONMENT, "init", "-input=false",
                                  f"-backend-config=kms_key_id={bare_name}", check=False, cwd=workdir)
    assert result.returncode != 0 and "Invalid KMS Key ID" in result.stderr, result.stderr


def test_dev_apply_stores_kms_encrypted_state(deployment):
    """Everything moto can model is deployed (EMULATOR_GAPS lists what is left out, and why)."""
    outputs = bootstrap_applied(deployment)
    environment_applied(deployment)
    s3 = deployment.client("s3")
    state_object = s3.get_object(Bucket=deployment.state.bucket, Key=deployment.environment.state_key)

    assert state_object["ServerSideEncryption"] == "aws:kms"
    recorded_key = deployment.client("kms").describe_key(KeyId=state_object["SSEKMSKeyId"])["KeyMetadata"]
    assert recorded_key["Arn"] == outputs["kms_key_arn"], "state must be encrypted with the bootstrap key"
    tfstate = json.loads(state_object["Body"].read())
    deployed = {f"{r['type']}.{r['name']}" for r in tfstate["resources"] if r["mode"] == "managed"}
    assert deployed == set(deployment.targets), (
        f"missing from state: {sorted(set(deployment.targets) - deployed)}; "
        f"unexpected: {sorted(deployed - set(deployment.targets))}"
    )
    assert any(address.startswith("aws_elasticache_replication_group.") for address in deployed), "the cache"
    # What was left out is the reviewed list, not whatever deployable() computes today.
    assert deployment.left_out == pinned_left_out(), "tests/test_emulator_left_out.py explains the pinned list"


def test_dev_lands_in_its_own_account_through_its_deploy_role_and_its_state_in_the_state_account(deployment):
    """Issue 24 on the emulator: the bootstrap (state account) created dev's deploy role in dev's account; dev's
    providers assumed it, so every resource is in dev's account and none in the state account; its backend
    assumed dev's own state role, so the state object is in the state account's bucket.

    moto checks neither trust nor permissions (EMULATOR_GAPS "no-authorization"): who may assume what, and
    that no state role reaches another stack's state, are proven by tests/test_accounts.py and the properties.
    """
    environment_applied(deployment)
    env, state = deployment.environment, deployment.state
    role = deployment.dev_client("iam").get_role(RoleName=f"{env.application}-{env.name}-deploy")["Role"]
    assert role["Arn"] == env.deploy_role_arn == f"arn:aws:iam::{ACCOUNT}:role/webapp-dev-deploy"
    assert deployment.client("iam").get_role(RoleName=f"{env.application}-{env.name}-rw")["Role"]["Arn"] == (
        f"arn:aws:iam::{STATE_ACCOUNT}:role/terraform-state/webapp-dev-rw")
    mine = {"Name": "tag:Environment", "Values": [env.name]}
    (vpc,) = deployment.dev_client("ec2").describe_vpcs(Filters=[mine])["Vpcs"]
    assert vpc["OwnerId"] == ACCOUNT
    assert not deployment.client("ec2", env.region).describe_vpcs(Filters=[mine])["Vpcs"], "none in the state account"
    clusters = {c["DBClusterIdentifier"]: c["DBClusterArn"].split(":")[4]
                for c in deployment.dev_client("rds").describe_db_clusters()["DBClusters"]}
    assert clusters[restore.cluster_identifier(env)] == ACCOUNT and set(clusters.values()) == {ACCOUNT}, clusters
    assert not deployment.client("rds", env.region).describe_db_clusters()["DBClusters"]
    deployment.client("s3").head_object(Bucket=state.bucket, Key=env.state_key)
    assert state.bucket not in {bucket["Name"] for bucket in deployment.dev_client("s3").list_buckets()["Buckets"]}
    for provider in deployment.stacks[DEPLOYED_ENVIRONMENT]["provider"]["aws"]:
        assert provider["allowed_account_ids"] == [ACCOUNT]
        assert provider["assume_role"][0]["role_arn"] == env.deploy_role_arn


def test_the_account_baseline_records_delivers_checks_and_notifies(deployment):
    """AWS Config and the trail really applied: moto checks every rule identifier against AWS's catalogue.

    Applied next to the dev apply (see baseline_started), so it runs after it here."""
    outputs = baseline_applied(deployment)
    baseline, stack = deployment.baseline, deployment.stacks[deployment.baseline.stack_name]
    config = deployment.dev_client("config", baseline.region)
    (recorder,) = config.describe_configuration_recorders()["ConfigurationRecorders"]
    assert recorder["name"] == outputs["ConfigRecorderName"]
    assert recorder["recordingGroup"]["allSupported"] is True
    assert recorder["recordingGroup"]["includeGlobalResourceTypes"] is baseline.record_global_resources
    (status,) = config.describe_configuration_recorder_status()["ConfigurationRecordersStatus"]
    assert status["recording"] is True
    (channel,) = config.describe_delivery_channels()["DeliveryChannels"]
    assert channel["s3BucketName"] == outputs["ConfigBucketName"] and channel["s3KmsKeyArn"].startswith("arn:")
    deployed = {rule["Source"]["SourceIdentifier"] for rule in config.describe_config_rules()["ConfigRules"]}
    synthesized = {rule["source"]["source_identifier"] for rule in stack["resource"]["aws_config_config_rule"].values()}
    assert deployed == synthesized and len(deployed) == len(stack["resource"]["aws_config_config_rule"])
    events = deployment.dev_client("events", baseline.region)
    (rule,) = events.list_rules(NamePrefix=next(iter(stack["resource"]["aws_cloudwatch_event_rule"].values()))["name"])[
        "Rules"]
    (target,) = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    assert target["Arn"] == outputs["ComplianceTopicArn"]
    (trail,) = deployment.dev_client("cloudtrail", baseline.region).describe_trails()["trailList"]
    assert trail["TrailARN"] == outputs["TrailArn"]
    assert trail["IsMultiRegionTrail"] is True and trail["LogFileValidationEnabled"] is True
    deployment.client("s3").head_object(Bucket=deployment.state.bucket, Key=baseline.state_key)


def test_backup_vaults_locks_and_copy_action_are_applied_in_both_regions(deployment):
    """The [dr] resources moto can hold: a vault per region with its own key there, both locked, the copy."""
    environment_applied(deployment)
    env = deployment.environment
    vaults = {}
    for region in (env.region, env.dr.region):
        (vault,) = [v for v in deployment.dev_client("backup", region).list_backup_vaults()["BackupVaultList"]
                    if v["BackupVaultName"].startswith(env.resource_name("backup"))]
        key = deployment.dev_client("kms", region).describe_key(KeyId=vault["EncryptionKeyArn"])["KeyMetadata"]
        assert key["Arn"].split(":")[3] == region and key["KeyManager"] == "CUSTOMER", key
        assert vault["Locked"] is True
        vaults[region] = vault
    assert vaults[env.region]["MinRetentionDays"] == env.database.backup_retention_days
    assert vaults[env.dr.region]["MinRetentionDays"] == env.dr.copy_retention_days
    backup = deployment.dev_client("backup")
    (plan,) = backup.list_backup_plans()["BackupPlansList"]
    (rule,) = backup.get_backup_plan(BackupPlanId=plan["BackupPlanId"])["BackupPlan"]["Rules"]
    assert rule["ScheduleExpression"] == env.backup_schedule
    assert rule["TargetBackupVaultName"] == vaults[env.region]["BackupVaultName"]
    (copy_action,) = rule["CopyActions"]
    assert copy_action["DestinationBackupVaultArn"] == vaults[env.dr.region]["BackupVaultArn"]
    assert copy_action["Lifecycle"]["DeleteAfterDays"] == env.dr.copy_retention_days
    rules = deployment.dev_client("events").list_rules(NamePrefix=env.resource_name(""))["Rules"]
    assert {json.loads(r["EventPattern"])["detail-type"][0] for r in rules} >= {
        "Backup Job State Change", "Copy Job State Change"}


def test_state_and_site_buckets_are_configured_to_replicate_to_their_replicas(deployment):
    """Replication as applied: enabled, to a versioned replica in its region under its own key, by a role.

    Configuration only: moto stores the replication configuration but copies no object, so that an
    object written to the source arrives in the replica is not proven here (tests/role_checks.py
    proves the role may do it, tests/dr_checks.py that every object and delete marker is selected).
    """
    environment_applied(deployment)
    env, state = deployment.environment, deployment.state
    pairs = [(state.bucket, state.region, state.replica_region, deployment.client),
             (f"{env.resource_name('site')}-{ACCOUNT}", env.region, env.dr.region, deployment.dev_client)]
    for bucket, region, replica_region, client in pairs:
        config = client("s3", region).get_bucket_replication(Bucket=bucket)["ReplicationConfiguration"]
        (rule,) = config["Rules"]
        assert rule["Status"] == "Enabled"
        replica = rule["Destination"]["Bucket"].removeprefix("arn:aws:s3:::")
        s3 = client("s3", replica_region)
        assert s3.get_bucket_location(Bucket=replica)["LocationConstraint"] == replica_region
        assert s3.get_bucket_versioning(Bucket=replica)["Status"] == "Enabled"
        default = s3.get_bucket_encryption(Bucket=replica)["ServerSideEncryptionConfiguration"]["Rules"][0][
            "ApplyServerSideEncryptionByDefault"]
        key = client("kms", replica_region).describe_key(KeyId=default["KMSMasterKeyID"])["KeyMetadata"]
        assert default["SSEAlgorithm"] == "aws:kms" and key["Arn"].split(":")[3] == replica_region
        check_applied_replication_role(client("iam"), config["Role"].rsplit("/", 1)[-1], replica)


def check_applied_replication_role(iam, role: str, replica: str) -> None:
    """The role as applied (`iam` is a client in its account): assumable by S3, its inline policy lets it write
    replicas into `replica`."""
    trust = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert [s["Principal"] for s in trust["Statement"]] == [{"Service": "s3.amazonaws.com"}], trust
    statements = [statement for name in iam.list_role_policies(RoleName=role)["PolicyNames"]
                  for statement in _policy_statements(iam.get_role_policy(RoleName=role, PolicyName=name))]
    writes = [s for s in statements if "s3:ReplicateObject" in s["Action"]]
    assert writes and all(s["Resource"] in (f"arn:aws:s3:::{replica}/*", [f"arn:aws:s3:::{replica}/*"])
                          for s in writes), statements


def _policy_statements(answer: dict) -> list[dict]:
    document = answer["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    statements = document["Statement"]
    return statements if isinstance(statements, list) else [statements]


def test_concurrent_run_is_refused_while_the_state_is_locked(deployment):
    environment_applied(deployment)
    dynamodb_only = _dynamodb_only_client(deployment)

    with _state_lock_held_by_another_terraform(deployment) as lock_id:
        refused = deployment.terraform(DEPLOYED_ENVIRONMENT, "plan", "-lock-timeout=0s", "-input=false", check=False)
        assert refused.returncode != 0 and LOCK_ERROR in refused.stderr, refused.stderr
        assert lock_id in refused.stderr, "the refusal must name the lock that is held"
        assert "PreconditionFailed" in refused.stderr, "the S3 lock file (conditional write) must refuse"

        legacy = deployment.terraform(DEPLOYED_ENVIRONMENT, "plan", "-lock-timeout=0s", "-input=false",
                                      check=False, cwd=dynamodb_only)
        assert legacy.returncode != 0 and LOCK_ERROR in legacy.stderr, legacy.stderr
        assert lock_id in legacy.stderr and "ConditionalCheckFailedException" in legacy.stderr, legacy.stderr

    assert _s3_lock(deployment) is None, "the S3 lock file must be deleted on release"
    assert _dynamodb_lock(deployment) is None, "the DynamoDB lock item must be deleted on release"


def test_second_plan_reports_no_changes(deployment):
    """Nothing changes but the attributes EMULATOR_GAPS names as read back wrongly, of their own types.

    The plan covers the whole deployed stack, dependents of drifting resources included: a task
    definition or alarm that changed because of a drifting neighbour would show up here.
    """
    unexplained, _ = plan_against_gaps(second_plan(deployment), emulator.drifting_attributes())
    assert not unexplained, f"changes no emulator gap explains: {unexplained}"


def second_planned_stacks(deployment: Deployment) -> tuple[str, ...]:
    return (BOOTSTRAP_STACK, deployment.baseline.stack_name)


@pytest.mark.parametrize("which", [0, 1], ids=["bootstrap", "baseline"])
def test_second_plan_of_the_bootstrap_and_the_baseline_reports_no_changes(deployment, which):
    """Like dev's: attribute by attribute, nothing changes but what EMULATOR_GAPS names for its own types."""
    name = second_planned_stacks(deployment)[which]
    unexplained, _ = plan_against_gaps(stack_second_plan(deployment, name), emulator.drifting_attributes())
    assert not unexplained, f"{name}: changes no emulator gap explains: {unexplained}"


def test_every_drifting_attribute_still_drifts(deployment):
    """A named drifting attribute that moto now reads back faithfully is stale: delete it from the gap.

    Seen in any of the three second plans (dev, the bootstrap, the account baseline)."""
    seen: dict[str, set[str]] = {}
    plans = [second_plan(deployment), *(stack_second_plan(deployment, name)
                                        for name in second_planned_stacks(deployment))]
    for plan in plans:
        for kind, paths in plan_against_gaps(plan, emulator.drifting_attributes())[1].items():
            seen.setdefault(kind, set()).update(paths)
    stale = {kind: sorted(paths - seen.get(kind, set())) for kind, paths in emulator.drifting_attributes().items()
             if paths - seen.get(kind, set())}
    assert not stale, f"moto now reads these back faithfully; drop them from EMULATOR_GAPS drifts: {stale}"


def _drift(deployment: Deployment) -> tuple[int, str]:
    """`python -m ops drift dev` against the emulator, in the deployment's folder; (exit status, report)."""
    out, err = io.StringIO(), io.StringIO()
    tools = ops_tools.Tools(out=out, err=err, root=deployment.config_root, synth_dir=deployment.outdir,
                        environ={**deployment.env, project.EMULATOR_VARIABLE: deployment.endpoint,
                                 **PLANS_IN_PARALLEL})
    code = cli.main(["drift", DEPLOYED_ENVIRONMENT, "--no-color"], tools)
    assert code != errors.EXIT_REFUSED, f"drift failed: {err.getvalue()}"
    return code, out.getvalue()


def _resource_values(deployment: Deployment, kind: str, logical_prefix: str) -> tuple[str, dict]:
    """(address, state values) of the one deployed `kind` whose logical id starts with `logical_prefix`."""
    found = [(r["address"], r["values"]) for r in _state_resources(deployment, DEPLOYED_ENVIRONMENT)
             if r["type"] == kind and r["name"].startswith(logical_prefix)]
    assert len(found) == 1, f"expected one {kind} named {logical_prefix}*, found {[a for a, _ in found]}"
    return found[0]


def test_drift_names_changes_and_hand_added_rules_behind_terraforms_back_and_clears_after_reapply(deployment):
    """`python -m ops drift`: exit 2 naming each changed resource and attribute, and a rule added by hand before
    a deploy's settle recorded it; after re-apply (and the rule's removal), exit 0.

    The flow applied dev with terraform directly, so the state is settled as `python -m ops deploy` does after
    every apply (terraform.settle: a refresh-only apply), here right after a rule was added by hand: the
    state then lists that rule in its group, and only the unaccounted check can still name it. The
    re-apply targets the drifted resources: a full apply would also churn what moto reads back wrongly
    (EMULATOR_GAPS drifts).
    """
    environment_applied(deployment)
    rule, rule_values = _resource_values(deployment, "aws_vpc_security_group_ingress_rule", "network_alb-https-in")
    ec2 = deployment.dev_client("ec2")
    by_hand = {"GroupId": rule_values["security_group_id"], "IpPermissions": [{
        "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "198.51.100.0/24"}]}]}
    ec2.authorize_security_group_ingress(**by_hand)
    deployment.terraform(DEPLOYED_ENVIRONMENT, "apply", "-refresh-only", "-auto-approve", "-input=false", PARALLELISM)
    vpc, vpc_values = _resource_values(deployment, "aws_vpc", "network_vpc")
    group = _address_of_id(deployment, "aws_security_group", rule_values["security_group_id"])
    assert vpc_values["tags_all"]["Owner"] != "someone-else"
    ec2.create_tags(Resources=[vpc_values["id"]], Tags=[{"Key": "Owner", "Value": "someone-else"}])
    assert rule_values["cidr_ipv4"] != "203.0.113.0/24"
    ec2.modify_security_group_rules(GroupId=rule_values["security_group_id"], SecurityGroupRules=[{
        "SecurityGroupRuleId": rule_values["id"], "SecurityGroupRule": {
            "IpProtocol": "tcp", "FromPort": rule_values["from_port"], "ToPort": rule_values["to_port"],
            "CidrIpv4": "203.0.113.0/24"}}])

    code, report = _drift(deployment)
    assert code == errors.EXIT_DRIFT == 2, report
    header, *lines = report.splitlines()
    assert header == f"{DEPLOYED_ENVIRONMENT}: DRIFT: 3 resources differ from the state (changed outside Terraform):"
    # The rule's security group lists its rules too, so it reports the same change; nothing else differs. The
    # settled rule is no change to the refresh, but no rule resource accounts for it.
    assert lines == [
        *sorted([f"  {vpc}: tags.Owner, tags_all.Owner", f"  {rule}: cidr_ipv4", f"  {group}: ingress"]),
        f"{DEPLOYED_ENVIRONMENT}: DRIFT: 1 in the state that no managed resource accounts for (added outside "
        "Terraform; a deploy's refresh keeps it):",
        f"  {group}: ingress tcp 22 from 198.51.100.0/24 is in no rule resource"], report

    ec2.revoke_security_group_ingress(**by_hand)
    drifted = _target_flags([vpc, rule, group])
    deployment.terraform(DEPLOYED_ENVIRONMENT, "apply", "-auto-approve", "-input=false", *drifted)
    deployment.terraform(DEPLOYED_ENVIRONMENT, "apply", "-refresh-only", "-auto-approve", "-input=false", *drifted)
    code, report = _drift(deployment)
    assert (code, report) == (0, f"{DEPLOYED_ENVIRONMENT}: no drift: every resource matches its state\n")


def test_deploy_refuses_a_plan_replacing_a_bucket_of_the_bootstrap_and_applies_nothing(deployment, monkeypatch):
    """`python -m ops deploy bootstrap --yes` against the emulator: the real preflight, synthesis, init and
    plan, with the access-log bucket renamed in the synthesized stack (a replacement); the guard refuses
    it by address before anything is applied, and the bootstrap's state is untouched."""
    bootstrap_applied(deployment)
    for name, value in deployment.env.items():  # the preflight's boto3 reads this process's environment
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    synthesized = deployment.local / "cdktf.out" / "stacks" / BOOTSTRAP_STACK / "cdk.tf.json"
    state = deployment.local / "terraform.bootstrap.tfstate"
    original, serial = synthesized.read_bytes(), json.loads(state.read_text())["serial"]
    renamed = {}

    def run(command, cwd, env):
        code = ops_tools.run_to_log(command, cwd, env, deployment.scratch / "guard.log")
        if command[1].endswith("main.py") and code == 0:  # right after synthesis: rename the bucket
            stack = json.loads(synthesized.read_text())
            (name, bucket), = [(name, body) for name, body in stack["resource"]["aws_s3_bucket"].items()
                               if body["bucket"].endswith("-access-logs")]
            bucket["bucket"] += "-renamed"
            renamed["address"] = f"aws_s3_bucket.{name}"
            synthesized.write_text(json.dumps(stack))
        return code

    out, err = io.StringIO(), io.StringIO()
    tools = ops_tools.Tools(run=run, out=out, err=err, root=deployment.config_root,
                            synth_dir=deployment.local / "cdktf.out", bootstrap_state=state,
                            ask=lambda prompt: pytest.fail(f"asked although --yes: {prompt}"),
                            environ={**deployment.env, project.EMULATOR_VARIABLE: deployment.endpoint,
                                     **PLANS_IN_PARALLEL})
    try:
        code = cli.main(["deploy", BOOTSTRAP_STACK, "--yes"], tools)
    finally:
        synthesized.write_bytes(original)
    assert code == errors.EXIT_REFUSED and renamed, f"not refused by the guard:\n{out.getvalue()}\n{err.getvalue()}"
    assert f"replace bucket webapp-terraform-state-example-access-logs: --allow-replace {renamed['address']}" in \
        err.getvalue(), err.getvalue()
    assert "(nothing applied)" in err.getvalue()
    assert json.loads(state.read_text())["serial"] == serial, "the bootstrap's state changed"
    assert not (deployment.scratch / "guard.log").read_text().count("Apply complete!")


def _address_of_id(deployment: Deployment, kind: str, resource_id: str) -> str:
    found = [r["address"] for r in _state_resources(deployment, DEPLOYED_ENVIRONMENT)
             if r["type"] == kind and r["values"].get("id") == resource_id]
    assert len(found) == 1, f"expected one {kind} with id {resource_id}, found {found}"
    return found[0]


def _break_the_plan(plan: dict, mutation: str) -> str:
    """Add one change no gap explains to a copy of the real second plan; returns its address."""
    changes = {change["type"]: change for change in plan["resource_changes"] if change["mode"] == "managed"}
    if mutation == "new resource":
        created = copy.deepcopy(changes["aws_s3_bucket"])
        created["address"], created["change"]["actions"] = "aws_s3_bucket.extra", ["create"]
        plan["resource_changes"].append(created)
        return created["address"]
    kind, attribute, value, actions = {
        # a drifting type, but not one of its drifting attributes
        "service count": ("aws_ecs_service", "desired_count", 7, ["update"]),
        # a dependent of drifting resources (what the old test excluded wholesale)
        "task definition": ("aws_ecs_task_definition", "container_definitions", "[]", ["delete", "create"]),
        # a drifting type changing a drifting and a steady attribute at once
        "rule port": ("aws_vpc_security_group_ingress_rule", "from_port", 1, ["update"]),
    }[mutation]
    change = changes[kind]["change"]
    change["after"][attribute], change["actions"] = value, actions
    if kind == "aws_vpc_security_group_ingress_rule":
        change["after"]["description"] = "changed"
    return changes[kind]["address"]


@pytest.mark.parametrize("mutation", ["service count", "task definition", "rule port", "new resource"])
def test_the_plan_check_catches_a_change_outside_the_gaps(deployment, mutation):
    """The real second plan, broken in memory: one more changed attribute must be reported."""
    plan = copy.deepcopy(second_plan(deployment))
    assert not plan_against_gaps(plan, emulator.drifting_attributes())[0], "the real plan must pass first"
    address = _break_the_plan(plan, mutation)
    unexplained, _ = plan_against_gaps(plan, emulator.drifting_attributes())
    assert address in unexplained, unexplained


def _plan_with_a_deferred_document(secret_after: str) -> dict:
    """A second plan of the shape a data-source policy document gives (the shipped stacks have none since
    issue 23): the document is read again at apply because the cluster it reads has a pending change, so the
    role policy built from it is unknown. The cluster's `port` drifts; its master secret goes from `arn:secret`
    to `secret_after`."""
    cluster, document, policy = "aws_rds_cluster.db", "data.aws_iam_policy_document.reads", "aws_iam_role_policy.p"
    secret = "arn:secret"
    return {
        "resource_changes": [
            {"address": cluster, "mode": "managed", "type": "aws_rds_cluster",
             "change": {"actions": ["update"],
                        "before": {"master_user_secret": [{"secret_arn": secret}], "port": 5432},
                        "after": {"master_user_secret": [{"secret_arn": secret_after}], "port": 5433},
                        "after_unknown": {}}},
            {"address": document, "mode": "data", "type": "aws_iam_policy_document",
             "change": {"actions": ["read"], "before": None, "after": {}, "after_unknown": {"json": True}}},
            {"address": policy, "mode": "managed", "type": "aws_iam_role_policy",
             "change": {"actions": ["update"], "before": {"policy": "{}"}, "after": {},
                        "after_unknown": {"policy": True}}},
        ],
        "configuration": {"root_module": {"resources": [
            {"address": cluster, "expressions": {"port": {"constant_value": 5433}}},
            {"address": document, "expressions": {"statement": [{"resources": {"references": [
                f"{cluster}.master_user_secret[0].secret_arn", f"{cluster}.master_user_secret[0]",
                f"{cluster}.master_user_secret", cluster]}}]}},
            {"address": policy, "expressions": {"policy": {"references": [f"{document}.json", document]}}},
        ]}},
    }


def test_a_deferred_document_explains_only_what_its_unchanged_inputs_build():
    """A role policy unknown only because its document is read again, every input unchanged, is explained;
    once the document reads another secret it is reported (the cluster's own update is a drift of its own)."""
    drifting = {"aws_rds_cluster": {"port"}}
    unchanged = _plan_with_a_deferred_document("arn:secret")
    assert deferred_documents_with_unchanged_inputs(unchanged) == {"data.aws_iam_policy_document.reads"}
    assert not plan_against_gaps(unchanged, drifting)[0]
    other = _plan_with_a_deferred_document("arn:secret-other")
    assert deferred_documents_with_unchanged_inputs(other) == set()
    assert "aws_iam_role_policy.p" in plan_against_gaps(other, drifting)[0]


def _restore(deployment: Deployment, *argv: str) -> tuple[int, str, str]:
    """`python -m ops restore dev ARGV` against the emulator, with the deployed configuration and its preflight."""
    out, err = io.StringIO(), io.StringIO()

    def run_preflight(config: ProjectConfig, name: str) -> preflight.PreflightResult:
        clients = preflight.AwsClients(sts=deployment.client("sts"), s3=deployment.client("s3"),
                                       dynamodb=deployment.client("dynamodb"))
        return preflight.run_preflight(config, name, clients)

    tools = ops_tools.Tools(out=out, err=err, root=deployment.config_root, run_preflight=run_preflight,
                            environ={project.EMULATOR_VARIABLE: deployment.endpoint},
                            aws=lambda config, service, region, role=None: deployment.dev_client(service, region))
    code = cli.main(["restore", DEPLOYED_ENVIRONMENT, *argv], tools)
    return code, out.getvalue(), err.getvalue()


def _find_copy_in_the_dr_region(deployment: Deployment, snapshot: dict) -> None:
    """The copy AWS Backup's copy job would make (backup-selection gap) is found in the DR region, and the
    command names the way back through the DR-region stack: `[dr] restore_from_snapshot` in the environment's
    file, then `python -m ops deploy <env>-dr` (issue 25)."""
    env, region = deployment.environment, deployment.environment.dr.region
    copy_key = deployment.dev_client("kms", region).describe_key(KeyId=f"alias/{env.resource_name('backup-dr')}")
    deployment.dev_client("rds", region).copy_db_cluster_snapshot(
        SourceDBClusterSnapshotIdentifier=snapshot["DBClusterSnapshotArn"], SourceRegion=env.region,
        TargetDBClusterSnapshotIdentifier=f"{snapshot['DBClusterSnapshotIdentifier']}-copy",
        KmsKeyId=copy_key["KeyMetadata"]["Arn"])
    code, out, err = _restore(deployment, "--region", region, "--latest")
    assert code == 0, f"{out}\n{err}"
    assert f"recovery point {snapshot['DBClusterSnapshotIdentifier']}-copy in {region}" in out, out
    assert f'environments/{DEPLOYED_ENVIRONMENT}.toml, [dr]: restore_from_snapshot = "' \
           f'{snapshot["DBClusterSnapshotIdentifier"]}-copy"' in out, out
    assert f"python -m ops deploy {DEPLOYED_ENVIRONMENT}-dr" in out and "master" not in out, out


def _following(stack: dict, roots: Iterable[str]) -> set[str]:
    """`roots` and every block that references them, directly or through others: what a restore changes
    (Terraform adds what they depend on itself). Planning only these keeps the drill's refresh small."""
    blocks = {address: json.dumps(body) for address, body in emulator.stack_blocks(stack).items()}
    found = set(roots)
    while True:
        more = {address for address, body in blocks.items() if address not in found
                and any(f"${{{root}." in body or f"${{{root}}}" in body for root in found)}
        if not more:
            return {address for address in found if not address.startswith("data.")}
        found |= more


def _deploy_restored(deployment: Deployment) -> tuple[EnvironmentConfig, dict]:
    """What `python -m ops deploy dev --allow-replace ...` does, targeted at what the restore changes: synthesize the
    changed configuration, plan to a file, check the guard names exactly what the command printed, apply
    that file; then the second apply, which turns on IAM authentication. Returns (dev, its outputs)."""
    config = load_project(deployment.config_root / ENVIRONMENTS_DIR.name, emulator_endpoint=deployment.endpoint)
    env = config.environment(DEPLOYED_ENVIRONMENT)
    outdir = deployment.scratch / "restored.out"
    stack = synthesize(config, outdir)[DEPLOYED_ENVIRONMENT]
    shutil.copy(outdir / "stacks" / DEPLOYED_ENVIRONMENT / "cdk.tf.json", deployment.stack_dir(DEPLOYED_ENVIRONMENT))
    targets = _following(stack, restore.replaced_addresses(env)) & set(emulator.deployable(stack)[0])
    # The old secret's rotation, which moto cannot delete (a forgotten_before_destroy gap); nothing else.
    rotation = "aws_secretsmanager_secret_rotation"
    assert rotation in emulator.gap_types("forgotten_before_destroy")
    forgotten = [r["address"] for r in _state_resources(deployment, DEPLOYED_ENVIRONMENT) if r["type"] == rotation]
    deployment.terraform(DEPLOYED_ENVIRONMENT, "state rm", *forgotten)
    planfile = deployment.scratch / "restore.tfplan"
    deployment.terraform(DEPLOYED_ENVIRONMENT, "plan", "-input=false", PARALLELISM, f"-out={planfile}",
                         *_target_flags(targets))
    shown = json.loads(deployment.terraform(DEPLOYED_ENVIRONMENT, "show", "-json", str(planfile)).stdout)
    losses = {risk.address for risk in plan_report.summarize_plan(shown).risks}
    assert losses == set(restore.replaced_addresses(env)), "the guard must ask for what the command printed"
    deployment.terraform(DEPLOYED_ENVIRONMENT, "apply", "-input=false", PARALLELISM, str(planfile))
    cluster = restore.terraform_address("aws_rds_cluster", "database", "cluster")
    deployment.terraform(DEPLOYED_ENVIRONMENT, "apply", "-auto-approve", "-input=false", f"-target={cluster}")
    outputs = json.loads(deployment.terraform(DEPLOYED_ENVIRONMENT, "output", "-json").stdout)
    return env, {name: output["value"] for name, output in outputs.items()}


def _roles_reading(deployment: Deployment, secret_arn: str) -> set[str]:
    """Roles with a policy (inline or attached) allowing secretsmanager:GetSecretValue on `secret_arn`, and none
    denying it (an explicit deny wins, as in IAM's evaluation)."""
    iam = deployment.dev_client("iam")
    readers, denied = set(), set()
    for role in iam.list_roles()["Roles"]:
        name = role["RoleName"]
        documents = [iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
                     for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]]
        for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
            version = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]["DefaultVersionId"]
            documents.append(iam.get_policy_version(PolicyArn=attached["PolicyArn"], VersionId=version)[
                "PolicyVersion"]["Document"])
        for document in documents:
            document = json.loads(document) if isinstance(document, str) else document
            for statement in _statements(document):
                if any(fnmatch.fnmatchcase("secretsmanager:GetSecretValue", action)
                       for action in _as_list(statement.get("Action"))) and any(
                        fnmatch.fnmatchcase(secret_arn, resource) for resource in _as_list(statement.get("Resource"))):
                    (readers if statement.get("Effect") == "Allow" else denied).add(name)
    return readers - denied


# About 4 minutes of the provider's own waits (restore, modify, instance create and delete, a second apply):
# over the per-commit budget, so it runs every night (.github/workflows/properties.yml).
@pytest.mark.nightly
def test_restore_drill_puts_the_environment_on_the_restored_cluster_through_terraform(deployment):
    """A snapshot of the applied cluster restored the way the runbook says: `python -m ops restore dev --write`,
    then the deploy. The API, its task role and the bootstrap task follow the new cluster; nobody else can
    read its master secret; the same restore again changes nothing."""
    environment_applied(deployment)
    home = deployment.environment
    rds = deployment.dev_client("rds", home.region)
    (old,) = rds.describe_db_clusters(DBClusterIdentifier=restore.cluster_identifier(home))["DBClusters"]
    snapshot = rds.create_db_cluster_snapshot(DBClusterIdentifier=old["DBClusterIdentifier"],
                                              DBClusterSnapshotIdentifier=f"{old['DBClusterIdentifier']}-drill")[
        "DBClusterSnapshot"]
    _find_copy_in_the_dr_region(deployment, snapshot)
    bootstrap = BootstrapRun.from_output(home, json.loads(deployment.terraform(
        DEPLOYED_ENVIRONMENT, "output", "-json", database_bootstrap.OUTPUT).stdout))
    assert bootstrap.database_cluster == old["DbClusterResourceId"]
    deployment.dev_client("ssm").put_parameter(Name=bootstrap.record_name, Value=bootstrap.fingerprint, Type="String",
                                           Overwrite=True)  # as the bootstrap run of the first deploy records it

    code, out, err = _restore(deployment, "--latest", "--write")
    assert code == 0, f"{out}\n{err}"
    file = deployment.config_root / ENVIRONMENTS_DIR.name / f"{DEPLOYED_ENVIRONMENT}.toml"
    written = file.read_bytes()
    assert f'restore_from_snapshot = "{snapshot["DBClusterSnapshotIdentifier"]}"' in written.decode()
    again, out, err = _restore(deployment, "--latest", "--write")
    assert again == 0 and "nothing to do" in out and file.read_bytes() == written, f"{out}\n{err}"

    env, outputs = deployment.step("restore deploy", lambda: _deploy_restored(deployment))
    (cluster,) = rds.describe_db_clusters(DBClusterIdentifier=restore.cluster_identifier(env))["DBClusters"]
    assert cluster["DBClusterIdentifier"] != old["DBClusterIdentifier"]
    assert not [c for c in rds.describe_db_clusters()["DBClusters"]
                if c["DBClusterIdentifier"] == old["DBClusterIdentifier"]], "the replaced cluster is deleted"
    assert cluster["DBClusterParameterGroup"] == env.resource_name("aurora-postgresql16"), "the TLS-only group"
    data_key = deployment.dev_client("kms").describe_key(KeyId=f"alias/{env.resource_name('data')}")["KeyMetadata"]
    assert deployment.dev_client("kms").describe_key(KeyId=cluster["KmsKeyId"])["KeyMetadata"]["Arn"] == data_key["Arn"]
    assert cluster["IAMDatabaseAuthenticationEnabled"] is True, "the second apply turns IAM authentication on"
    secret = cluster["MasterUserSecret"]
    assert deployment.dev_client("kms").describe_key(KeyId=secret["KmsKeyId"])["KeyMetadata"]["Arn"] == data_key["Arn"]

    ecs = deployment.dev_client("ecs")
    definitions = [ecs.describe_task_definition(taskDefinition=r["values"]["arn"])["taskDefinition"]
                   for r in _state_resources(deployment, DEPLOYED_ENVIRONMENT)
                   if r["type"] == "aws_ecs_task_definition"]
    (api,) = [d for d in definitions if any(variable["name"] == "DB_HOST" for container in d["containerDefinitions"]
                                            for variable in container.get("environment", []))]
    hosts = {variable["value"] for container in api["containerDefinitions"]
             for variable in container.get("environment", []) if variable["name"] == "DB_HOST"}
    assert hosts == {cluster["Endpoint"]}
    iam = deployment.dev_client("iam")
    role = api["taskRoleArn"].rsplit("/", 1)[-1]
    connects = [resource for policy in iam.list_role_policies(RoleName=role)["PolicyNames"]
                for statement in _statements(iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"])
                if "rds-db:connect" in _as_list(statement.get("Action"))
                for resource in _as_list(statement.get("Resource"))]
    assert connects and all(f":dbuser:{cluster['DbClusterResourceId']}/" in resource for resource in connects), connects

    rerun = BootstrapRun.from_output(env, outputs[database_bootstrap.OUTPUT])
    (bootstrap_definition,) = [d for d in definitions if rerun.task_definition in
                               (d["taskDefinitionArn"], d["family"], f"{d['family']}:{d['revision']}")]
    reader = bootstrap_definition["executionRoleArn"].rsplit("/", 1)[-1]
    assert _roles_reading(deployment, secret["SecretArn"]) == {reader}, "only the bootstrap task reads it"
    recorded = deployment.dev_client("ssm").get_parameter(Name=rerun.record_name)["Parameter"]["Value"]
    assert rerun.why_run(recorded) == f"it has not run for database cluster {cluster['DbClusterResourceId']} yet"


def _planned_actions(plan: dict, resource_type: str) -> dict[str, list[str]]:
    return {change["address"]: change["change"]["actions"] for change in plan["resource_changes"]
            if change["type"] == resource_type}


@pytest.mark.nightly
def test_adding_a_standby_to_the_applied_dev_replaces_no_part_of_its_database(deployment):
    """The plan of the standby configuration against dev's applied state: the global database is created from
    the existing cluster (its ARN), and the cluster and its instances are neither replaced nor destroyed."""
    plan = standby_applied(deployment)["plan"]
    cluster_actions = {**_planned_actions(plan, "aws_rds_cluster"),
                       **_planned_actions(plan, "aws_rds_cluster_instance")}
    assert cluster_actions and all("delete" not in actions for actions in cluster_actions.values()), cluster_actions
    # The master password leaves RDS's management (AWS: not for a global member): an update in place, and the
    # throwaway password is in no plan (write-only arguments are always null there, and in the state); the
    # secret ops writes is created without a value (no secret version for Terraform to read back).
    (cluster_change,) = [change for change in plan["resource_changes"] if change["type"] == "aws_rds_cluster"]
    assert cluster_change["change"]["actions"] == ["update"]
    assert cluster_change["change"]["after"]["manage_master_user_password"] is None
    assert cluster_change["change"]["after"]["master_password_wo"] is None
    assert cluster_change["change"]["after"]["master_password_wo_version"] == 1
    (secret,) = [change for change in plan["resource_changes"] if change["type"] == "aws_secretsmanager_secret"
                 and change["name"].startswith("database_master-secret")]
    assert secret["change"]["actions"] == ["create"]
    assert not [change for change in plan["resource_changes"] if change["type"] ==
                "aws_secretsmanager_secret_version" and change["name"].startswith("database_master-secret")]
    (created,) = [change for change in plan["resource_changes"] if change["type"] == "aws_rds_global_cluster"]
    assert created["change"]["actions"] == ["create"]
    (cluster,) = [resource for resource in _state_resources(deployment, DEPLOYED_ENVIRONMENT)
                  if resource["type"] == "aws_rds_cluster"]
    assert created["change"]["after"]["source_db_cluster_identifier"] == cluster["values"]["arn"]
    assert created["change"]["after"]["global_cluster_identifier"] == "webapp-dev-global"


@pytest.mark.nightly
def test_the_dr_region_stack_of_a_standby_dev_joins_the_global_database(deployment):
    """dev-dr applied into the emulator's second region: its cluster is a member (not the writer) of the global
    database, encrypted with a key of that region; its API runs standby_min_tasks (0) tasks."""
    result = standby_applied(deployment)
    env = standby_configuration(deployment).environment
    rds = deployment.dev_client("rds", env.dr.region)
    (cluster,) = rds.describe_db_clusters(DBClusterIdentifier=f"webapp-{env.name}-dr-db")["DBClusters"]
    assert cluster["StorageEncrypted"] is True
    key = deployment.dev_client("kms", env.dr.region).describe_key(KeyId=cluster["KmsKeyId"])["KeyMetadata"]
    assert key["Arn"].startswith(f"arn:aws:kms:{env.dr.region}:")
    (found,) = [g for g in deployment.dev_client("rds", env.region).describe_global_clusters()["GlobalClusters"]
                if g["GlobalClusterIdentifier"] == "webapp-dev-global"]
    members = {member["DBClusterArn"]: member["IsWriter"] for member in found["GlobalClusterMembers"]}
    assert members.get(cluster["DBClusterArn"]) is False and result["source"] in members, members
    (service,) = deployment.dev_client("ecs", env.dr.region).describe_services(
        cluster=f"webapp-{env.name}-dr-cluster", services=[f"webapp-{env.name}-dr-api"])["services"]
    assert service["desiredCount"] == env.dr.standby_min_tasks == 0


@pytest.mark.nightly
@pytest.mark.parametrize("mode", [["--planned"], []])
def test_failover_runs_on_the_emulator_until_moto_lacks_the_move(deployment, mode):
    """`python -m ops failover dev` against moto: the global database and its members are read, the standby is
    the target, and moto refuses the switchover / failover (gap rds-global-failover): refused, nothing scaled."""
    standby_applied(deployment)
    standby = standby_configuration(deployment)
    env = standby.environment
    out, err = io.StringIO(), io.StringIO()
    passed = preflight.PreflightResult(env.dr_stack_name, ACCOUNT, (preflight.CheckResult("account", True, "moto"),))
    tools = ops_tools.Tools(out=out, err=err, root=standby.root, environ={}, sleep=lambda seconds: None,
                            run_preflight=lambda project, name: passed,
                            aws=lambda project, service, region, role=None: _moto_client(
                                deployment.endpoint, service, region, attempts=1, account=ACCOUNT))
    code = cli.main(["failover", DEPLOYED_ENVIRONMENT, *mode, "--yes"], tools)
    assert code == errors.EXIT_REFUSED, err.getvalue()
    assert "AWS refused to move the writer of webapp-dev-global" in err.getvalue()
    assert (f"moves from arn:aws:rds:{env.region}:{ACCOUNT}:cluster:{STANDBY_SOURCE} to arn:aws:rds:"
            f"{env.dr.region}:{ACCOUNT}:cluster:webapp-dev-dr-db") in out.getvalue()
    (service,) = deployment.dev_client("ecs", env.dr.region).describe_services(
        cluster=f"webapp-{env.name}-dr-cluster", services=[f"webapp-{env.name}-dr-api"])["services"]
    assert service["desiredCount"] == 0, "nothing is scaled when the writer did not move"


@pytest.mark.nightly
def test_dev_destroy_removes_every_resource(deployment):
    """Nightly: about 90 s on two cores (measured), more than the per-commit budget had left; local-down
    discards the emulator with everything in it either way."""
    environment_applied(deployment)

    def destroy() -> None:
        resources = _state_resources(deployment, DEPLOYED_ENVIRONMENT)
        forgotten = [r["address"] for r in resources if r["type"] in emulator.gap_types("forgotten_before_destroy")]
        if forgotten:
            deployment.terraform(DEPLOYED_ENVIRONMENT, "state rm", *forgotten)
        deployment.terraform(DEPLOYED_ENVIRONMENT, "destroy", "-auto-approve", "-input=false", PARALLELISM)

    deployment.step("dev destroy", destroy)
    left = _state_resources(deployment, DEPLOYED_ENVIRONMENT)
    assert not left, f"resources left in state: {[r['address'] for r in left]}"
    vpcs = deployment.dev_client("ec2").describe_vpcs(
        Filters=[{"Name": "tag:Environment", "Values": [DEPLOYED_ENVIRONMENT]}])["Vpcs"]
    assert not vpcs, f"VPCs survived destroy: {[v['VpcId'] for v in vpcs]}"


def test_bootstrap_destroy_is_refused_by_prevent_destroy(deployment):
    """Terraform, not luck, keeps the state backend alive.

    Terraform plans destruction dependents-first and skips a resource once something depending
    on it was refused, so the KMS key (the lock table depends on it) is protected but not named
    in the errors; the checks after the refusal show it, like the rest, still exists.
    """
    bootstrap_applied(deployment)
    bootstrap = deployment.stacks[BOOTSTRAP_STACK]
    before = deployment.terraform(BOOTSTRAP_STACK, "state list").stdout.split()
    # No refresh: what is refused is decided from the configuration and state alone.
    refused = deployment.terraform(BOOTSTRAP_STACK, "destroy", "-auto-approve", "-input=false", "-refresh=false",
                                   check=False)

    assert refused.returncode != 0, f"bootstrap destroy was not refused:\n{refused.stdout}"
    named = set(re.findall(r"Resource (\S+) has\s+lifecycle\.prevent_destroy\s+set", refused.stderr))
    must_be_named = {_address_of(bootstrap, "aws_s3_bucket", deployment.state.bucket),
                     _address_of(bootstrap, "aws_dynamodb_table", deployment.state.lock_table)}
    protected = _prevent_destroy_addresses(bootstrap)
    assert must_be_named <= named <= protected, (
        f"refused {sorted(named)}; protected {sorted(protected)}:\n{refused.stderr}"
    )
    assert deployment.terraform(BOOTSTRAP_STACK, "state list").stdout.split() == before, "bootstrap state changed"
    state = deployment.state
    deployment.client("s3").head_bucket(Bucket=state.bucket)
    deployment.client("dynamodb").describe_table(TableName=state.lock_table)
    key = deployment.client("kms").describe_key(KeyId=state.kms_alias)["KeyMetadata"]
    assert key["KeyState"] == "Enabled", f"the state key is {key['KeyState']}"


def test_local_down_stops_the_emulator_and_removes_everything(deployment):
    """The flow's last step: `python -m ops local-down` stops local-up's emulator and removes its folder."""
    pid = read_pid(deployment.local)
    assert is_running(pid)
    down = subprocess.run([sys.executable, "-m", "ops", "local-down", "--local-dir", str(deployment.local)],
                          cwd=deployment.product, env=deployment.env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert down.returncode == 0, down.stderr
    assert f"emulator (pid {pid}) stopped" in down.stdout
    assert not is_running(pid), f"emulator pid {pid} still running after local-down"
    assert not deployment.local.exists()
