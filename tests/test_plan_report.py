"""Plan summaries and drift reports (ops/plan_report.py) on real `terraform show -json` output.

The plans in tests/fixtures/plans/ were produced by Terraform against the stacks deployed to the
emulator (tests/fixtures/plans/record.py says how): each variant changes the deployed stack's
JSON the way a pull request would. The expectations come from what each variant changed (and
from the configuration), never from the summary itself; the surrounding changes in the dev plans
are what moto reads back differently (EMULATOR_GAPS drifts), realistic noise the summary must
count without flagging.
"""

from __future__ import annotations

import copy
import json
import re

import pytest

from ops import deploy, emulator, plan_report, terraform
from tests.conftest import ROOT
from tests.fixtures.plans import record

FIXTURES = ROOT / "tests" / "fixtures" / "plans"
MOTO_ACCOUNT = "123456789012"  # the account moto reports for any credentials (the recordings' account)


def recorded(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def addresses(shown: dict, actions: list[str]) -> set[str]:
    return {entry["address"] for entry in shown["resource_changes"]
            if entry["mode"] == "managed" and entry["change"]["actions"] == actions}


@pytest.fixture(scope="module")
def backend_names(project) -> frozenset[str]:
    return deploy.state_backend_names(project)


def test_every_recorded_plan_is_terraform_output():
    for path in sorted(FIXTURES.glob("*.json")):
        shown = json.loads(path.read_text())
        assert shown["format_version"].startswith("1.") and shown["terraform_version"], path.name
    assert {path.stem for path in FIXTURES.glob("*.json")} == set(record.VARIANTS), "one recording per variant"


def test_a_replaced_database_is_counted_and_flagged_by_name(project):
    shown = recorded("dev-database-replaced")
    summary = plan_report.summarize_plan(shown)
    cluster = f"{project.environment('dev').application}-dev-db"  # modules/database.py: <prefix>-db
    flagged = {(risk.action, risk.kind, risk.name) for risk in summary.risks}
    assert ("replace", "database", cluster) in flagged
    assert ("replace", "database", f"{cluster}-writer") in flagged, "the writer instance goes with its cluster"
    assert all(risk.action == "replace" and risk.kind == "database" for risk in summary.risks), summary.risks
    replaced = addresses(shown, ["delete", "create"]) | addresses(shown, ["create", "delete"])
    assert summary.counts == {"add": len(addresses(shown, ["create"])), "change": len(addresses(shown, ["update"])),
                              "replace": len(replaced), "destroy": len(addresses(shown, ["delete"]))}


def test_a_destroyed_bucket_is_flagged_and_every_removed_block_counted(stacks):
    """Exactly the blocks the recording removed (derived here from the synthesized dev stack) are destroyed."""
    shown = recorded("dev-bucket-destroyed")
    summary = plan_report.summarize_plan(shown)
    before = stacks["dev"]
    after = copy.deepcopy(before)
    record.destroy_frontend_logs_bucket(after)
    deployable, _ = emulator.deployable(before)
    removed = {address for address in set(emulator.stack_blocks(before)) - set(emulator.stack_blocks(after))
               if not address.startswith("data.") and address in deployable}
    destroyed_blocks = addresses(shown, ["delete"])
    # Subset: resources added to the code since the recording may refer to the bucket too (re-record then).
    assert destroyed_blocks <= removed and len(destroyed_blocks) > 1, (destroyed_blocks, removed)
    assert summary.counts["destroy"] == len(destroyed_blocks)
    bucket = before["resource"]["aws_s3_bucket"][record._one(before, "aws_s3_bucket", "frontend_logs")]["bucket"]
    destroyed = [risk for risk in summary.risks if risk.action == "destroy"]
    assert [(risk.kind, risk.name) for risk in destroyed] == [("bucket", re.sub(r"\$\{[^}]+\}", MOTO_ACCOUNT, bucket))]


def test_the_state_backend_is_flagged_as_such(backend_names, project):
    summary = plan_report.summarize_plan(recorded("bootstrap-state-bucket-replaced"), backend_names)
    assert [(risk.action, risk.kind, risk.name) for risk in summary.risks] == [
        ("replace", plan_report.STATE_BACKEND, project.state.bucket)]
    # Without the names it is still a bucket being replaced, but not recognised as the state backend.
    plain = plan_report.summarize_plan(recorded("bootstrap-state-bucket-replaced"))
    assert [(risk.kind, risk.name) for risk in plain.risks] == [("bucket", project.state.bucket)]


def test_an_unchanged_stack_has_no_changes_and_nothing_flagged(backend_names):
    summary = plan_report.summarize_plan(recorded("bootstrap-unchanged"), backend_names)
    assert summary.counts == dict.fromkeys(plan_report.COLUMNS, 0) and not summary.risks
    assert plan_report.summary_markdown("bootstrap", summary).endswith("\n\nno changes\n")


def test_the_comment_table_comes_first_and_flags_each_loss(project):
    shown = recorded("dev-database-replaced")
    summary = plan_report.summarize_plan(shown)
    lines = plan_report.summary_markdown("dev", summary).splitlines()
    assert lines[0] == "| `dev` | add | change | replace | destroy |"
    assert lines[2] == "| resources | " + " | ".join(str(summary.counts[c]) for c in plan_report.COLUMNS) + " |"
    flagged = [line for line in lines if line.startswith("| :warning: |")]
    assert len(flagged) == len(summary.risks) == 2
    for risk in summary.risks:
        assert any(f"**{risk.action}**" in line and f"`{risk.name}`" in line and f"`{risk.address}`" in line
                   for line in flagged), risk


def test_breaking_the_recorded_plan_changes_the_summary():
    """Negative control: the same plan with the cluster updated in place flags nothing for it."""
    shown = recorded("dev-database-replaced")
    broken = copy.deepcopy(shown)
    for entry in broken["resource_changes"]:
        if entry["type"] == "aws_rds_cluster":
            entry["change"]["actions"] = ["update"]
    before, after = plan_report.summarize_plan(shown), plan_report.summarize_plan(broken)
    assert {r.address for r in before.risks} - {r.address for r in after.risks} == {
        e["address"] for e in shown["resource_changes"] if e["type"] == "aws_rds_cluster"}
    assert after.counts["change"] == before.counts["change"] + 1


def test_infra_plan_prints_the_summary_and_writes_the_comment_table(tmp_path, project, monkeypatch):
    from tests.test_infra_cli import World, run_infra

    monkeypatch.setattr(terraform, "terraform_binary", lambda: "terraform")
    shown = recorded("dev-database-replaced")
    table = tmp_path / "summary.md"
    outcome = run_infra("plan", "dev", "--summary", str(table), world=World(shown=shown))
    assert outcome.code == 0, outcome.err
    summary = plan_report.summarize_plan(shown, deploy.state_backend_names(project))
    assert table.read_text() == plan_report.summary_markdown("dev", summary)
    assert outcome.out.splitlines()[:3] == plan_report.summary_lines("dev", summary)


# --- drift ----------------------------------------------------------------------------------------------

def test_representation_only_differences_are_not_drift():
    """null vs {} and set order are how the provider re-reads a value, not a change."""
    before = {"tags": None, "ingress": [{"port": 80}, {"port": 443}], "name": "x", "description": ""}
    after = {"tags": {}, "ingress": [{"port": 443}, {"port": 80}], "name": "x", "description": None}
    assert list(plan_report.changed_paths(before, after)) == []
    assert list(plan_report.changed_paths(before, {**after, "tags": {"Owner": "someone"}})) == ["tags.Owner"]
    assert list(plan_report.changed_paths(before, {**after, "ingress": [{"port": 22}]})) == ["ingress"]


def test_drift_of_reads_resource_drift_only_for_managed_resources():
    shown = {"resource_drift": [
        {"address": "aws_vpc.a", "mode": "managed",
         "change": {"actions": ["update"], "before": {"tags": None}, "after": {"tags": {}}}},
        {"address": "aws_vpc.b", "mode": "managed",
         "change": {"actions": ["update"], "before": {"cidr_block": "10.0.0.0/16"},
                    "after": {"cidr_block": "10.1.0.0/16"}}},
        {"address": "data.aws_region.r", "mode": "data",
         "change": {"actions": ["update"], "before": {"name": "a"}, "after": {"name": "b"}}},
    ]}
    assert plan_report.drift_of(shown) == [plan_report.Drift("aws_vpc.b", False, ("cidr_block",))]

