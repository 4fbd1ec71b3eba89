"""The deploy guard (ops/deploy.py): a plan that loses data is never applied unseen.

Production environments, the bootstrap and the baselines refuse a plan that replaces or destroys a
stateful resource unless every such address is named with `--allow-replace`; elsewhere each loss is
named in the confirmation, and `--yes` alone never approves it. Plans come from the recorded
fixtures (a replaced database, a destroyed bucket, a replaced state bucket) and from one-resource
plans for each stateful class; the commands run through the recording `Tools` of test_infra_cli.
Each rule is also broken in memory once, and the check that guards it is seen to fail.
"""

from __future__ import annotations

import pytest

from ops import deploy, plan_report, terraform
from tests.test_infra_cli import World, run_infra
from tests.test_plan_report import recorded

PRODUCTION, DEV, BASELINE = "production", "dev", "baseline-eu-west-1"
DATABASE_REPLACED = recorded("dev-database-replaced")
BUCKET_DESTROYED = recorded("dev-bucket-destroyed")
STATE_BUCKET_REPLACED = recorded("bootstrap-state-bucket-replaced")
CLUSTER = "aws_rds_cluster.database_cluster_FAF2FB92"
WRITER = "aws_rds_cluster_instance.database_instance-writer_B7856A17"
LOGS_BUCKET = "aws_s3_bucket.frontend_logs_bucket_2907B414"
STATE_BUCKET = "aws_s3_bucket.state-bucket_828F7150"
# Every resource type whose loss loses data, written out here (not read from the product's table).
STATEFUL_TYPES = ("aws_rds_cluster", "aws_rds_cluster_instance", "aws_db_instance", "aws_dynamodb_table",
                  "aws_s3_bucket", "aws_kms_key", "aws_cloudwatch_log_group", "aws_backup_vault")
REPLACE, DESTROY = ["delete", "create"], ["delete"]


@pytest.fixture(autouse=True)
def fake_terraform_binary(monkeypatch):
    """The recorder stands in for terraform (test_infra_cli's World expects the bare name)."""
    monkeypatch.setattr(terraform, "terraform_binary", lambda: "terraform")


def one_change(resource_type: str, actions: list[str], name: str = "data") -> dict:
    """A plan changing one resource of `resource_type` (the shape of `terraform show -json`)."""
    return {"resource_changes": [{
        "address": f"{resource_type}.guarded", "mode": "managed", "type": resource_type, "name": "guarded",
        "change": {"actions": actions, "before": {"name": name}, "after": None if actions == DESTROY else {}}}]}


def deploy_with(stack: str, shown: dict, *argv: str, answers: tuple[str, ...] = ()):
    command = ["deploy-bootstrap"] if stack == "bootstrap" else ["deploy", stack]
    return run_infra(*command, *argv, world=World(shown=shown, answers=list(answers)))


def check_refused(outcome, addresses: set[str]) -> None:
    """Exit 1, nothing applied, and exactly one `--allow-replace ADDRESS` line per unapproved loss."""
    assert outcome.code == 1, f"not refused (exit {outcome.code}): {outcome.out}{outcome.err}"
    assert not outcome.world.applied(), "applied although refused"
    named = {line.rsplit(": --allow-replace ", 1)[1] for line in outcome.err.splitlines()
             if line.startswith("  ") and ": --allow-replace " in line}
    assert named == addresses, f"refusal names {named}, expected {addresses}"


def check_applied(outcome) -> None:
    assert outcome.code == 0, f"refused: {outcome.err}"
    assert "apply -input=false deploy.tfplan" in outcome.world.names(), "not applied"


# --- guarded stacks: production, the bootstrap, the baselines ----------------------------------------

@pytest.mark.parametrize("actions", [REPLACE, DESTROY], ids=["replace", "destroy"])
@pytest.mark.parametrize("resource_type", STATEFUL_TYPES)
def test_production_refuses_each_stateful_loss_even_with_yes(resource_type, actions):
    check_refused(deploy_with(PRODUCTION, one_change(resource_type, actions), "--yes"), {f"{resource_type}.guarded"})


@pytest.mark.parametrize("resource_type", STATEFUL_TYPES)
def test_production_applies_a_loss_once_it_is_named(resource_type):
    address = f"{resource_type}.guarded"
    check_applied(deploy_with(PRODUCTION, one_change(resource_type, REPLACE), "--yes", "--allow-replace", address))


def test_naming_only_some_of_the_losses_is_still_refused_for_the_others():
    outcome = deploy_with(PRODUCTION, DATABASE_REPLACED, "--yes", "--allow-replace", CLUSTER)
    check_refused(outcome, {WRITER})
    check_applied(deploy_with(PRODUCTION, DATABASE_REPLACED, "--yes", "--allow-replace", CLUSTER,
                              "--allow-replace", WRITER))


def test_the_bootstrap_refuses_replacing_the_state_backend():
    outcome = deploy_with("bootstrap", STATE_BUCKET_REPLACED, "--yes")
    check_refused(outcome, {STATE_BUCKET})
    assert "state backend" in outcome.err


def test_production_cannot_approve_a_loss_at_the_prompt():
    """Typing production's name approves the deploy, never the losses: only --allow-replace does."""
    outcome = deploy_with(PRODUCTION, DATABASE_REPLACED, answers=("production",))
    check_refused(outcome, {CLUSTER, WRITER})
    assert outcome.world.prompts == []


def test_a_baseline_is_guarded_like_production():
    check_refused(deploy_with(BASELINE, one_change("aws_s3_bucket", DESTROY), "--yes"), {"aws_s3_bucket.guarded"})


def test_a_refusal_is_one_line_per_address_and_says_nothing_was_applied():
    outcome = deploy_with(PRODUCTION, DATABASE_REPLACED, "--yes")
    first, *rest = outcome.err.splitlines()
    assert first == ("ops: not deploying production: the plan loses data in 2 stateful resource(s) not named "
                     "with --allow-replace (nothing applied):")
    assert rest == [f"  replace database {name}: --allow-replace {address}" for name, address in (
        (plan_report._name_of(entry["change"]), entry["address"]) for entry in DATABASE_REPLACED["resource_changes"]
        if entry["address"] in (CLUSTER, WRITER))]


@pytest.mark.parametrize("stack", [PRODUCTION, DEV, "bootstrap", BASELINE])
@pytest.mark.parametrize("actions", [["update"], ["create"], REPLACE])
def test_a_plan_losing_nothing_is_not_held_up(stack, actions):
    """Updates, creations and replacements of stateless resources (a task definition) pass unasked."""
    shown = one_change("aws_ecs_task_definition" if actions == REPLACE else "aws_s3_bucket", actions)
    check_applied(deploy_with(stack, shown, "--yes"))


# --- other stacks: named in the prompt, never approved by --yes alone ---------------------------------

@pytest.mark.parametrize("shown, loss", [(DATABASE_REPLACED, CLUSTER), (BUCKET_DESTROYED, LOGS_BUCKET)],
                         ids=["database replaced", "bucket destroyed"])
def test_elsewhere_yes_alone_does_not_approve_a_loss(shown, loss):
    outcome = deploy_with(DEV, shown, "--yes")
    assert f": --allow-replace {loss}" in outcome.err
    check_refused(outcome, {risk.address for risk in plan_report.summarize_plan(shown).risks})
    assert "--yes does not approve losing data" in outcome.err


def test_elsewhere_the_prompt_names_each_loss_and_yes_typed_there_applies_it():
    outcome = deploy_with(DEV, BUCKET_DESTROYED, answers=("yes",))
    check_applied(outcome)
    (prompt,) = outcome.world.prompts
    assert "loses data: destroy bucket " in prompt and f"({LOGS_BUCKET})" in prompt


def test_elsewhere_named_losses_pass_with_yes():
    losses = [risk.address for risk in plan_report.summarize_plan(BUCKET_DESTROYED).risks]
    check_applied(deploy_with(DEV, BUCKET_DESTROYED, "--yes", *(f"--allow-replace={a}" for a in losses)))


def test_an_allow_replace_for_something_the_plan_keeps_is_reported():
    outcome = deploy_with(DEV, one_change("aws_ecs_service", ["update"]), "--yes", "--allow-replace", CLUSTER)
    check_applied(outcome)
    assert f"note: --allow-replace {CLUSTER}: this plan neither replaces nor destroys it" in outcome.out


# --- each rule broken in memory once: the checks above must fail ------------------------------------------

def test_bite_an_unguarded_production_is_caught(monkeypatch):
    real = deploy.unapproved_losses
    monkeypatch.setattr(deploy, "unapproved_losses",
                        lambda stack, *args: real(type(stack)(**{**vars(stack), "guarded": False}), *args))
    with pytest.raises(AssertionError, match=r"not refused|refusal names set\(\)"):
        check_refused(deploy_with(PRODUCTION, DATABASE_REPLACED, answers=("production",)), {CLUSTER, WRITER})


@pytest.mark.parametrize("resource_type", ["aws_kms_key", "aws_dynamodb_table", "aws_backup_vault"])
def test_bite_a_stateful_class_dropped_from_the_table_is_caught(monkeypatch, resource_type):
    monkeypatch.delitem(plan_report.STATEFUL_KINDS, resource_type)
    with pytest.raises(AssertionError, match="not refused"):
        check_refused(deploy_with(PRODUCTION, one_change(resource_type, REPLACE), "--yes"),
                      {f"{resource_type}.guarded"})


def test_bite_yes_approving_losses_elsewhere_is_caught(monkeypatch):
    real = deploy.unapproved_losses
    monkeypatch.setattr(deploy, "unapproved_losses", lambda stack, summary, allowed, yes: real(
        stack, summary, allowed, False))
    with pytest.raises(AssertionError, match="not refused"):
        check_refused(deploy_with(DEV, BUCKET_DESTROYED, "--yes", answers=("yes",)),
                      {risk.address for risk in plan_report.summarize_plan(BUCKET_DESTROYED).risks})


def test_bite_a_partial_allow_list_accepted_whole_is_caught(monkeypatch):
    real = deploy.unapproved_losses
    monkeypatch.setattr(deploy, "unapproved_losses", lambda stack, summary, allowed, yes: ()
                        if allowed else real(stack, summary, allowed, yes))
    with pytest.raises(AssertionError, match="not refused"):
        check_refused(deploy_with(PRODUCTION, DATABASE_REPLACED, "--yes", "--allow-replace", CLUSTER), {WRITER})


def test_the_dr_region_stack_of_production_is_guarded_like_production():
    """production-dr holds the standby's database: its loss is refused like production's."""
    check_refused(deploy_with("production-dr", one_change("aws_rds_cluster", REPLACE), "--yes"),
                  {"aws_rds_cluster.guarded"})


def test_replacing_the_global_database_is_a_loss():
    check_refused(deploy_with(PRODUCTION, one_change("aws_rds_global_cluster", REPLACE), "--yes"),
                  {"aws_rds_global_cluster.guarded"})
