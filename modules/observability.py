"""Observability (SPEC 4.5): alarm topics, the six alarms, the connection-failure metric, dashboards.

Routing: alarms that mean users are failing right now (5xx rate, too few tasks, database
connections failing) go to `critical` where the environment has that topic, otherwise to
`warning`; early signals (latency, ACU headroom, CloudFront errors) go to `warning`.

`treat_missing_data` is chosen per alarm: no requests means no latency or error-rate problem
(`notBreaching`), but no running-task data means the service is gone (`breaching`).

CloudFront publishes its metrics only in us-east-1, so its alarm and the topic it notifies live
there, through the aliased provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from constructs import Construct

from core.account import Account
from core.aws import aws
from core.iam import condition, document, principal, statement
from modules.dashboards import Graph, Metric, Text, dashboard_body
from modules.kms_key import EVENTBRIDGE_TOPIC_GRANT, KmsKey, KmsKeyProps, ServiceGrant

# Services that publish cost alerts (AWS Budgets, Cost Anomaly Detection) to the warning topic.
COST_ALERT_SERVICES = ("budgets.amazonaws.com", "costalerts.amazonaws.com")
LATENCY_SECONDS = 2
ERROR_RATE_PERCENT = 5
CONNECTION_FAILURES = 10
ACU_PERCENT = 90
CONNECTION_FAILURE_PATTERN = '?"authentication failed" ?"no pg_hba.conf entry" ?"too many connections"'


def api_alarm_names(name_prefix: str) -> tuple[str, str]:
    """Latency and 5xx alarms: also the ECS deployment alarms that roll a bad deploy back."""
    return f"{name_prefix}-api-latency-p95", f"{name_prefix}-api-5xx-rate"


@dataclass(frozen=True)
class Watched:
    """What the alarms and dashboards look at, from the other tiers."""

    load_balancer_arn_suffix: str
    target_group_arn_suffix: str
    cluster_name: str
    service_name: str
    min_tasks: int
    db_cluster_identifier: str
    db_log_group_name: str
    distribution_id: str


@dataclass(frozen=True)
class ObservabilityProps:
    name_prefix: str
    account: Account
    region: str
    alarm_emails: tuple[str, ...]
    critical_topic: bool
    watched: Watched
    us_east_1: Any  # aliased provider: CloudFront metrics exist only in us-east-1
    # The X-Ray service name of the API when tracing is on: the API dashboard links to its traces.
    traced_service: str | None = None


class Observability(Construct):
    """Exposes `warning_topic_arn`, `critical_topic_arn` (or None), `edge_topic_arn`, `alarm_names`."""

    def __init__(self, scope: Construct, id: str, props: ObservabilityProps):
        super().__init__(scope, id)
        self.props = props
        self.warning_topic_arn: str = self._topic("warning", props.region, None, COST_ALERT_SERVICES,
                                                  event_rules=True)
        self.critical_topic_arn: str | None = (
            self._topic("critical", props.region, None) if props.critical_topic else None)
        self.edge_topic_arn: str = self._topic("edge-warning", "us-east-1", props.us_east_1)
        urgent = self.critical_topic_arn or self.warning_topic_arn
        self.alarm_names: list[str] = []
        self._api_alarms(urgent)
        self._database_alarms(urgent)
        self._frontend_alarm()
        self._dashboards()

    # -- topics ---------------------------------------------------------------------------------

    def _topic(self, name: str, region: str, provider: Any, account_services: tuple[str, ...] = (),
               event_rules: bool = False) -> str:
        """An encrypted topic only CloudWatch alarms, `account_services` on behalf of this account (and the
        account itself) may publish to, over TLS; returns its ARN.

        With `event_rules`, this environment's EventBridge rules (`<prefix>-*`, such as AWS Backup's
        failure rules) may publish too.
        """
        prefix = self.props.name_prefix
        publish_actions = ("kms:Decrypt", "kms:GenerateDataKey*")
        alarms = f"arn:{{partition}}:cloudwatch:{region}:{{account}}:alarm:*"
        # CloudWatch encrypts alarm notifications for this account's alarms in this region only; Budgets and
        # Cost Anomaly Detection for this account. SNS Developer Guide, "Enable compatibility between event
        # sources from AWS services and encrypted topics".
        grants = [ServiceGrant(service="cloudwatch.amazonaws.com", actions=publish_actions,
                               conditions=(("StringEquals", "aws:SourceAccount", "{account}"),
                                           ("ArnLike", "aws:SourceArn", alarms))),
                  *(ServiceGrant(service=service, actions=publish_actions) for service in account_services)]
        if event_rules:
            # EventBridge (AWS Backup's failure rules): the key statement takes no source condition; the topic
            # policy below admits this environment's rules only.
            grants.append(EVENTBRIDGE_TOPIC_GRANT)
        key = KmsKey(self, f"{name}-key", KmsKeyProps(
            account=self.props.account,
            alias=f"alias/{prefix}-alarms-{name}", description=f"Encrypts the {prefix} {name} alarm topic",
            provider=provider, service_grants=tuple(grants)))
        topic = aws.sns_topic.SnsTopic(self, f"{name}-topic", name=f"{prefix}-{name}", kms_master_key_id=key.arn,
                                       provider=provider)
        topic_arn, account_id = topic.arn, self.props.account.id
        # EventBridge User Guide, "Permissions for Amazon SNS" (the rules' ARN as aws:SourceArn).
        rules = [statement("EnvironmentEventRulesPublish", ["sns:Publish"], [topic_arn],
                           principals=[principal("Service", "events.amazonaws.com")],
                           conditions=[condition("ArnLike", "aws:SourceArn",
                                                 f"arn:aws:events:{region}:{account_id}:rule/{prefix}-*")])]
        # CloudWatch User Guide, "Confused deputy prevention" (alarms publishing to SNS); Cost Management User
        # Guide, "Creating an Amazon SNS topic for budget notifications" / "... for anomaly notifications".
        policy = document([*(rules if event_rules else []),
            statement("CloudWatchAlarmsPublish", ["sns:Publish"], [topic_arn],
                      principals=[principal("Service", "cloudwatch.amazonaws.com")],
                      conditions=[condition("ArnLike", "aws:SourceArn",
                                            f"arn:aws:cloudwatch:{region}:{account_id}:alarm:*")]),
            *(statement(f"{service.split('.')[0].title()}Publish", ["sns:Publish"], [topic_arn],
                        principals=[principal("Service", service)],
                        conditions=[condition("StringEquals", "aws:SourceAccount", account_id)])
              for service in account_services),
            statement("AccountManagesTopic", ["sns:GetTopicAttributes", "sns:SetTopicAttributes", "sns:Subscribe",
                                              "sns:ListSubscriptionsByTopic", "sns:Publish"], [topic_arn],
                      principals=[principal("AWS", f"arn:aws:iam::{account_id}:root")]),
            statement("DenyInsecureTransport", ["sns:Publish"], [topic_arn], effect="Deny",
                      principals=[principal("*", "*")],
                      conditions=[condition("Bool", "aws:SecureTransport", "false")]),
        ])
        aws.sns_topic_policy.SnsTopicPolicy(self, f"{name}-topic-policy", arn=topic_arn, policy=policy,
                                            provider=provider)
        for index, email in enumerate(self.props.alarm_emails):
            aws.sns_topic_subscription.SnsTopicSubscription(
                self, f"{name}-email-{index}", topic_arn=topic_arn, protocol="email", endpoint=email,
                provider=provider)
        return topic_arn

    # -- alarms ---------------------------------------------------------------------------------

    def _alarm(self, id: str, name: str, description: str, topic_arn: str, *, threshold: float, comparison: str,
               periods: int, missing: str, provider: Any = None, **metric: Any) -> None:
        aws.cloudwatch_metric_alarm.CloudwatchMetricAlarm(
            self, id, alarm_name=name, alarm_description=description, threshold=threshold,
            comparison_operator=comparison, evaluation_periods=periods, datapoints_to_alarm=periods,
            treat_missing_data=missing, alarm_actions=[topic_arn], ok_actions=[topic_arn], provider=provider,
            **metric)
        self.alarm_names.append(name)

    def _api_alarms(self, urgent) -> None:
        watched, prefix = self.props.watched, self.props.name_prefix
        latency, errors = api_alarm_names(prefix)
        lb = {"LoadBalancer": watched.load_balancer_arn_suffix}
        self._alarm(
            "api-latency", latency, f"API p95 response time above {LATENCY_SECONDS} s for 2 minutes",
            self.warning_topic_arn,
            threshold=LATENCY_SECONDS, comparison="GreaterThanThreshold", periods=2, missing="notBreaching",
            namespace="AWS/ApplicationELB", metric_name="TargetResponseTime", dimensions=lb,
            extended_statistic="p95", period=60)
        queries = aws.cloudwatch_metric_alarm

        def count(id: str, metric: str):
            return queries.CloudwatchMetricAlarmMetricQuery(
                id=id, metric=queries.CloudwatchMetricAlarmMetricQueryMetric(
                    namespace="AWS/ApplicationELB", metric_name=metric, dimensions=lb, period=60, stat="Sum"))

        self._alarm(
            "api-error-rate", errors, f"API 5xx responses above {ERROR_RATE_PERCENT}% of requests for 2 minutes",
            urgent, threshold=ERROR_RATE_PERCENT, comparison="GreaterThanThreshold", periods=2,
            missing="notBreaching",
            metric_query=[
                count("target5xx", "HTTPCode_Target_5XX_Count"),
                count("elb5xx", "HTTPCode_ELB_5XX_Count"),
                count("requests", "RequestCount"),
                queries.CloudwatchMetricAlarmMetricQuery(
                    id="rate", label="5xx rate (%)", return_data=True,
                    expression="IF(requests > 0, 100 * (FILL(target5xx, 0) + FILL(elb5xx, 0)) / requests, 0)"),
            ])
        self._alarm(
            "api-running-tasks", f"{prefix}-api-running-tasks",
            f"Fewer than {watched.min_tasks} API tasks running for 3 minutes", urgent,
            threshold=watched.min_tasks, comparison="LessThanThreshold", periods=3, missing="breaching",
            namespace="ECS/ContainerInsights", metric_name="RunningTaskCount", statistic="Minimum", period=60,
            dimensions={"ClusterName": watched.cluster_name, "ServiceName": watched.service_name})

    def _database_alarms(self, urgent) -> None:
        watched, prefix = self.props.watched, self.props.name_prefix
        namespace = f"{prefix}/database"
        aws.cloudwatch_log_metric_filter.CloudwatchLogMetricFilter(
            self, "connection-failures", name=f"{prefix}-db-connection-failures",
            log_group_name=watched.db_log_group_name, pattern=CONNECTION_FAILURE_PATTERN,
            metric_transformation=aws.cloudwatch_log_metric_filter.CloudwatchLogMetricFilterMetricTransformation(
                name="ConnectionFailures", namespace=namespace, value="1", default_value="0", unit="Count"))
        self._alarm(
            "db-connection-failures", f"{prefix}-db-connection-failures",
            f"More than {CONNECTION_FAILURES} failed database connections in 5 minutes", urgent,
            threshold=CONNECTION_FAILURES, comparison="GreaterThanThreshold", periods=1, missing="notBreaching",
            namespace=namespace, metric_name="ConnectionFailures", statistic="Sum", period=300)
        self._alarm(
            "db-acu", f"{prefix}-db-acu-utilization", f"Aurora ACU utilisation above {ACU_PERCENT}% for 5 minutes",
            self.warning_topic_arn, threshold=ACU_PERCENT, comparison="GreaterThanThreshold", periods=5,
            missing="notBreaching",
            namespace="AWS/RDS", metric_name="ACUUtilization", statistic="Average", period=60,
            dimensions={"DBClusterIdentifier": watched.db_cluster_identifier})

    def _frontend_alarm(self) -> None:
        watched, prefix = self.props.watched, self.props.name_prefix
        self._alarm(
            "cloudfront-errors", f"{prefix}-cloudfront-5xx-rate",
            f"CloudFront 5xx error rate above {ERROR_RATE_PERCENT}% for 10 minutes", self.edge_topic_arn,
            threshold=ERROR_RATE_PERCENT, comparison="GreaterThanThreshold", periods=2, missing="notBreaching",
            namespace="AWS/CloudFront", metric_name="5xxErrorRate", statistic="Average", period=300,
            dimensions={"DistributionId": watched.distribution_id, "Region": "Global"},
            provider=self.props.us_east_1)

    # -- dashboards -----------------------------------------------------------------------------

    def _dashboards(self) -> None:
        watched, region, prefix = self.props.watched, self.props.region, self.props.name_prefix
        lb = (("LoadBalancer", watched.load_balancer_arn_suffix),)
        service = (("ClusterName", watched.cluster_name), ("ServiceName", watched.service_name))
        cluster = (("DBClusterIdentifier", watched.db_cluster_identifier),)
        cdn = (("DistributionId", watched.distribution_id), ("Region", "Global"))
        elb, ecs, rds, cloudfront = "AWS/ApplicationELB", "ECS/ContainerInsights", "AWS/RDS", "AWS/CloudFront"
        boards = {
            "api": [
                Graph("Requests", region, (Metric(elb, "RequestCount", lb, "Sum"),)),
                Graph("Latency", region,
                      tuple(Metric(elb, "TargetResponseTime", lb, p) for p in ("p50", "p95", "p99"))),
                Graph("Errors", region, (Metric(elb, "HTTPCode_Target_5XX_Count", lb, "Sum"),
                                         Metric(elb, "HTTPCode_ELB_5XX_Count", lb, "Sum"),
                                         Metric(elb, "HTTPCode_Target_4XX_Count", lb, "Sum"))),
                Graph("Running tasks", region, (Metric(ecs, "RunningTaskCount", service, "Minimum"),)),
                Graph("CPU and memory", region, (Metric(ecs, "CpuUtilized", service),
                                                 Metric(ecs, "MemoryUtilized", service))),
            ],
            "database": [
                Graph("Connections", region, (Metric(rds, "DatabaseConnections", cluster),)),
                Graph("Capacity (ACU)", region, (Metric(rds, "ServerlessDatabaseCapacity", cluster),
                                                 Metric(rds, "ACUUtilization", cluster))),
                Graph("CPU", region, (Metric(rds, "CPUUtilization", cluster),)),
                Graph("Latency", region, (Metric(rds, "ReadLatency", cluster), Metric(rds, "WriteLatency", cluster))),
            ],
            "frontend": [
                Graph("Requests", "us-east-1", (Metric(cloudfront, "Requests", cdn, "Sum"),), period=300),
                Graph("Error rates", "us-east-1", (Metric(cloudfront, "4xxErrorRate", cdn),
                                                   Metric(cloudfront, "5xxErrorRate", cdn)), period=300),
                Graph("Bytes", "us-east-1", (Metric(cloudfront, "BytesDownloaded", cdn, "Sum"),
                                             Metric(cloudfront, "BytesUploaded", cdn, "Sum")), period=300),
            ],
        }
        if self.props.traced_service:
            boards["api"].append(self._traces_widget(region, self.props.traced_service))
        for name, graphs in boards.items():
            aws.cloudwatch_dashboard.CloudwatchDashboard(
                self, f"{name}-dashboard", dashboard_name=f"{prefix}-{name}", dashboard_body=dashboard_body(graphs))

    @staticmethod
    def _traces_widget(region: str, service: str) -> Text:
        """CloudWatch cannot graph X-Ray traces, so the widget links to them, filtered to the API's service."""
        console = f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
        return Text(
            f"### Traces and latency (X-Ray)\n"
            f"OpenTelemetry traces of `{service}`, sampled by the X-Ray sampling rule of this environment.\n\n"
            f"* [Trace map]({console}#xray:service-map/map) and [traces]({console}#xray:traces/query): "
            f"filter `service(\"{service}\")`, sort by response time for the slowest requests\n"
            f"* Load balancer latency percentiles: the Latency graph")
