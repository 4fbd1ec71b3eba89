"""Synthesize the bootstrap stack and the environment stacks into cdktf.out/.

    python main.py                 # every stack
    python main.py dev             # only the named stacks (bootstrap, or any environment)
    INFRA_STACKS=dev npx cdktf diff dev    # the same selection through the cdktf CLI

The whole configuration is validated before a single construct is created, whichever stacks are
asked for, so bad input exits with status 2, one readable line, and nothing written. An unknown
stack name is a usage error: exit status 2, one line, nothing written.

`cdktf synth|diff|deploy` run this file without arguments (cdktf.json `app`) and always ask for
the whole app, so the CLI selection comes from INFRA_STACKS (names separated by commas or
spaces); arguments, when given, win.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
# `cdktf synth --output DIR` passes its output folder to the app through CDKTF_OUTDIR.
OUTDIR_VARIABLE = "CDKTF_OUTDIR"
# Points every provider and backend at a local AWS emulator (e.g. http://127.0.0.1:5000).
EMULATOR_VARIABLE = "INFRA_AWS_ENDPOINT"
# `plan` synthesizes for the read-only identities (CI plan roles, read-only state roles; run plans with
# -lock=false); unset or `deploy` for deploying. Only matters with per-stack state isolation (docs/deployment.md).
ACCESS_VARIABLE = "INFRA_ACCESS"
# The stacks to synthesize when no argument names them (how the cdktf CLI's users select stacks).
STACKS_VARIABLE = "INFRA_STACKS"
# How many processes synthesize the stacks at once (stacks/synth.py); 1: everything in this process.
WORKERS_VARIABLE = "INFRA_SYNTH_WORKERS"
MAX_WORKERS = 4
USAGE = "usage: python main.py [STACK ...] (or INFRA_STACKS=STACK,... for the cdktf CLI)"


def requested_stacks(argv: list[str], environ: dict[str, str] | os._Environ) -> list[str]:
    """Stack names from the command line, else from INFRA_STACKS; empty means every stack."""
    if argv:
        return argv
    return [name for name in re.split(r"[\s,]+", environ.get(STACKS_VARIABLE, "")) if name]


def synth_workers(environ: dict[str, str] | os._Environ) -> int:
    """INFRA_SYNTH_WORKERS, else one per usable core up to MAX_WORKERS (each worker is a Python and a Node process)."""
    value = environ.get(WORKERS_VARIABLE, "")
    if not value:
        return max(1, min(len(os.sched_getaffinity(0)), MAX_WORKERS))
    if not value.isdigit() or not 1 <= int(value) <= MAX_WORKERS:
        raise ValueError(f"{WORKERS_VARIABLE} must be a whole number from 1 to {MAX_WORKERS} (got {value!r})")
    return int(value)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__.strip().splitlines()[0], USAGE, sep="\n")
        return 0
    options = [arg for arg in argv if arg.startswith("-")]
    if options:
        print(f"{USAGE}: unknown option {options[0]!r}", file=sys.stderr)
        return 2
    # jsii prints a multi-line banner about Node 20's end of life on every run; it is not ours to act on.
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from environments.loader import ConfigError, load_project, parse_access

    try:
        project = load_project(ROOT / "environments", os.environ.get(EMULATOR_VARIABLE),
                               parse_access(os.environ.get(ACCESS_VARIABLE)))
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2

    requested = requested_stacks(argv, os.environ)
    unknown = [name for name in requested if name not in project.stack_names]
    if unknown:
        print(f"{USAGE}: unknown stack {unknown[0]!r}: the stacks are {', '.join(project.stack_names)}",
              file=sys.stderr)
        return 2
    selected = requested or list(project.stack_names)

    # Before importing cdktf: its Node process keeps the working directory it starts in.
    os.chdir(ROOT)
    from stacks.synth import summarize, synthesize

    outdir = os.environ.get(OUTDIR_VARIABLE, "cdktf.out")
    try:
        workers = synth_workers(os.environ)
    except ValueError as error:
        print(f"{USAGE}: {error}", file=sys.stderr)
        return 2
    code = synthesize(project, outdir, selected, workers)
    if code:
        return code
    written = summarize(outdir)
    width = max((len(stack.name) for stack in written), default=0)  # the longest name, not a guess
    for stack in written:
        print(f"{stack.name:<{width}} {stack.resources:>4} resources  {stack.path}")
    skipped = [name for name in project.stack_names if name not in selected]
    if skipped:
        print(f"wrote {len(selected)} of {len(selected) + len(skipped)} stacks; not synthesized: {', '.join(skipped)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
