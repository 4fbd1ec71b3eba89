"""Each check the test audit found blind (REVIEWS.md, "Test audit") bites: the real synthesized stack
passes it, and a copy broken in memory in exactly the way the audit describes fails it, for the
reason the check gives. The tier tests run the same check functions on the shipped stacks.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from environments.loader import load_project
from tests import api_checks, database_checks, network_checks, observability_checks, role_checks, service_grant_checks
from tests.conftest import ROOT, only, resources_of
from tests.iam_checks import check_key_policy_principals
from tests.test_shipped_features import account_baselines, check_cloudtrail, check_interface_endpoints, check_waf

FOREIGN_ROOT = "arn:aws:iam::111122223333:root"
OTHER_LOAD_BALANCER = "arn:aws:elasticloadbalancing:eu-west-1:111122223333:loadbalancer/app/webapp-staging-alb/0a1b"


PRODUCTION_BASELINE = "production's account baseline"


@dataclass(frozen=True)
class Case:
    stack: str  # which synthesized stack the check runs on (a stack name, or PRODUCTION_BASELINE)
    check: Callable[[dict], None]
    mutate: Callable[[dict], None]  # breaks a deep copy of that stack in place
    reason: str  # what the check's failure message must say (a regular expression)


SHIPPED = load_project(ROOT / "environments")

def named(stack: dict, resource_type: str, predicate: Callable[[dict], bool]) -> dict:
    """The one resource of a type that satisfies `predicate`."""
    (found,) = [body for body in resources_of(stack, resource_type).values() if predicate(body)]
    return found


def web_acl(stack: dict, scope: str) -> dict:
    return named(stack, "aws_wafv2_web_acl", lambda acl: acl["scope"] == scope)


def managed_rule(acl: dict, group: str) -> dict:
    (rule,) = [rule for rule in acl["rule"]
               if rule["statement"].get("managed_rule_group_statement", {}).get("name") == group]
    return rule


# --- the mutations --------------------------------------------------------------------------------

def cloudfront_known_bad_inputs_only_counts(stack: dict) -> None:
    managed_rule(web_acl(stack, "CLOUDFRONT"), "AWSManagedRulesKnownBadInputsRuleSet")["override_action"] = {
        "count": {}}


def cloudfront_known_bad_inputs_removed(stack: dict) -> None:
    acl = web_acl(stack, "CLOUDFRONT")
    acl["rule"].remove(managed_rule(acl, "AWSManagedRulesKnownBadInputsRuleSet"))


def association_targets_another_load_balancer(stack: dict) -> None:
    only(stack, "aws_wafv2_web_acl_association")["resource_arn"] = OTHER_LOAD_BALANCER


def waf_switched_off(stack: dict) -> None:
    """What synthesis gives with waf = false: no web ACLs, no association, no ACL on the distribution."""
    for kind in ("aws_wafv2_web_acl", "aws_wafv2_web_acl_association", "aws_wafv2_web_acl_logging_configuration"):
        stack["resource"].pop(kind)
    del only(stack, "aws_cloudfront_distribution")["web_acl_id"]


def cloudtrail_switched_off(stack: dict) -> None:
    stack["resource"].pop("aws_cloudtrail")


def trail_check(stack: dict) -> None:
    check_cloudtrail([stack])


def kms_endpoint_removed(stack: dict) -> None:
    endpoints = stack["resource"]["aws_vpc_endpoint"]
    (name,) = [name for name, endpoint in endpoints.items() if endpoint["service_name"].endswith(".kms")]
    del endpoints[name]


def database_dashboard_shows_another_cluster(stack: dict) -> None:
    dashboard = named(stack, "aws_cloudwatch_dashboard", lambda d: d["dashboard_name"].endswith("-database"))
    _, cluster = database_checks.cluster(stack)
    own = cluster["cluster_identifier"]
    assert own in dashboard["dashboard_body"]
    dashboard["dashboard_body"] = dashboard["dashboard_body"].replace(own, "webapp-production-db")


def acu_alarm_watches_another_cluster(stack: dict) -> None:
    alarm = observability_checks.alarms_by_metric(stack)["ACUUtilization"]
    alarm["dimensions"]["DBClusterIdentifier"] = "webapp-production-db"


def rollback_on_the_running_tasks_alarm(stack: dict) -> None:
    """The service rolls back on an alarm that is not the latency alarm (the names still exist)."""
    alarms = observability_checks.alarms_by_metric(stack)
    only(stack, "aws_ecs_service")["alarms"]["alarm_names"] = [
        alarms["RunningTaskCount"]["alarm_name"], alarms["HTTPCode_Target_5XX_Count"]["alarm_name"]]


def latency_alarm_renamed(stack: dict) -> None:
    observability_checks.alarms_by_metric(stack)["TargetResponseTime"]["alarm_name"] += "-old"


def task_role_gets_administrator_access(stack: dict) -> None:
    task = api_checks.api_task_definition(stack)  # the API's (the stack also has the database bootstrap task)
    role = network_checks.ref_name(task["task_role_arn"], "aws_iam_role")
    stack["resource"]["aws_iam_role_policy_attachment"]["admin"] = {
        "role": f"${{aws_iam_role.{role}.name}}", "policy_arn": "arn:aws:iam::aws:policy/AdministratorAccess"}


def execution_role_gets_s3_full_access(stack: dict) -> None:
    task = api_checks.api_task_definition(stack)  # the API's (the stack also has the database bootstrap task)
    role = resources_of(stack, "aws_iam_role")[network_checks.ref_name(task["execution_role_arn"], "aws_iam_role")]
    role["managed_policy_arns"] = ["arn:aws:iam::aws:policy/AmazonS3FullAccess"]


def public_https_rule(stack: dict) -> dict:
    """The load balancer's rule admitting HTTPS from the internet."""
    return named(stack, "aws_vpc_security_group_ingress_rule",
                 lambda rule: rule.get("from_port") == 443 and rule.get("cidr_ipv4") == "0.0.0.0/0")


def half_the_internet_on_ssh(stack: dict) -> None:
    """An ALB rule for 0.0.0.0/1 on port 22: not the literal 0.0.0.0/0, but half the internet."""
    https = public_https_rule(stack)
    stack["resource"]["aws_vpc_security_group_ingress_rule"]["ssh"] = {
        **https, "cidr_ipv4": "0.0.0.0/1", "from_port": 22, "to_port": 22, "description": "ssh"}


def load_balancer_admits_rdp_from_the_vpc(stack: dict) -> None:
    """RDP from inside the VPC: no internet source, but CKV_AWS_231's skip says nothing admits 3389."""
    https = public_https_rule(stack)
    (vpc,) = resources_of(stack, "aws_vpc").values()
    stack["resource"]["aws_vpc_security_group_ingress_rule"]["rdp"] = {
        **https, "cidr_ipv4": vpc["cidr_block"], "from_port": 3389, "to_port": 3389, "description": "rdp"}


def database_admits_a_public_range(stack: dict) -> None:
    rule = named(stack, "aws_vpc_security_group_ingress_rule", lambda rule: rule.get("from_port") == 5432)
    stack["resource"]["aws_vpc_security_group_ingress_rule"]["public-db"] = {
        key: value for key, value in rule.items() if key != "referenced_security_group_id"} | {
        "cidr_ipv4": "198.51.100.0/24", "description": "public"}


def data_tier_routes_half_the_internet(stack: dict) -> None:
    """A route from the data subnets to 128.0.0.0/1 through a transit gateway (not an IGW or NAT)."""
    (table,) = [name for name in resources_of(stack, "aws_route_table") if "data" in name]
    stack["resource"]["aws_route"]["leak"] = {
        "route_table_id": f"${{aws_route_table.{table}.id}}", "destination_cidr_block": "128.0.0.0/1",
        "transit_gateway_id": "tgw-0123456789abcdef0"}


def app_routes_deleted(stack: dict) -> None:
    stack["resource"].pop("aws_route")
    for table in resources_of(stack, "aws_route_table").values():
        table.pop("route", None)


def data_key_trusts_a_foreign_account(stack: dict) -> None:
    _, cluster = database_checks.cluster(stack)
    key = resources_of(stack, "aws_kms_key")[network_checks.ref_name(cluster["kms_key_id"], "aws_kms_key")]
    policy = json.loads(key["policy"])
    policy["Statement"].append({"Sid": "Vendor", "Effect": "Allow", "Principal": {"AWS": FOREIGN_ROOT},
                                "Action": "kms:*", "Resource": "*"})
    key["policy"] = json.dumps(policy)


def state_key(stack: dict) -> dict:
    """The state's key in its own region (with state.replica_region the replica's key is the other one)."""
    (key,) = [key for key in resources_of(stack, "aws_kms_key").values() if "provider" not in key]
    return key


def state_key_administered_by_a_foreign_account(stack: dict) -> None:
    key = state_key(stack)
    policy = json.loads(key["policy"])
    policy["Statement"][0]["Principal"] = {"AWS": [FOREIGN_ROOT]}
    key["policy"] = json.dumps(policy)


def master_secret_uses_the_default_key(stack: dict) -> None:
    _, cluster = database_checks.cluster(stack)
    del cluster["master_user_secret_kms_key_id"]


def production_master_credentials(stack: dict) -> None:
    database_checks.check_master_credentials(stack, SHIPPED.environment("production"))


def master_password_written_in_the_configuration(stack: dict) -> None:
    _, cluster = database_checks.cluster(stack)
    cluster["master_password"] = "correct-horse-battery-staple"


def master_secret_value_kept_by_terraform(stack: dict) -> None:
    secret = database_checks.master_secret(stack).replace(".arn}", ".id}")
    stack["resource"].setdefault("aws_secretsmanager_secret_version", {})["master-value"] = {
        "secret_id": secret, "secret_string_wo": "${ephemeral.aws_secretsmanager_random_password.x.random_password}",
        "secret_string_wo_version": 1}


def master_secret_not_replicated(stack: dict) -> None:
    secret = database_checks.master_secret(stack).removeprefix("${aws_secretsmanager_secret.").removesuffix(".arn}")
    del stack["resource"]["aws_secretsmanager_secret"][secret]["replica"]


def master_secret_replica_under_a_home_region_key(stack: dict) -> None:
    _, cluster = database_checks.cluster(stack)
    secret = database_checks.master_secret(stack).removeprefix("${aws_secretsmanager_secret.").removesuffix(".arn}")
    stack["resource"]["aws_secretsmanager_secret"][secret]["replica"][0]["kms_key_id"] = cluster["kms_key_id"]


def master_password_sent_again_from_configuration(stack: dict) -> None:
    _, cluster = database_checks.cluster(stack)
    cluster["master_password_wo_version"] = 2


def data_key_check(stack: dict) -> None:
    _, cluster = database_checks.cluster(stack)
    check_key_policy_principals(stack, network_checks.ref_name(cluster["kms_key_id"], "aws_kms_key"))


def state_key_check(stack: dict) -> None:
    for key_id in resources_of(stack, "aws_kms_key"):
        check_key_policy_principals(stack, key_id)


def security_groups_check(stack: dict) -> None:
    network_checks.check_security_groups(stack, only_container_port(stack))


def only_container_port(stack: dict) -> int:
    (mapping,) = api_checks.container(stack)["portMappings"]
    return mapping["containerPort"]


def without_statement(sid: str) -> Callable[[dict], None]:
    """A mutation deleting the one policy statement `sid` (issue 22: a role cut down to less than its job)."""
    def mutate(stack: dict) -> None:
        holders = []

        def edit(name: str, document: dict) -> None:
            if any(statement.get("sid") == sid for statement in document["statement"]):
                holders.append(name)
                document["statement"] = [s for s in document["statement"] if s.get("sid") != sid]
        network_checks.edit_documents(stack, edit)
        assert len(holders) == 1, f"{sid} is in {len(holders)} documents"
    return mutate


def without_attachment(policy: str) -> Callable[[dict], None]:
    """A mutation detaching the AWS-managed policy `policy` from its role."""
    def mutate(stack: dict) -> None:
        attachments = resources_of(stack, "aws_iam_role_policy_attachment")
        (name,) = [name for name, body in attachments.items() if body["policy_arn"].endswith(f"/{policy}")]
        del attachments[name]
    return mutate


def edit_condition(stack: dict, document: str, variable: str, edit: Callable[[dict], None]) -> None:
    """`edit` the one condition on `variable` in the policy document whose place (network_checks.iam_documents)
    starts with `document`."""
    found = []

    def visit(name: str, body: dict) -> None:
        if name.startswith(document):
            for statement in body["statement"]:
                for condition in statement.get("condition", []):
                    if condition["variable"].lower() == variable.lower():
                        edit(condition)
                        found.append(condition)
    network_checks.edit_documents(stack, visit)
    assert len(found) == 1, found


def backup_trust_says_not_equals(stack: dict) -> None:
    edit_condition(stack, "aws_iam_role.backup_role_", "aws:SourceAccount",
                   lambda condition: condition.update(test="StringNotEquals"))


def site_policy_names_any_source(stack: dict) -> None:
    edit_condition(stack, "aws_s3_bucket_policy.frontend_site_policy_", "aws:SourceArn",
                   lambda condition: condition.update(values=["*"]))


def key_grant_in_another_account(stack: dict) -> None:
    """The Config key lets config.amazonaws.com in for another account's recorder."""
    key = next(body for name, body in resources_of(stack, "aws_kms_key").items() if name.startswith("config-key"))
    policy = json.loads(key["policy"])
    (grant,) = [s for s in policy["Statement"] if s["Principal"] == {"Service": "config.amazonaws.com"}]
    grant["Condition"] = {"StringEquals": {"aws:SourceAccount": "111122223333"}}
    key["policy"] = json.dumps(policy)


def alarm_source_in_any_account(stack: dict) -> None:
    edit_condition(stack, "aws_sns_topic_policy.observability_critical-topic-policy_", "aws:SourceArn",
                   lambda condition: condition.update(values=[
                       value.replace("${data.aws_caller_identity.caller.account_id}", "*")
                       for value in condition["values"]]))


def topic_grant_to_eventbridge_unconditioned(stack: dict) -> None:
    """The topic policy (not the key: AWS documents no source keys there) lets any account's rules publish."""
    edited = []

    def edit(name: str, document: dict) -> None:
        if name.startswith("aws_sns_topic_policy.observability_warning-topic-policy_"):
            edited.append(name)
            for statement in document["statement"]:
                if any("events.amazonaws.com" in p["identifiers"] for p in statement.get("principals", [])):
                    del statement["condition"]
    network_checks.edit_documents(stack, edit)
    assert len(edited) == 1, edited


def leak_document(stack: dict, actions: list[str], resources: list[str]) -> str:
    """A new inline policy document granting `actions` on `resources` (as core.iam writes them)."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": actions, "Resource": resources}]})


def api_role(stack: dict, which: str) -> str:
    """The logical id of the API task definition's `task_role_arn` or `execution_role_arn`."""
    return network_checks.ref_name(api_checks.api_task_definition(stack)[which], "aws_iam_role")


def task_role_reads_rds_managed_secrets(stack: dict) -> None:
    """An inline role policy on a literal pattern that matches every RDS-managed secret of the account."""
    document = leak_document(stack, ["secretsmanager:GetSecretValue"], [
        "arn:aws:secretsmanager:eu-west-1:${data.aws_caller_identity.caller.account_id}:secret:rds!*"])
    stack["resource"]["aws_iam_role_policy"]["leak"] = {
        "role": f"${{aws_iam_role.{api_role(stack, 'task_role_arn')}.id}}", "policy": document}


def execution_role_inline_get_star(stack: dict) -> None:
    """A role's own `inline_policy` block with `secretsmanager:Get*` on everything."""
    document = leak_document(stack, ["secretsmanager:Get*"], ["*"])
    resources_of(stack, "aws_iam_role")[api_role(stack, "execution_role_arn")]["inline_policy"] = [
        {"name": "leak", "policy": document}]


def task_role_attached_policy_on_the_secret(stack: dict) -> None:
    """A customer-managed `aws_iam_policy` naming the master secret, attached to the task role."""
    document = leak_document(stack, ["secretsmanager:GetSecretValue"], [api_checks.master_secret_ref(stack)])
    stack["resource"]["aws_iam_policy"] = {"leak": {"name": "leak", "policy": document}}
    stack["resource"]["aws_iam_role_policy_attachment"]["leak"] = {
        "role": f"${{aws_iam_role.{api_role(stack, 'task_role_arn')}.name}}",
        "policy_arn": "${aws_iam_policy.leak.arn}"}


def task_role_reads_every_object(stack: dict) -> None:
    """`s3:Get*`: no `*` action, no `svc:*`, yet every read S3 has."""
    document = leak_document(stack, ["s3:Get*"], ["arn:aws:s3:::webapp-dev-site-123456789012/*"])
    stack["resource"]["aws_iam_role_policy"]["leak"] = {
        "role": f"${{aws_iam_role.{api_role(stack, 'task_role_arn')}.id}}", "policy": document}


SECRET_CASES = {  # issue 22, item 3: every pattern that could match is a match, in every policy a role holds
    "task role reads secret:rds!* in an inline role policy": Case(
        "dev", api_checks.check_master_secret_only_for_the_bootstrap_task, task_role_reads_rds_managed_secrets,
        "readable by .*webapp-dev-api-task"),
    "execution role's inline_policy reads secretsmanager:Get* on *": Case(
        "production", api_checks.check_master_secret_only_for_the_bootstrap_task, execution_role_inline_get_star,
        "readable by .*webapp-production-api-execution"),
    "attached aws_iam_policy reads the master secret": Case(
        "staging", api_checks.check_master_secret_only_for_the_bootstrap_task,
        task_role_attached_policy_on_the_secret, "readable by .*webapp-staging-api-task"),
    "task role with s3:Get*": Case("dev", api_checks.check_no_wildcard_grants, task_role_reads_every_object,
                                   "wildcard action s3:Get\\*"),
}


CONDITION_CASES = {  # issue 22, item 2: source conditions checked by operator and value
    "backup trust with StringNotEquals aws:SourceAccount": Case(
        "dev", service_grant_checks.check_service_grants_are_confined, backup_trust_says_not_equals,
        "StringNotEquals aws:sourceaccount is not a positive operator"),
    "site bucket readable for aws:SourceArn *": Case(
        "staging", service_grant_checks.check_service_grants_are_confined, site_policy_names_any_source,
        "aws:sourcearn '\\*' does not name this account or this stack's resource"),
    "Config key for another account's id": Case(
        PRODUCTION_BASELINE, service_grant_checks.check_service_grants_are_confined, key_grant_in_another_account,
        "aws:sourceaccount '111122223333' does not name this account"),
    "alarm topic for any account's alarms": Case(
        "production", service_grant_checks.check_service_grants_are_confined, alarm_source_in_any_account,
        "ArnLike aws:sourcearn 'arn:aws:cloudwatch:eu-west-1:\\*:alarm:\\*' does not name"),
    "warning topic publishable by any account's rules": Case(
        "dev", service_grant_checks.check_service_grants_are_confined, topic_grant_to_eventbridge_unconditioned,
        "warning-topic-policy_.*events.amazonaws.com.* may act for any account's resources"),
}


ROLE_CASES = {  # issue 22, item 1: one deleted statement (or managed policy) per service role
    "backup role without its cluster snapshot statement": Case(
        "production", role_checks.check_service_roles, without_statement("SnapshotTheCluster"),
        "the backup role cannot rds:DescribeDBClusters"),
    "backup role without its recovery point statement": Case(
        "dev", role_checks.check_service_roles, without_statement("ReadAndCopyRecoveryPoints"),
        "the backup role cannot rds:DescribeDBClusterSnapshots"),
    "site replication role without its replica writes": Case(
        "production", role_checks.check_service_roles, without_statement("WriteReplicaObjects"),
        "replication of frontend_site.* role cannot s3:ReplicateDelete"),
    "state replication role without the source key": Case(
        "bootstrap", role_checks.check_service_roles, without_statement("DecryptSourceThroughS3"),
        "replication of state-bucket.* role cannot kms:Decrypt"),
    "Config recorder without AWS_ConfigRole": Case(
        PRODUCTION_BASELINE, role_checks.check_service_roles, without_attachment("AWS_ConfigRole"),
        "Config recorder role lacks the managed policy service-role/AWS_ConfigRole"),
    "Config delivery without its bucket write": Case(
        PRODUCTION_BASELINE, role_checks.check_service_roles, without_statement("Deliver"),
        "Config delivery role cannot s3:PutObject"),
    "flow log role without its log writes": Case(
        "dev", role_checks.check_service_roles, without_statement("WriteFlowLogs"),
        "flow logs role cannot logs:CreateLogStream"),
    "enhanced monitoring role without its managed policy": Case(
        "staging", role_checks.check_service_roles, without_attachment("AmazonRDSEnhancedMonitoringRole"),
        "enhanced monitoring role lacks the managed policy"),
    "API execution role without its log writes": Case(
        "dev", role_checks.check_service_roles, without_statement("WriteApiLogs"),
        "webapp-dev-api execution role cannot logs:CreateLogStream"),
    "API execution role without its image pull": Case(
        "production", role_checks.check_service_roles, without_statement("PullApiImage"),
        "webapp-production-api execution role cannot ecr:BatchCheckLayerAvailability"),
    "API task role without its database login": Case(
        "dev", role_checks.check_service_roles, without_statement("ConnectAsAppUser"),
        "webapp-dev-api task role cannot rds-db:connect"),
    "API task role without X-Ray writes next to its collector": Case(
        "production", role_checks.check_service_roles, without_statement("XRayWrite"),
        "webapp-production-api task role cannot xray:PutTraceSegments"),
    "bootstrap execution role without the master secret": Case(
        "staging", role_checks.check_service_roles, without_statement("ReadMasterSecret"),
        "db-bootstrap execution role cannot secretsmanager:GetSecretValue"),
    "bootstrap execution role without the secret's key": Case(
        "dev", role_checks.check_service_roles, without_statement("DecryptMasterSecret"),
        "db-bootstrap execution role cannot kms:Decrypt"),
    "CloudTrail log role without its log writes": Case(
        PRODUCTION_BASELINE, role_checks.check_service_roles, without_statement("DeliverTrail"),
        "CloudTrail log delivery role cannot logs:CreateLogStream"),
    "load balancer logs without ELB's delivery grant": Case(
        "production", role_checks.check_service_roles, without_statement("AlbLogDelivery"),
        "load balancer log delivery cannot s3:PutObject"),
    "site access logs without the S3 logging service's grant": Case(
        "dev", role_checks.check_service_roles, without_statement("AllowS3ServerAccessLogDelivery"),
        "S3 server access log delivery cannot s3:PutObject"),
    "CloudFront logs without the log delivery service's grant": Case(
        "dev", role_checks.check_service_roles, without_statement("CloudFrontLogDelivery"),
        "CloudWatch log delivery cannot s3:PutObject"),
}


CASES = {
    "cloudfront ACL counts instead of blocking KnownBadInputs": Case(
        "production", api_checks.check_waf_protects_the_distribution, cloudfront_known_bad_inputs_only_counts,
        "only counts"),
    "cloudfront ACL without KnownBadInputs": Case(
        "production", api_checks.check_waf_protects_the_distribution, cloudfront_known_bad_inputs_removed,
        "lacks AWSManagedRulesKnownBadInputsRuleSet"),
    "WAF association on another load balancer": Case(
        "production", api_checks.check_waf_protects_the_load_balancer, association_targets_another_load_balancer,
        "webapp-staging-alb"),
    "production WAF switched off": Case("production", check_waf, waf_switched_off, "expected one web ACL association"),
    "production's CloudTrail switched off": Case(PRODUCTION_BASELINE, trail_check, cloudtrail_switched_off,
                                                 "must keep its trail"),
    "production without the KMS endpoint": Case("production", check_interface_endpoints, kms_endpoint_removed,
                                                "secretsmanager"),
    "database dashboard on another environment's cluster": Case(
        "dev", observability_checks.check_dashboards, database_dashboard_shows_another_cluster,
        "DBClusterIdentifier='webapp-production-db' is not a aws_rds_cluster of this stack"),
    "ACU alarm on another environment's cluster": Case(
        "staging", observability_checks.check_alarm_dimensions, acu_alarm_watches_another_cluster,
        "webapp-production-db"),
    "rollback on the running-tasks alarm": Case(
        "dev", observability_checks.check_deployment_rollback_alarms, rollback_on_the_running_tasks_alarm,
        "running-tasks"),
    "rollback on a latency alarm name that no longer exists": Case(
        "dev", observability_checks.check_deployment_rollback_alarms, latency_alarm_renamed, "latency-p95-old"),
    "task role with AdministratorAccess attached": Case(
        "dev", api_checks.check_no_wildcard_grants, task_role_gets_administrator_access,
        "broad managed policy .*AdministratorAccess"),
    "execution role with AmazonS3FullAccess in managed_policy_arns": Case(
        "production", api_checks.check_no_wildcard_grants, execution_role_gets_s3_full_access,
        "broad managed policy .*AmazonS3FullAccess"),
    "ALB admits 0.0.0.0/1 on port 22": Case("dev", security_groups_check, half_the_internet_on_ssh,
                                            "alb admits the internet"),
    "ALB admits 3389 from inside the VPC": Case("production", security_groups_check,
                                                load_balancer_admits_rdp_from_the_vpc, "admits port 3389"),
    "database admits a public /24": Case("staging", security_groups_check, database_admits_a_public_range,
                                         "database admits the internet"),
    "data tier routes 128.0.0.0/1 out": Case("production", network_checks.check_data_tier_is_isolated,
                                             data_tier_routes_half_the_internet, "128.0.0.0/1"),
    "application subnets without any route": Case("dev", network_checks.check_app_tier_leaves_through_nat,
                                                  app_routes_deleted, "no route out"),
    "data key trusts a foreign account root": Case("dev", data_key_check, data_key_trusts_a_foreign_account,
                                                   "111122223333"),
    "state key administered by a foreign account root": Case(
        "bootstrap", state_key_check, state_key_administered_by_a_foreign_account, "111122223333"),
    "master password as a literal (global primary)": Case(
        "production", production_master_credentials, master_password_written_in_the_configuration,
        "a password in the configuration ends up in the state"),
    "master secret's value kept by Terraform (global primary)": Case(
        "production", production_master_credentials, master_secret_value_kept_by_terraform,
        "is read back .GetSecretValue. by every plan and deploy"),
    "master secret not replicated to the DR region (global primary)": Case(
        "production", production_master_credentials, master_secret_not_replicated,
        "the password must outlive the home region"),
    "master secret's replica under the home region's key (global primary)": Case(
        "production", production_master_credentials, master_secret_replica_under_a_home_region_key,
        "a replica is encrypted with a key of its region"),
    "master password sent again from the configuration (global primary)": Case(
        "production", production_master_credentials, master_password_sent_again_from_configuration,
        "raising it would overwrite what ops set"),
    "master secret on the AWS-managed key": Case(
        "dev", database_checks.check_secrets_use_customer_managed_keys, master_secret_uses_the_default_key,
        "is not a aws_kms_key reference"),
    **ROLE_CASES,
    **CONDITION_CASES,
    **SECRET_CASES,
}


def stack_named(stacks: dict[str, dict], project, name: str) -> dict:
    if name == PRODUCTION_BASELINE:
        (baseline,) = account_baselines(stacks, project, "production")
        return baseline
    return stacks[name]


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_check_passes_on_the_synthesized_stack_and_fails_on_the_broken_copy(stacks, project, case: Case):
    real = stack_named(stacks, project, case.stack)
    case.check(real)
    broken = copy.deepcopy(real)
    case.mutate(broken)
    with pytest.raises(AssertionError, match=case.reason):
        case.check(broken)
