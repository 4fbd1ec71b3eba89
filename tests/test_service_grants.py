"""Issue 14 on the shipped environments: source conditions wherever a service acts, TLS-only alarm topics."""

from __future__ import annotations

import copy
import json

from tests import service_grant_checks as checks
from tests.conftest import resources_of


def test_every_service_grant_carries_a_source_condition(env_stack):
    checks.check_service_grants_are_confined(env_stack[1])


def test_alarm_topic_keys_serve_this_accounts_alarms_and_topics_refuse_plain_http(env_stack):
    env, stack = env_stack
    checks.check_alarm_topics(stack, env)


def test_the_frontend_key_decrypts_for_this_distribution_only(env_stack):
    checks.check_frontend_key_serves_this_distribution_only(env_stack[1])


def test_log_delivery_grants_name_their_source(env_stack):
    checks.check_log_delivery_is_confined(env_stack[1])


def test_every_topic_of_every_stack_refuses_plain_http(stacks):
    """The baseline stacks' compliance topics too, not only the environments' alarm topics."""
    with_topics = [name for name, stack in stacks.items() if stack.get("resource", {}).get("aws_sns_topic")]
    assert len(with_topics) > len(stacks) // 2, with_topics  # every environment and every baseline
    for name in with_topics:
        checks.check_topics_are_tls_only(stacks[name])


def test_no_stack_grants_a_service_without_a_source_condition(stacks):
    for stack in stacks.values():
        checks.check_service_grants_are_confined(stack)


def test_eventbridge_may_use_a_topic_key_without_source_keys(stacks):
    """AWS documents no source keys for EventBridge on an encrypted topic's key (UNCONDITIONED_GRANTS): the
    grant passes without them, while any it keeps is still checked by value."""
    stack = copy.deepcopy(stacks["dev"])
    stripped = 0
    for key in [key for key in resources_of(stack, "aws_kms_key").values() if "policy" in key]:
        policy = json.loads(key["policy"])
        for statement in policy["Statement"]:
            if statement["Principal"] == {"Service": "events.amazonaws.com"}:
                statement.pop("Condition", None)
                stripped += 1
        key["policy"] = json.dumps(policy)
    assert stripped == 1
    checks.check_service_grants_are_confined(stack)
