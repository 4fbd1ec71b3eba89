"""SPEC 4.3, the API tier, on the shipped environments (properties 5 and 6 included)."""

from __future__ import annotations

import json

from tests import api_checks as checks
from tests.conftest import only, resources_of
from tests.network_checks import ref_name, security_group_names

# SPEC section 2: (cpu, memory, min tasks, max tasks, Fargate Spot).
SPEC_API = {
    "dev": (256, 512, 1, 3, True),
    "staging": (512, 1024, 2, 6, True),
    "production": (1024, 2048, 3, 20, False),
}



def test_shipped_environments_get_the_spec_sizes(stacks):
    for name, (cpu, memory, low, high, spot) in SPEC_API.items():
        task = checks.api_task_definition(stacks[name])
        assert (task["cpu"], task["memory"]) == (str(cpu), str(memory))
        target = only(stacks[name], "aws_appautoscaling_target")
        assert (target["min_capacity"], target["max_capacity"]) == (low, high)
        service = only(stacks[name], "aws_ecs_service")
        strategies = {s["capacity_provider"] for s in service["capacity_provider_strategy"]}
        assert ("FARGATE_SPOT" in strategies) is spot


def test_service_follows_configuration(env_stack):
    env, stack = env_stack
    checks.check_service_follows_configuration(stack, env)


def test_database_load_balancer_and_service_span_two_zones(env_stack):
    checks.check_multi_az(env_stack[1])


def test_http_only_redirects_to_https(env_stack):
    checks.check_https_only(env_stack[1])


def test_health_check_is_the_spec_one(env_stack):
    group = only(env_stack[1], "aws_lb_target_group")
    assert group["target_type"] == "ip"
    health = group["health_check"]
    assert {key: health[key] for key in checks.HEALTH_CHECK} == checks.HEALTH_CHECK


def test_scaling_tracks_cpu_70_and_memory_80(env_stack):
    checks.check_scaling_policies(env_stack[1])


def test_service_runs_privately_with_the_api_group(env_stack):
    service = only(env_stack[1], "aws_ecs_service")
    network = service["network_configuration"]
    subnets = resources_of(env_stack[1], "aws_subnet")
    assert {subnets[ref_name(s, "aws_subnet")]["tags"]["Tier"] for s in network["subnets"]} == {"app"}
    names = security_group_names(env_stack[1])
    assert [names[ref_name(g, "aws_security_group")] for g in network["security_groups"]] == ["api"]
    assert service["health_check_grace_period_seconds"] > 0


def test_container_is_read_only_non_root_and_logs_to_its_group(env_stack):
    env, stack = env_stack
    definition = checks.container(stack)
    assert definition["readonlyRootFilesystem"] is True
    assert definition["user"] and not definition["user"].startswith(("0", "root"))
    assert definition["portMappings"] == [{"containerPort": env.api.container_port, "protocol": "tcp"}]
    options = definition["logConfiguration"]["options"]
    assert definition["logConfiguration"]["logDriver"] == "awslogs"
    groups = {g["name"]: g for g in resources_of(stack, "aws_cloudwatch_log_group").values()}
    assert f"/aws/ecs/api-{env.name}" in groups
    assert options["awslogs-group"].startswith("${aws_cloudwatch_log_group.")
    assert groups[f"/aws/ecs/api-{env.name}"]["retention_in_days"] == env.log_retention_days


def test_no_database_credential_reaches_the_api_container(env_stack):
    """The API logs in with IAM tokens: no password, no master secret, not even its ARN."""
    _, stack = env_stack
    env, _ = env_stack
    definition = checks.container(stack)
    injected = [secret["name"] for secret in definition.get("secrets", [])]
    assert injected == (["REDIS_AUTH_TOKEN"] if env.features.cache else []), "only the cache's AUTH token"
    text = checks.api_task_definition(stack)["container_definitions"]
    assert "master_user_secret" not in text
    for variable in definition["environment"]:
        assert not any(word in variable["name"].lower() for word in ("password", "token", "secret"))


def test_the_api_connects_as_its_own_database_user(env_stack):
    env, stack = env_stack
    checks.check_database_login(stack, env)


def test_only_the_bootstrap_task_reads_the_master_secret(env_stack):
    checks.check_master_secret_only_for_the_bootstrap_task(env_stack[1])


def test_the_api_roles_read_no_secret_but_the_cache_token(env_stack):
    """The task role reads no secret; the execution role only the cache's AUTH token (to inject it), if any."""
    env, stack = env_stack
    task = checks.api_task_definition(stack)
    assert task["execution_role_arn"] != task["task_role_arn"]
    read = {role: {resource for s in checks.role_statements(stack, task[role])
                   if any(a.startswith("secretsmanager:") for a in s["actions"]) for resource in s["resources"]}
            for role in ("execution_role_arn", "task_role_arn")}
    secrets = [f"${{aws_secretsmanager_secret.{name}.arn}}" for name in resources_of(stack, "aws_secretsmanager_secret")
               if name.startswith("database_cache-auth-secret")]
    assert read == {"execution_role_arn": set(secrets), "task_role_arn": set()}
    assert len(secrets) == (1 if env.features.cache else 0)


def test_exec_is_off_in_production_and_on_elsewhere_as_shipped(stacks, project):
    """The loader's default: ECS Exec off where `production = true`, on otherwise (no file sets it)."""
    for env in project.environments:
        assert env.api.exec_enabled is (not env.production)
        checks.check_exec_follows_configuration(stacks[env.name], env)


def test_no_role_grants_wildcards(env_stack):
    checks.check_no_wildcard_grants(env_stack[1])


def test_load_balancer_is_hardened_and_logs_access(env_stack):
    env, stack = env_stack
    lb = only(stack, "aws_lb")
    assert lb["drop_invalid_header_fields"] is True
    assert lb["internal"] is False and lb["load_balancer_type"] == "application"
    assert lb["enable_deletion_protection"] is env.database.deletion_protection
    assert lb["access_logs"]["enabled"] is True
    names = security_group_names(stack)
    assert [names[ref_name(g, "aws_security_group")] for g in lb["security_groups"]] == ["alb"]
    subnets = resources_of(stack, "aws_subnet")
    assert {subnets[ref_name(s, "aws_subnet")]["tags"]["Tier"] for s in lb["subnets"]} == {"public"}


def test_waf_protects_the_load_balancer_when_enabled(env_stack):
    env, stack = env_stack
    associations = resources_of(stack, "aws_wafv2_web_acl_association")
    assert bool(associations) is env.features.waf
    if env.features.waf:
        checks.check_waf_protects_the_load_balancer(stack)
    checks.check_web_acls(stack, env)


def test_production_is_shipped_with_waf_rate_limits_and_sql_injection_screening(stacks, project):
    """The shipped production file turns WAF on (three checkov skips rely on it) with the default limit."""
    env = project.environment("production")
    assert env.features.waf and env.features.waf_rate_limit == 2000
    (acl,) = [a for a in resources_of(stacks["production"], "aws_wafv2_web_acl").values() if a["scope"] == "REGIONAL"]
    assert checks.SQL_INJECTION_GROUP in checks.managed_groups(acl)


def test_repository_is_immutable_scanned_encrypted_and_pruned(env_stack):
    _, stack = env_stack
    repository = only(stack, "aws_ecr_repository")
    assert repository["image_tag_mutability"] == "IMMUTABLE"
    assert repository["image_scanning_configuration"]["scan_on_push"] is True
    assert repository["encryption_configuration"][0]["encryption_type"] == "KMS"
    rules = json.loads(only(stack, "aws_ecr_lifecycle_policy")["policy"])["rules"]
    assert any(rule["selection"]["countType"] == "imageCountMoreThan" for rule in rules)


def test_cluster_has_container_insights_and_audited_exec(env_stack):
    _, stack = env_stack
    cluster = only(stack, "aws_ecs_cluster")
    assert {"name": "containerInsights", "value": "enabled"} in cluster["setting"]
    exec_config = cluster["configuration"]["execute_command_configuration"]
    assert exec_config["logging"] == "OVERRIDE"
    assert exec_config["log_configuration"]["cloud_watch_encryption_enabled"] is True
    ref_name(exec_config["kms_key_id"], "aws_kms_key")


def test_api_outputs_exist(env_stack):
    env, stack = env_stack
    outputs = stack["output"]
    assert outputs["ApiEndpoint"]["value"] == f"https://api.{env.domain}"
    assert ref_name(outputs["EcsClusterName"]["value"], "aws_ecs_cluster")
    assert ref_name(outputs["EcrRepositoryUrl"]["value"], "aws_ecr_repository")
