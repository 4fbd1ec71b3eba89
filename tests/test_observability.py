"""SPEC 4.5 and 4.6 on the shipped environments (property 9 included)."""

from __future__ import annotations

from modules.observability import api_alarm_names
from tests import observability_checks as checks
from tests.conftest import only, resources_of
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
    _, stack = env_stack
    for policy in resources_of(stack, "aws_sns_topic_policy").values():
        for statement in policy_document(stack, policy["policy"])["statement"]:
            (principal,) = statement["principals"]
            if principal["type"] == "Service":
                assert principal["identifiers"] == ["cloudwatch.amazonaws.com"]
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
    env, stack = env_stack
    service = only(stack, "aws_ecs_service")
    prefix = f"{env.application}-{env.name}"
    assert service["alarms"] == {"alarm_names": list(api_alarm_names(prefix)), "enable": True, "rollback": True}
    names = {alarm["alarm_name"] for alarm in resources_of(stack, "aws_cloudwatch_metric_alarm").values()}
    assert set(api_alarm_names(prefix)) <= names
