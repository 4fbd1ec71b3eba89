"""Cost guardrails (issue 17): a monthly budget and cost-anomaly alerts in every environment.

Amounts and thresholds come from each environment's `[cost]` table; the 80% actual / 100% forecast
alert points and the two publishing services are the issue's.
"""

from __future__ import annotations

import json

from tests import network_checks
from tests.conftest import only, resources_of
from tests.iam_checks import key_policies

COST_SERVICES = {"budgets.amazonaws.com", "costalerts.amazonaws.com"}
ACCOUNT_ID = "${data.aws_caller_identity.caller.account_id}"
# Besides the cost services: CloudWatch alarms, and EventBridge for this environment's own rules (AWS
# Backup's failure notifications), whose scope tests/dr_checks.py checks.
OTHER_PUBLISHERS = {"cloudwatch.amazonaws.com", "events.amazonaws.com"}


def warning_topic(env, stack) -> tuple[str, dict]:
    (found,) = [(name, topic) for name, topic in resources_of(stack, "aws_sns_topic").items()
                if topic["name"] == env.resource_name("warning")]
    return found


def topic_policy(stack, topic_id: str) -> dict:
    (policy,) = [body for body in resources_of(stack, "aws_sns_topic_policy").values() if topic_id in body["arn"]]
    return network_checks.policy_document(stack, policy["policy"])


def test_every_environment_has_a_monthly_budget_for_its_own_costs(env_stack):
    env, stack = env_stack
    budget = only(stack, "aws_budgets_budget")
    assert (budget["budget_type"], budget["time_unit"], budget["limit_unit"]) == ("COST", "MONTHLY", "USD")
    assert budget["limit_amount"] == str(env.cost.budget_monthly_usd)
    assert budget["cost_filter"] == [{"name": "TagKeyValue", "values": [f"user:Environment${env.name}"]}]


def test_the_budget_warns_at_80_percent_actual_and_100_percent_forecast(env_stack):
    env, stack = env_stack
    topic_id, _ = warning_topic(env, stack)
    notifications = only(stack, "aws_budgets_budget")["notification"]
    assert sorted((n["threshold"], n["notification_type"]) for n in notifications) == [(80, "ACTUAL"),
                                                                                       (100, "FORECASTED")]
    for notification in notifications:
        assert (notification["threshold_type"], notification["comparison_operator"]) == ("PERCENTAGE",
                                                                                         "GREATER_THAN")
        assert notification["subscriber_sns_topic_arns"] == [f"${{aws_sns_topic.{topic_id}.arn}}"]
        assert notification["subscriber_email_addresses"] == list(env.alarm_emails)


def test_cost_anomalies_of_the_environment_alert_the_warning_topic(env_stack):
    env, stack = env_stack
    topic_id, _ = warning_topic(env, stack)
    monitor = only(stack, "aws_ce_anomaly_monitor")
    assert monitor["monitor_type"] == "CUSTOM"
    assert json.loads(monitor["monitor_specification"]) == {
        "Tags": {"Key": "Environment", "Values": [env.name], "MatchOptions": ["EQUALS"]}}
    subscription = only(stack, "aws_ce_anomaly_subscription")
    assert subscription["frequency"] == "IMMEDIATE", "AWS allows IMMEDIATE only with SNS subscribers"
    assert subscription["subscriber"] == [{"type": "SNS", "address": f"${{aws_sns_topic.{topic_id}.arn}}"}]
    monitor_id = next(iter(resources_of(stack, "aws_ce_anomaly_monitor")))
    assert subscription["monitor_arn_list"] == [f"${{aws_ce_anomaly_monitor.{monitor_id}.arn}}"]
    assert subscription["threshold_expression"]["dimension"] == {
        "key": "ANOMALY_TOTAL_IMPACT_ABSOLUTE", "values": [str(env.cost.anomaly_threshold_usd)],
        "match_options": ["GREATER_THAN_OR_EQUAL"]}


def test_exactly_the_cost_services_of_this_account_may_publish_to_the_warning_topic(env_stack):
    env, stack = env_stack
    topic_id, topic = warning_topic(env, stack)
    statements = topic_policy(stack, topic_id)["statement"]
    services = {identifier: statement for statement in statements for principal in statement["principals"]
                if principal["type"] == "Service" for identifier in principal["identifiers"]}
    assert set(services) == OTHER_PUBLISHERS | COST_SERVICES
    for service in COST_SERVICES:
        assert services[service]["actions"] == ["sns:Publish"]
        assert services[service]["condition"] == [
            {"test": "StringEquals", "variable": "aws:SourceAccount", "values": [ACCOUNT_ID]}]
    key_id = network_checks.ref_name(topic["kms_master_key_id"], "aws_kms_key")
    key_policy = key_policies(stack)[key_id]
    granted = {s["Principal"]["Service"]: s for s in key_policy["Statement"] if "Service" in s["Principal"]}
    assert set(granted) == OTHER_PUBLISHERS | COST_SERVICES
    for service in COST_SERVICES:
        assert granted[service]["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}
        assert set(granted[service]["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}


def test_no_other_topic_accepts_cost_alerts(env_stack):
    env, stack = env_stack
    warning_id, _ = warning_topic(env, stack)
    for topic_id in resources_of(stack, "aws_sns_topic"):
        if topic_id == warning_id:
            continue
        principals = {identifier for statement in topic_policy(stack, topic_id)["statement"]
                      for principal in statement["principals"] for identifier in principal["identifiers"]}
        assert not principals & COST_SERVICES, topic_id
