"""Synthesis in several processes (stacks/synth.py): the same output folder as one process, byte for byte."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from environments.loader import load_project
from stacks import synth

ROOT = Path(__file__).resolve().parents[1]
SMALL_STACKS = ["bootstrap", "baseline-eu-west-1"]
# main.main in a fresh interpreter, with the lazy bundle's folder or a stack's synthesis replaced first.
PROBE = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
from core import provider_bundle
from stacks import synth
{patch}
import main
sys.exit(main.main({stacks!r}))
"""
MISSING_BUNDLE = "provider_bundle.OUTPUT_DIR = Path({missing!r})"
COUNTING_FORKS = """
fork = synth.os.fork
def counted():
    child = fork()
    if child:
        print("forked a worker", file=sys.stderr, flush=True)
    return child
synth.os.fork = counted
"""
FAILING_BOOTSTRAP = """
here = synth._synthesize_here
def failing(project, outdir, selected):
    if "bootstrap" in selected:
        raise RuntimeError("the bootstrap's synthesis broke")
    return here(project, outdir, selected)
synth._synthesize_here = failing
"""


def run_main(outdir: Path, workers: str, stacks: list[str], patch: str = "", **extra: str):
    environ = {key: value for key, value in os.environ.items() if not key.startswith("INFRA_")}
    environ.update({"CDKTF_OUTDIR": str(outdir), "INFRA_SYNTH_WORKERS": workers, **extra})
    probe = PROBE.format(root=str(ROOT), patch=patch, stacks=stacks)
    return subprocess.run([sys.executable, "-c", probe], env=environ, capture_output=True, text=True, timeout=300)


def tree(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_the_whole_app_through_three_workers_is_byte_identical_to_one_process(tmp_path):
    one = run_main(tmp_path / "one", "1", [], COUNTING_FORKS)
    three = run_main(tmp_path / "three", "3", [], COUNTING_FORKS)
    assert one.returncode == 0 and three.returncode == 0, one.stderr + three.stderr
    assert (one.stderr.count("forked a worker"), three.stderr.count("forked a worker")) == (0, 3), \
        "main.py must reach the fork before anything starts a jsii kernel"
    written = tree(tmp_path / "one")
    assert "manifest.json" in written and len(json.loads(written["manifest.json"])["stacks"]) == 7
    assert tree(tmp_path / "three") == written, "the folder must be what one process writes, manifest included"
    assert three.stdout.replace(str(tmp_path / "three"), "X") == one.stdout.replace(str(tmp_path / "one"), "X")
    assert not list((tmp_path / "three").glob(".synth-*")), "the workers' folders are removed"


def test_a_missing_lazy_bundle_is_said_once_whatever_the_workers(tmp_path):
    """Every worker falls back alike; the operator reads one line (and, in CI, one error and status 1)."""
    patch = MISSING_BUNDLE.format(missing=str(tmp_path / "missing"))
    result = run_main(tmp_path / "out", "2", SMALL_STACKS, patch)
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "lazy AWS provider bundle" in line]
    assert len(notes) == 1 and notes[0].startswith("note: the lazy AWS provider bundle is missing"), result.stderr
    ci = run_main(tmp_path / "ci", "2", SMALL_STACKS, patch, INFRA_REQUIRE_TOOLS="1")
    assert ci.returncode == 1
    assert [line for line in ci.stderr.splitlines() if line.strip()] == [
        line for line in ci.stderr.splitlines() if line.startswith("error: ") and "INFRA_REQUIRE_TOOLS=1" in line]
    assert len(ci.stderr.strip().splitlines()) == 1, ci.stderr
    assert not (tmp_path / "ci" / "manifest.json").exists()


def test_a_line_every_worker_printed_is_replayed_once_even_beside_another_worker_s_own(tmp_path, capsys):
    """Node 24 prints a deprecation warning in one worker only (the stock bundle): the shared note stays one line,
    while a failing worker's trace keeps every line, repeated ones included."""
    note = "note: the lazy AWS provider bundle is missing\n"
    outputs = {"a": (0, "(node:1) [DEP0044] DeprecationWarning: util.isArray\n" + note),
               "b": (0, note + "b done\n"), "c": (1, "Traceback (most recent call last):\n" + note + note)}
    for name, (_, text) in outputs.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / synth.STDERR_LOG).write_text(text)
    synth._replay([tmp_path / name for name in outputs], [code for code, _ in outputs.values()])
    assert capsys.readouterr().err.splitlines() == [
        "(node:1) [DEP0044] DeprecationWarning: util.isArray", "note: the lazy AWS provider bundle is missing",
        "b done", "Traceback (most recent call last):", "note: the lazy AWS provider bundle is missing",
        "note: the lazy AWS provider bundle is missing"]


def test_a_failing_worker_fails_the_synthesis_and_writes_no_manifest(tmp_path):
    result = run_main(tmp_path / "out", "2", SMALL_STACKS, FAILING_BOOTSTRAP)
    assert result.returncode == 1
    assert result.stderr.count("RuntimeError: the bootstrap's synthesis broke") == 1, result.stderr
    assert not (tmp_path / "out" / "manifest.json").exists() and not list((tmp_path / "out").glob(".synth-*"))


@pytest.mark.parametrize("value", ["0", "5", "two", "-1"])
def test_a_bad_worker_count_is_one_line_and_exit_2(tmp_path, value):
    result = run_main(tmp_path / "out", value, ["bootstrap"])
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "INFRA_SYNTH_WORKERS must be a whole number from 1 to 4" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("workers", [1, 2, 3, 4, 9])
def test_the_stacks_are_shared_out_once_each_in_their_order_and_by_cost(workers):
    project = load_project(ROOT / "environments")
    names = list(project.stack_names)
    costs = synth.stack_costs(project)
    groups = synth.shares(names, costs, workers)
    assert len(groups) == min(workers, len(names)) and all(groups)
    assert sorted(name for group in groups for name in group) == sorted(names)
    for group in groups:
        assert group == [name for name in names if name in group], "each worker keeps the stacks' order"
    totals = sorted(sum(costs[name] for name in group) for group in groups)
    assert totals[-1] - totals[0] <= max(costs.values()), f"uneven shares: {groups}"


def test_a_process_already_running_jsii_synthesizes_alone(tmp_path, monkeypatch):
    """Forking a process whose Node process exists would share it between the children: never done."""
    import jsii  # noqa: F401 - what `synthesize` looks for

    calls = []
    monkeypatch.setattr(synth, "_synthesize_here", lambda project, outdir, stacks: calls.append(stacks) or 0)
    monkeypatch.setattr(synth.os, "fork", lambda: pytest.fail("forked with a jsii kernel in the process"))
    project = load_project(ROOT / "environments")
    assert synth.synthesize(project, tmp_path, SMALL_STACKS, 4) == 0
    assert calls == [SMALL_STACKS]


def test_a_manifest_written_otherwise_falls_back_to_one_process(tmp_path):
    """The merged manifest is only written when `render` reproduces every worker's own manifest exactly."""
    part = tmp_path / ".synth-0"
    (part / "stacks" / "one").mkdir(parents=True)
    manifest = {"stacks": {"one": {"workingDirectory": "stacks/one", "annotations": []}}, "version": "0"}
    (part / "manifest.json").write_text(json.dumps(manifest))  # compact: not cdktf's layout
    assert synth._merge([part], tmp_path / "out") is False
    assert (part / "stacks" / "one").is_dir() and not (tmp_path / "out").exists()
    (part / "manifest.json").write_text(synth.render(manifest))
    assert synth._merge([part], tmp_path / "out") is True
    assert (tmp_path / "out" / "stacks" / "one").is_dir()
    assert (tmp_path / "out" / "manifest.json").read_text() == synth.render(manifest)
