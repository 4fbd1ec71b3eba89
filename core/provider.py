"""The AWS provider and S3 backend every stack is configured with.

Both are derived from configuration only (never from resources) because Terraform reads backend
settings before it evaluates anything. When an emulator endpoint is configured, every service
the stacks use is pointed at it; with no emulator the output is byte-for-byte what real AWS gets.
"""

from __future__ import annotations

from collections.abc import Mapping

from cdktf import S3Backend, S3BackendAssumeRoleConfig, S3BackendEndpointConfig, TerraformStack

from core.access import AssumedRole
from core.aws import aws
from environments.model import EmulatorConfig, StateBackendConfig

# Every AWS service a stack in this project talks to. An emulator must answer for all of them;
# a service missing here would silently go to real AWS, so tests check the list is complete.
EMULATED_SERVICES = (
    "acm", "appautoscaling", "backup", "budgets", "ce", "cloudfront", "cloudtrail", "cloudwatch", "configservice",
    "dynamodb", "ec2", "ecr", "ecs", "elasticache", "elbv2", "events", "iam", "kms", "logs", "rds", "resourcegroups",
    "route53", "s3", "secretsmanager", "servicediscovery", "sns", "ssm", "sts", "wafv2", "xray",
)


def required_tags(*, environment: str, application: str, owner: str, cost_center: str) -> dict[str, str]:
    """The tags SPEC 4.6 requires on every taggable resource."""
    return {
        "Environment": environment,
        "Application": application,
        "Project": application,
        "Owner": owner,
        "CostCenter": cost_center,
        "ManagedBy": "cdktf",
    }


def aws_provider(
    stack: TerraformStack,
    *,
    region: str,
    account_id: str | None,
    tags: Mapping[str, str],
    emulator: EmulatorConfig | None,
    alias: str | None = None,
    role: AssumedRole | None = None,
):
    """Configure the AWS provider: region, account guard, the role it assumes, default tags, emulator endpoints."""
    provider = aws.provider
    emulation = {}
    if emulator:
        endpoint = emulator.endpoint
        emulation = {
            "endpoints": [provider.AwsProviderEndpoints(**{name: endpoint for name in EMULATED_SERVICES})],
            "s3_use_path_style": True,
            "skip_credentials_validation": True,
            "skip_metadata_api_check": "true",
            "skip_region_validation": True,
        }
    return provider.AwsProvider(
        stack,
        f"aws-{alias}" if alias else "aws",
        region=region,
        alias=alias,
        allowed_account_ids=[account_id] if account_id else None,
        assume_role=[provider.AwsProviderAssumeRole(role_arn=role.role_arn, session_name=role.session_name)]
        if role else None,
        default_tags=[provider.AwsProviderDefaultTags(tags=dict(tags))],
        **emulation,
    )


def s3_backend(stack: TerraformStack, *, state: StateBackendConfig, key: str,
               emulator: EmulatorConfig | None, role: AssumedRole | None = None) -> S3Backend:
    """S3 state with both lock mechanisms: S3 lock files (Terraform >= 1.10) and DynamoDB.

    Keeping the DynamoDB table alongside `use_lockfile` is Terraform's documented migration path:
    every client honours whichever lock it knows, so older CLIs on the team stay safe. With a state
    role (per-stack isolation), workspaces are kept under the stack's own prefix too, because the role
    may list nothing else and Terraform lists the workspace prefix on every init.
    """
    isolation = {}
    if role:
        isolation = {
            "assume_role": S3BackendAssumeRoleConfig(role_arn=role.role_arn, session_name=role.session_name),
            "workspace_key_prefix": f"{key.rsplit('/', 1)[0]}/env:",
        }
    emulation = {}
    if emulator:
        endpoint = emulator.endpoint
        emulation = {
            "endpoints": S3BackendEndpointConfig(s3=endpoint, dynamodb=endpoint, sts=endpoint, iam=endpoint),
            "use_path_style": True,
            "skip_credentials_validation": True,
            "skip_metadata_api_check": True,
            "skip_region_validation": True,
            "skip_requesting_account_id": True,
        }
    backend = S3Backend(
        stack,
        bucket=state.bucket,
        key=key,
        region=state.region,
        encrypt=True,
        kms_key_id=state.kms_alias,
        dynamodb_table=state.lock_table,
        **isolation,
        **emulation,
    )
    # cdktf 0.21 predates `use_lockfile`; the override writes it into the backend block verbatim.
    backend.add_override("use_lockfile", True)
    return backend
