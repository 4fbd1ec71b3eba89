"""`terraform validate` on every synthesized stack, with the real provider schema from the mirror.

Synthesis only proves that cdktf produced JSON; validation proves Terraform and hashicorp/aws
5.100.0 accept it: every argument exists, has the right type and every reference resolves.
`init -backend=false` installs the provider without touching any state backend, so this needs
no cloud account and no emulator.
"""

from __future__ import annotations

import copy
import json
import shutil

import pytest

from environments.loader import load_project
from tests.conftest import ENVIRONMENTS_DIR
from tests.terraform_tools import ValidationBatch, run_terraform

pytestmark = pytest.mark.terraform

# Known at collection time so each stack is its own test; the completeness test below fails if
# synthesis ever produces a stack this list does not name.
STACK_NAMES = load_project(ENVIRONMENTS_DIR).stack_names


def test_every_synthesized_stack_is_validated(stacks):
    assert set(stacks) == set(STACK_NAMES), "the validated stacks must be exactly the synthesized ones"


@pytest.mark.parametrize("stack_name", STACK_NAMES)
def test_stack_passes_terraform_validate(stack_name, synth_dir, terraform_env, tmp_path):
    # A copy: the session synthesis is shared with other tests and stays free of .terraform/.
    workdir = shutil.copytree(synth_dir / "stacks" / stack_name, tmp_path / stack_name)
    run_terraform(["init", "-backend=false", "-input=false", "-no-color"], workdir, terraform_env)
    result = run_terraform(["validate", "-json", "-no-color"], workdir, terraform_env, check=False)

    report = json.loads(result.stdout)
    errors = [d for d in report["diagnostics"] if d["severity"] == "error"]
    assert report["valid"] and report["error_count"] == 0 and not errors, (
        f"terraform validate rejected stack {stack_name!r}:\n{json.dumps(report['diagnostics'], indent=2)}"
    )
    assert result.returncode == 0, f"validate reported valid but exited {result.returncode}: {result.stderr}"


def test_a_validation_batch_reports_the_defect_and_the_stack_it_is_in(stacks, terraform_env, tmp_path):
    """The batched validation behind property 10 must see inside every module, not just load the root."""
    broken = copy.deepcopy(stacks["staging"])
    vpc = next(iter(broken["resource"]["aws_vpc"].values()))
    vpc["not_an_argument"] = True
    batch = ValidationBatch(tmp_path / "batch")
    batch.add(stacks["dev"], "the shipped dev stack")
    batch.add(broken, "staging with a made-up VPC argument")

    problems = batch.validate(terraform_env)

    assert len(problems) == 1, problems
    assert "Extraneous JSON object property" in problems[0] and "not_an_argument" in problems[0]
    assert "m1/cdk.tf.json" in problems[0] and "staging with a made-up VPC argument" in problems[0]
