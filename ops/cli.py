"""`python -m ops COMMAND`: argument parsing and exit codes; each command lives in its own module.

    python -m ops synth [STACK ...]                  # every stack (or the named ones) into cdktf.out/
    python -m ops preflight STACK                    # credentials, account, state backend, locks
    python -m ops plan STACK                         # what a deploy would change, stateful losses flagged
    python -m ops drift STACK                        # changed behind Terraform's back? 0 no, 2 yes, 1 error
    python -m ops deploy STACK [--yes] [--allow-replace ADDRESS ...]
    python -m ops deploy-bootstrap [--yes]           # the same as `deploy bootstrap`
    python -m ops database-bootstrap ENV             # run the database bootstrap task again
    python -m ops rotate-master-password ENV [--yes] # a standby's primary: RDS may not manage its password
    python -m ops destroy STACK [--yes]              # never production, the bootstrap or a baseline
    python -m ops restore ENV [--region R] [--snapshot ID|--latest] [--write]
    python -m ops failover ENV [--planned] [--back] [--yes]   # the writer and the API to the standby region
    python -m ops local-up [ENV] [--verbose]         # moto on 127.0.0.1, bootstrap + dev applied to it
    python -m ops local-down                         # stop the emulator, remove .local/

STACK is any synthesized stack: `bootstrap`, an account baseline (`baseline-eu-west-1`) or an
environment. Terraform is called directly (not `cdktf deploy`), so nothing here needs the network
beyond AWS itself. A refusal or failure is one line on stderr with exit status 1 (a refused plan
adds one line per resource); bad usage or configuration exits 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ops.database_bootstrap import cmd_database_bootstrap
from ops.deploy import cmd_deploy, cmd_deploy_bootstrap, cmd_destroy, cmd_plan
from ops.drift import cmd_drift
from ops.errors import EXIT_REFUSED, EXIT_USAGE, Refused, UsageError
from ops.failover import cmd_failover
from ops.local import LOCAL_ENVIRONMENT, cmd_local_down, cmd_local_up, default_local_dir
from ops.master_password import cmd_rotate_master_password
from ops.policy_validation import cmd_validate_policies
from ops.preflight import cmd_preflight
from ops.project import load
from ops.restore import cmd_restore
from ops.terraform import synth
from ops.tools import Tools

STACK_HELP = "bootstrap, an account baseline (baseline-<region>) or an environment"


def cmd_synth(tools: Tools, args: argparse.Namespace) -> int:
    known = load(tools).stack_names
    unknown = [name for name in args.stacks if name not in known]
    if unknown:
        raise UsageError(f"unknown stack {unknown[0]!r}: the stacks are {', '.join(known)}")
    synth(tools, args.stacks)
    return 0


def _stack_command(commands, name: str, handler, help_: str) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help_)
    parser.add_argument("stack", metavar="STACK", help=STACK_HELP)
    parser.set_defaults(handler=handler)
    return parser


def _deploy_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--yes", action="store_true", help="apply without the typed confirmation (CI)")
    parser.add_argument("--allow-replace", action="append", default=[], metavar="ADDRESS",
                        help="approve replacing or destroying this stateful resource (repeat for each)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ops", description="Synthesize, review, deploy and destroy safely.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    synth_ = commands.add_parser("synth", help="synthesize every stack (or the named ones) into cdktf.out/")
    synth_.add_argument("stacks", nargs="*", metavar="STACK", help=f"{STACK_HELP} (default: all)")
    synth_.set_defaults(handler=cmd_synth)

    _stack_command(commands, "preflight", cmd_preflight, "check credentials, account, state backend and locks")

    plan = _stack_command(commands, "plan", cmd_plan, "terraform plan for one stack, stateful losses flagged")
    plan.add_argument("--no-color", action="store_true", help="plain text output (for CI comments)")
    plan.add_argument("--no-lock", action="store_true",
                      help="do not take the state lock, and plan as the read-only identities (the plan role, the "
                           "stack's read-only state role): pull-request plans")
    plan.add_argument("--summary", type=Path, metavar="FILE",
                      help="also write the summary table (Markdown) here (the pull-request comment's start)")

    drift = _stack_command(commands, "drift", cmd_drift,
                           "refresh-only plan: exit 0 no drift, 2 drift, 1 error (read-only)")
    drift.add_argument("--no-color", action="store_true", help="plain text output (for CI)")

    policies = _stack_command(commands, "validate-policies", cmd_validate_policies,
                              "IAM Access Analyzer judges every policy of the stack (exit 3: could not run)")
    policies.add_argument("--plan", type=Path, metavar="PLAN_JSON",
                          help="`terraform show -json PLANFILE` output: its known values replace placeholders")
    policies.add_argument("--summary", type=Path, metavar="FILE", help="also write the report (Markdown) here")

    _deploy_options(_stack_command(commands, "deploy", cmd_deploy, "preflight, plan, guard and apply one stack"))
    bootstrap = commands.add_parser("deploy-bootstrap", help="deploy the state bucket, lock table, KMS key")
    _deploy_options(bootstrap)
    bootstrap.set_defaults(handler=cmd_deploy_bootstrap)

    database = commands.add_parser("database-bootstrap",
                                   help="run an applied environment's database bootstrap task again")
    database.add_argument("environment")
    database.set_defaults(handler=cmd_database_bootstrap)

    rotate = commands.add_parser("rotate-master-password",
                                 help="a new master password for an environment with a standby (RDS may not "
                                      "manage it there): on the cluster and in its secret")
    rotate.add_argument("environment")
    rotate.add_argument("--yes", action="store_true", help="without the typed confirmation (CI)")
    rotate.set_defaults(handler=cmd_rotate_master_password)

    destroy = _stack_command(commands, "destroy", cmd_destroy, "destroy one stack that is not production-guarded")
    destroy.add_argument("--yes", action="store_true", help="destroy without the typed confirmation")

    back = commands.add_parser("restore", help="find the database's newest (or a named) recovery point and print "
                                                "the configuration change that restores it through a deploy")
    back.add_argument("environment")
    back.add_argument("--region", help="the environment's region (default) or its [dr] region")
    which = back.add_mutually_exclusive_group()
    which.add_argument("--snapshot", metavar="ID", help="this cluster snapshot instead of the newest")
    which.add_argument("--latest", action="store_true", help="the newest available snapshot (the default)")
    back.add_argument("--write", action="store_true",
                      help="write the change into environments/<ENV>.toml (without it: print it only)")
    back.set_defaults(handler=cmd_restore)

    move = commands.add_parser("failover", help="move an environment's writer and API to its standby region "
                                                 "(--planned: a switchover without data loss)")
    move.add_argument("environment")
    move.add_argument("--planned", action="store_true",
                      help="switchover: both regions are healthy, Aurora waits until nothing is lost")
    move.add_argument("--back", action="store_true", help="move back to the environment's own region (failback)")
    move.add_argument("--yes", action="store_true", help="without the typed confirmation (CI)")
    move.set_defaults(handler=cmd_failover)

    up = commands.add_parser("local-up", help="run the emulator and deploy bootstrap + an environment to it")
    up.add_argument("environment", nargs="?", default=LOCAL_ENVIRONMENT)
    up.add_argument("--port", type=int, default=0, help="emulator port on 127.0.0.1 (default: any free port)")
    up.add_argument("--bootstrap-only", action="store_true", help="deploy only the state backend")
    up.add_argument("--verbose", action="store_true", help="stream Terraform's output instead of the progress view")
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
        print(f"ops: {error}", file=tools.err)
        return EXIT_USAGE
    except Refused as error:
        print(f"ops: {error}", file=tools.err)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        print("ops: interrupted", file=tools.err)
        return 130


if __name__ == "__main__":
    sys.exit(main())
