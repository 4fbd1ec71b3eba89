"""Each configuration field and its rule in words, for docs/configuration.md.

The loader (environments/loader.py) applies its rules inline while it reads each key. This module
is data only (no I/O, no side effects) that says the same rules for people. It cannot drift silently:

- Where the loader keeps a rule in a constant (patterns, allowed values, the Fargate size table),
  the entry points at that constant instead of restating it.
- Numeric ranges are written here, and tests/test_config_reference.py loads values just outside
  each range and checks that the loader refuses them with these exact bounds.
- The same test checks that every field of the model (environments/model.py) has exactly one
  entry here, that required/optional matches what the loader requires, and that every pattern
  and choice is really enforced on its key.

Keys are dotted paths as users write them (`network.cidr`). An entry with `origin` set is a model
field that no TOML key sets (the loader fills it in); it is documented, but not as a setting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from environments import loader
from environments.model import DrStrategy, NatMode

PROJECT_SCOPE, ENVIRONMENT_SCOPE, BASELINE_SCOPE = "project", "environment", "baseline"


@dataclass(frozen=True)
class FieldDoc:
    """What one field means and which rule the loader applies to it."""

    description: str
    rule: str = ""  # anything beyond type, range, choices and pattern
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: tuple = ()
    pattern: re.Pattern[str] | None = None
    origin: str = ""  # set for fields that no TOML key sets: where the value comes from

    @property
    def in_file(self) -> bool:
        return not self.origin


_TAG_RULE = "any AWS tag value: 1-256 letters, digits, spaces and `_ . : / = + - @`"
_SOURCE = FieldDoc("The file the values came from.", origin="set by the loader to the file's path "
                   "(`environments/<file>.toml`); error messages name it")

PROJECT: dict[str, FieldDoc] = {
    "source": _SOURCE,
    "application": FieldDoc(
        "Application name: the `<app>` in every resource name `<app>-<env>-<component>` and the "
        "`Application`/`Project` tags.",
        "2-20 lowercase letters, digits or hyphens, starting with a letter, ending with a letter or digit, no `--`; "
        "every environment must repeat it",
        pattern=loader.APPLICATION_RE),
    "owner": FieldDoc("`Owner` tag of the bootstrap stack's resources.", _TAG_RULE, pattern=loader.TAG_VALUE_RE),
    "cost_center": FieldDoc("`CostCenter` tag of the bootstrap stack's resources.", _TAG_RULE,
                            pattern=loader.TAG_VALUE_RE),
    "account_id": FieldDoc("The AWS account of the bootstrap stack; when set, the provider refuses any other "
                           "(`allowed_account_ids`).", "12 digits", pattern=loader.ACCOUNT_RE),
    "state": FieldDoc("The Terraform state backend the bootstrap stack creates and every environment uses."),
    "state.region": FieldDoc("Region of the state bucket, lock table and key.", "an AWS region name",
                             pattern=loader.REGION_RE),
    "state.bucket": FieldDoc("S3 bucket holding every environment's state (`<env>/terraform.tfstate`); globally "
                             "unique, so change it before the first deploy. Its access logs go to "
                             "`<bucket>-access-logs`.",
                             "3-51 lowercase letters, digits or hyphens (the bootstrap appends `-access-logs`)",
                             pattern=loader.BUCKET_RE),
    "state.lock_table": FieldDoc("DynamoDB table for state locks (`LockID`).", "a DynamoDB table name",
                                 pattern=loader.TABLE_RE),
    "state.kms_alias": FieldDoc("Alias of the KMS key encrypting state and locks.",
                                "`alias/<name>`, not an AWS-managed `alias/aws/...`", pattern=loader.KMS_ALIAS_RE),
    "state.bootstrap_state_in_bucket": FieldDoc(
        "Keep the bootstrap stack's own state in the state bucket (key bootstrap/terraform.tfstate, locked) "
        "instead of the local file terraform.bootstrap.tfstate. Set it after the first bootstrap deploy, then "
        "run `terraform init -migrate-state` in cdktf.out/stacks/bootstrap (docs/deployment.md)."),
    "state.replica_region": FieldDoc(
        "A second region the state bucket replicates to (`<bucket>-replica`, its own key `alias/<app>-state-replica`, "
        "access logs to `<bucket>-dr-logs`), so a lost region never means lost state.",
        "an AWS region name, not `state.region`, in the same partition; set it whenever an environment has `[dr]`",
        pattern=loader.REGION_RE),
    "state.account_id": FieldDoc(
        "The account holding the state (AWS's layout: one account per environment, state in a central one). Set, "
        "it turns on per-stack state isolation: the bootstrap creates each stack's read-write and read-only state "
        "roles, every stack's backend assumes its own, and the bucket, replica and keys admit only those roles, "
        "`state.administrators` and replication (docs/deployment.md, \"One account per environment\").",
        "12 digits", pattern=loader.ACCOUNT_RE),
    "state.administrators": FieldDoc(
        "Roles of the state account that keep access to every state file and may assume every state role "
        "(the bootstrap's deployers, break glass).",
        "role ARNs in `state.account_id`; required with it, refused without it", pattern=loader.ROLE_ARN_RE),
    "ci": FieldDoc("GitHub Actions identities the bootstrap creates (`[ci]`): one OIDC provider, per environment "
                   "entry roles for deploy jobs and pull-request plans, and the deploy and plan roles in the "
                   "environment's account (docs/deployment.md)."),
    "ci.repository": FieldDoc("The one repository, `owner/name`, whose workflows may assume the CI roles.",
                              "a GitHub repository as owner/name", pattern=loader.REPOSITORY_RE),
    "ci.account_access_role": FieldDoc(
        "The administrator role the bootstrap assumes in each environment account other than the state account to "
        "create the deploy and plan roles there. Default `OrganizationAccountAccessRole` (what AWS Organizations "
        "creates in accounts it creates).", "an IAM role name", pattern=loader.ROLE_NAME_RE),
    "partition": FieldDoc("The AWS partition of every ARN.", origin="set by the loader from the configured role "
                          "ARNs (they must agree); `aws` when none is configured"),
    "access": FieldDoc("Which identities a synthesis is for: `deploy`, or `plan` (CI plan roles, read-only state "
                       "roles; plans then run with `-lock=false`).",
                       origin="the `INFRA_ACCESS` environment variable; unset means `deploy`"),
    "state.noncurrent_version_days": FieldDoc(
        "Days an overwritten state version is kept (how far back a state recovery can go).", minimum=1, maximum=3650),
    "environments": FieldDoc("Every environment.", origin="one `<name>.toml` file per environment next to "
                             "`project.toml`; adding an environment is adding a file"),
    "baselines": FieldDoc("The account baselines: once-per-account resources, one stack each.",
                          origin="the `[[baseline]]` tables of `project.toml` (section below); none: no baseline"),
    "emulator": FieldDoc("A local AWS emulator that replaces every AWS endpoint (tests, local development).",
                         origin="the `INFRA_AWS_ENDPOINT` environment variable; unset means real AWS"),
    "emulator.endpoint": FieldDoc("The emulator's URL, for example `http://127.0.0.1:5000` (moto server).",
                                  "an http(s) URL", pattern=loader.ENDPOINT_RE,
                                  origin="the `INFRA_AWS_ENDPOINT` environment variable"),
}

ENVIRONMENT: dict[str, FieldDoc] = {
    "name": FieldDoc("Environment name: the stack name, the `<env>` in resource names and the state key "
                     "`<name>/terraform.tfstate`.",
                     "2-16 lowercase letters, digits or hyphens, starting with a letter, ending with a letter or "
                     "digit, no `--`; equal to the file name; "
                     f"not {', '.join(f'`{name}`' for name in loader.RESERVED_NAMES)}",
                     pattern=loader.NAME_RE),
    "source": _SOURCE,
    "production": FieldDoc("Marks a production environment: stricter rules apply (see below) and a `critical` "
                           "alarm topic is created."),
    "region": FieldDoc("AWS region of the environment (CloudFront-scoped resources are always in us-east-1).",
                       "an AWS region name", pattern=loader.REGION_RE),
    "account_id": FieldDoc("The environment's AWS account; when set, the provider refuses any other.", "12 digits",
                           pattern=loader.ACCOUNT_RE),
    "deploy_role_arn": FieldDoc(
        "The role every AWS provider of the environment's stack assumes (session name `<app>-<env>`). With `[ci]` "
        "it is the deploy role the bootstrap creates, `<app>-<env>-deploy`, and may be left out.",
        "a role ARN in this environment's `account_id` (so it needs `account_id`); with `[ci]` exactly the "
        "bootstrap's deploy role", pattern=loader.ROLE_ARN_RE),
    "application": FieldDoc("Application name.", "must equal `application` in `project.toml`",
                            pattern=loader.APPLICATION_RE),
    "owner": FieldDoc("`Owner` tag on every resource.", _TAG_RULE, pattern=loader.TAG_VALUE_RE),
    "cost_center": FieldDoc("`CostCenter` tag on every resource.", _TAG_RULE, pattern=loader.TAG_VALUE_RE),
    "domain": FieldDoc("The web app's domain (CloudFront); the API is served at `api.<domain>`.",
                       "a lowercase DNS name; unique across environments", pattern=loader.DOMAIN_RE),
    "alarm_emails": FieldDoc("Addresses subscribed to the alarm topics (each must confirm the subscription).",
                             "at least one, no repeats, each an e-mail address", pattern=loader.EMAIL_RE),
    "log_retention_days": FieldDoc("Retention of every log group of the environment.",
                                   "a retention CloudWatch Logs accepts", choices=loader.LOG_RETENTION_DAYS),
    "network": FieldDoc("The VPC."),
    "network.cidr": FieldDoc("VPC CIDR block; subnets are carved from it (public, application, data, one per zone).",
                             "an RFC 1918 IPv4 network with a prefix from /16 to /20; must not overlap any other "
                             "environment's", pattern=re.compile(r"^[\d./]+$")),
    "network.az_count": FieldDoc("Availability zones used (`<region>a`, `b`, `c`).", minimum=2, maximum=3),
    "network.nat_gateways": FieldDoc("`single`: one shared NAT gateway; `per_az`: one per zone.",
                                     choices=tuple(mode.value for mode in NatMode)),
    "database": FieldDoc("Aurora PostgreSQL Serverless v2."),
    "database.min_acu": FieldDoc("Minimum capacity (ACU).", "<= `database.max_acu`", minimum=0.5, maximum=256,
                                 step=0.5),
    "database.max_acu": FieldDoc("Maximum capacity (ACU).", minimum=1, maximum=256, step=0.5),
    "database.reader_count": FieldDoc("Reader instances besides the writer.", minimum=0, maximum=15),
    "database.backup_retention_days": FieldDoc("Automated backup (point-in-time recovery) retention.",
                                               minimum=7, maximum=35),
    "database.deletion_protection": FieldDoc(
        "Deletion protection on the cluster and the load balancer; also takes a final snapshot "
        "(`<app>-<env>-db-final`) when the cluster is deleted.", "must be true when `production = true`"),
    "database.secret_rotation_days": FieldDoc("Rotation period of the RDS-managed master secret.",
                                              minimum=1, maximum=365),
    "database.bootstrap_image": FieldDoc(
        "Image of the one-off database bootstrap task, which creates the API's database role `app` with the "
        "master credentials (it runs `psql`); unset: `public.ecr.aws/docker/library/postgres:16-alpine`.",
        "an image reference without spaces; pinned by digest when `production = true`", pattern=loader.IMAGE_RE),
    "database.restore_from_snapshot": FieldDoc(
        "A cluster snapshot (identifier or ARN) in the environment's region to create the cluster from, with every "
        "setting of the module; written by `python -m ops restore` (docs/runbooks.md, Restore Aurora). Setting or "
        "changing it replaces the cluster: the restored one is named `<app>-<env>-db-r<digest of the snapshot>` "
        "and created before the old one is deleted; unset: a new, empty cluster `<app>-<env>-db`.",
        "a cluster snapshot identifier or ARN; an ARN's region is the environment's", pattern=loader.SNAPSHOT_RE),
    "api": FieldDoc("The containerised API on ECS Fargate."),
    "api.cpu": FieldDoc("Task CPU units.", choices=tuple(loader.FARGATE_MEMORY)),
    "api.memory": FieldDoc("Task memory (MiB).", "a Fargate memory size for the chosen `api.cpu` (table below)"),
    "api.min_tasks": FieldDoc("Minimum running tasks (autoscaling floor, alarm threshold).",
                              "<= `api.max_tasks`", minimum=1, maximum=100),
    "api.max_tasks": FieldDoc("Maximum running tasks (autoscaling ceiling).", minimum=1, maximum=100),
    "api.fargate_spot": FieldDoc("Run tasks beyond the first on Fargate Spot.",
                                 "must be false when `production = true`"),
    "api.container_image": FieldDoc("Image to run; promote by digest (`...@sha256:...`) into the environment's "
                                    "ECR repository (README, \"Promoting an image\").",
                                    "an image reference without spaces; pinned by digest when `production = true`",
                                    pattern=loader.IMAGE_RE),
    "api.container_port": FieldDoc("Port the container listens on (target group, security groups, NACLs).",
                                   minimum=1024, maximum=65535),
    "api.exec_enabled": FieldDoc(
        "ECS Exec: an audited shell in running tasks (and its permissions in the task role). "
        "Unset: off where `production = true`, on elsewhere."),
    "api.certificate_arn": FieldDoc("Existing ACM certificate for `api.<domain>`; unset: one is requested.",
                                    "an ACM certificate ARN in the environment's region",
                                    pattern=loader.CERTIFICATE_RE),
    "cost": FieldDoc("Cost guardrails, scoped to the environment by its `Environment` cost-allocation tag "
                     "(activate it first: docs/deployment.md)."),
    "cost.budget_monthly_usd": FieldDoc("Monthly AWS Budgets cost budget (USD): alerts at 80% actual and 100% "
                                        "forecast spend to the warning topic and `alarm_emails`.",
                                        minimum=1, maximum=100_000),
    "cost.anomaly_threshold_usd": FieldDoc("Cost Anomaly Detection alerts (to the warning topic) on anomalies "
                                           "with a total impact of at least this many USD.",
                                           minimum=1, maximum=100_000),
    "features": FieldDoc("Optional parts of the stack."),
    "features.waf": FieldDoc("WAF web ACLs on CloudFront and the load balancer: a per-IP rate limit, AWS managed "
                             "rule groups (SQL injection too on the load balancer's), logs with `authorization` "
                             "and `cookie` redacted."),
    "features.waf_rate_limit": FieldDoc("With `features.waf`: requests one client IP may send in any 5 minutes "
                                        "before both web ACLs block it; unset: 2000.",
                                        minimum=loader.WAF_RATE_LIMITS[0], maximum=loader.WAF_RATE_LIMITS[1]),
    "features.vpc_interface_endpoints": FieldDoc("Interface endpoints for ECR, CloudWatch Logs, Secrets Manager and "
                                                 "KMS (the S3 gateway endpoint is always there)."),
    "features.tracing": FieldDoc(
        "OpenTelemetry traces of the API to AWS X-Ray: an ADOT collector sidecar, an X-Ray sampling rule "
        "(`tracing.sampling_rate`) and a trace widget on the API dashboard. Traces are encrypted with the CMK "
        "of the account baseline's `xray_encryption`."),
    "tracing": FieldDoc("X-Ray sampling of the API's traces (used when `features.tracing = true`)."),
    "tracing.sampling_rate": FieldDoc("Share of requests traced after the first one each second (the sampling "
                                      "rule's fixed rate).", minimum=0, maximum=1, step=0.01),
    "features.cache": FieldDoc("An ElastiCache Redis replication group in the data subnets, reachable from the API."),
    "hosted_zone_id": FieldDoc("Route 53 zone of `domain`: certificates are DNS-validated and alias records "
                               "created in it; unset: add the records yourself.", "a hosted zone id (`Z...`)",
                               pattern=loader.HOSTED_ZONE_RE),
    "frontend": FieldDoc("The single-page app's CloudFront settings."),
    "frontend.certificate_arn": FieldDoc("Existing ACM certificate for `domain`; unset: one is requested.",
                                         "an ACM certificate ARN in us-east-1 (CloudFront's region)",
                                         pattern=loader.CERTIFICATE_RE),
    "frontend.content_security_policy": FieldDoc(
        "The Content-Security-Policy header; unset: a strict same-origin policy that allows `api.<domain>`.",
        "one printable line with a `default-src` directive", pattern=loader.CSP_RE),
    "dr": FieldDoc("Disaster recovery in a second region: AWS Backup copies every recovery point of the database "
                   "there. Unset: backups stay in `region` (daily at 05:00 UTC).",
                   "required when `production = true`"),
    "dr.region": FieldDoc("The second region (its own backup vault and key).",
                          "an AWS region name, not `region`, in the same partition", pattern=loader.REGION_RE),
    "dr.backup_schedule": FieldDoc("When AWS Backup takes a recovery point (UTC); its interval is the recovery "
                                   "point objective for a lost region (docs/runbooks.md).",
                                   "`cron(minute hour day-of-month month day-of-week year)` with one minute value "
                                   "and `?` in exactly one day field (at most hourly); AWS Backup refuses `rate(...)`",
                                   pattern=loader.SCHEDULE_RE),
    "dr.copy_retention_days": FieldDoc("Days the copies in `dr.region` are kept.",
                                       minimum=loader.COPY_RETENTION_DAYS[0], maximum=loader.COPY_RETENTION_DAYS[1]),
    "dr.vault_lock": FieldDoc("Lock both backup vaults in compliance mode (after 3 days no one, root included, can "
                              "delete a recovery point before its retention ends or remove the lock).",
                              "must be true when `production = true`"),
    "dr.strategy": FieldDoc(
        "What runs in `dr.region` (AWS's DR whitepaper): `backup` (the default, backup and restore): the stack "
        "`<name>-dr` (state key `<name>-dr/terraform.tfstate`) is synthesized and validated with every change and "
        "deployed only when needed, its database created from `dr.restore_from_snapshot`; `standby` (warm "
        "standby): `<name>-dr` runs all the time, its database the secondary of an Aurora Global Database whose "
        "primary is this environment's cluster, its API at `dr.standby_min_tasks` until `python -m ops failover`.",
        choices=tuple(strategy.value for strategy in DrStrategy)),
    "dr.standby_cidr": FieldDoc(
        "VPC CIDR block of the DR-region stack's network. Unset (backup only): the environment's own "
        "`network.cidr` (the two networks are never connected).",
        "required when `dr.strategy = \"standby\"`; an RFC 1918 IPv4 network with a prefix from /16 to /20 that "
        "overlaps no environment's `network.cidr` and no other `dr.standby_cidr`", pattern=re.compile(r"^[\d./]+$")),
    "dr.standby_min_tasks": FieldDoc(
        "API tasks the standby runs before a failover (0 allowed: `python -m ops failover` starts them).",
        "required when, and only allowed when, `dr.strategy = \"standby\"`; <= `api.max_tasks`",
        minimum=0, maximum=100),
    "dr.restore_from_snapshot": FieldDoc(
        "A copied cluster snapshot (identifier or ARN) in `dr.region` that the DR-region stack's database is "
        "created from; written by `python -m ops restore <name> --region <dr.region> --write` (docs/runbooks.md, "
        "Region lost). `python -m ops deploy <name>-dr` refuses a backup stack without it.",
        "only with `dr.strategy = \"backup\"`; an ARN must be in `dr.region`", pattern=loader.SNAPSHOT_RE),
}

BASELINE: dict[str, FieldDoc] = {
    "region": FieldDoc("Region of this baseline: its stack `baseline-[<account_id>-]<region>` and state key "
                       "`<stack>/terraform.tfstate`.", "an AWS region name", pattern=loader.REGION_RE),
    "account_id": FieldDoc("The account this baseline is for; when set, the provider refuses any other. Unset: "
                           "the account of environments that name none.",
                           "12 digits; set on every baseline or on none", pattern=loader.ACCOUNT_RE),
    "config": FieldDoc("AWS Config: a recorder of every supported resource type, delivery to an encrypted bucket, "
                       "managed rules, and NON_COMPLIANT results to the baseline's warning topic."),
    "cloudtrail": FieldDoc("The account's multi-region CloudTrail with log file validation, to S3 and CloudWatch "
                           "Logs.", "true on at most one baseline per account"),
    "alarm_emails": FieldDoc("Addresses subscribed to the baseline's compliance warning topic.",
                             "at least one, no repeats, each an e-mail address", pattern=loader.EMAIL_RE),
    "log_retention_days": FieldDoc("Retention of the trail's log group.", "a retention CloudWatch Logs accepts",
                                   choices=loader.LOG_RETENTION_DAYS),
    "deploy_role_arn": FieldDoc("The role the baseline's provider assumes in its account.",
                                "a role ARN in this baseline's `account_id` (so it needs `account_id`)",
                                pattern=loader.ROLE_ARN_RE),
    "xray_encryption": FieldDoc("Encrypt every X-Ray trace of this account and region with a customer-managed "
                                "key made here (X-Ray's encryption setting exists once per account and region)."),
    "record_global_resources": FieldDoc(
        "Whether this region's recorder also records global resource types (IAM).",
        origin="set by the loader: true for the first baseline of each account with `config = true`, so "
               "global types are recorded in one region only"),
}

REFERENCE = {PROJECT_SCOPE: PROJECT, ENVIRONMENT_SCOPE: ENVIRONMENT, BASELINE_SCOPE: BASELINE}

# Rules that involve more than one field or file: (scope, fields, rule in words).
CROSS_FIELD_RULES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (ENVIRONMENT_SCOPE, ("name",), "`name` equals the file name: `qa.toml` holds `name = \"qa\"`"),
    (ENVIRONMENT_SCOPE, ("database.min_acu", "database.max_acu"), "`database.min_acu` <= `database.max_acu`"),
    (ENVIRONMENT_SCOPE, ("api.min_tasks", "api.max_tasks"), "`api.min_tasks` <= `api.max_tasks`"),
    (ENVIRONMENT_SCOPE, ("api.cpu", "api.memory"), "`api.memory` is a Fargate size for `api.cpu` (table below)"),
    (ENVIRONMENT_SCOPE, ("production", "api.fargate_spot"), "`production = true` requires `api.fargate_spot = false`"),
    (ENVIRONMENT_SCOPE, ("production", "database.deletion_protection"),
     "`production = true` requires `database.deletion_protection = true`"),
    (ENVIRONMENT_SCOPE, ("production", "api.container_image"),
     "`production = true` requires `api.container_image` pinned by digest (`<repository>@sha256:<64 hex>`)"),
    (ENVIRONMENT_SCOPE, ("production", "database.bootstrap_image"),
     "`production = true` requires `database.bootstrap_image` set and pinned by digest"),
    (ENVIRONMENT_SCOPE, ("production", "dr"), "`production = true` requires a `[dr]` table"),
    (ENVIRONMENT_SCOPE, ("production", "dr.vault_lock"), "`production = true` requires `dr.vault_lock = true`"),
    (ENVIRONMENT_SCOPE, ("dr.region", "region"), "`dr.region` differs from `region`, in the same AWS partition"),
    (ENVIRONMENT_SCOPE, ("api.certificate_arn", "region"), "`api.certificate_arn` is a certificate in `region`"),
    (ENVIRONMENT_SCOPE, ("application",), "every environment's `application` equals `project.toml`'s"),
    (ENVIRONMENT_SCOPE, ("domain",), "no two environments share a `domain`"),
    (ENVIRONMENT_SCOPE, ("network.cidr",), "no two environments' `network.cidr` overlap"),
    (PROJECT_SCOPE, ("ci", "state.account_id"), "`[ci]` requires `state.account_id` (plans reach the state only "
     "through read-only state roles) and `account_id` in every environment"),
    (PROJECT_SCOPE, ("partition",), "every role ARN in the configuration is in one partition"),
    (ENVIRONMENT_SCOPE, ("dr.standby_cidr", "network.cidr"), "no `dr.standby_cidr` overlaps any environment's "
     "`network.cidr` or another `dr.standby_cidr`"),
    (ENVIRONMENT_SCOPE, ("dr.standby_min_tasks", "api.max_tasks"), "`dr.standby_min_tasks` <= `api.max_tasks`"),
    (ENVIRONMENT_SCOPE, ("dr.strategy", "database.restore_from_snapshot"), "`dr.strategy = \"standby\"` excludes "
     "`database.restore_from_snapshot`: a restored cluster would replace the global database's primary"),
    (ENVIRONMENT_SCOPE, ("name", "dr"), "no environment is named `<other>-dr` when `<other>` has a `[dr]` table: "
     "that is the other's DR-region stack"),
    (BASELINE_SCOPE, ("region", "account_id"), "no two baselines share an account and `region`: AWS Config and "
     "CloudTrail exist once per account and region (environments without `account_id` share one account)"),
    (BASELINE_SCOPE, ("cloudtrail", "account_id"), "`cloudtrail = true` on at most one baseline per account: "
     "one multi-region trail covers the account"),
    (BASELINE_SCOPE, ("account_id",), "`account_id` on every baseline or on none: an unnamed account may be a "
     "named one"),
    (BASELINE_SCOPE, ("config", "cloudtrail", "xray_encryption"),
     "a baseline turns on at least one of `config`, `cloudtrail` and `xray_encryption`"),
)
