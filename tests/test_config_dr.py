"""The optional [dr] table: disaster recovery in a second region (issue 15). Every rule refuses bad input."""

from __future__ import annotations

import pytest

from environments.loader import load_project, valid_schedule
from environments.model import DEFAULT_BACKUP_SCHEDULE
from tests.test_config_loader import assert_refused
from tests.test_config_optional import edit

GOOD_DR = {"region": "eu-central-1", "backup_schedule": "cron(0 3 ? * * *)", "copy_retention_days": 14}


def with_dr(**changes):
    return lambda doc: doc.update(dr={**GOOD_DR, **changes})


def test_a_dr_table_loads(config_dir):
    edit(config_dir, "dev.toml", with_dr(vault_lock=True))
    env = load_project(config_dir).environment("dev")
    assert (env.dr.region, env.dr.copy_retention_days, env.dr.vault_lock) == ("eu-central-1", 14, True)
    assert env.backup_schedule == "cron(0 3 ? * * *)"


def test_without_dr_the_backup_runs_daily(project):
    env = project.environment("dev")
    assert env.dr is None and env.backup_schedule == DEFAULT_BACKUP_SCHEDULE == "cron(0 5 ? * * *)"


@pytest.mark.parametrize(("change", "field", "rule"), [
    (with_dr(region="eu-west-1"), "dr.region", "must differ from region (eu-west-1)"),
    (with_dr(region="Frankfurt"), "dr.region", "must be an AWS region"),
    (with_dr(region="us-gov-west-1"), "dr.region", "must be in the same AWS partition as eu-west-1"),
    (with_dr(backup_schedule="cron(*/10 * ? * * *)"), "dr.backup_schedule", "with a single minute"),
    (with_dr(backup_schedule="cron(0 5 * * * *)"), "dr.backup_schedule", "`?` in exactly one of the day fields"),
    (with_dr(backup_schedule="cron(0 24 ? * * *)"), "dr.backup_schedule", "must be cron("),
    (with_dr(backup_schedule="rate(30 minutes)"), "dr.backup_schedule", "AWS Backup refuses rate(...)"),
    (with_dr(backup_schedule="rate(1 day)"), "dr.backup_schedule", "AWS Backup refuses rate(...)"),
    (with_dr(backup_schedule="rate(12 hours)"), "dr.backup_schedule", "AWS Backup refuses rate(...)"),
    (with_dr(backup_schedule="cron(0 5 ? * *)"), "dr.backup_schedule", "must be cron("),
    (with_dr(backup_schedule="cron(0 5 ? * 8 *)"), "dr.backup_schedule", "must be cron("),
    (with_dr(backup_schedule="cron(0 5 ? 13 * *)"), "dr.backup_schedule", "must be cron("),
    (with_dr(backup_schedule=3), "dr.backup_schedule", "must be a string"),
    (with_dr(backup_schedule="daily"), "dr.backup_schedule", "must be cron("),
    (with_dr(copy_retention_days=3), "dr.copy_retention_days", "must be between 7 and 3650 (got 3)"),
    (with_dr(copy_retention_days="14"), "dr.copy_retention_days", "must be an integer"),
    (with_dr(vault_lock="yes"), "dr.vault_lock", "must be true or false"),
    (with_dr(replica=True), "dr.replica", "is not a known setting"),
    (lambda doc: doc.update(dr={"backup_schedule": "cron(0 3 ? * * *)", "copy_retention_days": 14}),
     "dr.region", "is required"),
    (lambda doc: doc.update(dr="eu-central-1"), "dr", "must be a table"),
])
def test_bad_dr_settings_are_refused(config_dir, change, field, rule):
    edit(config_dir, "dev.toml", change)
    assert_refused(config_dir, "dev.toml", field, rule)


@pytest.mark.parametrize(("change", "field"), [
    (lambda doc: doc.pop("dr"), "dr"),
    (lambda doc: doc["dr"].update(vault_lock=False), "dr.vault_lock"),
])
def test_production_needs_dr_and_a_vault_lock(config_dir, change, field):
    edit(config_dir, "production.toml", change)
    assert_refused(config_dir, "production.toml", field, "when production = true")


@pytest.mark.parametrize("expression", [
    "cron(0 5 ? * * *)", "cron(15 */4 ? * * *)", "cron(0 1,13 ? * MON-FRI *)", "cron(0 2 L * ? *)",
    "cron(0 2 ? * 6#3 2026-2030)", "cron(0 3 15W JAN,JUL ? *)",
])
def test_aws_backup_schedules_are_accepted(expression):
    assert valid_schedule(expression)


@pytest.mark.parametrize("expression", [
    "cron(0 5 ? * *)", "cron(0 5 ? * * * *)", "cron(60 5 ? * * *)", "cron(0-30 5 ? * * *)", "cron(0 5 32 * ? *)",
    "cron(0 5 ? 13 * *)", "cron(0 5 ? * 8 *)", "cron(0 5 ? * FOO *)", "cron(0 5 ? * ? *)", "cron(0 */0 ? * * *)",
    "rate(0 hours)", "rate(2 hour)", "rate(1 week)", "rate(1 minute)", " cron(0 5 ? * * *)",
    # AWS Backup's BackupRule takes a cron expression only (issue 21): rate(...) fails at deploy.
    "rate(1 hour)", "rate(12 hours)", "rate(1 day)",
])
def test_other_schedules_are_refused(expression):
    assert not valid_schedule(expression)


def project_edit(change):
    return lambda doc: change(doc["state"])


@pytest.mark.parametrize(("change", "field", "rule"), [
    (lambda state: state.update(replica_region="eu-west-1"), "state.replica_region",
     "must differ from state.region (eu-west-1)"),
    (lambda state: state.update(replica_region="cn-north-1"), "state.replica_region", "same AWS partition"),
    (lambda state: state.update(replica_region="mars-1"), "state.replica_region", "must be an AWS region"),
])
def test_bad_state_replica_settings_are_refused(config_dir, change, field, rule):
    edit(config_dir, "project.toml", project_edit(change))
    assert_refused(config_dir, "project.toml", field, rule)
