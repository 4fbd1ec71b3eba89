"""Shared fixtures: configuration and one synthesis of the whole app per test session."""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from environments.loader import load_project  # noqa: E402
from environments.model import ProjectConfig  # noqa: E402

ENVIRONMENTS_DIR = ROOT / "environments"
SHIPPED_ENVIRONMENTS = ("dev", "staging", "production")


def read_stacks(outdir: Path) -> dict[str, dict]:
    """Every synthesized stack's Terraform JSON, by stack name."""
    manifest = json.loads((outdir / "manifest.json").read_text())
    return {
        name: json.loads((outdir / entry["synthesizedStackPath"]).read_text())
        for name, entry in manifest["stacks"].items()
    }


def synthesize(project: ProjectConfig, outdir: Path) -> dict[str, dict]:
    from stacks.app import build_app

    build_app(project, outdir).synth()
    return read_stacks(outdir)


@pytest.fixture(scope="session")
def project() -> ProjectConfig:
    return load_project(ENVIRONMENTS_DIR)


@pytest.fixture(scope="session")
def synth_dir(project, tmp_path_factory) -> Path:
    """The checked-in configuration synthesized once (real-AWS mode, no emulator)."""
    outdir = tmp_path_factory.mktemp("synth") / "cdktf.out"
    synthesize(project, outdir)
    return outdir


@pytest.fixture(scope="session")
def stacks(synth_dir) -> dict[str, dict]:
    return read_stacks(synth_dir)


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A private copy of the shipped environments/*.toml that a test may change."""
    target = tmp_path / "environments"
    target.mkdir()
    for source in ENVIRONMENTS_DIR.glob("*.toml"):
        shutil.copy(source, target / source.name)
    return target


@pytest.fixture(scope="module", params=SHIPPED_ENVIRONMENTS)
def env_stack(request, stacks, project):
    """(environment config, synthesized stack) for each shipped environment."""
    return project.environment(request.param), stacks[request.param]


def resources_of(stack: dict, resource_type: str) -> dict[str, dict]:
    """All resources of one type in a synthesized stack, by logical id."""
    return stack.get("resource", {}).get(resource_type, {})


def only(stack: dict, resource_type: str) -> dict:
    """The single resource of a type; fails loudly if there is not exactly one."""
    found = resources_of(stack, resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
    return next(iter(found.values()))


# --- property tests: the seed and example count (tests/test_properties.py) ---------------------------

def pytest_configure(config):
    """INFRA_PROPERTY_SEED=random is drawn once, here, before pytest-xdist starts its workers (they inherit
    the environment, so every shard uses the same draw), and printed so a failure can be replayed."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    if os.environ.get("INFRA_PROPERTY_SEED") == "random":
        os.environ["INFRA_PROPERTY_SEED"] = str(random.SystemRandom().randrange(2**32))
    if "INFRA_PROPERTY_SEED" in os.environ or "INFRA_PROPERTY_EXAMPLES" in os.environ:
        print(f"property tests: INFRA_PROPERTY_SEED={os.environ.get('INFRA_PROPERTY_SEED', 'fixed')} "
              f"INFRA_PROPERTY_EXAMPLES={os.environ.get('INFRA_PROPERTY_EXAMPLES', 'default')} "
              "(set both to these values to replay)", file=sys.__stderr__, flush=True)


# --- terraform CLI fixtures: `terraform_tools`, `terraform_env` (see tests/terraform_tools.py) ---
pytest_plugins = ("tests.terraform_tools",)
