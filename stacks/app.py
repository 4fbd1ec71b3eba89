"""Build the cdktf app (every stack, or only the named ones) from a validated configuration."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from cdktf import App

from bootstrap.stack import BootstrapStack
from environments.model import BOOTSTRAP_STACK, ProjectConfig
from stacks.baseline import BaselineStack
from stacks.dr import DisasterRecoveryStack
from stacks.environment import EnvironmentStack


def build_app(project: ProjectConfig, outdir: str | Path, stacks: Collection[str] = ()) -> App:
    """The app holding `stacks` (every stack when empty); the configuration is already validated as a whole.

    Stacks share nothing at synthesis time (each stack finds the state backend by name), so
    building one stack alone yields exactly the JSON the whole app would: only the cost differs.
    """
    unknown = set(stacks) - set(project.stack_names)
    if unknown:
        raise ValueError(f"no such stack: {', '.join(sorted(unknown))}")
    selected = stacks or project.stack_names
    # Stack traces in the output embed absolute paths of this machine; leave them out.
    app = App(outdir=str(outdir), stack_traces=False)
    if BOOTSTRAP_STACK in selected:
        BootstrapStack(app, project)
    for baseline in project.baselines:
        if baseline.stack_name in selected:
            BaselineStack(app, project, baseline)
    for env in project.environments:
        if env.name in selected:
            EnvironmentStack(app, project, env)
        if env.dr_stack_name in selected:
            DisasterRecoveryStack(app, project, env)
    return app
