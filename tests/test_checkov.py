"""SPEC section 6: checkov over the synthesized output reports no failures."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

CONFIG = ROOT / ".checkov.yaml"
# One worker runs the whole module, so checkov scans once per session under pytest-xdist.
pytestmark = pytest.mark.xdist_group("checkov")


def checkov_command() -> list[str]:
    """checkov from the same virtualenv as the tests (it is a pinned dev dependency)."""
    candidate = Path(sys.executable).with_name("checkov")
    found = str(candidate) if candidate.exists() else shutil.which("checkov")
    if not found:
        pytest.fail("checkov is not installed: run the setup command from the README")
    return [found]


@pytest.fixture(scope="module")
def report(synth_dir) -> list[dict]:
    result = subprocess.run(
        [*checkov_command(), "-d", str(synth_dir), "--config-file", str(CONFIG), "-o", "json"],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.stdout.strip(), f"checkov printed nothing: {result.stderr[-2000:]}"
    parsed = json.loads(result.stdout)
    return parsed if isinstance(parsed, list) else [parsed]


def test_checkov_scanned_every_stack(report, stacks):
    scanned = {entry["file_path"].split("/")[-2] for block in report
               for entry in block["results"]["passed_checks"] + block["results"]["failed_checks"]}
    assert scanned == set(stacks)


def test_checkov_reports_no_failed_check(report):
    failures = [
        f"{check['check_id']} {check['resource']} ({check['file_path']}): {check['check_name']}"
        for block in report for check in block["results"]["failed_checks"]
    ]
    assert failures == [], "\n".join(failures)


def test_every_skipped_check_has_a_reason():
    lines = [line for line in CONFIG.read_text().splitlines() if re.match(r"^\s+- CKV", line)]
    assert lines, "expected the skip list in .checkov.yaml"
    for line in lines:
        reason = line.partition("# reason:")[2].strip()
        assert len(reason) > 30, f"skip without a real reason: {line.strip()}"


def test_every_test_a_skip_reason_names_exists():
    """A reason that leans on a test must name one that is there (renaming it would orphan the reason)."""
    named = set(re.findall(r"tests/[a-z_]+\.py", CONFIG.read_text()))
    assert named, "the reasons name no test at all"
    missing = sorted(path for path in named if not (ROOT / path).is_file())
    assert not missing, f".checkov.yaml reasons name tests that do not exist: {missing}"
