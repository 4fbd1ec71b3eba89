"""The one way commands reach processes, AWS and the terminal: an injectable `Tools`.

Tests replace its members with recorders, so every safety rule is exercised without AWS or
Terraform; nothing in `ops` starts a process, calls AWS or asks a question any other way.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from core.access import AssumedRole
from environments.model import EnvironmentConfig, ProjectConfig
from ops import database_bootstrap, preflight
from ops.aws_session import CLIENT_CONFIG, session_for

ROOT = Path(__file__).resolve().parents[1]

Runner = Callable[[Sequence[str], Path, Mapping[str, str]], int]
Capturer = Callable[[Sequence[str], Path, Mapping[str, str]], tuple[int, str]]
LogRunner = Callable[[Sequence[str], Path, Mapping[str, str], Path], int]


def run_streaming(command: Sequence[str], cwd: Path, env: Mapping[str, str]) -> int:
    """Run a command with its output going straight to the terminal; return its exit status."""
    return subprocess.run(list(command), cwd=cwd, env=dict(env), check=False).returncode


def run_capturing(command: Sequence[str], cwd: Path, env: Mapping[str, str]) -> tuple[int, str]:
    """Run a command and return its exit status and standard output (stderr still goes to the terminal)."""
    result = subprocess.run(list(command), cwd=cwd, env=dict(env), stdout=subprocess.PIPE, text=True, check=False)
    return result.returncode, result.stdout


def run_to_log(command: Sequence[str], cwd: Path, env: Mapping[str, str], log: Path) -> int:
    """Run a command with its output (stdout and stderr) appended to `log`; return its exit status."""
    with log.open("a") as out:
        return subprocess.run(list(command), cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT,
                              check=False).returncode


def aws_client(project: ProjectConfig, service: str, region: str, role: AssumedRole | None = None):
    """A boto3 client in `region` (as `role` when given), at the emulator when INFRA_AWS_ENDPOINT names one."""
    endpoint = project.emulator.endpoint if project.emulator else None
    return session_for(project, role, region).client(service, region_name=region, endpoint_url=endpoint,
                                                     config=CLIENT_CONFIG)


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
    run_logged: LogRunner = run_to_log
    ask: Callable[[str], str] = ask_terminal
    run_preflight: Callable[[ProjectConfig, str], preflight.PreflightResult] = preflight.run_preflight
    state_bucket_status: Callable[[ProjectConfig], str] = preflight.state_bucket_status
    database_bootstrapper: Callable[[ProjectConfig, EnvironmentConfig],
                                    database_bootstrap.DatabaseBootstrapper] = database_bootstrap.aws_bootstrapper
    aws: Callable[..., object] = aws_client  # (project, service, region, role=None)
    # Waiting between polls of AWS (a failover's progress); tests pass a recorder that returns at once.
    sleep: Callable[[float], None] = time.sleep
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
