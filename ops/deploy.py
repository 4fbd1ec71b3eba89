"""plan, deploy, destroy (and deploy-bootstrap): preflight, plan to a file, guard, confirm, apply that file.

The safety rules live here rather than in people's heads:

- `deploy` runs the preflight (ops/preflight.py) first and stops when any check fails;
- what is applied is exactly the plan that was shown (`plan -out`, then `apply <planfile>`), and
  afterwards the state is refreshed (ops/terraform.py `settle`);
- a plan that replaces or destroys a stateful resource (database, bucket, key, log group, lock
  table, backup vault, the state backend) is refused for guarded stacks (production environments,
  the bootstrap, the baselines) unless every such address is named with `--allow-replace`; in
  other stacks each is named in the confirmation, and `--yes` alone does not approve them;
- applying needs a typed confirmation: the stack's name for guarded stacks, `yes` for others;
  `--yes` skips it (CI, where GitHub environment approval is the confirmation);
- `destroy` refuses guarded stacks outright, and asks for the stack's name.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from environments.model import BOOTSTRAP_STACK, ProjectConfig
from ops import plan_report, preflight
from ops.database_bootstrap import bootstrap_database
from ops.errors import Refused
from ops.master_password import keep_master_password
from ops.project import confirm, load_target, require_preflight
from ops.targets import Kind, Target
from ops.terraform import PLAN_CHANGES, PLAN_NO_CHANGES, settle, synth, terraform_for

if TYPE_CHECKING:
    from ops.tools import Tools


def state_backend_names(project: ProjectConfig) -> frozenset[str]:
    """Names of the resources that hold every environment's state: flagged whenever a plan loses them."""
    return frozenset({project.state.bucket, project.state.lock_table})


def unapproved_losses(stack: Target, summary: plan_report.PlanSummary, allowed: Sequence[str], yes: bool
                      ) -> tuple[str, ...]:
    """The stateful losses still to be approved in the prompt; Refused when they cannot be approved.

    Guarded stacks: every loss must be named with --allow-replace (the prompt cannot approve it).
    Others: a loss not named may be approved in the prompt, never by --yes alone.
    """
    unnamed = [risk for risk in summary.risks if risk.address not in allowed]
    if not unnamed:
        return ()
    lines = "".join(f"\n  {risk.action} {risk.kind} {risk.name}: --allow-replace {risk.address}" for risk in unnamed)
    if stack.guarded:
        raise Refused(f"not deploying {stack.name}: the plan loses data in {len(unnamed)} stateful resource(s) "
                      f"not named with --allow-replace (nothing applied):{lines}")
    if yes:
        raise Refused(f"not deploying {stack.name}: --yes does not approve losing data; name each with "
                      f"--allow-replace (nothing applied):{lines}")
    return tuple(f"{risk.action} {risk.kind} {risk.name} ({risk.address})" for risk in unnamed)


def plan_and_apply(tools: Tools, project: ProjectConfig, stack: Target, yes: bool,
                   allowed: Sequence[str] = ()) -> int:
    """Plan to a file, summarize and guard it, confirm, apply exactly that file. No changes: nothing to confirm."""
    terraform = terraform_for(tools, stack.name)
    terraform("init", "-input=false")
    planfile = "deploy.tfplan"
    code = terraform("plan", "-input=false", "-detailed-exitcode", f"-out={planfile}",
                     allowed=(PLAN_NO_CHANGES, PLAN_CHANGES))
    if code == PLAN_NO_CHANGES:
        tools.say(f"{stack.name}: no changes, nothing to deploy")
        return 0
    summary = plan_report.summarize_plan(terraform.show_json(planfile), state_backend_names(project))
    for line in plan_report.summary_lines(stack.name, summary):
        tools.say(line)
    for address in sorted(set(allowed) - {risk.address for risk in summary.risks}):
        tools.say(f"note: --allow-replace {address}: this plan neither replaces nor destroys it")
    losses = unapproved_losses(stack, summary, allowed, yes)
    confirm(tools, stack.name, "Deploy", yes and not losses, by_name=stack.guarded, losses=losses)
    terraform("apply", "-input=false", planfile)
    settle(terraform)
    tools.say(f"{stack.name}: deploy complete")
    return 0


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


def deploy(tools: Tools, name: str, yes: bool, allowed: Sequence[str] = ()) -> int:
    """Deploy any stack; afterwards an environment's master password is set where ops keeps it (a standby's
    primary) and its database bootstrap task runs, each when it must (the task reads that password)."""
    project, stack = load_target(tools, name)
    require_preflight(tools, project, stack)
    if stack.kind is Kind.BOOTSTRAP:
        refuse_second_bootstrap(tools, project)
    refuse_empty_dr_database(stack)
    synth(tools, [stack.name])
    plan_and_apply(tools, project, stack, yes, allowed)
    if stack.kind is Kind.ENVIRONMENT:
        keep_master_password(tools, project, stack.environment)
        bootstrap_database(tools, project, stack.environment)
    return 0


def refuse_empty_dr_database(stack: Target) -> None:
    """A backup DR-region stack serves the environment's data: without a recovery point it would serve an
    empty database (with no application user: the API could not even log in), so it is not deployed."""
    env = stack.environment
    if stack.kind is Kind.DR_REGION and not env.standby and not env.dr.restore_from_snapshot:
        raise Refused(f"not deploying {stack.name}: its database starts from a copied recovery point, and "
                      f"{env.source} names none; first: python -m ops restore {env.name} --region {env.dr.region} "
                      "--write (docs/runbooks.md, Region lost)")


def cmd_deploy(tools: Tools, args: argparse.Namespace) -> int:
    return deploy(tools, args.stack, args.yes, args.allow_replace)


def cmd_deploy_bootstrap(tools: Tools, args: argparse.Namespace) -> int:
    return deploy(tools, BOOTSTRAP_STACK, args.yes, args.allow_replace)


def cmd_plan(tools: Tools, args: argparse.Namespace) -> int:
    """Plan one stack, then summarize it: counts per action, and every stateful resource lost."""
    project, stack = load_target(tools, args.stack)
    synth(tools, [stack.name], read_only=args.no_lock)  # no lock: read-only credentials, read-only state role
    terraform = terraform_for(tools, stack.name)
    terraform("init", "-input=false")
    options = ["-no-color"] if args.no_color else []
    if args.no_lock:
        options.append("-lock=false")
    planfile = "plan.tfplan"
    code = terraform("plan", "-input=false", "-detailed-exitcode", f"-out={planfile}", *options,
                     allowed=(PLAN_NO_CHANGES, PLAN_CHANGES))
    summary = plan_report.summarize_plan(terraform.show_json(planfile), state_backend_names(project))
    for line in plan_report.summary_lines(stack.name, summary):
        tools.say(line)
    if args.summary:
        args.summary.write_text(plan_report.summary_markdown(stack.name, summary))
    tools.say(f"{stack.name}: " + ("changes pending" if code == PLAN_CHANGES else "no changes"))
    return 0


def cmd_destroy(tools: Tools, args: argparse.Namespace) -> int:
    """Destroy a stack that is not guarded; always confirmed by name."""
    project, stack = load_target(tools, args.stack)
    if stack.guarded:
        why = (f"{stack.environment.source} sets production = true, and production environments"
               if stack.environment else f"it is the {stack.kind} stack others depend on, and such stacks")
        raise Refused(f"refusing to destroy {stack.name}: {why} are never destroyed by this tool")
    require_preflight(tools, project, stack, "Destroy")
    synth(tools, [stack.name])
    terraform = terraform_for(tools, stack.name)
    terraform("init", "-input=false")
    code = terraform("plan", "-input=false", "-detailed-exitcode", "-out=destroy.tfplan", "-destroy",
                     allowed=(PLAN_NO_CHANGES, PLAN_CHANGES))
    if code == PLAN_NO_CHANGES:
        tools.say(f"{stack.name}: no changes, nothing to destroy")
        return 0
    confirm(tools, stack.name, "Destroy", args.yes, by_name=True)
    terraform("apply", "-input=false", "destroy.tfplan")
    tools.say(f"{stack.name}: destroy complete")
    return 0
