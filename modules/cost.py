"""Cost guardrails (seed 001 FR-6.6, 004): a monthly budget and cost-anomaly alerts per environment.

Both are scoped to one environment through its `Environment` tag, which AWS Billing only sees once
the tag is activated as a cost-allocation tag (docs/deployment.md says how; it is not done here:
activation works only from the organisation's management account and fails until the tag has
appeared in billing data, up to a day after the first tagged resource exists).

The budget warns at 80% of actual and 100% of forecast spend; the anomaly monitor is a CUSTOM one
(an account may hold only one DIMENSIONAL service monitor, but many custom ones), and its
subscription alerts immediately, which AWS allows only for SNS subscribers. Both notify the
environment's warning topic, whose policy lets exactly budgets.amazonaws.com and
costalerts.amazonaws.com of this account publish (modules/observability.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from constructs import Construct

from core.aws import aws

# (threshold in percent of the budget, actual or forecast spend): when AWS Budgets notifies.
BUDGET_ALERTS = ((80, "ACTUAL"), (100, "FORECASTED"))
ENVIRONMENT_TAG = "Environment"


@dataclass(frozen=True)
class CostProps:
    name_prefix: str
    environment: str
    budget_monthly_usd: int
    anomaly_threshold_usd: int
    topic_arn: str
    emails: tuple[str, ...]


class CostGuardrails(Construct):
    def __init__(self, scope: Construct, id: str, props: CostProps):
        super().__init__(scope, id)
        self._budget(props)
        self._anomaly_alerts(props)

    def _budget(self, props: CostProps) -> None:
        budgets = aws.budgets_budget
        budgets.BudgetsBudget(
            self, "budget", name=f"{props.name_prefix}-monthly", budget_type="COST", time_unit="MONTHLY",
            limit_amount=str(props.budget_monthly_usd), limit_unit="USD",
            # Cost-allocation tags are named `user:<key>` in Billing; one value: this environment.
            cost_filter=[budgets.BudgetsBudgetCostFilter(
                name="TagKeyValue", values=[f"user:{ENVIRONMENT_TAG}${props.environment}"])],
            notification=[budgets.BudgetsBudgetNotification(
                comparison_operator="GREATER_THAN", threshold=percent, threshold_type="PERCENTAGE",
                notification_type=kind, subscriber_sns_topic_arns=[props.topic_arn],
                subscriber_email_addresses=list(props.emails))
                for percent, kind in BUDGET_ALERTS])

    def _anomaly_alerts(self, props: CostProps) -> None:
        specification = {"Tags": {"Key": ENVIRONMENT_TAG, "Values": [props.environment],
                                  "MatchOptions": ["EQUALS"]}}
        monitor = aws.ce_anomaly_monitor.CeAnomalyMonitor(
            self, "anomaly-monitor", name=f"{props.name_prefix}-costs", monitor_type="CUSTOM",
            monitor_specification=json.dumps(specification))
        subscriptions = aws.ce_anomaly_subscription
        subscriptions.CeAnomalySubscription(
            self, "anomaly-subscription", name=f"{props.name_prefix}-cost-anomalies", frequency="IMMEDIATE",
            monitor_arn_list=[monitor.arn],
            subscriber=[subscriptions.CeAnomalySubscriptionSubscriber(type="SNS", address=props.topic_arn)],
            threshold_expression=subscriptions.CeAnomalySubscriptionThresholdExpression(
                dimension=subscriptions.CeAnomalySubscriptionThresholdExpressionDimension(
                    key="ANOMALY_TOTAL_IMPACT_ABSOLUTE", values=[str(props.anomaly_threshold_usd)],
                    match_options=["GREATER_THAN_OR_EQUAL"])))
