"""A WAFv2 web ACL with AWS managed rule groups and logging, for a load balancer or CloudFront.

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


@dataclass(frozen=True)
class WafProps:
    name: str
    scope: str  # "REGIONAL" (load balancer) or "CLOUDFRONT" (must be created in us-east-1)
    log_retention_days: int
    logs_kms_key_arn: str
    provider: Any = None  # the aliased us-east-1 provider for CLOUDFRONT scope


class WebAcl(Construct):
    """Exposes `arn`."""

    def __init__(self, scope: Construct, id: str, props: WafProps):
        super().__init__(scope, id)
        waf = aws.wafv2_web_acl
        rules = [
            waf.Wafv2WebAclRule(
                name=group,
                priority=priority,
                override_action=waf.Wafv2WebAclRuleOverrideAction(none=waf.Wafv2WebAclRuleOverrideActionNone()),
                statement={"managed_rule_group_statement": {"name": group, "vendor_name": "AWS"}},
                visibility_config=waf.Wafv2WebAclRuleVisibilityConfig(
                    cloudwatch_metrics_enabled=True, metric_name=f"{props.name}-{group}",
                    sampled_requests_enabled=True),
            )
            for priority, group in enumerate(MANAGED_RULE_GROUPS, start=1)
        ]
        self.acl = waf.Wafv2WebAcl(
            self, "acl", name=props.name, scope=props.scope, provider=props.provider,
            description=f"AWS managed protections for {props.name}",
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
        aws.wafv2_web_acl_logging_configuration.Wafv2WebAclLoggingConfiguration(
            self, "logging", resource_arn=self.arn, log_destination_configs=[logs.arn],
            provider=props.provider)
