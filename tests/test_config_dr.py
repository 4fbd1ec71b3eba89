"""The optional [dr] table: disaster recovery in a second region (issue 15). Every rule refuses bad input."""

from __future__ import annotations

import pytest

from environments.loader import load_project, valid_schedule
from environments.model import DEFAULT_BACKUP_SCHEDULE, DrStrategy
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


# --- [dr] strategy (issue 25): backup or a warm standby in the DR region -----------------------------------

STANDBY = {"strategy": "standby", "standby_cidr": "10.20.0.0/16", "standby_min_tasks": 0}
DR_SNAPSHOT_ARN = "arn:aws:rds:{region}:123456789012:cluster-snapshot:awsbackup:copyjob-0a1b2c3d"


def test_the_shipped_strategies(project):
    staging, production = project.environment("staging"), project.environment("production")
    assert staging.dr.strategy is DrStrategy.BACKUP and not staging.standby
    assert staging.dr.standby_cidr is None and staging.dr.standby_min_tasks == 0
    assert production.dr.strategy is DrStrategy.STANDBY and production.standby
    assert (production.dr.standby_cidr, production.dr.standby_min_tasks) == ("10.12.0.0/16", 1)


def test_without_a_strategy_the_dr_region_holds_backups(config_dir):
    edit(config_dir, "dev.toml", with_dr())
    env = load_project(config_dir).environment("dev")
    assert env.dr.strategy is DrStrategy.BACKUP and not env.standby


def test_a_standby_loads_with_zero_tasks(config_dir):
    edit(config_dir, "dev.toml", with_dr(**STANDBY))
    env = load_project(config_dir).environment("dev")
    assert env.standby and env.dr.standby_cidr == "10.20.0.0/16" and env.dr.standby_min_tasks == 0


def test_every_dr_stack_has_its_own_name_and_state_key(project):
    assert project.stack_names[-4:] == ("production", "production-dr", "staging", "staging-dr")
    assert project.state_keys["production-dr"] == "production-dr/terraform.tfstate"
    assert project.state_keys["staging-dr"] == "staging-dr/terraform.tfstate"
    assert "dev-dr" not in project.state_keys and "dev-dr" not in project.stack_names


@pytest.mark.parametrize(("change", "field", "rule"), [
    (with_dr(strategy="pilot-light"), "dr.strategy", "must be one of backup, standby (got 'pilot-light')"),
    (with_dr(strategy="standby", standby_min_tasks=1), "dr.standby_cidr", "is required"),
    (with_dr(strategy="standby", standby_cidr="10.20.0.0/16"), "dr.standby_min_tasks", "is required"),
    (with_dr(**{**STANDBY, "standby_min_tasks": -1}), "dr.standby_min_tasks", "must be between 0 and 100"),
    (with_dr(**{**STANDBY, "standby_min_tasks": 4}), "dr.standby_min_tasks", "must be <= api.max_tasks (4 > 3)"),
    (with_dr(**{**STANDBY, "standby_min_tasks": True}), "dr.standby_min_tasks", "must be an integer"),
    (with_dr(**{**STANDBY, "standby_cidr": "10.20.0.0/24"}), "dr.standby_cidr", "between /16 and /20"),
    (with_dr(**{**STANDBY, "standby_cidr": "100.64.0.0/16"}), "dr.standby_cidr", "private (RFC 1918)"),
    (with_dr(**{**STANDBY, "standby_cidr": "10.20.0.1/16"}), "dr.standby_cidr", "must be an IPv4 network address"),
    (with_dr(**{**STANDBY, "standby_cidr": "10.0.0.0/17"}), "dr.standby_cidr",
     "must not overlap any environment's or standby's network (10.0.0.0/17 overlaps network.cidr 10.0.0.0/16 in "
     "environments/dev.toml)"),
    (with_dr(**{**STANDBY, "standby_cidr": "10.2.0.0/16"}), "dr.standby_cidr", "overlaps network.cidr 10.2.0.0/16 "
     "in environments/production.toml"),
    (with_dr(**{**STANDBY, "standby_cidr": "10.12.0.0/18"}), "dr.standby_cidr", "overlaps dr.standby_cidr "
     "10.12.0.0/16 in environments/production.toml"),
    (with_dr(**{**STANDBY, "region": "eu-west-1"}), "dr.region", "must differ from region (eu-west-1)"),
    (with_dr(standby_min_tasks=1), "dr.standby_min_tasks", 'is only allowed with strategy = "standby"'),
    (with_dr(standby_min_tasks=500), "dr.standby_min_tasks", "must be between 0 and 100"),
    (with_dr(**STANDBY, restore_from_snapshot="awsbackup:copyjob-0a1b2c3d"), "dr.restore_from_snapshot",
     'is only allowed with strategy = "backup"'),
    (with_dr(restore_from_snapshot="not a snapshot"), "dr.restore_from_snapshot", "must be a cluster snapshot"),
    (with_dr(restore_from_snapshot=DR_SNAPSHOT_ARN.format(region="eu-west-1")), "dr.restore_from_snapshot",
     "must be a snapshot in eu-central-1 (got one in eu-west-1)"),
    (lambda doc: (with_dr(**STANDBY)(doc), doc["database"].update(restore_from_snapshot="awsbackup:job-1")),
     "database.restore_from_snapshot", 'must not be set with dr.strategy = "standby"'),
])
def test_bad_strategy_settings_are_refused(config_dir, change, field, rule):
    edit(config_dir, "dev.toml", change)
    assert_refused(config_dir, "dev.toml", field, rule)


def test_a_backup_dr_stack_may_name_a_copied_recovery_point(config_dir):
    arn = DR_SNAPSHOT_ARN.format(region="eu-central-1")
    edit(config_dir, "dev.toml", with_dr(restore_from_snapshot=arn))
    assert load_project(config_dir).environment("dev").dr.restore_from_snapshot == arn


def test_a_standby_cidr_overlapping_its_own_environment_is_refused(config_dir):
    edit(config_dir, "production.toml", lambda doc: doc["dr"].update(standby_cidr="10.2.0.0/17"))
    assert_refused(config_dir, "production.toml", "dr.standby_cidr",
                   "(10.2.0.0/17 overlaps network.cidr 10.2.0.0/16 in environments/production.toml)")


def test_no_environment_may_take_a_dr_stack_s_name(config_dir):
    text = (config_dir / "dev.toml").read_text().replace('name = "dev"', 'name = "staging-dr"')
    (config_dir / "staging-dr.toml").write_text(text.replace('cidr = "10.0.0.0/16"', 'cidr = "10.30.0.0/16"')
                                                .replace('domain = "dev.example.com"', 'domain = "x.example.com"'))
    assert_refused(config_dir, "staging-dr.toml", "name", "that is the DR-region stack of environments/staging.toml")
