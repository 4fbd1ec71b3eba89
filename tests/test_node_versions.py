"""`make` stops before installing anything when Node.js is a version the cdktf path does not work on.

Supported: Node.js 20 and 22 (README, Prerequisites, says why). `node` is replaced by a stand-in
that reports a version, so every case runs here whatever Node.js is installed.
"""

from __future__ import annotations

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
def test_supported_node_passes(tmp_path, version):
    result = make_node_check(tmp_path, version)
    assert (result.returncode, result.stderr) == (0, "")


@pytest.mark.parametrize("version", ["v18.20.8", "v21.7.3", "v24.21.0", "v26.0.0"])
def test_unsupported_node_stops_with_one_clear_line(tmp_path, version):
    result = make_node_check(tmp_path, version)
    assert result.returncode != 0
    assert result.stderr.splitlines()[0] == (
        f"make: Node.js {version} is not supported: use Node.js 20 or 22 (see README, Prerequisites: "
        "the cdktf CLI's terminal library has prebuilt binaries only for those)")


def test_missing_node_says_what_to_install(tmp_path):
    result = make_node_check(tmp_path, None)
    assert result.returncode != 0
    assert result.stderr.startswith("make: Node.js not found: install Node.js 20 or 22")
