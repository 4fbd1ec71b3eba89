"""AWS Backup and the DR region (issue 15) on the shipped environments; rules in tests/dr_checks.py."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest

from tests import dr_checks, network_checks
from tests.conftest import only, resources_of


def test_every_environment_backs_up_its_database(env_stack):
    env, stack = env_stack
    dr_checks.check_backup(stack, env)


def test_the_dr_provider_exists_exactly_where_configured(env_stack):
    env, stack = env_stack
    dr_checks.check_disaster_recovery(stack, env)


def test_shipped_configuration_matches_the_issue(project):
    """dev has no [dr]; staging and production copy to a second EU region; production locks its vaults."""
    dev, staging, production = (project.environment(name) for name in ("dev", "staging", "production"))
    assert dev.dr is None
    for env in (staging, production):
        assert env.dr.region.startswith("eu-") and env.dr.region != env.region
    assert production.dr.vault_lock and not staging.dr.vault_lock


def test_without_dr_nothing_is_copied_and_no_provider_points_elsewhere(stacks, project):
    stack = stacks["dev"]
    assert [p.get("alias") for p in stack["provider"]["aws"]] == [None, "us_east_1"]
    assert len(dr_checks.vaults(stack)) == 1
    assert "copy_action" not in dr_checks.plan_rule(stack)
    assert not resources_of(stack, "aws_backup_vault_lock_configuration")
    regions = {dr_checks.provider_region(stack, body)
               for named in stack["resource"].values() for body in named.values()}
    assert regions == {project.environment("dev").region, "us-east-1"}


def test_production_vaults_use_compliance_mode(stacks):
    """Compliance mode is what Terraform writes when changeable_for_days is set (governance otherwise)."""
    locks = resources_of(stacks["production"], "aws_backup_vault_lock_configuration")
    assert len(locks) == 2 and all("changeable_for_days" in lock for lock in locks.values())


def test_the_copy_goes_to_the_vault_in_the_dr_region(stacks, project):
    stack, env = stacks["staging"], project.environment("staging")
    (copy_action,) = dr_checks.plan_rule(stack)["copy_action"]
    vault = dr_checks.vault_by_reference(stack, copy_action["destination_vault_arn"])
    assert dr_checks.provider_region(stack, vault) == env.dr.region == "eu-central-1"
    assert copy_action["destination_vault_arn"].endswith(".arn}")


# Each breakage and what check_backup must say about it.
BACKUP_BREAKAGES = {
    "schedule": "backup schedule cron\\(0 5", "retention": "backup retention", "copy-retention": "copy retention",
    "copy-region": "webapp-production-backup-dr", "selection-scope": "the cluster only",
    "notification-state": "backup notifications", "lock": "every vault is locked",
    "role-wildcard": "'sid': 'ReadAndCopyRecoveryPoints'",
}


@pytest.mark.parametrize("breakage", sorted(BACKUP_BREAKAGES))
def test_the_checks_catch_a_broken_stack(stacks, project, breakage):
    """Break the synthesized JSON in memory once per rule: each check must notice, for that rule's reason."""
    env = project.environment("production")
    stack = copy.deepcopy(stacks["production"])
    rule = dr_checks.plan_rule(stack)
    if breakage == "schedule":
        rule["schedule"] = "cron(0 5 ? * * *)"
    elif breakage == "retention":
        rule["lifecycle"]["delete_after"] += 1
    elif breakage == "copy-retention":
        rule["copy_action"][0]["lifecycle"]["delete_after"] = 1
    elif breakage == "copy-region":
        env = dataclasses.replace(env, dr=dataclasses.replace(env.dr, region="eu-north-1"))
    elif breakage == "selection-scope":
        only(stack, "aws_backup_selection")["resources"].append("*")
    elif breakage == "notification-state":
        for rule_body in resources_of(stack, "aws_cloudwatch_event_rule").values():
            pattern = json.loads(rule_body["event_pattern"])
            pattern["detail"]["state"] = ["COMPLETED"]
            rule_body["event_pattern"] = json.dumps(pattern)
    elif breakage == "lock":
        name = next(iter(resources_of(stack, "aws_backup_vault_lock_configuration")))
        del stack["resource"]["aws_backup_vault_lock_configuration"][name]
    elif breakage == "role-wildcard":
        def edit(_, document: dict) -> None:
            for statement in document.get("statement", []):
                if statement.get("sid") == "ReadAndCopyRecoveryPoints":
                    statement["resources"] = ["*"]
        network_checks.edit_documents(stack, edit)
    with pytest.raises(AssertionError, match=BACKUP_BREAKAGES[breakage]):
        dr_checks.check_backup(stack, env)
