"""Typed, immutable configuration for the project and each environment.

Every value a stack uses comes from these objects; modules receive them (or props built from
them) and never read files or the process environment themselves. The loader in
`environments.loader` is the only way to build them from disk, so an instance is always valid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

# The state backend's stack; every other stack is one environment, named after it, or one
# account baseline (`baseline-...`, longer than the 16 characters an environment name may have).
BOOTSTRAP_STACK = "bootstrap"
BASELINE_STACK_PREFIX = "baseline-"


class NatMode(StrEnum):
    """How private application subnets reach the internet."""

    SINGLE = "single"
    PER_AZ = "per_az"


@dataclass(frozen=True)
class NetworkConfig:
    cidr: str
    az_count: int
    nat_gateways: NatMode

    def availability_zones(self, region: str) -> tuple[str, ...]:
        """Zones `<region>a`, `b`, `c` in order: named, so subnets never move when AWS adds one."""
        return tuple(f"{region}{letter}" for letter in "abc"[: self.az_count])


@dataclass(frozen=True)
class DatabaseConfig:
    min_acu: float
    max_acu: float
    reader_count: int
    backup_retention_days: int
    deletion_protection: bool
    secret_rotation_days: int
    # The image of the one-off bootstrap task that creates the application's database role (needs psql).
    bootstrap_image: str = "public.ecr.aws/docker/library/postgres:16-alpine"
    # A cluster snapshot (id or ARN) the cluster is created from: `python -m ops restore` writes it.
    restore_from_snapshot: str | None = None


@dataclass(frozen=True)
class ApiConfig:
    cpu: int
    memory: int
    min_tasks: int
    max_tasks: int
    fargate_spot: bool
    container_image: str
    container_port: int
    # ECS Exec (an audited shell in running tasks); the loader defaults it to off in production.
    exec_enabled: bool = False
    # An existing ACM certificate for api.<domain> in the environment's region; None creates one.
    certificate_arn: str | None = None


@dataclass(frozen=True)
class FeatureToggles:
    waf: bool
    vpc_interface_endpoints: bool
    cache: bool
    tracing: bool = False
    # With `waf`: requests one client IP may send in 5 minutes before it is blocked (both web ACLs).
    waf_rate_limit: int = 2000


@dataclass(frozen=True)
class TracingConfig:
    """X-Ray sampling of the API's OpenTelemetry traces (used when `features.tracing` is on)."""

    # Share of requests traced beyond the first each second (the X-Ray sampling rule's fixed rate).
    sampling_rate: float = 0.05


@dataclass(frozen=True)
class CostConfig:
    """Cost guardrails: a monthly budget and anomaly alerts, both scoped by the Environment tag."""

    budget_monthly_usd: int
    anomaly_threshold_usd: int


@dataclass(frozen=True)
class FrontendConfig:
    # An existing ACM certificate for <domain> in us-east-1 (CloudFront's region); None creates one.
    certificate_arn: str | None = None
    # The Content-Security-Policy header; None uses the strict same-origin default.
    content_security_policy: str | None = None


# AWS Backup's own default (daily at 05:00 UTC): the schedule of environments without a [dr] table.
DEFAULT_BACKUP_SCHEDULE = "cron(0 5 ? * * *)"
# The DR-region stack of environment <env> is `<env>-dr` (the loader keeps environment names off these).
DR_STACK_SUFFIX = "-dr"


class DrStrategy(StrEnum):
    """What runs in the DR region: AWS's "backup and restore" or its "warm standby" (DR whitepaper)."""

    # Backup copies only; the DR-region stack is deployed when needed, its database from the newest copy.
    BACKUP = "backup"
    # The DR-region stack runs all the time: a scaled-down API and the Aurora Global Database's secondary.
    STANDBY = "standby"


@dataclass(frozen=True)
class DisasterRecoveryConfig:
    """A second region that receives copies of the backups and of the site's files."""

    region: str
    # When AWS Backup takes a recovery point of the database: `cron(...)` (AWS Backup refuses `rate(...)`).
    backup_schedule: str
    # How long the copies in `region` are kept (days).
    copy_retention_days: int
    # Lock both backup vaults (compliance mode) so no one can delete a recovery point early.
    vault_lock: bool = False
    strategy: DrStrategy = DrStrategy.BACKUP
    # The DR-region network's CIDR; None (backup only): the environment's own CIDR, never peered with it.
    standby_cidr: str | None = None
    # API tasks the standby runs before a failover (standby only; a failover scales it to api.min_tasks).
    standby_min_tasks: int = 0
    # A cluster snapshot in `region` the DR-region database is created from (backup: `python -m ops restore`).
    restore_from_snapshot: str | None = None


@dataclass(frozen=True)
class EnvironmentConfig:
    """One deployable environment, loaded from `environments/<name>.toml`."""

    name: str
    source: str
    production: bool
    region: str
    account_id: str | None
    application: str
    owner: str
    cost_center: str
    domain: str
    alarm_emails: tuple[str, ...]
    log_retention_days: int
    network: NetworkConfig
    database: DatabaseConfig
    api: ApiConfig
    features: FeatureToggles
    cost: CostConfig
    # Route 53 zone of `domain`: certificates are DNS-validated and alias records created in it.
    hosted_zone_id: str | None = None
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    tracing: TracingConfig = field(default_factory=TracingConfig)
    # Disaster recovery in a second region; None keeps everything in `region`.
    dr: DisasterRecoveryConfig | None = None
    # The role every AWS provider of the stack assumes in `account_id`; None: the caller's own credentials.
    deploy_role_arn: str | None = None

    @property
    def backup_schedule(self) -> str:
        """When AWS Backup snapshots the database: the [dr] schedule, else AWS Backup's daily default."""
        return self.dr.backup_schedule if self.dr else DEFAULT_BACKUP_SCHEDULE

    @property
    def state_key(self) -> str:
        """Object key of this environment's Terraform state in the shared state bucket."""
        return f"{self.name}/terraform.tfstate"

    @property
    def dr_stack_name(self) -> str | None:
        """`<env>-dr`, the stack of this environment in its DR region; None without a [dr] table."""
        return f"{self.name}{DR_STACK_SUFFIX}" if self.dr else None

    @property
    def running_stacks(self) -> tuple[str, ...]:
        """The stacks of this environment that exist all the time (planned on pull requests, checked for drift,
        deployed on main): its own, and its DR-region stack where that is a standby; a backup strategy's
        DR-region stack is deployed only when the region is lost."""
        return (self.name, *([self.dr_stack_name] if self.standby else []))

    @property
    def dr_state_key(self) -> str | None:
        """The DR-region stack's own object key in the state bucket (a region lost must not lose its state)."""
        return f"{self.dr_stack_name}/terraform.tfstate" if self.dr else None

    @property
    def standby(self) -> bool:
        """A warm standby runs in the DR region, with the database's Aurora Global Database secondary."""
        return bool(self.dr and self.dr.strategy is DrStrategy.STANDBY)

    def resource_name(self, component: str) -> str:
        """`<app>-<env>-<component>`: the naming convention for every named resource."""
        return f"{self.application}-{self.name}-{component}"


@dataclass(frozen=True)
class StateBackendConfig:
    """Where every environment keeps its Terraform state (created by the bootstrap stack)."""

    region: str
    bucket: str
    lock_table: str
    kms_alias: str
    noncurrent_version_days: int
    # After the first deploy, the bootstrap's own state can move into the bucket it created.
    bootstrap_state_in_bucket: bool = False
    # A second region the state bucket replicates to (`<bucket>-replica`, its own key); None: no replica.
    replica_region: str | None = None
    # The account holding the state. Set, it turns on per-stack state isolation (bootstrap/access.py):
    # each stack reaches its own state only through its own role there, and the bucket and key admit
    # only those roles and `administrators`.
    account_id: str | None = None
    # Roles of the state account that keep full access to every state file (break glass, the bootstrap's deployers).
    administrators: tuple[str, ...] = ()

    @property
    def isolated(self) -> bool:
        return self.account_id is not None

    @property
    def bootstrap_key(self) -> str:
        """State key of the bootstrap stack once it lives in the bucket (no environment may be called that)."""
        return "bootstrap/terraform.tfstate"


# Environments that name no account_id share this one (the shipped files name none).
UNNAMED_ACCOUNT = "the account of environments without account_id"


@dataclass(frozen=True)
class BaselineConfig:
    """The once-per-account resources of one account and region (`[[baseline]]` in project.toml).

    AWS Config allows one configuration recorder per account and region, and one multi-region
    CloudTrail covers a whole account, yet environments may share an account. So these live in
    their own stack, one per account and region, never in an environment stack; the loader
    rejects two baselines for the same account and region, or two trails in one account.
    """

    region: str
    account_id: str | None
    config: bool
    cloudtrail: bool
    alarm_emails: tuple[str, ...]
    log_retention_days: int
    # X-Ray encrypts traces of the whole account and region with one key: a CMK made here.
    xray_encryption: bool = False
    # Global resource types (IAM) are recorded in one region per account only, or every region
    # would record them again: the first baseline of the account with config = true.
    record_global_resources: bool = False
    # The role the baseline's provider assumes in `account_id`; None: the caller's own credentials.
    deploy_role_arn: str | None = None

    @property
    def stack_name(self) -> str:
        """`baseline-<region>`, or `baseline-<account>-<region>`: longer than any environment name may be."""
        account = f"{self.account_id}-" if self.account_id else ""
        return f"{BASELINE_STACK_PREFIX}{account}{self.region}"

    @property
    def state_key(self) -> str:
        return f"{self.stack_name}/terraform.tfstate"

    @property
    def account_label(self) -> str:
        return f"account {self.account_id}" if self.account_id else UNNAMED_ACCOUNT


@dataclass(frozen=True)
class EmulatorConfig:
    """A local AWS endpoint (for example moto server) that replaces every AWS service URL."""

    endpoint: str


@dataclass(frozen=True)
class CiConfig:
    """GitHub Actions identities the bootstrap creates (`[ci]` in project.toml): OIDC-trusted roles per environment."""

    # `owner/name` of the one repository whose workflows may assume the roles.
    repository: str
    # The administrator role the bootstrap assumes in each environment account other than the state account
    # (AWS Organizations creates `OrganizationAccountAccessRole` in every account it creates).
    account_access_role: str = "OrganizationAccountAccessRole"


class Access(StrEnum):
    """Which identities a synthesis is for: deploying (read-write), or planning (read-only state, no locks)."""

    DEPLOY = "deploy"
    PLAN = "plan"


@dataclass(frozen=True)
class ProjectConfig:
    """Everything `main.py` synthesizes: shared settings plus every environment."""

    source: str
    application: str
    owner: str
    cost_center: str
    account_id: str | None
    state: StateBackendConfig
    environments: tuple[EnvironmentConfig, ...]
    emulator: EmulatorConfig | None = field(default=None)
    baselines: tuple[BaselineConfig, ...] = ()
    ci: CiConfig | None = None
    # The partition of every ARN in the configuration (the loader checks they agree).
    partition: str = "aws"
    access: Access = Access.DEPLOY

    @property
    def stack_names(self) -> tuple[str, ...]:
        """Every stack the app can synthesize, in synthesis order: bootstrap, account baselines, environments
        (each followed by its DR-region stack, where it has one)."""
        return (BOOTSTRAP_STACK, *(baseline.stack_name for baseline in self.baselines),
                *(name for env in self.environments for name in (env.name, env.dr_stack_name) if name))

    @property
    def state_keys(self) -> dict[str, str]:
        """State key of every stack kept in the state bucket, by stack name (the bootstrap's own is apart)."""
        return {**{baseline.stack_name: baseline.state_key for baseline in self.baselines},
                **{env.name: env.state_key for env in self.environments},
                **{env.dr_stack_name: env.dr_state_key for env in self.environments if env.dr}}

    def environment(self, name: str) -> EnvironmentConfig:
        for env in self.environments:
            if env.name == name:
                return env
        raise KeyError(name)

    def environment_of(self, stack_name: str) -> EnvironmentConfig:
        """The environment a stack belongs to: its own stack or its DR-region stack (`<env>-dr`)."""
        for env in self.environments:
            if stack_name in (env.name, env.dr_stack_name):
                return env
        raise KeyError(stack_name)
