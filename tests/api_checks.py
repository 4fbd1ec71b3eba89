"""Checks of SPEC 4.3 / properties 5 and 6 on one synthesized environment stack."""

from __future__ import annotations

import json

from environments.model import EnvironmentConfig
from tests.conftest import only, resources_of
from tests.network_checks import policy_document, ref_name

# SPEC 4.3
HEALTH_CHECK = {"path": "/health", "interval": 30, "timeout": 5, "healthy_threshold": 2, "unhealthy_threshold": 3}
CPU_TARGET, MEMORY_TARGET = 70, 80


def subnet_zones(stack: dict, subnet_refs: list[str]) -> set[str]:
    subnets = resources_of(stack, "aws_subnet")
    return {subnets[ref_name(ref, "aws_subnet")]["availability_zone"] for ref in subnet_refs}


def check_multi_az(stack: dict) -> None:
    """Property 5: database, ECS service and load balancer each span at least two zones."""
    for group in resources_of(stack, "aws_db_subnet_group").values():
        assert len(subnet_zones(stack, group["subnet_ids"])) >= 2
    for service in resources_of(stack, "aws_ecs_service").values():
        assert len(subnet_zones(stack, service["network_configuration"]["subnets"])) >= 2
    for lb in resources_of(stack, "aws_lb").values():
        assert len(subnet_zones(stack, lb["subnets"])) >= 2


def check_https_only(stack: dict) -> None:
    """Property 6 (load balancers): plain HTTP listeners only redirect to HTTPS; others are HTTPS."""
    listeners = resources_of(stack, "aws_lb_listener").values()
    assert listeners
    for listener in listeners:
        if listener["protocol"] == "HTTP":
            (action,) = listener["default_action"]
            assert action["type"] == "redirect", listener
            assert action["redirect"]["protocol"] == "HTTPS" and action["redirect"]["port"] == "443"
            assert action["redirect"]["status_code"] == "HTTP_301"
        else:
            assert listener["protocol"] == "HTTPS" and listener["ssl_policy"].startswith("ELBSecurityPolicy-TLS13")
            assert listener["certificate_arn"]


def check_https_only_cloudfront(stack: dict) -> None:
    """Property 6 (CloudFront): every behavior redirects HTTP to HTTPS, with TLS 1.2 (2021) or newer."""
    for distribution in resources_of(stack, "aws_cloudfront_distribution").values():
        behaviors = [distribution["default_cache_behavior"], *distribution.get("ordered_cache_behavior", [])]
        assert all(b["viewer_protocol_policy"] in ("redirect-to-https", "https-only") for b in behaviors)
        certificate = distribution["viewer_certificate"]
        assert certificate["minimum_protocol_version"] == "TLSv1.2_2021"
        assert certificate["ssl_support_method"] == "sni-only"
        assert not certificate.get("cloudfront_default_certificate")


def check_service_follows_configuration(stack: dict, env: EnvironmentConfig) -> None:
    service = only(stack, "aws_ecs_service")
    api = env.api
    providers = {s["capacity_provider"]: s for s in service["capacity_provider_strategy"]}
    assert ("FARGATE_SPOT" in providers) is api.fargate_spot
    assert providers["FARGATE"]["base"] >= 1, "at least one task is never interrupted by Spot"
    assert service["desired_count"] == api.min_tasks
    assert "desired_count" in service["lifecycle"]["ignore_changes"]
    assert service["deployment_minimum_healthy_percent"] == (100 if env.production else 50)
    assert service["deployment_circuit_breaker"] == {"enable": True, "rollback": True}
    assert service["network_configuration"]["assign_public_ip"] is False
    target = only(stack, "aws_appautoscaling_target")
    assert (target["min_capacity"], target["max_capacity"]) == (api.min_tasks, api.max_tasks)
    task = only(stack, "aws_ecs_task_definition")
    assert (task["cpu"], task["memory"]) == (str(api.cpu), str(api.memory))


def check_scaling_policies(stack: dict) -> None:
    targets = {
        policy["target_tracking_scaling_policy_configuration"]["predefined_metric_specification"][
            "predefined_metric_type"]: policy["target_tracking_scaling_policy_configuration"]["target_value"]
        for policy in resources_of(stack, "aws_appautoscaling_policy").values()
    }
    assert targets == {"ECSServiceAverageCPUUtilization": CPU_TARGET,
                       "ECSServiceAverageMemoryUtilization": MEMORY_TARGET}


def container(stack: dict) -> dict:
    (definition,) = json.loads(only(stack, "aws_ecs_task_definition")["container_definitions"])
    return definition


def role_statements(stack: dict, role_ref: str) -> list[dict]:
    role_name = ref_name(role_ref, "aws_iam_role")
    statements = []
    for policy in resources_of(stack, "aws_iam_role_policy").values():
        if ref_name(policy["role"], "aws_iam_role") == role_name:
            statements.extend(policy_document(stack, policy["policy"])["statement"])
    return statements


def check_no_wildcard_grants(stack: dict) -> None:
    """No role anywhere may do `*` on `*`, nor any service-wide `svc:*` action."""
    for policy in resources_of(stack, "aws_iam_role_policy").values():
        for statement in policy_document(stack, policy["policy"])["statement"]:
            actions = statement["actions"]
            assert "*" not in actions and not any(a.endswith(":*") for a in actions), statement
            if "*" in statement.get("resources", []):
                # Only actions AWS cannot scope to a resource may use "*".
                assert set(actions) <= {
                    "ecr:GetAuthorizationToken", "logs:DescribeLogGroups", "ssmmessages:CreateControlChannel",
                    "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel",
                    "ssmmessages:OpenDataChannel"}, statement
