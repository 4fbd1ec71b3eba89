"""Synthesis (main.py, only the stacks a command needs) and Terraform in a synthesized stack's folder."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ops.errors import Refused
from ops.project import EMULATOR_VARIABLE

if TYPE_CHECKING:
    from ops.tools import Tools

OUTDIR_VARIABLE = "CDKTF_OUTDIR"
STACKS_VARIABLE = "INFRA_STACKS"
# main.py's ACCESS_VARIABLE: `plan` synthesizes for the read-only identities (plan roles, read-only state roles).
ACCESS_VARIABLE = "INFRA_ACCESS"
# `terraform plan -detailed-exitcode`: 0 no changes, 1 error, 2 changes present.
PLAN_NO_CHANGES, PLAN_CHANGES = 0, 2


def terraform_binary() -> str:
    binary = shutil.which("terraform")
    if binary is None:
        raise Refused("terraform is not on PATH: install Terraform >= 1.10")
    return binary


def synth(tools: Tools, stacks: Sequence[str] = (), outdir: Path | None = None, endpoint: str | None = None,
          log: Path | None = None, read_only: bool = False) -> None:
    """Synthesize `stacks` (every stack when empty) with main.py (the same interpreter) into `outdir`.

    A command synthesizes only the stacks it runs terraform in: with a dozen environments, planning
    one of them must not pay for the other eleven. main.py still validates the whole configuration.
    With `log`, main.py's output goes there (local-up's quiet view), and a failure quotes its last lines.
    `read_only` synthesizes for the read-only identities: with per-stack state isolation the providers assume
    the CI plan role and the backend the stack's read-only state role, which can neither write nor lock
    (so the caller must plan with -lock=false); without isolation it changes nothing.
    """
    env = {**tools.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
           OUTDIR_VARIABLE: str(outdir or tools.outdir)}
    env.pop(STACKS_VARIABLE, None)  # the stacks are named on the command line, never inherited
    env[ACCESS_VARIABLE] = "plan" if read_only else "deploy"  # never inherited either
    if endpoint is not None:
        env[EMULATOR_VARIABLE] = endpoint
    command = [sys.executable, str(tools.root / "main.py"), *stacks]
    if log is None:
        code = tools.run(command, tools.root, env)
    else:
        offset = log.stat().st_size if log.exists() else 0
        code = tools.run_logged(command, tools.root, env, log)
        if code != 0:
            with log.open() as text:
                text.seek(offset)
                said = text.read().strip().splitlines()[-3:]
            raise Refused("\n".join([f"synthesis failed (exit {code}):", *(f"  {line}" for line in said)]))
    if code != 0:
        raise Refused(f"synthesis failed (exit {code}): see the message above")


@dataclass
class Terraform:
    """Terraform in one synthesized stack's folder."""

    tools: Tools
    stack_dir: Path
    env: Mapping[str, str]
    # Where its output goes instead of the terminal (local-up's quiet view); None: the terminal.
    log: Path | None = None

    def __call__(self, *args: str, allowed: Sequence[int] = (0,)) -> int:
        command = [terraform_binary(), *args]
        if self.log is None:
            code = self.tools.run(command, self.stack_dir, self.env)
        else:
            code = self.tools.run_logged(command, self.stack_dir, self.env, self.log)
        if code not in allowed:
            raise Refused(f"terraform {args[0]} failed (exit {code}) in {self.stack_dir}")
        return code

    def text(self, *args: str) -> str:
        """A terraform command's standard output (for the caller to show or decode)."""
        code, output = self.tools.capture([terraform_binary(), *args], self.stack_dir, self.env)
        if code != 0:
            raise Refused(f"terraform {args[0]} failed (exit {code}) in {self.stack_dir}")
        return output

    def json(self, *args: str) -> Any:
        """A `terraform ... -json` command's output, decoded."""
        output = self.text(*args)
        try:
            return json.loads(output)
        except json.JSONDecodeError as error:
            raise Refused(f"terraform {args[0]} -json gave no JSON in {self.stack_dir}: {error}") from None

    def show_json(self, planfile: str) -> dict:
        """`terraform show -json PLANFILE`: the plan as data (ops/plan_report.py reads it)."""
        return self.json("show", "-json", planfile)

    def output(self, name: str) -> Any:
        """One output of the applied stack, decoded from `terraform output -json NAME`."""
        return self.json("output", "-json", name)


def terraform_for(tools: Tools, stack: str, outdir: Path | None = None,
                  env: Mapping[str, str] | None = None, log: Path | None = None) -> Terraform:
    base = {**tools.environ, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}
    return Terraform(tools, (outdir or tools.outdir) / "stacks" / stack, env or base, log)


def settle(terraform: Terraform) -> None:
    """Record what was just deployed as AWS now reports it (a refresh-only apply, nothing changes in AWS).

    Terraform saves a resource's attributes when it creates or updates it; attributes that other
    resources change afterwards (a security group's rules, a bucket's versioning, a certificate's
    status) stay stale in the state until the next refresh, and the daily drift check would
    report them as changed outside Terraform. Right after the apply, AWS holds what was deployed.
    `drift` still names anything the state holds that no managed resource accounts for (ops/drift.py).
    """
    terraform("apply", "-refresh-only", "-auto-approve", "-input=false")
