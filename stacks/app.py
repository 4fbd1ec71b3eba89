"""Build the whole cdktf app from a validated configuration."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cdktf import App

from bootstrap.stack import BootstrapStack
from environments.model import ProjectConfig
from stacks.environment import EnvironmentStack


def build_app(project: ProjectConfig, outdir: str | Path) -> App:
    # Stack traces in the output embed absolute paths of this machine; leave them out.
    app = App(outdir=str(outdir), stack_traces=False)
    BootstrapStack(app, project)
    for env in project.environments:
        EnvironmentStack(app, project, env)
    return app


@dataclass(frozen=True)
class StackSummary:
    name: str
    resources: int
    path: Path


def summarize(outdir: str | Path) -> list[StackSummary]:
    """Count resources per synthesized stack, read back from cdktf's manifest."""
    outdir = Path(outdir)
    manifest = json.loads((outdir / "manifest.json").read_text())
    summaries = []
    for name, stack in manifest["stacks"].items():
        path = outdir / stack["synthesizedStackPath"]
        body = json.loads(path.read_text())
        count = sum(len(instances) for instances in body.get("resource", {}).values())
        summaries.append(StackSummary(name=name, resources=count, path=path.parent))
    return summaries
