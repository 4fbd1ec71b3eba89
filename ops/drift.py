"""`drift STACK`: has the deployed stack changed behind Terraform's back? Exit 0 no, 2 yes, 1 error."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ops import plan_report
from ops.errors import EXIT_DRIFT, Refused, UsageError
from ops.project import load_target
from ops.terraform import synth, terraform_for
from ops.unaccounted import unaccounted

if TYPE_CHECKING:
    from ops.tools import Tools


def cmd_drift(tools: Tools, args: argparse.Namespace) -> int:
    """Refresh-only plan of one stack, compared with its state; then the refreshed state itself, for what
    no managed resource accounts for (ops/unaccounted.py: what a deploy's settle would otherwise hide).

    Read-only: the plan is never applied and the state lock is not taken (the scheduled workflow
    runs this with the read-only plan role). Exit status 2 means drift here, so a configuration
    error is reported as an error (1), never as drift.
    """
    try:
        _, stack = load_target(tools, args.stack)
    except UsageError as error:
        raise Refused(str(error)) from None
    synth(tools, [stack.name], read_only=True)
    terraform = terraform_for(tools, stack.name)
    color = ["-no-color"] if args.no_color else []
    terraform("init", "-input=false", *color)
    planfile = "drift.tfplan"
    terraform("plan", "-refresh-only", "-input=false", "-lock=false", f"-out={planfile}", *color)
    shown = terraform.show_json(planfile)
    drifts = plan_report.drift_of(shown)
    extra = unaccounted(shown)
    for line in plan_report.drift_lines(stack.name, drifts, extra):
        tools.say(line)
    return EXIT_DRIFT if drifts or extra else 0
