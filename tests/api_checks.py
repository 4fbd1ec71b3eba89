"""Checks of SPEC 4.3 / properties 5 and 6 on one synthesized environment stack."""

from __future__ import annotations

import json
import re

from environments.model import EnvironmentConfig
from tests import database_checks
from tests.conftest import only, resources_of
from tests.iam_checks import arns_overlap, iam_glob
from tests.network_checks import policy_document, ref_name

# Issue 14: the API's own database role, and what only the bootstrap task may read.
APP_DATABASE_USER = "app"
BOOTSTRAP_EXECUTION_ROLE_SUFFIX = "-db-bootstrap-execution"
EXEC_ACTIONS = {"ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
                "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"}
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
    task = api_task_definition(stack)
    assert (task["cpu"], task["memory"]) == (str(api.cpu), str(api.memory))


def check_scaling_policies(stack: dict) -> None:
    targets = {
        policy["target_tracking_scaling_policy_configuration"]["predefined_metric_specification"][
            "predefined_metric_type"]: policy["target_tracking_scaling_policy_configuration"]["target_value"]
        for policy in resources_of(stack, "aws_appautoscaling_policy").values()
    }
    assert targets == {"ECSServiceAverageCPUUtilization": CPU_TARGET,
                       "ECSServiceAverageMemoryUtilization": MEMORY_TARGET}


def task_definition(stack: dict, family_suffix: str) -> dict:
    (found,) = [d for d in resources_of(stack, "aws_ecs_task_definition").values()
                if d["family"].endswith(family_suffix)]
    return found


def api_task_definition(stack: dict) -> dict:
    return task_definition(stack, "-api")


def container(stack: dict) -> dict:
    """The API's own container (a tracing sidecar may run next to it)."""
    (definition,) = [c for c in json.loads(api_task_definition(stack)["container_definitions"])
                     if c["name"] == "api"]
    return definition


def master_secret_ref(stack: dict) -> str:
    """`${aws_rds_cluster.X.master_user_secret[0].secret_arn}` (RDS-managed) or, on a global database's
    primary, `${aws_secretsmanager_secret.X.arn}` (the module's own)."""
    return database_checks.master_secret(stack)


def own_master_secret_names(stack: dict) -> list[str]:
    """ARN patterns of a master secret the module keeps itself (`<name>-` and Secrets Manager's 6 characters)."""
    return [f"arn:*:secretsmanager:*:*:secret:{secret['name']}-??????"
            for secret in resources_of(stack, "aws_secretsmanager_secret").values()
            if secret["name"].endswith("-database-master")]


def role_names(stack: dict) -> dict[str, str]:
    """Logical id -> the role's IAM name."""
    return {logical: role["name"] for logical, role in resources_of(stack, "aws_iam_role").items()}


# Any secret RDS manages for a cluster: `rds!cluster-<id>` (RDS User Guide, Password management with
# Amazon RDS and AWS Secrets Manager), in any partition, region and account a pattern could name.
RDS_MANAGED_SECRETS = "arn:*:secretsmanager:*:*:secret:rds!*"
READ_SECRET = "secretsmanager:getsecretvalue"


def role_documents(stack: dict) -> list[tuple[str, str]]:
    """(role logical id, policy document reference) for every policy a role holds: `aws_iam_role_policy`,
    the role's `inline_policy` blocks, and this stack's `aws_iam_policy` documents however attached."""
    held = [(ref_name(policy["role"], "aws_iam_role"), policy["policy"])
            for policy in resources_of(stack, "aws_iam_role_policy").values()]
    for name, role in resources_of(stack, "aws_iam_role").items():
        held += [(name, inline["policy"]) for inline in role.get("inline_policy", [])]
        held += [(name, arn) for arn in role.get("managed_policy_arns", [])]
    for attachment in resources_of(stack, "aws_iam_role_policy_attachment").values():
        held.append((ref_name(attachment["role"], "aws_iam_role"), attachment["policy_arn"]))
    for attachment in resources_of(stack, "aws_iam_policy_attachment").values():
        held += [(ref_name(role, "aws_iam_role"), attachment["policy_arn"]) for role in attachment.get("roles", [])]
    for exclusive in resources_of(stack, "aws_iam_role_policy_attachments_exclusive").values():
        held += [(exclusive["role_name"].split(".")[1], arn) for arn in exclusive["policy_arns"]]
    customer = resources_of(stack, "aws_iam_policy")
    documents = []
    for role, reference in held:
        if reference.startswith("${aws_iam_policy."):
            documents.append((role, customer[ref_name(reference, "aws_iam_policy")]["policy"]))
        elif reference.startswith(("${data.aws_iam_policy_document.", "{")):  # a data source or inline JSON
            documents.append((role, reference))
    return documents


def could_read_master_secret(statement: dict, secret: str, own: tuple[str, ...] = ()) -> bool:
    """Any action pattern that could be GetSecretValue, on any resource pattern that could be the master secret
    (its reference, `*`, or an ARN pattern that could name an RDS-managed secret such as `secret:rds!*` or the
    module's own master secret, whose ARN patterns are `own`)."""
    if statement.get("effect", "Allow") != "Allow":
        return False
    if not any(iam_glob(action.lower(), READ_SECRET) for action in statement["actions"]):
        return False
    return any(iam_glob(pattern, secret) or (pattern.startswith("arn:") and any(
        arns_overlap(pattern, named) for named in (RDS_MANAGED_SECRETS, *own)))
               for pattern in statement.get("resources", []))


def check_master_secret_only_for_the_bootstrap_task(stack: dict) -> None:
    """Property 3 (issue 14): the master secret is read by the bootstrap task's execution role, no other role.

    Both ways in are checked: IAM statements that could name it (in any policy a role holds), and container
    definitions that inject it.
    """
    secret, own = master_secret_ref(stack), tuple(own_master_secret_names(stack))
    names = role_names(stack)
    readers = {names[role] for role, document in role_documents(stack)
               for statement in policy_document(stack, document)["statement"]
               if could_read_master_secret(statement, secret, own)}
    assert len(readers) == 1, f"the master secret is readable by {sorted(readers)}"
    (reader,) = readers
    assert reader.endswith(BOOTSTRAP_EXECUTION_ROLE_SUFFIX), readers
    injecting = {}
    for definition in resources_of(stack, "aws_ecs_task_definition").values():
        if secret in definition["container_definitions"]:
            injecting[definition["family"]] = names[ref_name(definition["execution_role_arn"], "aws_iam_role")]
            assert not definition.get("task_role_arn"), "the bootstrap container must get no AWS credentials"
    assert list(injecting.values()) == [reader], injecting


def check_database_login(stack: dict, env: EnvironmentConfig) -> None:
    """The API connects as its own user with IAM tokens: rds-db:connect on exactly that user of this cluster."""
    (cluster,) = resources_of(stack, "aws_rds_cluster")
    task = api_task_definition(stack)
    connect = [s for s in role_statements(stack, task["task_role_arn"])
               if any(a.startswith("rds-db:") for a in s["actions"])]
    expected = (f"arn:${{data.aws_partition.partition.partition}}:rds-db:{env.region}:"
                f"${{data.aws_caller_identity.caller.account_id}}:dbuser:"
                f"${{aws_rds_cluster.{cluster}.cluster_resource_id}}/{APP_DATABASE_USER}")
    assert [(s["actions"], s["resources"]) for s in connect] == [(["rds-db:connect"], [expected])]
    variables = {v["name"]: v["value"] for v in container(stack)["environment"]}
    assert variables["DB_USER"] == APP_DATABASE_USER
    assert variables["DB_HOST"] == f"${{aws_rds_cluster.{cluster}.endpoint}}"
    assert {"DB_PORT", "DB_NAME"} <= set(variables)
    assert "secrets" not in container(stack) or all(
        not s["name"].startswith("DB_") for s in container(stack)["secrets"])


def check_exec_follows_configuration(stack: dict, env: EnvironmentConfig) -> None:
    """ECS Exec only where configured; where off, no role in the stack holds the session channel."""
    service = only(stack, "aws_ecs_service")
    assert service["enable_execute_command"] is env.api.exec_enabled
    granted = set()
    for policy in resources_of(stack, "aws_iam_role_policy").values():
        for statement in policy_document(stack, policy["policy"])["statement"]:
            granted |= set(statement["actions"]) & EXEC_ACTIONS
    assert granted == (EXEC_ACTIONS if env.api.exec_enabled else set()), granted


def role_statements(stack: dict, role_ref: str) -> list[dict]:
    role_name = ref_name(role_ref, "aws_iam_role")
    statements = []
    for policy in resources_of(stack, "aws_iam_role_policy").values():
        if ref_name(policy["role"], "aws_iam_role") == role_name:
            statements.extend(policy_document(stack, policy["policy"])["statement"])
    return statements


# Actions AWS cannot scope to a resource: the only ones that may use "*".
UNSCOPABLE_ACTIONS = {
    "ecr:GetAuthorizationToken", "logs:DescribeLogGroups", "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel",
    # X-Ray defines no resource types for its write actions (tracing).
    "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets",
    "xray:GetSamplingStatisticSummaries"}
# AWS-managed policies a role may carry, by name: each grants one service only what it needs for its
# own role (Enhanced Monitoring writes its metrics to CloudWatch Logs). Anything else, such as a
# `*FullAccess` or AdministratorAccess policy, is a broad grant the inline policies could never show.
ALLOWED_MANAGED_POLICIES = {"service-role/AmazonRDSEnhancedMonitoringRole"}
MANAGED_POLICY = re.compile(r"^arn:aws[a-z-]*:iam::aws:policy/(.+)$")


# Wildcard actions AWS documents for a job, each covering a few variants of one operation (KMS Developer
# Guide, default key policy; managed policy AWSBackupServiceRolePolicyForBackup): ReEncryptFrom/To and
# GenerateDataKey with or without plaintext or a pair. Any other `*` or `?` in an action is a broad grant.
DOCUMENTED_WILDCARD_ACTIONS = {"kms:ReEncrypt*", "kms:GenerateDataKey*"}


def check_statements_grant_no_wildcards(statements: list[dict]) -> None:
    for statement in statements:
        actions = statement["actions"]
        wild = [a for a in actions if ("*" in a or "?" in a) and a not in DOCUMENTED_WILDCARD_ACTIONS]
        assert not wild, f"wildcard action {wild[0]} in {statement}"
        if "*" in statement.get("resources", []):
            assert set(actions) <= UNSCOPABLE_ACTIONS, statement


def attached_policy_arns(stack: dict) -> list[str]:
    """Every managed policy attached to a role, however it is attached."""
    arns = [attachment["policy_arn"] for kind in ("aws_iam_role_policy_attachment", "aws_iam_policy_attachment")
            for attachment in resources_of(stack, kind).values()]
    for role in resources_of(stack, "aws_iam_role").values():
        arns.extend(role.get("managed_policy_arns", []))
    for exclusive in resources_of(stack, "aws_iam_role_policy_attachments_exclusive").values():
        arns.extend(exclusive["policy_arns"])
    return arns


def check_no_wildcard_grants(stack: dict) -> None:
    """No role anywhere may do `*` on `*`, nor any service-wide `svc:*` action, nor hold a broad managed policy.

    Inline role policies and customer-managed policies are read statement by statement; an attached
    AWS-managed policy cannot be read here, so only the narrow ones named above may be attached.
    """
    for policy in resources_of(stack, "aws_iam_role_policy").values():
        check_statements_grant_no_wildcards(policy_document(stack, policy["policy"])["statement"])
    for role in resources_of(stack, "aws_iam_role").values():
        for inline in role.get("inline_policy", []):
            check_statements_grant_no_wildcards(policy_document(stack, inline["policy"])["statement"])
    customer_managed = resources_of(stack, "aws_iam_policy")
    for policy in customer_managed.values():
        check_statements_grant_no_wildcards(policy_document(stack, policy["policy"])["statement"])
    for arn in attached_policy_arns(stack):
        if arn.startswith("${aws_iam_policy."):
            assert ref_name(arn, "aws_iam_policy") in customer_managed, arn
            continue
        managed = MANAGED_POLICY.match(arn)
        assert managed, f"{arn} is neither an AWS-managed policy nor one of this stack's policies"
        assert managed.group(1) in ALLOWED_MANAGED_POLICIES, f"a role carries the broad managed policy {arn}"


# SPEC 4.3/4.4: WAF with AWS managed rule groups. .checkov.yaml skips CKV2_AWS_47 because every web ACL
# carries KnownBadInputs (Log4j); the common rule set is the baseline AWS recommends with it.
REQUIRED_RULE_GROUPS = ("AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet")


def check_web_acl(stack: dict, name: str, scope: str) -> None:
    """The web ACL blocks with the required AWS managed groups (not merely counting) and logs."""
    acl = resources_of(stack, "aws_wafv2_web_acl")[name]
    assert acl["scope"] == scope, acl["scope"]
    groups = {rule["statement"]["managed_rule_group_statement"]["name"]: rule for rule in acl["rule"]
              if "managed_rule_group_statement" in rule["statement"]}
    for group in REQUIRED_RULE_GROUPS:
        assert group in groups, f"{name} lacks {group}"
        rule = groups[group]
        assert rule["statement"]["managed_rule_group_statement"]["vendor_name"] == "AWS"
        assert rule["override_action"] == {"none": {}}, f"{group} only counts in {name}: {rule['override_action']}"
    logged = {ref_name(config["resource_arn"], "aws_wafv2_web_acl")
              for config in resources_of(stack, "aws_wafv2_web_acl_logging_configuration").values()}
    assert name in logged, f"{name} has no logging configuration"


def check_waf_protects_the_load_balancer(stack: dict) -> None:
    """The one association puts the REGIONAL web ACL in front of this stack's own load balancer."""
    (load_balancer,) = resources_of(stack, "aws_lb")
    associations = list(resources_of(stack, "aws_wafv2_web_acl_association").values())
    assert len(associations) == 1, f"expected one web ACL association, found {len(associations)}"
    (association,) = associations
    assert association["resource_arn"] == f"${{aws_lb.{load_balancer}.arn}}", association["resource_arn"]
    check_web_acl(stack, ref_name(association["web_acl_arn"], "aws_wafv2_web_acl"), "REGIONAL")


def check_waf_protects_the_distribution(stack: dict) -> None:
    """The distribution carries the CLOUDFRONT-scope web ACL, created in us-east-1."""
    distribution = only(stack, "aws_cloudfront_distribution")
    assert distribution.get("web_acl_id"), "the distribution has no web ACL"
    name = ref_name(distribution["web_acl_id"], "aws_wafv2_web_acl")
    assert resources_of(stack, "aws_wafv2_web_acl")[name]["provider"] == "aws.us_east_1"
    check_web_acl(stack, name, "CLOUDFRONT")


# Issue 14: both web ACLs rate-limit per client IP; the API's also screens for SQL injection.
SQL_INJECTION_GROUP = "AWSManagedRulesSQLiRuleSet"
REDACTED_HEADERS = {"authorization", "cookie"}


def managed_groups(acl: dict) -> set[str]:
    return {rule["statement"]["managed_rule_group_statement"]["name"] for rule in acl["rule"]
            if "managed_rule_group_statement" in rule["statement"]}


def check_web_acls(stack: dict, env: EnvironmentConfig) -> None:
    """With `features.waf`: one ACL per scope (check_web_acl), a blocking per-IP rate rule evaluated first with
    the configured limit, SQL injection on the API's, and logs that redact credentials."""
    acls = {acl["scope"]: (name, acl) for name, acl in resources_of(stack, "aws_wafv2_web_acl").items()}
    if not env.features.waf:
        assert not acls and not resources_of(stack, "aws_wafv2_web_acl_logging_configuration")
        return
    assert set(acls) == {"REGIONAL", "CLOUDFRONT"}
    for scope, (name, acl) in acls.items():
        check_web_acl(stack, name, scope)
        first = min(acl["rule"], key=lambda rule: rule["priority"])
        assert first["statement"] == {"rate_based_statement": {
            "limit": env.features.waf_rate_limit, "aggregate_key_type": "IP"}}, first
        assert first["action"] == {"block": {}}
        assert len({rule["priority"] for rule in acl["rule"]}) == len(acl["rule"])
    assert SQL_INJECTION_GROUP in managed_groups(acls["REGIONAL"][1])
    logged = {ref_name(config["resource_arn"], "aws_wafv2_web_acl"): config
              for config in resources_of(stack, "aws_wafv2_web_acl_logging_configuration").values()}
    assert set(logged) == {name for name, _ in acls.values()}
    for config in logged.values():
        assert {field["single_header"]["name"] for field in config["redacted_fields"]} == REDACTED_HEADERS
