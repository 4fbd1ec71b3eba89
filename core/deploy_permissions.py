"""What the deploy role of an environment may do: derived from the Terraform types its stack uses.

How the list is derived: every resource and data source type an environment stack can contain maps
to the IAM service prefixes its create, read, update and delete calls use (the provider calls the
service named in the type; the exceptions are spelled out in the table). The role gets those
services and nothing else, IAM only on roles and policies named after the environment, plus what
`python -m ops` does around a deploy (the database bootstrap task, the deploy record). How a team
checks it: tests/test_accounts.py fails when any synthesized environment stack (the shipped ones
and hypothesis-generated ones with every toggle on and off) uses a type this table does not map,
and `python -m ops validate-policies bootstrap` runs the resulting policy through IAM Access
Analyzer. moto evaluates no IAM, so only a real deploy proves the list is enough (docs/deployment.md).
"""

from __future__ import annotations

from core.master_password import own_master_secret_name

# Terraform type prefix (longest match wins) -> IAM service prefixes. Types not named by their service:
# aws_lb* is Elastic Load Balancing v2, aws_appautoscaling* Application Auto Scaling, aws_cloudwatch_event*
# EventBridge, aws_cloudwatch_log* CloudWatch Logs, aws_ce* Cost Explorer, aws_budgets* AWS Budgets (which
# also reads the budget's actions through IAM), aws_db*/aws_rds* RDS, aws_vpc*/subnets/routes EC2.
TYPE_SERVICES: dict[str, tuple[str, ...]] = {
    "aws_acm_": ("acm",),
    "aws_appautoscaling_": ("application-autoscaling",),
    "aws_backup_": ("backup", "backup-storage"),
    "aws_budgets_": ("budgets",),
    "aws_ce_": ("ce",),
    "aws_cloudfront_": ("cloudfront",),
    "aws_cloudwatch_dashboard": ("cloudwatch",),
    "aws_cloudwatch_metric_alarm": ("cloudwatch",),
    "aws_cloudwatch_composite_alarm": ("cloudwatch",),
    "aws_cloudwatch_event_": ("events",),
    "aws_cloudwatch_log_": ("logs",),
    "aws_db_": ("rds",),
    "aws_default_": ("ec2",),
    "aws_ecr_": ("ecr",),
    "aws_ecs_": ("ecs",),
    "aws_eip": ("ec2",),
    "aws_elasticache_": ("elasticache",),
    "aws_flow_log": ("ec2",),
    "aws_internet_gateway": ("ec2",),
    "aws_kms_": ("kms",),
    "aws_lb": ("elasticloadbalancing",),
    "aws_nat_gateway": ("ec2",),
    "aws_network_acl": ("ec2",),
    "aws_rds_": ("rds",),
    "aws_resourcegroups_": ("resource-groups", "tag"),
    "aws_route53_": ("route53",),
    "aws_route": ("ec2",),
    "aws_s3_": ("s3",),
    "aws_secretsmanager_": ("secretsmanager",),
    "aws_security_group": ("ec2",),
    "aws_service_discovery_": ("servicediscovery",),
    "aws_sns_": ("sns",),
    "aws_ssm_": ("ssm",),
    "aws_subnet": ("ec2",),
    "aws_vpc": ("ec2",),
    "aws_wafv2_": ("wafv2",),
    "aws_xray_": ("xray",),
    "aws_availability_zones": ("ec2",),
    "aws_caller_identity": (),  # sts:GetCallerIdentity needs no permission
    "aws_region": ("ec2",),
    "aws_ec2_": ("ec2",),
    "aws_elb_service_account": (),
    "aws_partition": (),
    "aws_iam_policy_document": (),
    # IAM is granted apart: only on the environment's own roles and policies (deploy_policy below).
    "aws_iam_": ("iam",),
}

# What `python -m ops deploy` and `restore` do besides Terraform, and what the provider needs beyond
# the services above: the one-off database bootstrap task, the deploy record, CloudFront's vended log
# delivery (CloudWatch Logs calls it as the deployer), and grants on the X-Ray key (X-Ray Developer Guide,
# "Data protection in AWS X-Ray").
OPS_ACTIONS = (
    "ecs:RunTask", "ecs:DescribeTasks", "ssm:PutParameter", "ssm:GetParameter",
    "cloudfront:AllowVendedLogDeliveryForResource", "kms:CreateGrant", "kms:DescribeKey",
)
IAM_ACTIONS = (
    "iam:CreateRole", "iam:DeleteRole", "iam:GetRole", "iam:UpdateRole", "iam:UpdateAssumeRolePolicy",
    "iam:TagRole", "iam:UntagRole", "iam:ListRoleTags", "iam:PutRolePolicy", "iam:GetRolePolicy",
    "iam:DeleteRolePolicy", "iam:ListRolePolicies", "iam:AttachRolePolicy", "iam:DetachRolePolicy",
    "iam:ListAttachedRolePolicies", "iam:ListInstanceProfilesForRole", "iam:PassRole",
)


def services_for(resource_type: str) -> tuple[str, ...] | None:
    """The IAM services a Terraform type's calls use; None when the table has no entry (a test fails)."""
    matches = [prefix for prefix in TYPE_SERVICES if resource_type.startswith(prefix)]
    return TYPE_SERVICES[max(matches, key=len)] if matches else None


def deploy_services() -> tuple[str, ...]:
    """Every service an environment deploy may call, IAM excepted (granted by name only)."""
    return tuple(sorted({service for services in TYPE_SERVICES.values() for service in services} - {"iam"}))


def deploy_policy(partition: str, account_id: str, name_prefix: str, own_roles: tuple[str, ...]) -> dict:
    """The deploy role's policy: the environment's services, IAM on `<name_prefix>-*` roles only, ops' extras.

    `own_roles` (the CI roles themselves, which match the prefix) are excluded by an explicit deny, so the
    deploy role can never widen its own or the plan role's permissions. Nor may it read a master secret: an
    RDS-managed one (`rds!...`; Terraform only describes it: the cluster's `master_user_secret`, the rotation
    schedule) or a standby's primary's own (Terraform keeps no version of it; ops writes it without reading
    it, ops/master_password.py). Only the bootstrap task reads one (property 3; the emulated restore drill
    found the deploy role among its readers).
    """
    iam_resources = [f"arn:{partition}:iam::{account_id}:role/{name_prefix}-*"]
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "EnvironmentServices", "Effect": "Allow",
         "Action": [f"{service}:*" for service in deploy_services()], "Resource": "*"},
        {"Sid": "EnvironmentRolesOnly", "Effect": "Allow", "Action": list(IAM_ACTIONS), "Resource": iam_resources},
        {"Sid": "ServiceLinkedRoles", "Effect": "Allow", "Action": ["iam:CreateServiceLinkedRole"],
         "Resource": f"arn:{partition}:iam::{account_id}:role/aws-service-role/*"},
        {"Sid": "OperatorCommands", "Effect": "Allow", "Action": list(OPS_ACTIONS), "Resource": "*"},
        {"Sid": "NeverTheCiRolesThemselves", "Effect": "Deny", "Action": "iam:*",
         "Resource": [f"arn:{partition}:iam::{account_id}:role/{name}" for name in own_roles]},
        # RDS User Guide, "Password management with Amazon RDS and AWS Secrets Manager": RDS names them rds!<...>.
        {"Sid": "NeverTheMasterSecrets", "Effect": "Deny", "Action": "secretsmanager:GetSecretValue",
         "Resource": [f"arn:{partition}:secretsmanager:*:{account_id}:secret:rds!*",
                      # Secrets Manager API Reference, CreateSecret (Name): the ARN adds "-" and 6 random characters.
                      f"arn:{partition}:secretsmanager:*:{account_id}:secret:{own_master_secret_name(name_prefix)}-*"]},
    ]}
