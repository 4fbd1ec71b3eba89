"""What every service role of a stack must be allowed to do (issue 22), derived from the resources that use it.

The other checks forbid (no wildcards, no other account, no other cluster); moto checks no IAM at all,
so an empty or cut-down policy would pass both. Here each role is required to hold the actions AWS
documents for its job, on the exact resources this stack gives it: the log group a task writes to,
the secret it injects, the bucket a service delivers to. Expected grants come from the resources
that use the role (task definitions, flow logs, trails, recorders, buckets), never from the policies.
"""

from __future__ import annotations

import json
import re

from core.elb import ELB_LOG_ACCOUNTS, LOG_DELIVERY_SERVICE
from tests import dr_checks
from tests.conftest import resources_of
from tests.iam_checks import Need, allows, check_role_can, check_role_carries, needs
from tests.network_checks import ACCOUNT_REF, policy_document, ref_name

PARTITION_REF = "${data.aws_partition.partition.partition}"
ECS_EXECUTION_DOC = "ECS Developer Guide, Amazon ECS task execution IAM role"
ECS_SECRETS_DOC = "ECS Developer Guide, Pass Secrets Manager secrets through Amazon ECS environment variables"
ECS_EXEC_DOC = "ECS Developer Guide, Monitor Amazon ECS containers with ECS Exec"
XRAY_DOC = "managed policy AWSXRayDaemonWriteAccess"
RDS_IAM_DOC = "RDS User Guide, Creating and using an IAM policy for IAM database access"
FLOW_LOGS_DOC = "VPC User Guide, IAM role for publishing flow logs to CloudWatch Logs"
MONITORING_DOC = "RDS User Guide, Setting up and enabling Enhanced Monitoring"
CONFIG_ROLE_DOC = "AWS Config Developer Guide, Permissions for the IAM role assigned to AWS Config"
CONFIG_KMS_DOC = "AWS Config Developer Guide, Permissions for the KMS key used by the delivery channel"
TRAIL_LOGS_DOC = "CloudTrail User Guide, Sending events to CloudWatch Logs"
S3_LOGGING_DOC = "S3 User Guide, Permissions for log delivery (server access logging)"
ALB_LOGS_DOC = "ELB User Guide, Enable access logs for your Application Load Balancer"
VENDED_LOGS_DOC = "CloudWatch Logs User Guide, Logging that requires additional permissions (logs sent to S3)"
EXEC_ACTIONS = ("ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
                "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel")
XRAY_ACTIONS = ("xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
                "xray:GetSamplingTargets")
TRACE_COLLECTORS = ("aws-otel-collector", "aws-xray-daemon")
LOG_WRITES = ("logs:CreateLogStream", "logs:PutLogEvents")
SECRET_REF = re.compile(r"^(\$\{[^}]+\})")


def retyped(reference: str, resource_type: str, attribute: str) -> str:
    """`${type.name.any}` -> `${type.name.attribute}` (a bucket's `.bucket` or `.id` -> its `.arn`)."""
    return f"${{{resource_type}.{ref_name(reference, resource_type)}.{attribute}}}"


# --- ECS: the execution roles (pull, log, inject) and the task role (connect, trace, exec) -------

def secret_key(stack: dict, secret: str) -> str | None:
    """The customer-managed key of an injected secret, where the stack sets one."""
    if secret.startswith("${aws_rds_cluster."):
        cluster = resources_of(stack, "aws_rds_cluster")[secret.split(".")[1]]
        return cluster.get("master_user_secret_kms_key_id")
    if secret.startswith("${aws_secretsmanager_secret."):
        return resources_of(stack, "aws_secretsmanager_secret")[ref_name(secret, "aws_secretsmanager_secret")].get(
            "kms_key_id")
    return None


def execution_needs(stack: dict, definition: dict) -> list[Need]:
    """Each container's log group, each injected secret (and its key), and the stack's repository."""
    required: list[Need] = []
    for container in json.loads(definition["container_definitions"]):
        log = container.get("logConfiguration", {})
        if log.get("logDriver") == "awslogs":
            group = retyped(log["options"]["awslogs-group"], "aws_cloudwatch_log_group", "arn")
            required += needs(LOG_WRITES, f"{group}:*", ECS_EXECUTION_DOC)
        for secret in container.get("secrets", []):
            match = SECRET_REF.match(secret["valueFrom"])
            assert match, f"{secret['valueFrom']} is not a reference to this stack's secret"
            required += needs(["secretsmanager:GetSecretValue"], match.group(1), ECS_SECRETS_DOC)
            key = secret_key(stack, match.group(1))
            if key:
                required += needs(["kms:Decrypt"], key, ECS_SECRETS_DOC)
    return required


def pull_needs(stack: dict) -> list[Need]:
    """The API's execution role pulls from the stack's own repositories (the promotion target)."""
    required = []
    for name in resources_of(stack, "aws_ecr_repository"):
        required += needs(["ecr:GetAuthorizationToken"], "*", ECS_EXECUTION_DOC)
        required += needs(["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"],
                          f"${{aws_ecr_repository.{name}.arn}}", ECS_EXECUTION_DOC)
    return required


def task_needs(stack: dict, definition: dict) -> list[Need]:
    """Database login as the configured user, trace writes with a collector, ECS Exec where enabled."""
    containers = json.loads(definition["container_definitions"])
    required: list[Need] = []
    for container in containers:
        variables = {v["name"]: v["value"] for v in container.get("environment", [])}
        if "DB_USER" in variables:
            cluster = ref_name(variables["DB_HOST"], "aws_rds_cluster")
            user = (f"arn:{PARTITION_REF}:rds-db:{variables['DB_REGION']}:{ACCOUNT_REF}:dbuser:"
                    f"${{aws_rds_cluster.{cluster}.cluster_resource_id}}/{variables['DB_USER']}")
            required += needs(["rds-db:connect"], user, RDS_IAM_DOC)
    if any(collector in container["image"] for container in containers for collector in TRACE_COLLECTORS):
        required += needs(XRAY_ACTIONS, "*", XRAY_DOC)
    services = [s for s in resources_of(stack, "aws_ecs_service").values()
                if s["task_definition"].startswith("${aws_ecs_task_definition.")
                and resources_of(stack, "aws_ecs_task_definition")[ref_name(
                    s["task_definition"], "aws_ecs_task_definition")] is definition]
    if any(service.get("enable_execute_command") for service in services):
        required += needs(EXEC_ACTIONS, "*", ECS_EXEC_DOC)
    return required


def check_ecs_roles(stack: dict) -> None:
    for definition in resources_of(stack, "aws_ecs_task_definition").values():
        family = definition["family"]
        execution = execution_needs(stack, definition)
        if family.endswith("-api"):
            execution += pull_needs(stack)
        check_role_can(stack, definition["execution_role_arn"], execution, f"{family} execution")
        required = task_needs(stack, definition)
        if required:
            assert definition.get("task_role_arn"), f"{family} needs a task role for {required[0].action}"
            check_role_can(stack, definition["task_role_arn"], required, f"{family} task")


# --- the network and the database: flow logs, enhanced monitoring --------------------------------

def check_flow_log_roles(stack: dict) -> None:
    for flow_log in resources_of(stack, "aws_flow_log").values():
        if flow_log.get("log_destination_type", "cloud-watch-logs") == "cloud-watch-logs":
            required = needs([*LOG_WRITES, "logs:DescribeLogStreams"], f"{flow_log['log_destination']}:*",
                             FLOW_LOGS_DOC)
            check_role_can(stack, flow_log["iam_role_arn"], required, "flow logs")


def check_monitoring_roles(stack: dict) -> None:
    for instance in resources_of(stack, "aws_rds_cluster_instance").values():
        if instance.get("monitoring_interval", 0):
            check_role_carries(stack, instance["monitoring_role_arn"], "service-role/AmazonRDSEnhancedMonitoringRole",
                               "enhanced monitoring", MONITORING_DOC)


# --- the account baseline: Config recorder and delivery, CloudTrail's log group ------------------

def check_config_roles(stack: dict) -> None:
    """The recorder reads configurations (AWS_ConfigRole); its delivery channel writes to its bucket with its key."""
    for recorder in resources_of(stack, "aws_config_configuration_recorder").values():
        role = recorder["role_arn"]
        check_role_carries(stack, role, "service-role/AWS_ConfigRole", "Config recorder", CONFIG_ROLE_DOC)
        for channel in resources_of(stack, "aws_config_delivery_channel").values():
            bucket = retyped(channel["s3_bucket_name"], "aws_s3_bucket", "arn")
            prefix = f"{channel['s3_key_prefix']}/" if channel.get("s3_key_prefix") else ""
            required = needs(["s3:GetBucketAcl"], bucket, CONFIG_ROLE_DOC)
            required += needs(["s3:PutObject"], f"{bucket}/{prefix}AWSLogs/{ACCOUNT_REF}/Config/*", CONFIG_ROLE_DOC)
            if channel.get("s3_kms_key_arn"):
                required += needs(["kms:GenerateDataKey", "kms:Decrypt"], channel["s3_kms_key_arn"], CONFIG_KMS_DOC)
            check_role_can(stack, role, required, "Config delivery")


def check_trail_roles(stack: dict) -> None:
    for trail in resources_of(stack, "aws_cloudtrail").values():
        if trail.get("cloud_watch_logs_role_arn"):
            required = needs(LOG_WRITES, trail["cloud_watch_logs_group_arn"], TRAIL_LOGS_DOC)
            check_role_can(stack, trail["cloud_watch_logs_role_arn"], required, "CloudTrail log delivery")


# --- log delivery into buckets: S3 server access logs, the load balancer's, CloudFront's ---------

def bucket_statements(stack: dict, bucket: str, principals: tuple[str, ...]) -> list[dict]:
    """The statements of bucket `bucket`'s (logical id) policy that name one of `principals`."""
    policies = [p for p in resources_of(stack, "aws_s3_bucket_policy").values()
                if p["bucket"] == f"${{aws_s3_bucket.{bucket}.id}}"]
    return [s for p in policies for s in policy_document(stack, p["policy"])["statement"]
            if any(set(principals) & set(principal["identifiers"]) for principal in s.get("principals", []))]


def bucket_object(stack: dict, bucket: str, key: str) -> tuple[str, ...]:
    """Both spellings of an object ARN in bucket `bucket`: through the reference and from the literal name."""
    name = resources_of(stack, "aws_s3_bucket")[bucket]["bucket"]
    return (f"${{aws_s3_bucket.{bucket}.arn}}/{key}", f"arn:aws:s3:::{name}/{key}",
            f"arn:{PARTITION_REF}:s3:::{name}/{key}")


def check_bucket_grants(stack: dict, bucket: str, principals: tuple[str, ...], need: Need, what: str) -> None:
    assert allows(bucket_statements(stack, bucket, principals), need), \
        f"the {what} cannot {need.action} on {need.resource[0]} (AWS: {need.doc})"


def load_balancer_log_principals(stack: dict) -> tuple[str, ...]:
    """ELB's log delivery service, or (regions older than August 2022) the region's ELB account, as
    core/elb.py's table from AWS's page names it (aws_form_checks pins which one each region gets)."""
    accounts = tuple(f"arn:{PARTITION_REF}:iam::{account}:root" for account in ELB_LOG_ACCOUNTS.values())
    return (LOG_DELIVERY_SERVICE, *accounts)


def check_log_delivery_grants(stack: dict) -> None:
    for logging in resources_of(stack, "aws_s3_bucket_logging").values():
        target = ref_name(logging["target_bucket"], "aws_s3_bucket")
        (need,) = needs(["s3:PutObject"], bucket_object(stack, target, f"{logging['target_prefix']}*"), S3_LOGGING_DOC)
        check_bucket_grants(stack, target, ("logging.s3.amazonaws.com",), need, "S3 server access log delivery")
    for balancer in resources_of(stack, "aws_lb").values():
        logs = balancer.get("access_logs", {})
        if logs.get("enabled"):
            bucket = ref_name(logs["bucket"], "aws_s3_bucket")
            prefix = f"{logs['prefix']}/" if logs.get("prefix") else ""
            (need,) = needs(["s3:PutObject"], bucket_object(stack, bucket, f"{prefix}AWSLogs/{ACCOUNT_REF}/*"),
                            ALB_LOGS_DOC)
            check_bucket_grants(stack, bucket, load_balancer_log_principals(stack), need, "load balancer log delivery")
    for destination in resources_of(stack, "aws_cloudwatch_log_delivery_destination").values():
        (config,) = destination["delivery_destination_configuration"]
        arn = config["destination_resource_arn"]
        if arn.startswith("${aws_s3_bucket."):
            bucket_ref, _, path = arn.partition("}/")
            bucket = ref_name(bucket_ref + "}", "aws_s3_bucket")
            (need,) = needs(["s3:PutObject"], bucket_object(stack, bucket, f"{path}/AWSLogs/{ACCOUNT_REF}/*"),
                            VENDED_LOGS_DOC)
            check_bucket_grants(stack, bucket, ("delivery.logs.amazonaws.com",), need, "CloudWatch log delivery")


# --- all of them ---------------------------------------------------------------------------------

def check_dr_roles(stack: dict) -> None:
    """The backup role (check_backup does the same with the configuration) and every replication role."""
    for selection in resources_of(stack, "aws_backup_selection").values():
        (cluster,) = resources_of(stack, "aws_rds_cluster")
        check_role_can(stack, selection["iam_role_arn"], dr_checks.backup_needs(stack, cluster), "backup")
    for config in resources_of(stack, "aws_s3_bucket_replication_configuration").values():
        source = ref_name(config["bucket"], "aws_s3_bucket")
        (rule,) = config["rule"]
        replica = ref_name(rule["destination"]["bucket"], "aws_s3_bucket")
        source_key = dr_checks.bucket_part(stack, "aws_s3_bucket_server_side_encryption_configuration", source)[
            "rule"][0]["apply_server_side_encryption_by_default"]["kms_master_key_id"]
        replica_key = rule["destination"]["encryption_configuration"]["replica_kms_key_id"]
        check_role_can(stack, config["role"], dr_checks.replication_needs(source, replica, source_key, replica_key),
                       f"replication of {source}")


def check_service_roles(stack: dict) -> None:
    """Every service role and log delivery grant of the stack can do its documented job."""
    check_ecs_roles(stack)
    check_flow_log_roles(stack)
    check_monitoring_roles(stack)
    check_config_roles(stack)
    check_trail_roles(stack)
    check_log_delivery_grants(stack)
    check_dr_roles(stack)


def service_roles_present(stack: dict) -> set[str]:
    """Which kinds of service role a stack has (to prove the shipped stacks exercise every kind)."""
    kinds = {"aws_ecs_task_definition": "ecs", "aws_flow_log": "flow logs", "aws_rds_cluster_instance": "monitoring",
             "aws_config_configuration_recorder": "config", "aws_cloudtrail": "trail", "aws_lb": "alb logs",
             "aws_s3_bucket_logging": "s3 logs", "aws_cloudwatch_log_delivery_destination": "vended logs",
             "aws_backup_selection": "backup", "aws_s3_bucket_replication_configuration": "replication"}
    return {kind for resource_type, kind in kinds.items() if resources_of(stack, resource_type)}

