"""What the emulated deployment leaves out of dev, pinned (issue 22): adding to it is a reviewed change.

The emulated deployment (tests/test_emulated_deploy.py) applies `emulator.deployable()`'s targets and
checks the state against them; without this pin, any new reference to a type moto cannot create would
silently shrink what is applied, and the deployment would still pass. Here the dev stack is synthesized
exactly as the flow deploys it (the shipped dev.toml with DR_TABLE and the cache, emulator mode), with
no emulator needed, and what `deployable()` leaves out is compared with the checked-in list.
"""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path

import cdktf
import pytest

from environments.loader import load_project
from ops import emulator
from stacks.environment import EnvironmentStack
from tests.conftest import ENVIRONMENTS_DIR, ROOT
from tests.strategies import to_toml

PINNED = ROOT / "tests" / "fixtures" / "emulator_left_out_dev.txt"
DEPLOYED_ENVIRONMENT = "dev"
# Synthesis in emulator mode needs an endpoint; nothing is contacted.
UNUSED_ENDPOINT = "http://127.0.0.1:1"
# The deployed dev variant gets this [dr] table (dev ships without one), so the disaster-recovery
# resources are applied too: a provider, vault and key in a second region, vault locks, the copy action;
# and the cache (off in the shipped dev), so the Redis tier is applied and re-planned too.
CACHE_OFF, CACHE_ON = "\ncache = false\n", "\ncache = true\n"
DR_TABLE = """
[dr]
region = "eu-central-1"
backup_schedule = "cron(0 3 ? * * *)"
copy_retention_days = 14
vault_lock = true
"""


# Environments in their own accounts (issue 24): the state in moto's default account, dev in another, and
# `[ci]`, so the bootstrap creates each environment's deploy and plan roles in that environment's account and
# every stack reaches its state through its own state role. moto keeps resources per account when called
# with assumed-role credentials; it checks no trust or permission (gap "no-authorization").
STATE_ACCOUNT = "123456789012"
ACCOUNTS = {"dev": "111111111111", "staging": "333333333333", "production": "444444444444"}
ADMINISTRATOR = f"arn:aws:iam::{STATE_ACCOUNT}:role/emulated-administrator"
BASELINE_DEPLOYER = f"arn:aws:iam::{ACCOUNTS['dev']}:role/emulated-baseline-deployer"


def emulated_configuration(shipped: str) -> str:
    """The deployed environment's file as the flow deploys it: the shipped one with DR_TABLE and the cache."""
    assert "[dr]" not in shipped, "the shipped dev now has [dr]: drop DR_TABLE"
    assert shipped.count(CACHE_OFF) == 1, "the shipped dev now has the cache on: drop CACHE_ON"
    return shipped.replace(CACHE_OFF, CACHE_ON) + DR_TABLE


def emulated_files(folder: Path) -> None:
    """Turn a copy of the shipped environments/ into what the flow deploys: dev with DR_TABLE and the cache,
    every environment in its own account, the state isolated in the state account, CI roles on, and the
    account baseline in dev's account (as dev's baseline)."""
    deployed = folder / f"{DEPLOYED_ENVIRONMENT}.toml"
    deployed.write_text(emulated_configuration(deployed.read_text()))
    for name, account in ACCOUNTS.items():
        path = folder / f"{name}.toml"
        document = tomllib.loads(path.read_text())
        document["account_id"] = account
        path.write_text(to_toml(document))
    path = folder / "project.toml"
    project = tomllib.loads(path.read_text())
    project["state"].update(account_id=STATE_ACCOUNT, administrators=[ADMINISTRATOR])
    (baseline,) = project["baseline"]
    baseline.update(account_id=ACCOUNTS[DEPLOYED_ENVIRONMENT], deploy_role_arn=BASELINE_DEPLOYER)
    project["ci"] = {"repository": "example-org/webapp"}
    path.write_text(to_toml(project))


def pinned_left_out() -> set[str]:
    """The reviewed list: one Terraform address per line (`#` starts a comment)."""
    lines = (line.split("#", 1)[0].strip() for line in PINNED.read_text().splitlines())
    return {line for line in lines if line}


@pytest.fixture(scope="module")
def emulated_dev(tmp_path_factory) -> dict:
    """dev synthesized as the emulated deployment deploys it."""
    folder: Path = tmp_path_factory.mktemp("emulated-config") / ENVIRONMENTS_DIR.name
    folder.mkdir()
    for source in ENVIRONMENTS_DIR.glob("*.toml"):
        (folder / source.name).write_text(source.read_text())
    emulated_files(folder)
    project = load_project(folder, emulator_endpoint=UNUSED_ENDPOINT)
    env = project.environment(DEPLOYED_ENVIRONMENT)
    assert env.dr is not None and env.features.cache
    return json.loads(cdktf.Testing.synth(EnvironmentStack(cdktf.Testing.app(), project, env)))


def check_left_out(stack: dict) -> None:
    _, left_out = emulator.deployable(stack)
    added, gone = sorted(left_out - pinned_left_out()), sorted(pinned_left_out() - left_out)
    assert not (added or gone), (f"the emulated dev now leaves out {added} and applies {gone}: if that is "
                                 f"intended, update {PINNED.relative_to(ROOT)}")


def test_the_emulated_dev_leaves_out_exactly_the_pinned_blocks(emulated_dev):
    check_left_out(emulated_dev)


def test_a_new_reference_to_a_type_moto_cannot_create_shows(emulated_dev):
    """The alarm topic's policy starts naming the budget: it (and what depends on it) would silently drop."""
    stack = copy.deepcopy(emulated_dev)
    (budget,) = stack["resource"]["aws_budgets_budget"]
    (policy,) = [name for name in stack["resource"]["aws_sns_topic_policy"] if name.startswith("observability_warning")]
    stack["resource"]["aws_sns_topic_policy"][policy]["depends_on"] = [f"aws_budgets_budget.{budget}"]
    with pytest.raises(AssertionError, match=f"now leaves out \\['aws_sns_topic_policy.{policy}'\\]"):
        check_left_out(stack)


def test_the_flow_deploys_this_configuration():
    """The deployment flow imports its configuration from here, so the pin is about what it deploys."""
    from tests import test_emulated_deploy

    assert test_emulated_deploy.emulated_files is emulated_files
