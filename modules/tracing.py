"""Distributed tracing of the API (seed 001 FR-6.5): OpenTelemetry to AWS X-Ray through a collector sidecar.

Why a collector and not the X-Ray daemon: AWS has put the X-Ray SDKs and the X-Ray daemon into
maintenance mode and points new instrumentation at OpenTelemetry, whose AWS distribution (ADOT)
ships a collector that receives OTLP from the application and exports to X-Ray. So the API task
gets an ADOT collector sidecar and the application is told, through the standard OTEL_*
environment variables, where to send OTLP and how to sample.

The sidecar is hardened like the API container (non-root, read-only root filesystem, its own
encrypted log group) and is not essential: if the collector fails, ECS keeps the API running and
only traces are lost. It listens on the task's loopback interface only (containers of an awsvpc
task share it), so no security group or NACL opens for it. Sampling follows an X-Ray sampling rule
per environment (the rate comes from configuration) that the SDK reads through the collector's
AWS proxy. X-Ray's encryption with a customer-managed key is an account-and-region setting, so it
lives in the account baseline (`xray_encryption`), not here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from constructs import Construct

from core.aws import aws
from core.iam import statement
from core.naming import bounded_name
from modules.log_group import LogGroup, LogGroupProps

# Pinned by release and by digest, in every environment: a collector upgrade is a reviewed change, like any
# other image, and production runs only images pinned by content (tests/test_image_digests.py).
COLLECTOR_IMAGE = ("public.ecr.aws/aws-observability/aws-otel-collector:v0.49.0"
                   "@sha256:d2bdfff2c377c3d71d78bd5d9ce9862fd535b12134a5739d87a07801297cf9fd")
COLLECTOR_NAME = "otel-collector"
# The image's own unprivileged user (`aoc`, UID and GID 4317 in its Dockerfile), stated so ECS runs it as that
# user whatever a later image declares; it owns the image's HOME, so nothing needs root.
COLLECTOR_USER = "4317:4317"
OTLP_GRPC_PORT, OTLP_HTTP_PORT, SAMPLING_PROXY_PORT = 4317, 4318, 2000
# The X-Ray write actions (AWS's AWSXrayWriteOnlyAccess): segments, telemetry and sampling rules/targets.
# X-Ray defines no resource types for them, so they can only be granted on "*".
XRAY_WRITE_ACTIONS = ("xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
                      "xray:GetSamplingTargets", "xray:GetSamplingStatisticSummaries")
# X-Ray sampling rule names: at most 32 characters.
RULE_NAME_LIMIT = 32
# Requests traced each second before the fixed rate applies.
RESERVOIR_PER_SECOND = 1
RULE_PRIORITY = 1000


@dataclass(frozen=True)
class TracingProps:
    name_prefix: str
    environment: str
    region: str
    sampling_rate: float
    log_retention_days: int
    logs_kms_key_arn: str


def collector_configuration(region: str) -> str:
    """OTLP in on loopback, X-Ray out; the AWS proxy lets the SDK fetch sampling rules unsigned."""
    return json.dumps({
        "extensions": {"awsproxy": {"endpoint": f"127.0.0.1:{SAMPLING_PROXY_PORT}", "region": region}},
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{OTLP_GRPC_PORT}"},
                                             "http": {"endpoint": f"127.0.0.1:{OTLP_HTTP_PORT}"}}}},
        "processors": {"batch/traces": {"timeout": "1s", "send_batch_size": 50}},
        "exporters": {"awsxray": {"region": region}},
        "service": {"extensions": ["awsproxy"],
                    "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["batch/traces"],
                                             "exporters": ["awsxray"]}}},
    }, sort_keys=True)


class Tracing(Construct):
    """Exposes `service_name`, `container` (the sidecar's definition), `app_environment` (OTEL_* variables
    for the API container), `task_role_statements`, `log_group_arn`, `sampling_rule_name`."""

    def __init__(self, scope: Construct, id: str, props: TracingProps):
        super().__init__(scope, id)
        self.service_name = f"{props.name_prefix}-api"
        log_group = LogGroup(self, "log-group", LogGroupProps(
            name=f"/aws/ecs/otel-{props.environment}", retention_days=props.log_retention_days,
            kms_key_arn=props.logs_kms_key_arn))
        rule = aws.xray_sampling_rule.XraySamplingRule(
            self, "sampling-rule", rule_name=bounded_name(props.name_prefix, "api", RULE_NAME_LIMIT),
            priority=RULE_PRIORITY, version=1, reservoir_size=RESERVOIR_PER_SECOND,
            fixed_rate=props.sampling_rate, service_name=self.service_name, service_type="*", host="*",
            http_method="*", url_path="*", resource_arn="*")
        self.sampling_rule_name: str = rule.rule_name
        self.log_group_arn: str = log_group.arn
        self.container: dict = {
            "name": COLLECTOR_NAME,
            "image": COLLECTOR_IMAGE,
            "essential": False,  # a collector fault must never stop the API
            "user": COLLECTOR_USER,
            "readonlyRootFilesystem": True,
            "environment": [{"name": "AOT_CONFIG_CONTENT", "value": collector_configuration(props.region)}],
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": log_group.name, "awslogs-region": props.region,
                "awslogs-stream-prefix": COLLECTOR_NAME}},
        }
        self.app_environment: list[dict] = [
            {"name": "OTEL_SERVICE_NAME", "value": self.service_name},
            {"name": "OTEL_RESOURCE_ATTRIBUTES", "value": f"deployment.environment={props.environment}"},
            {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": f"http://127.0.0.1:{OTLP_HTTP_PORT}"},
            {"name": "OTEL_EXPORTER_OTLP_PROTOCOL", "value": "http/protobuf"},
            {"name": "OTEL_PROPAGATORS", "value": "tracecontext,baggage,xray"},
            {"name": "OTEL_TRACES_SAMPLER", "value": "xray"},
            {"name": "OTEL_TRACES_SAMPLER_ARG", "value": f"endpoint=http://127.0.0.1:{SAMPLING_PROXY_PORT}"},
        ]
        self.task_role_statements: list = [statement("XRayWrite", list(XRAY_WRITE_ACTIONS), ["*"])]
