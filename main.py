"""Synthesize the bootstrap stack and every environment stack into cdktf.out/.

Configuration is validated completely before a single construct is created, so bad input
exits with status 2, one readable line, and nothing written.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
# `cdktf synth --output DIR` passes its output folder to the app through CDKTF_OUTDIR.
OUTDIR_VARIABLE = "CDKTF_OUTDIR"
# Points every provider and backend at a local AWS emulator (e.g. http://127.0.0.1:5000).
EMULATOR_VARIABLE = "INFRA_AWS_ENDPOINT"


def main() -> int:
    # jsii prints a multi-line banner about Node 20's end of life on every run; it is not ours to act on.
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from environments.loader import ConfigError, load_project

    try:
        project = load_project(ROOT / "environments", os.environ.get(EMULATOR_VARIABLE))
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2

    # Before importing cdktf: its Node process keeps the working directory it starts in.
    os.chdir(ROOT)
    from stacks.app import build_app, summarize

    outdir = os.environ.get(OUTDIR_VARIABLE, "cdktf.out")
    build_app(project, outdir).synth()
    for stack in summarize(outdir):
        print(f"{stack.name:<12} {stack.resources:>4} resources  {stack.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
