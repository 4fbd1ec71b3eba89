"""A WAFv2 web ACL with a per-IP rate limit, AWS managed rule groups and logging, for a load balancer or CloudFront.

The rate rule comes first: a flood from one address is blocked before the managed groups spend
capacity on it. The SQL-injection group is for ACLs in front of code that talks to a database (the
API), not for a static site. Logs keep every request for the environment's log retention, so the
headers that carry credentials (`authorization`, `cookie`) are redacted before WAF writes them.

Rule statements are plain dicts with Terraform's snake_case keys: the provider binding types
`statement` as `Any` (it is too deeply recursive for generated structs), so cdktf passes it
through verbatim. Everything that has a struct class uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from constructs import Construct

from core.aws import aws
from modules.log_group import LogGroup, LogGroupProps

MANAGED_RULE_GROUPS = (
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesKnownBadInputsRuleSet",
    "AWSManagedRulesAmazonIpReputationList",
    "AWSManagedRulesAnonymousIpList",
)
SQL_INJECTION_GROUP = "AWSManagedRulesSQLiRuleSet"
REDACTED_HEADERS = ("authorization", "cookie")


@dataclass(frozen=True)
class WafProps:
    name: str
    scope: str  # "REGIONAL" (load balancer) or "CLOUDFRONT" (must be created in us-east-1)
    log_retention_days: int
    logs_kms_key_arn: str
    rate_limit: int  # requests per client IP in any 5-minute window
    sql_injection: bool = False  # add the SQL-injection managed group
    provider: Any = None  # the aliased us-east-1 provider for CLOUDFRONT scope


class WebAcl(Construct):
    """Exposes `arn`."""

    def __init__(self, scope: Construct, id: str, props: WafProps):
        super().__init__(scope, id)
        waf = aws.wafv2_web_acl
        groups = (*MANAGED_RULE_GROUPS, *((SQL_INJECTION_GROUP,) if props.sql_injection else ()))
        rules = [self._rate_rule(props)] + [
            waf.Wafv2WebAclRule(
                name=group,
                priority=priority,
                override_action=waf.Wafv2WebAclRuleOverrideAction(none=waf.Wafv2WebAclRuleOverrideActionNone()),
                statement={"managed_rule_group_statement": {"name": group, "vendor_name": "AWS"}},
                visibility_config=self._visibility(f"{props.name}-{group}"),
            )
            for priority, group in enumerate(groups, start=1)
        ]
        self.acl = waf.Wafv2WebAcl(
            self, "acl", name=props.name, scope=props.scope, provider=props.provider,
            description=f"Per-IP rate limit and AWS managed protections for {props.name}",
            default_action=waf.Wafv2WebAclDefaultAction(allow=waf.Wafv2WebAclDefaultActionAllow()),
            rule=rules,
            visibility_config=waf.Wafv2WebAclVisibilityConfig(
                cloudwatch_metrics_enabled=True, metric_name=props.name, sampled_requests_enabled=True),
        )
        self.arn: str = self.acl.arn
        # WAF only delivers to log groups whose name starts with "aws-waf-logs-".
        logs = LogGroup(self, "log-group", LogGroupProps(
            name=f"aws-waf-logs-{props.name}", retention_days=props.log_retention_days,
            kms_key_arn=props.logs_kms_key_arn, provider=props.provider))
        logging = aws.wafv2_web_acl_logging_configuration
        logging.Wafv2WebAclLoggingConfiguration(
            self, "logging", resource_arn=self.arn, log_destination_configs=[logs.arn], provider=props.provider,
            redacted_fields=[logging.Wafv2WebAclLoggingConfigurationRedactedFields(
                single_header=logging.Wafv2WebAclLoggingConfigurationRedactedFieldsSingleHeader(name=header))
                for header in REDACTED_HEADERS])

    @staticmethod
    def _visibility(metric: str):
        waf = aws.wafv2_web_acl
        return waf.Wafv2WebAclRuleVisibilityConfig(
            cloudwatch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True)

    def _rate_rule(self, props: WafProps):
        """Block a client IP while it exceeds `rate_limit` requests in the trailing 5 minutes."""
        waf = aws.wafv2_web_acl
        return waf.Wafv2WebAclRule(
            name="RatePerClientIp", priority=0,
            action=waf.Wafv2WebAclRuleAction(block=waf.Wafv2WebAclRuleActionBlock()),
            statement={"rate_based_statement": {"limit": props.rate_limit, "aggregate_key_type": "IP"}},
            visibility_config=self._visibility(f"{props.name}-rate-per-ip"))
