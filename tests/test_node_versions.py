"""`make` stops before installing anything when Node.js is a version the product does not work on.

Supported: Node.js 20, 22 and 24; on 24 the cdktf CLI is not (its terminal library has no binary), which
`make` says in one note line (README, Prerequisites, says why). `node` is replaced by a stand-in
that reports a version, so every case runs here whatever Node.js is installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT


def make_node_check(tmp_path: Path, version: str | None) -> subprocess.CompletedProcess[str]:
    """`make node-check` with a `node` that prints `version` (None: no node on PATH at all)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if version:
        node = bin_dir / "node"
        node.write_text(f"#!/bin/sh\necho {version}\n")
        node.chmod(0o755)
    make = shutil.which("make")
    if make is None:
        pytest.fail("GNU make is not installed (README, Prerequisites)", pytrace=False)
    env = {**os.environ, "PATH": str(bin_dir)}  # the recipe's shell is /bin/bash (Makefile SHELL)
    return subprocess.run([make, "-s", "--no-print-directory", "node-check"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("version", ["v20.20.2", "v22.23.3"])
def test_node_with_the_cdktf_cli_passes_quietly(tmp_path, version):
    result = make_node_check(tmp_path, version)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_node_24_passes_and_says_npx_cdktf_is_unavailable(tmp_path):
    result = make_node_check(tmp_path, "v24.21.0")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == ("note: Node.js v24.21.0: npx cdktf is unavailable (its terminal library has no binary); "
                             "everything else works, deploy with python -m ops\n")


@pytest.mark.parametrize("version", ["v18.20.8", "v21.7.3", "v23.1.0", "v26.0.0"])
def test_unsupported_node_stops_with_one_clear_line(tmp_path, version):
    result = make_node_check(tmp_path, version)
    assert result.returncode != 0
    assert result.stderr.splitlines()[0] == (
        f"make: Node.js {version} is not supported: use Node.js 20, 22, 24 (see README, Prerequisites)")


def test_missing_node_says_what_to_install(tmp_path):
    result = make_node_check(tmp_path, None)
    assert result.returncode != 0
    assert result.stderr.startswith("make: Node.js not found: install Node.js 24 (or 20, 22)")


GUARD = ROOT / "tools" / "node-pty-guard" / "index.js"


def loadable_binary() -> Path:
    """A terminal-library binary this Node.js can load: the real package's prebuilt one for its ABI."""
    found = subprocess.run(["node", "-p", "require('@cdktf/node-pty-real/lib/prebuild-file-path').ptyPath"],
                           cwd=ROOT, capture_output=True, text=True, timeout=60, check=False).stdout.strip()
    if found in ("", "null"):
        pytest.skip("the terminal library has no binary for this Node.js to stand in with (Node.js 24)")
    return Path(found)


def run_guard(tmp_path: Path, prebuilt: Path | None, real_module: str = "module.exports = {spawn: 'real'};"
              ) -> subprocess.CompletedProcess[str]:
    """Load the guard beside a stand-in for the real terminal library whose prebuilt binary is `prebuilt`."""
    modules = tmp_path / "node_modules" / "@cdktf"
    (modules / "guard").mkdir(parents=True)
    shutil.copy(GUARD, modules / "guard" / "index.js")
    real = modules / "node-pty-real"
    (real / "lib").mkdir(parents=True, exist_ok=True)
    (real / "package.json").write_text('{"name": "@cdktf/node-pty-prebuilt-multiarch", "main": "index.js"}')
    (real / "index.js").write_text(real_module)
    found = json.dumps(str(prebuilt)) if prebuilt else "null"
    (real / "lib" / "prebuild-file-path.js").write_text(f"exports.ptyPath = {found}; exports.winPtyPath = null;")
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is not installed (README, Prerequisites)", pytrace=False)
    script = "console.log(JSON.stringify(require('@cdktf/guard')))"
    return subprocess.run([node, "-e", script], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)


def compiled(tmp_path: Path, content: bytes) -> None:
    """A binary npm compiled from source at install time (build/Release/pty.node)."""
    release = tmp_path / "node_modules" / "@cdktf" / "node-pty-real" / "build" / "Release"
    release.mkdir(parents=True)
    (release / "pty.node").write_bytes(content)


def test_the_guard_is_the_real_terminal_library_where_that_has_a_binary(tmp_path):
    result = run_guard(tmp_path, loadable_binary())
    assert (result.returncode, result.stdout, result.stderr) == (0, '{"spawn":"real"}\n', "")


def test_a_loadable_binary_compiled_from_source_counts(tmp_path):
    compiled(tmp_path, loadable_binary().read_bytes())
    result = run_guard(tmp_path, None)
    assert (result.returncode, result.stdout) == (0, '{"spawn":"real"}\n')


ONE_LINE = ("cdktf: the cdktf CLI's terminal library has no binary for Node.js {version} on {platform}: use "
            "python -m ops synth|plan|deploy STACK (or Node.js 20/22 for npx cdktf; README, Prerequisites)")


@pytest.mark.parametrize("situation", ["no binary", "a binary built for another Node.js"])
def test_without_a_loadable_binary_every_npx_cdktf_stops_with_one_line(tmp_path, situation):
    """Node.js 24: no prebuilt binary, and what npm compiled at install time was built against another ABI
    (seen with npm 11 under Node.js 24: NODE_MODULE_VERSION 115 against 137)."""
    if situation != "no binary":
        compiled(tmp_path, b"not a shared object of this Node.js")
    result = run_guard(tmp_path, None, real_module="throw new Error('must not be loaded');")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [ONE_LINE.format(version=node_version(), platform=node_platform())]


def test_any_other_failure_of_the_real_library_is_not_hidden(tmp_path):
    result = run_guard(tmp_path, loadable_binary(), real_module="throw new Error('broken in another way');")
    assert result.returncode == 1 and "broken in another way" in result.stderr


def node_version() -> str:
    return subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout.strip()


def node_platform() -> str:
    return subprocess.run(["node", "-p", "process.platform + '-' + process.arch"], capture_output=True, text=True,
                          check=True).stdout.strip()
