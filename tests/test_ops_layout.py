"""The operator package's layout rules (issue 20): one module per concern, none over ~400 lines, none
importing the CLI module, and nothing in the repository pointing at the old `scripts/` folder."""

from __future__ import annotations

import ast
import subprocess

import pytest

from tests.conftest import ROOT

OPS = ROOT / "ops"
MAX_LINES = 400


def ops_modules() -> list:
    return sorted(OPS.glob("*.py"))


@pytest.mark.parametrize("module", ops_modules(), ids=lambda path: path.name)
def test_no_ops_module_is_over_400_lines(module):
    lines = len(module.read_text().splitlines())
    assert lines <= MAX_LINES, f"ops/{module.name} has {lines} lines: split it by concern"


def imported_modules(module) -> set[str]:
    tree = ast.parse(module.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("module", [m for m in ops_modules() if m.name not in ("cli.py", "__main__.py")],
                         ids=lambda path: path.name)
def test_no_module_imports_the_cli(module):
    check_no_cli_import(module)


def check_no_cli_import(module) -> None:
    assert "ops.cli" not in imported_modules(module), f"ops/{module.name} imports the CLI module"


def test_nothing_refers_to_the_old_scripts_folder():
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True)
    offenders = []
    for name in filter(None, tracked.stdout.split("\0")):
        path = ROOT / name
        if name.endswith((".lock", "package-lock.json", "test_ops_layout.py")) or not path.is_file():
            continue
        text = path.read_text(errors="ignore")
        if "scripts/" in text.replace("other scripts", "") or "scripts." in text.replace("npm scripts.", ""):
            offenders.append(name)
    assert offenders == [], f"these still refer to scripts/: {offenders}"


def test_bite_a_module_importing_the_cli_is_caught(tmp_path):
    module = tmp_path / "bad.py"
    module.write_text("from ops.cli import main\n")
    with pytest.raises(AssertionError, match=r"bad\.py imports the CLI module"):
        check_no_cli_import(module)
