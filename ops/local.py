"""`local-up` and `local-down`: moto on loopback (ops/emulator.py) with the bootstrap and an environment applied.

Everything local-up creates lives in one folder (.local/ by default), so local-down can remove
all of it. Nothing here needs the network: Terraform gets fake credentials, every non-loopback
request goes to a dead proxy, and `TF_PROVIDER_MIRROR` (when set) replaces the registry.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from environments.model import BOOTSTRAP_STACK
from ops import emulator
from ops.errors import Refused, UsageError
from ops.project import load, target
from ops.targets import Kind
from ops.terraform import synth, terraform_for
from tools.terraform_cli_config import MIRROR_VARIABLE, MirrorError, mirror_root, write_cli_config

if TYPE_CHECKING:
    from ops.tools import Tools

LOOPBACK = emulator.LOOPBACK
LOCAL_ENVIRONMENT = "dev"
EMULATOR_MODULE = "ops.emulator_server"
EMULATOR_START_SECONDS = 60
EMULATOR_STOP_SECONDS = 15
# The emulator answers at once; the provider's own waits (KMS, S3 lifecycle) dominate, so run many at once.
LOCAL_PARALLELISM = "-parallelism=30"
# Inherited TF_* variables kept for terraform: logging, and the CLI config unless a mirror replaces it.
KEPT_TF_VARIABLES = ("TF_LOG", "TF_LOG_PATH", "TF_LOG_PROVIDER", "TF_LOG_CORE", "TF_CLI_CONFIG_FILE")
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
# Requests for anything but loopback go here, where nothing listens: the local stack never reaches AWS.
DEAD_PROXY = f"http://{LOOPBACK}:1"
# What the quiet view reads from Terraform's log: the count line of an apply, the resource an error names.
APPLY_COMPLETE = re.compile(r"Apply complete! Resources: ([^.]*)\.")
ERROR_RESOURCE = re.compile(r"^\s+with ((?:data\.)?[a-z0-9_]+\.[A-Za-z0-9_-]+),$")


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
    def terraform_log(self) -> Path:
        return self.root / "terraform.log"

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
    if command and EMULATOR_MODULE in command and str(local.endpoint_file) in command:
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
            [sys.executable, "-m", EMULATOR_MODULE, "--host", LOOPBACK, "--port", str(port),
             "--ready-file", str(local.endpoint_file)],
            cwd=local.root, env={**tools.environ, "PYTHONPATH": str(tools.root)},
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
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


def default_local_dir() -> Path:
    return Path(__file__).resolve().parents[1] / ".local"


def local_down_command(local_dir: Path) -> str:
    command = "python -m ops local-down"
    return command if local_dir.resolve() == default_local_dir() else f"{command} --local-dir {local_dir}"


def left_out_lines(stack: str, left_out: set[str]) -> list[str]:
    """What the emulator could not take, grouped by the gap that stops it and then by type, not per resource."""
    if not left_out:
        return []
    counts = Counter(address.split(".")[-2] for address in left_out)
    lines = [f"{stack}: {len(left_out)} blocks left out, the rest applied for real (ops/emulator.py EMULATOR_GAPS "
             "says why):"]
    uncreatable: set[str] = set()
    for gap, kinds in emulator.NOT_CREATABLE.items():
        uncreatable.update(kinds)
        found = [f"{kind} x{counts[kind]}" for kind in kinds if counts[kind]]
        if found:
            lines.append(f"  the emulator cannot create ({gap}): {', '.join(found)}")
    dependents = sorted((kind, count) for kind, count in counts.items() if kind not in uncreatable)
    if dependents:
        lines.append(f"  they depend on those: {', '.join(f'{kind} x{count}' for kind, count in dependents)}")
    return lines


def emulated_targets(local: LocalPaths, stack: str) -> tuple[list[str], set[str]]:
    """`-target` options that leave out what the emulator cannot create (none when it can create everything),
    and the addresses left out."""
    synthesized = json.loads((local.outdir / "stacks" / stack / "cdk.tf.json").read_text())
    targets, left_out = emulator.deployable(synthesized)
    return ([f"-target={address}" for address in targets] if left_out else []), left_out


def applied_counts(log_text: str) -> str:
    """Terraform's own count line ("3 added, 0 changed, 0 destroyed"), from the part of the log one apply wrote."""
    found = APPLY_COMPLETE.findall(log_text)
    return found[-1] if found else "nothing to change"


def failure_lines(log_text: str) -> list[str]:
    """Each error Terraform logged, with the resource it names: what a failed apply prints instead of "see the log"."""
    lines = log_text.splitlines()
    failures = []
    for index, line in enumerate(lines):
        if not line.startswith("Error: "):
            continue
        resource = next((match.group(1) for later in lines[index + 1:index + 12]
                         if (match := ERROR_RESOURCE.match(later))), None)
        failures.append(f"  {resource or '(no resource named)'}: {line.removeprefix('Error: ')}")
    return failures or ["  (terraform printed no error block; the log's end says why)"]


def apply_stack(tools: Tools, local: LocalPaths, stack: str, envs: tuple[dict[str, str], dict[str, str]],
                verbose: bool) -> list[str]:
    """init + apply one stack; in the quiet view one line when it starts and one when it ends (or its errors).

    Returns the left-out summary lines for the final report.
    """
    init_env, apply_env = envs
    log = None if verbose else local.terraform_log
    started = time.monotonic()
    targets, left_out = emulated_targets(local, stack)
    tools.say(f"{stack}: applying" + (f" (leaving out {len(left_out)} blocks the emulator cannot create)"
                                      if left_out else ""))
    offset = local.terraform_log.stat().st_size if local.terraform_log.exists() else 0
    try:
        terraform_for(tools, stack, local.outdir, init_env, log)("init", "-input=false", "-no-color")
        terraform_for(tools, stack, local.outdir, apply_env, log)(
            "apply", "-input=false", "-auto-approve", "-no-color", LOCAL_PARALLELISM, *targets)
    except Refused as error:
        if log is None:
            raise
        written = _log_since(local.terraform_log, offset)
        raise Refused("\n".join([f"{stack}: {error}", *failure_lines(written), f"  full log: {log}"])) from None
    counts = "applied" if log is None else applied_counts(_log_since(local.terraform_log, offset))
    tools.say(f"{stack}: {counts} in {time.monotonic() - started:.0f} s")
    return left_out_lines(stack, left_out)


def output_lines(outputs: dict) -> list[str]:
    """One line per output (`terraform output -json`), maps and lists compact, sensitive values hidden."""
    return [f"{name} = " + ("(sensitive)" if output.get("sensitive")
                            else json.dumps(output.get("value"), separators=(",", ":")))
            for name, output in sorted(outputs.items())]


def _log_since(log: Path, offset: int) -> str:
    with log.open() as text:
        text.seek(offset)
        return text.read()


def deploy_locally(tools: Tools, local: LocalPaths, endpoint: str, stacks: Sequence[str], verbose: bool) -> None:
    """Synthesize for the emulator into the local folder, apply each stack, then report outputs and what was
    left out."""
    project = load(tools, endpoint=endpoint)  # validates the endpoint as synthesis will
    synth(tools, stacks, local.outdir, endpoint, log=None if verbose else local.terraform_log)
    envs = (local_terraform_env(tools, local, project.state.region, offline=False),
            local_terraform_env(tools, local, project.state.region, offline=True))
    left_out = [line for stack in stacks for line in apply_stack(tools, local, stack, envs, verbose)]
    for stack in stacks:
        tools.say(f"outputs of {stack}:")
        for line in output_lines(terraform_for(tools, stack, local.outdir, envs[1]).json("output", "-json")):
            tools.say(f"  {line}")
    for line in left_out:
        tools.say(line)


def cmd_local_up(tools: Tools, args: argparse.Namespace) -> int:
    local = LocalPaths(args.local_dir.resolve())
    environment = target(load(tools), args.environment, Kind.ENVIRONMENT).environment
    if environment.production:
        raise UsageError(f"local-up deploys a development environment; {args.environment} has production = true")
    local.create()
    down = local_down_command(args.local_dir)
    endpoint = start_emulator(tools, local, args.port)
    stacks = (BOOTSTRAP_STACK,) if args.bootstrap_only else (BOOTSTRAP_STACK, args.environment)
    try:
        deploy_locally(tools, local, endpoint, stacks, args.verbose)
    except (Refused, UsageError) as error:
        raise type(error)(f"{error}\n(the emulator keeps running for inspection; stop it with: {down})") from None
    if not args.verbose:
        tools.say(f"full Terraform log: {local.terraform_log}")
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
