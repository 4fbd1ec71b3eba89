"""Checks of SPEC 4.5 / property 9 on one synthesized environment stack."""

from __future__ import annotations

import json

from environments.model import EnvironmentConfig
from tests.conftest import resources_of
from tests.network_checks import ref_name

SPEC_OUTPUTS = ("VpcId", "DatabaseSecretArn", "ApiEndpoint", "FrontendUrl", "FrontendBucketName", "EcsClusterName",
                "EcrRepositoryUrl", "WarningTopicArn")


def alarms_by_metric(stack: dict) -> dict[str, dict]:
    """Alarm by the metric it watches (for metric-math alarms: the expression's inputs)."""
    found = {}
    for alarm in resources_of(stack, "aws_cloudwatch_metric_alarm").values():
        if "metric_name" in alarm:
            found[alarm["metric_name"]] = alarm
        else:
            for query in alarm["metric_query"]:
                if "metric" in query:
                    found.setdefault(query["metric"]["metric_name"], alarm)
    return found


def topic_name(stack: dict, reference: str) -> str:
    return resources_of(stack, "aws_sns_topic")[ref_name(reference, "aws_sns_topic")]["name"]


def check_alarm_coverage(stack: dict) -> None:
    """Property 9: latency, error rate, DB connection failures, task count and ACU alarms notify SNS."""
    alarms = alarms_by_metric(stack)
    for metric in ("TargetResponseTime", "HTTPCode_Target_5XX_Count", "ConnectionFailures", "RunningTaskCount",
                   "ACUUtilization", "5xxErrorRate"):
        assert metric in alarms, f"no alarm on {metric}"
        actions = alarms[metric]["alarm_actions"]
        assert actions, f"the {metric} alarm notifies nobody"
        for action in actions:
            ref_name(action, "aws_sns_topic")


def check_alarm_definitions(stack: dict, env: EnvironmentConfig) -> None:
    """Every number of SPEC 4.5, pinned."""
    alarms = alarms_by_metric(stack)
    urgent = "critical" if env.production else "warning"

    latency = alarms["TargetResponseTime"]
    assert (latency["extended_statistic"], latency["threshold"], latency["comparison_operator"]) == (
        "p95", 2, "GreaterThanThreshold")
    assert latency["evaluation_periods"] == 2 and latency["namespace"] == "AWS/ApplicationELB"

    errors = alarms["HTTPCode_Target_5XX_Count"]
    assert errors["threshold"] == 5 and errors["evaluation_periods"] == 2
    (expression,) = [q for q in errors["metric_query"] if q.get("return_data")]
    assert "100" in expression["expression"] and "requests" in expression["expression"]
    assert {q["metric"]["metric_name"] for q in errors["metric_query"] if "metric" in q} == {
        "HTTPCode_Target_5XX_Count", "HTTPCode_ELB_5XX_Count", "RequestCount"}
    assert topic_name(stack, errors["alarm_actions"][0]).endswith(f"-{urgent}")

    failures = alarms["ConnectionFailures"]
    assert (failures["statistic"], failures["period"], failures["threshold"], failures["evaluation_periods"]) == (
        "Sum", 300, 10, 1)
    (metric_filter,) = resources_of(stack, "aws_cloudwatch_log_metric_filter").values()
    assert metric_filter["metric_transformation"]["name"] == "ConnectionFailures"
    assert metric_filter["log_group_name"].startswith("${aws_cloudwatch_log_group.database_postgresql")

    tasks = alarms["RunningTaskCount"]
    assert (tasks["threshold"], tasks["comparison_operator"]) == (env.api.min_tasks, "LessThanThreshold")
    assert tasks["treat_missing_data"] == "breaching", "no task data means no tasks"

    acu = alarms["ACUUtilization"]
    assert (acu["threshold"], acu["period"] * acu["evaluation_periods"]) == (90, 300)

    cloudfront = alarms["5xxErrorRate"]
    assert cloudfront["provider"] == "aws.us_east_1" and cloudfront["dimensions"]["Region"] == "Global"
    assert resources_of(stack, "aws_sns_topic")[ref_name(cloudfront["alarm_actions"][0], "aws_sns_topic")][
        "provider"] == "aws.us_east_1"

    for alarm in resources_of(stack, "aws_cloudwatch_metric_alarm").values():
        assert alarm["alarm_description"] and alarm["treat_missing_data"] in ("breaching", "notBreaching")


def check_topics(stack: dict, env: EnvironmentConfig) -> None:
    names = {topic["name"].rsplit("-", 1)[-1] for topic in resources_of(stack, "aws_sns_topic").values()}
    assert "warning" in names and ("critical" in names) is env.production
    for topic in resources_of(stack, "aws_sns_topic").values():
        ref_name(topic["kms_master_key_id"], "aws_kms_key")
    emails = {(s["protocol"], s["endpoint"]) for s in resources_of(stack, "aws_sns_topic_subscription").values()}
    assert emails == {("email", address) for address in env.alarm_emails}


# The resource each CloudWatch dimension names, and the attribute whose value it carries. A dimension
# may name a resource by reference or literally (the database's cluster identifier is a plain string);
# either way it must be one of this stack's resources, never another environment's.
DIMENSION_SOURCES = {
    "LoadBalancer": ("aws_lb", "arn_suffix"),
    "TargetGroup": ("aws_lb_target_group", "arn_suffix"),
    "ClusterName": ("aws_ecs_cluster", "name"),
    "ServiceName": ("aws_ecs_service", "name"),
    "DBClusterIdentifier": ("aws_rds_cluster", "cluster_identifier"),
    "DistributionId": ("aws_cloudfront_distribution", "id"),
}
# Dimensions that hold a constant: CloudFront publishes its metrics only under Region=Global.
FIXED_DIMENSIONS = {"Region": "Global"}


def check_dimension(stack: dict, dimension: str, value: str) -> None:
    """`dimension=value` names a resource of this stack (or is the dimension's one constant)."""
    if dimension in FIXED_DIMENSIONS:
        assert value == FIXED_DIMENSIONS[dimension], f"{dimension}={value}"
        return
    assert dimension in DIMENSION_SOURCES, f"no rule for dimension {dimension}: add it to DIMENSION_SOURCES"
    resource_type, attribute = DIMENSION_SOURCES[dimension]
    resources = resources_of(stack, resource_type)
    if value.startswith("${"):
        assert value.endswith(f".{attribute}}}"), f"{dimension}={value} is not the {attribute} of a {resource_type}"
        assert ref_name(value, resource_type) in resources, f"{dimension}={value} is not in this stack"
    else:
        own = sorted(str(resource.get(attribute)) for resource in resources.values())
        assert value in own, f"{dimension}={value!r} is not a {resource_type} of this stack ({own})"


def dashboard_dimensions(metric: list) -> list[tuple[str, str]]:
    """(name, value) pairs of one dashboard metric: [namespace, metric, name, value, ..., options]."""
    pairs = metric[2:-1]
    assert len(pairs) % 2 == 0, f"dimension without a value in {metric}"
    return list(zip(pairs[::2], pairs[1::2], strict=True))


def check_dashboards(stack: dict) -> None:
    """Dashboards exist for api, database and frontend and show only this stack's resources."""
    dashboards = {d["dashboard_name"].rsplit("-", 1)[-1]: json.loads(d["dashboard_body"])
                  for d in resources_of(stack, "aws_cloudwatch_dashboard").values()}
    assert set(dashboards) == {"api", "database", "frontend"}
    for name, body in dashboards.items():
        assert body["widgets"], f"the {name} dashboard is empty"
        for widget in body["widgets"]:
            if widget["type"] == "text":  # a link, no metric (the trace widget)
                continue
            region = widget["properties"]["region"]
            assert (region == "us-east-1") if name == "frontend" else region != ""
            assert widget["properties"]["metrics"], f"a {name} widget shows nothing"
            for metric in widget["properties"]["metrics"]:
                dimensions = dashboard_dimensions(metric)
                assert dimensions, f"{metric} is not narrowed to any resource"
                for dimension, value in dimensions:
                    check_dimension(stack, dimension, value)


def check_alarm_dimensions(stack: dict) -> None:
    """Every alarm watches this stack's resources (SPEC 4.5: alarms of this environment)."""
    for alarm in resources_of(stack, "aws_cloudwatch_metric_alarm").values():
        metrics = [alarm] + [query["metric"] for query in alarm.get("metric_query", []) if "metric" in query]
        for metric in metrics:
            for dimension, value in metric.get("dimensions", {}).items():
                check_dimension(stack, dimension, value)


def check_deployment_rollback_alarms(stack: dict) -> None:
    """The service rolls a deployment back on exactly the synthesized p95 latency and 5xx alarms."""
    alarms = alarms_by_metric(stack)
    expected = {alarms["TargetResponseTime"]["alarm_name"], alarms["HTTPCode_Target_5XX_Count"]["alarm_name"]}
    (service,) = resources_of(stack, "aws_ecs_service").values()
    rollback = service["alarms"]
    assert rollback["enable"] is True and rollback["rollback"] is True, rollback
    assert sorted(rollback["alarm_names"]) == sorted(expected), f"{rollback['alarm_names']} != {sorted(expected)}"


def check_log_groups(stack: dict, env: EnvironmentConfig) -> None:
    for group in resources_of(stack, "aws_cloudwatch_log_group").values():
        assert group["retention_in_days"] == env.log_retention_days, group["name"]
        ref_name(group["kms_key_id"], "aws_kms_key")


def check_outputs(stack: dict) -> None:
    missing = [name for name in SPEC_OUTPUTS if name not in stack["output"]]
    assert not missing, f"missing outputs {missing}"
