"""SPEC 4.5 and 4.6 on the shipped environments (property 9 included)."""

from __future__ import annotations

from tests import observability_checks as checks
from tests.conftest import resources_of
from tests.network_checks import policy_document


def test_every_required_alarm_notifies_a_topic(env_stack):
    checks.check_alarm_coverage(env_stack[1])


def test_alarm_definitions_follow_the_spec(env_stack):
    env, stack = env_stack
    checks.check_alarm_definitions(stack, env)


def test_topics_are_encrypted_and_subscribe_the_configured_addresses(env_stack):
    env, stack = env_stack
    checks.check_topics(stack, env)


def test_topic_policies_allow_only_cloudwatch_and_the_account(env_stack):
    """And on the warning topic the cost services (tests/test_cost.py pins those statements) and EventBridge
    (AWS Backup failures; tests/dr_checks.py scopes it to this environment's rules)."""
    env, stack = env_stack
    warning = {f"${{aws_sns_topic.{name}.arn}}" for name, topic in resources_of(stack, "aws_sns_topic").items()
               if topic["name"] == env.resource_name("warning")}
    for policy in resources_of(stack, "aws_sns_topic_policy").values():
        warning_services = ["budgets.amazonaws.com", "costalerts.amazonaws.com", "events.amazonaws.com"]
        extra = warning_services if policy["arn"] in warning else []
        for statement in policy_document(stack, policy["policy"])["statement"]:
            if statement["effect"] == "Deny":  # the TLS-only deny (tests/service_grant_checks.py) allows nothing
                continue
            (principal,) = statement["principals"]
            if principal["type"] == "Service":
                assert principal["identifiers"] in (["cloudwatch.amazonaws.com"], *([s] for s in extra))
                assert statement["actions"] == ["sns:Publish"] and statement["condition"]
            else:
                assert principal["type"] == "AWS"
                (identifier,) = principal["identifiers"]
                assert identifier.startswith("arn:aws:iam::") and identifier.endswith(":root")


def test_dashboards_cover_api_database_frontend_with_local_references(env_stack):
    checks.check_dashboards(env_stack[1])


def test_every_log_group_has_env_retention_and_a_key(env_stack):
    env, stack = env_stack
    checks.check_log_groups(stack, env)


def test_spec_outputs_exist(env_stack):
    checks.check_outputs(env_stack[1])


def test_api_alarms_roll_back_a_bad_deployment(env_stack):
    checks.check_deployment_rollback_alarms(env_stack[1])


def test_alarms_watch_only_this_environments_resources(env_stack):
    checks.check_alarm_dimensions(env_stack[1])
