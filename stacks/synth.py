"""Synthesize stacks in several processes at once, into one cdktf output folder.

Stacks share nothing at synthesis time (stacks/app.py), and a synthesis is one Python process driving
one Node process, each busy about half the time while the other answers: one process per core
synthesizing its share of the stacks finishes the whole app in about the time of its largest share
plus one process's start. Each worker is a fork of this process made before cdktf is imported (so
before any Node process exists: a fork never shares one), with the configuration already validated.

Each worker writes its stacks into a folder of its own with cdktf's own `App.synth`; then the stacks'
folders move into the output folder and one manifest lists them all, written in cdktf's layout (keys
sorted, two-space indent, an empty list as `[` and `]` on two lines). tests/test_synth.py requires the
whole output folder to be byte-identical to one process's. With one worker, or one stack, nothing
forks. This module imports no cdktf at its top for that reason.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from environments.model import BOOTSTRAP_STACK, ProjectConfig

MANIFEST = "manifest.json"
STDOUT_LOG, STDERR_LOG = "stdout.log", "stderr.log"  # a worker's output, in its own folder
STACKS_FOLDER = "stacks"
# Relative synthesis cost by kind of stack (an environment has ~250 resources, its DR-region stack ~150,
# a baseline ~60, the bootstrap ~50), to share the stacks out evenly.
ENVIRONMENT_COST, DR_COST, SMALL_COST = 5, 3, 1


def stack_costs(project: ProjectConfig) -> dict[str, int]:
    """Each stack's relative synthesis cost, by name."""
    costs = {BOOTSTRAP_STACK: SMALL_COST, **{baseline.stack_name: SMALL_COST for baseline in project.baselines}}
    for env in project.environments:
        costs[env.name] = ENVIRONMENT_COST
        costs[env.dr_stack_name] = DR_COST
    return costs


def shares(selected: Sequence[str], costs: dict[str, int], workers: int) -> list[list[str]]:
    """`selected` in at most `workers` groups of similar total cost (largest first onto the lightest group),
    each in the stacks' own order; no empty group."""
    groups: list[list[str]] = [[] for _ in range(max(1, min(workers, len(selected))))]
    totals = [0] * len(groups)
    for name in sorted(selected, key=lambda name: -costs.get(name, SMALL_COST)):
        lightest = totals.index(min(totals))
        groups[lightest].append(name)
        totals[lightest] += costs.get(name, SMALL_COST)
    order = {name: index for index, name in enumerate(selected)}
    return [sorted(group, key=order.__getitem__) for group in groups]


def synthesize(project: ProjectConfig, outdir: str | Path, selected: Sequence[str], workers: int) -> int:
    """Write `selected` into `outdir` with up to `workers` processes; 0, or the first failing worker's status
    (it has printed why), in which case the output folder is left as it was."""
    # A process that already talks to a jsii kernel (cdktf imported: a test, a caller's own app) must not fork:
    # the children would share its Node process. It synthesizes alone.
    groups = shares(selected, stack_costs(project), 1 if "jsii" in sys.modules else workers)
    if len(groups) == 1:
        return _synthesize_here(project, Path(outdir), groups[0])
    outdir = Path(outdir)
    parts = [outdir / f".synth-{index}" for index in range(len(groups))]
    try:
        children = [_fork(project, part, group) for part, group in zip(parts, groups, strict=True)]
        codes = [os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) for child in children]
        _replay(parts, codes)
        failed = [code for code in codes if code != 0]
        if failed:
            return failed[0]
        if not _merge(parts, outdir):  # a manifest this module would not write alike: one process, as cdktf does
            return _synthesize_here(project, outdir, list(selected))
        return 0
    finally:
        for part in parts:
            shutil.rmtree(part, ignore_errors=True)


def _fork(project: ProjectConfig, outdir: Path, stacks: list[str]) -> int:
    """A child process synthesizing `stacks` into `outdir`, its output kept there for `_replay`; it never
    returns into the caller's code."""
    outdir.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child:
        return child
    code = 1
    try:
        for stream, log in ((sys.stdout, STDOUT_LOG), (sys.stderr, STDERR_LOG)):
            os.dup2(os.open(outdir / log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), stream.fileno())
        code = _synthesize_here(project, outdir, stacks)
    except BaseException:  # any failure is the worker's exit status, after its trace
        traceback.print_exc()
    finally:
        # os._exit skips the exit hooks, and jsii's hook is what ends and waits for the worker's Node process
        # (else it outlives the worker, its CPU time counted nowhere).
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _replay(parts: list[Path], codes: Sequence[int]) -> None:
    """The workers' output, what several workers printed alike only once: each says the same thing about the
    same cause (a missing lazy bundle, its fallback), and the rule is one line per problem. Line by line for
    workers that succeeded, as Node may add a warning of its own to one worker's output only (Node 24 warns of
    a deprecated API the stock bundle calls); a failing worker's output whole (its trace needs every line),
    unless another printed exactly the same."""
    for log, stream in ((STDOUT_LOG, sys.stdout), (STDERR_LOG, sys.stderr)):
        lines_printed: set[str] = set()
        texts_printed: set[str] = set()
        for part, code in zip(parts, codes, strict=True):
            path = part / log
            text = path.read_text(errors="replace") if path.exists() else ""
            lines = text.splitlines(keepends=True)
            if not code:
                stream.writelines(line for line in lines if line not in lines_printed)
            elif text not in texts_printed:
                stream.write(text)
            lines_printed.update(lines)
            texts_printed.add(text)
        stream.flush()


def _synthesize_here(project: ProjectConfig, outdir: Path, stacks: list[str]) -> int:
    """One app in this process (the only place cdktf is imported); a missing lazy bundle under
    INFRA_REQUIRE_TOOLS=1 is one line and status 1."""
    from core.provider_bundle import BundleError
    from stacks.app import build_app

    try:
        build_app(project, outdir, stacks).synth()
    except BundleError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _merge(parts: list[Path], outdir: Path) -> bool:
    """Move every worker's stack folders into `outdir` and write one manifest listing them all; False (and
    nothing moved) when a worker's manifest is not exactly what `render` makes of it (a cdktf that writes
    its manifest differently), since then the merged one could not be cdktf's either."""
    texts = [(part / MANIFEST).read_text() for part in parts]
    manifests = [json.loads(text) for text in texts]
    if any(render(manifest) != text for manifest, text in zip(manifests, texts, strict=True)):
        return False
    (outdir / STACKS_FOLDER).mkdir(parents=True, exist_ok=True)
    stacks: dict = {}
    for part, manifest in zip(parts, manifests, strict=True):
        for name, entry in manifest["stacks"].items():
            target = outdir / entry["workingDirectory"]
            shutil.rmtree(target, ignore_errors=True)
            os.replace(part / entry["workingDirectory"], target)
            stacks[name] = entry
    (outdir / MANIFEST).write_text(render({**manifests[0], "stacks": stacks}))
    return True


def render(value, indent: int = 0) -> str:
    """JSON as cdktf writes its manifest: keys sorted, two-space indent, empty lists and objects on two lines."""
    pad, inner = " " * indent, " " * (indent + 2)
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(key, ensure_ascii=False)}: {render(value[key], indent + 2)}"
                 for key in sorted(value)]
        return "{\n" + ",\n".join(items) + ("\n" if items else "") + pad + "}"
    if isinstance(value, list):
        items = [f"{inner}{render(item, indent + 2)}" for item in value]
        return "[\n" + ",\n".join(items) + ("\n" if items else "") + pad + "]"
    return json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True)
class StackSummary:
    name: str
    resources: int
    path: Path


def summarize(outdir: str | Path) -> list[StackSummary]:
    """Count resources per synthesized stack, read back from cdktf's manifest (the stacks just written)."""
    outdir = Path(outdir)
    manifest = json.loads((outdir / MANIFEST).read_text())
    summaries = []
    for name, stack in manifest["stacks"].items():
        path = outdir / stack["synthesizedStackPath"]
        body = json.loads(path.read_text())
        count = sum(len(instances) for instances in body.get("resource", {}).values())
        summaries.append(StackSummary(name=name, resources=count, path=path.parent))
    return summaries
