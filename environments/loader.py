"""Load and validate `environments/*.toml` before anything is synthesized.

Each problem is reported as one `ConfigError` whose text names the file, the dotted field and the
rule that failed, for example::

    environments/dev.toml: database.min_acu: must be <= database.max_acu (4 > 2)

`project.toml` holds settings shared by all environments (the state backend); every other
`*.toml` file in the folder is one environment, so adding an environment means adding a file.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from environments.model import (
    BOOTSTRAP_STACK,
    DR_STACK_SUFFIX,
    Access,
    ApiConfig,
    BaselineConfig,
    CiConfig,
    CostConfig,
    DatabaseConfig,
    DisasterRecoveryConfig,
    DrStrategy,
    EmulatorConfig,
    EnvironmentConfig,
    FeatureToggles,
    FrontendConfig,
    NatMode,
    NetworkConfig,
    ProjectConfig,
    StateBackendConfig,
    TracingConfig,
)

PROJECT_FILE = "project.toml"
ENVIRONMENT_SUFFIX = ".toml"
# Suffixes of other configuration formats: such a file in environments/ is an environment someone
# meant to add, and silently ignoring it would leave that environment undeployed without a word.
FOREIGN_CONFIG_SUFFIXES = (".yaml", ".yml", ".json", ".jsonc", ".json5", ".ini", ".cfg", ".conf", ".hcl",
                           ".tfvars", ".properties", ".env", ".tml")

NAME_RE = re.compile(r"^(?!.*--)[a-z][a-z0-9-]{0,14}[a-z0-9]$")
APPLICATION_RE = re.compile(r"^(?!.*--)[a-z][a-z0-9-]{0,18}[a-z0-9]$")
# [0-9], not \d: in str patterns \d also matches other scripts' digits ("١٢٣..."), which AWS rejects.
REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]$")
ACCOUNT_RE = re.compile(r"^[0-9]{12}$")
# An IAM role ARN (IAM User Guide, "IAM identifiers"): partition, account, optional path, name of 1-64 characters.
ROLE_ARN_RE = re.compile(r"^arn:(aws[a-z-]*):iam::([0-9]{12}):role/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}$")
ROLE_ARN_RULE = "must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)"
ROLE_NAME_RE = re.compile(r"^[\w+=,.@-]{1,64}$")
# A GitHub repository, `owner/name` (GitHub's own limits: owner 39 characters, name 100).
REPOSITORY_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
TAG_VALUE_RE = re.compile(r"^[\w .:/=+\-@]{1,256}$")
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# 51 characters at most: the bootstrap adds "-access-logs" and S3 allows 63.
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,49}[a-z0-9]$")
TABLE_RE = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
KMS_ALIAS_RE = re.compile(r"^alias/(?!aws/)[A-Za-z0-9/_-]{1,250}$")
IMAGE_RE = re.compile(r"^\S{1,255}$")
# An image pinned by content: `<repository>[:<tag>]@sha256:<64 hex>` (the tag, if any, is ignored by the runtime).
DIGEST_PINNED_RE = re.compile(r"^[^\s@]+@sha256:[0-9a-f]{64}$")
HOSTED_ZONE_RE = re.compile(r"^Z[A-Z0-9]{1,31}$")
CERTIFICATE_RE = re.compile(r"^arn:aws[a-z-]*:acm:([a-z0-9-]+):[0-9]{12}:certificate/[0-9a-f-]{36}$")
# A cluster snapshot: its identifier (AWS Backup's are `awsbackup:job-...`, automated ones `rds:...`) or its ARN.
SNAPSHOT_ID_PATTERN = r"(?!.*--)(?!.*-$)[A-Za-z][A-Za-z0-9:-]{0,254}"
SNAPSHOT_RE = re.compile(rf"^((?!arn:){SNAPSHOT_ID_PATTERN}|arn:aws[a-z-]*:rds:[a-z0-9-]+:[0-9]{{12}}:cluster-snapshot:"
                         rf"{SNAPSHOT_ID_PATTERN})$")
SNAPSHOT_ARN_RE = re.compile(r"^arn:aws[a-z-]*:rds:([a-z0-9-]+):")
CSP_RE = re.compile(r"^(?=.*default-src )[ -~]{10,4096}$")
ENDPOINT_RE = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+(:[0-9]{1,5})?/?$")
# AWS Backup schedules: `cron(<6 fields>)` only, checked field by field below. The BackupRule API takes "a CRON
# expression" (AWS Backup API Reference, BackupRuleInput.ScheduleExpression); a `rate(...)` fails at deploy.
SCHEDULE_RE = re.compile(r"^cron\([^()]+\)$")
CRON_RULE = ("must be cron(minute hour day-of-month month day-of-week year) with a single minute and `?` in "
             "exactly one of the day fields")
ANY_TEXT_RE = re.compile(r".*", re.DOTALL)
RATE_RULE = "must be a cron(...) expression: AWS Backup refuses rate(...) schedules"
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# (low, high, names) of each cron field after the minute; names count from `low`.
CRON_FIELDS = ((0, 23, ()), (1, 31, ()), (1, 12, MONTHS), (1, 7, WEEKDAYS), (1970, 2199, ()))
# Special day-of-month (L, LW, 15W) and day-of-week (5L, 2#3) forms AWS cron expressions allow.
DAY_OF_MONTH_SPECIAL = re.compile(r"^(L|LW|([1-9]|[12][0-9]|3[01])W)$")
DAY_OF_WEEK_SPECIAL = re.compile(r"^([1-7]L|[1-7]#[1-5])$")
# Copies in the DR region: at least a week (as the primary's recovery points), at most ten years.
COPY_RETENTION_DAYS = (7, 3650)

# RFC 1918 blocks. Not `IPv4Network.is_private`: that also accepts loopback (127.0.0.0/8),
# link-local, 0.0.0.0/8, 198.18.0.0/15 and 240.0.0.0/4, which AWS VPCs reject or misroute.
PRIVATE_RANGES = tuple(ipaddress.IPv4Network(block) for block in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))

# Stack ids the app already uses: an environment with one of these names would collide with it
# (cdktf fails mid-synthesis with "There is already a Construct with name 'bootstrap'").
RESERVED_NAMES = (BOOTSTRAP_STACK,)
# Names end up in RDS identifiers, which AWS rejects with "--" or a trailing hyphen.
NAME_ENDING = ", ending with a letter or digit, with no two hyphens in a row"

# Requests per client IP in any 5-minute window before WAF blocks it. AWS accepts 10 to 2e9; below 100 one
# page load with its assets could trip it, above 100,000 (333 requests a second from one address) it protects nothing.
WAF_RATE_LIMITS = (100, 100_000)
DEFAULT_WAF_RATE_LIMIT = 2000

# CloudWatch Logs accepts only these retention periods.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096,
                      1827, 2192, 2557, 2922, 3288, 3653)

# Fargate task sizes: CPU units -> memory (MiB) values that AWS accepts for that CPU.
FARGATE_MEMORY = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
    8192: tuple(range(16384, 61441, 4096)),
    16384: tuple(range(32768, 122881, 8192)),
}


class ConfigError(Exception):
    """A user error in configuration: printed as one line, never as a traceback."""

    def __init__(self, file: str, field: str, rule: str):
        self.file, self.field, self.rule = file, field, rule
        super().__init__(f"{file}: {field}: {rule}" if field else f"{file}: {rule}")


class _Section:
    """A TOML table being read: every accessor validates and marks its key as known."""

    def __init__(self, data: dict[str, Any], file: str, prefix: str = ""):
        self._data, self._file, self._prefix = data, file, prefix
        self._seen: set[str] = set()
        self.present = True  # False for an optional table the file leaves out

    def path(self, key: str) -> str:
        return f"{self._prefix}{key}"

    def fail(self, key: str, rule: str) -> ConfigError:
        return ConfigError(self._file, self.path(key), rule)

    def _get(self, key: str, kind: type | tuple[type, ...], kind_name: str, optional: bool = False):
        self._seen.add(key)
        if key not in self._data:
            if optional:
                return None
            raise self.fail(key, "is required")
        value = self._data[key]
        # bool is a subclass of int: never accept true/false where a number is expected.
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self.fail(key, f"must be {kind_name}, got a boolean")
        if not isinstance(value, kind):
            raise self.fail(key, f"must be {kind_name}, got {type(value).__name__} {value!r}")
        return value

    def string(self, key: str, pattern: re.Pattern[str], rule: str, optional: bool = False):
        value = self._get(key, str, "a string", optional)
        # fullmatch, not match: `$` also matches before a trailing newline ("eu-west-1\n").
        if value is not None and not pattern.fullmatch(value):
            raise self.fail(key, f"{rule} (got {value!r})")
        return value

    def integer(self, key: str, low: int, high: int, default: int | None = None) -> int:
        value = self._get(key, int, "an integer", optional=default is not None)
        if value is None:
            return default
        if not low <= value <= high:
            raise self.fail(key, f"must be between {low} and {high} (got {value})")
        return value

    def number(self, key: str, low: float, high: float, step: float, default: float | None = None) -> float:
        found = self._get(key, (int, float), "a number", optional=default is not None)
        value = float(default if found is None else found)
        # round(): 0.07 / 0.01 is 7.000000000000001 in binary floating point.
        if not low <= value <= high or abs(value / step - round(value / step)) > 1e-9:
            raise self.fail(key, f"must be between {low:g} and {high:g} in steps of {step:g} "
                                 f"(got {value:g})")
        return value

    def boolean(self, key: str, default: bool | None = None) -> bool:
        value = self._get(key, bool, "true or false", optional=default is not None)
        return default if value is None else value

    def choice(self, key: str, options: tuple) -> Any:
        value = self._get(key, type(options[0]), f"one of {', '.join(map(str, options))}")
        if value not in options:
            raise self.fail(key, f"must be one of {', '.join(map(str, options))} (got {value!r})")
        return value

    def string_list(self, key: str, pattern: re.Pattern[str], rule: str) -> tuple[str, ...]:
        values = self._get(key, list, "a list of strings")
        if not values:
            raise self.fail(key, "must list at least one value")
        for index, value in enumerate(values):
            if not isinstance(value, str) or not pattern.fullmatch(value):
                raise ConfigError(self._file, f"{self.path(key)}[{index}]", f"{rule} (got {value!r})")
        if len(set(values)) != len(values):
            raise self.fail(key, "must not repeat a value")
        return tuple(values)

    def table(self, key: str, optional: bool = False) -> _Section:
        value = self._get(key, dict, "a table", optional)
        section = _Section(value or {}, self._file, f"{self.path(key)}.")
        section.present = value is not None
        return section

    def has(self, key: str) -> bool:
        return key in self._data

    def table_list(self, key: str, kind_name: str) -> list[_Section]:
        """An optional array of tables (`[[key]]`), each read as a section named `key[index]`."""
        sections = []
        for index, value in enumerate(self._get(key, list, f"a list of {kind_name} tables", optional=True) or []):
            if not isinstance(value, dict):
                raise ConfigError(self._file, f"{self.path(key)}[{index}]", f"must be a {kind_name} table")
            sections.append(_Section(value, self._file, f"{self.path(key)}[{index}]."))
        return sections

    def done(self) -> None:
        """Reject keys nobody asked for: a typo must not be silently ignored."""
        unknown = sorted(set(self._data) - self._seen)
        if unknown:
            raise self.fail(unknown[0], "is not a known setting")


def _read_toml(path: Path, label: str) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(label, "", f"is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        # TOML files must be UTF-8; tomllib raises this (not TOMLDecodeError) for other bytes.
        raise ConfigError(label, "", f"is not valid TOML: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(label, "", f"cannot be read: {exc.strerror}") from None


def _cidr(section: _Section, key: str, optional: bool = False) -> str | None:
    """A VPC's block: /16 to /20 (room for every tier's subnets in three zones), private (RFC 1918)."""
    cidr = section.string(key, re.compile(r"^[\d./]+$"), "must be an IPv4 CIDR block", optional=optional)
    if cidr is None:
        return None
    try:
        network = ipaddress.IPv4Network(cidr)
    except ValueError as exc:
        raise section.fail(key, f"must be an IPv4 network address ({exc})") from None
    if not 16 <= network.prefixlen <= 20:
        raise section.fail(key, f"prefix must be between /16 and /20 (got /{network.prefixlen})")
    if not any(network.subnet_of(block) for block in PRIVATE_RANGES):
        raise section.fail(key, f"must be a private (RFC 1918) range (got {cidr})")
    return str(network)


def _network(section: _Section) -> NetworkConfig:
    result = NetworkConfig(
        cidr=_cidr(section, "cidr"),
        az_count=section.integer("az_count", 2, 3),
        nat_gateways=NatMode(section.choice("nat_gateways", tuple(m.value for m in NatMode))),
    )
    section.done()
    return result


def _database(section: _Section) -> DatabaseConfig:
    image = section.string("bootstrap_image", IMAGE_RE, "must be an image reference without spaces", optional=True)
    snapshot = section.string("restore_from_snapshot", SNAPSHOT_RE,
                              "must be a cluster snapshot identifier or a cluster snapshot ARN", optional=True)
    result = DatabaseConfig(
        min_acu=section.number("min_acu", 0.5, 256, 0.5),
        max_acu=section.number("max_acu", 1, 256, 0.5),
        reader_count=section.integer("reader_count", 0, 15),
        backup_retention_days=section.integer("backup_retention_days", 7, 35),
        deletion_protection=section.boolean("deletion_protection"),
        secret_rotation_days=section.integer("secret_rotation_days", 1, 365),
        **({"bootstrap_image": image} if image else {}),
        restore_from_snapshot=snapshot,
    )
    if result.min_acu > result.max_acu:
        raise section.fail("min_acu", f"must be <= {section.path('max_acu')} "
                                      f"({result.min_acu:g} > {result.max_acu:g})")
    section.done()
    return result


def _api(section: _Section, production: bool) -> ApiConfig:
    cpu = section.choice("cpu", tuple(FARGATE_MEMORY))
    memory = section.integer("memory", 512, 122880)
    if memory not in FARGATE_MEMORY[cpu]:
        allowed = FARGATE_MEMORY[cpu]
        raise section.fail("memory", f"is not a Fargate size for cpu {cpu}: use {allowed[0]}..{allowed[-1]} "
                                     f"in the documented steps (got {memory})")
    result = ApiConfig(
        cpu=cpu,
        memory=memory,
        min_tasks=section.integer("min_tasks", 1, 100),
        max_tasks=section.integer("max_tasks", 1, 100),
        fargate_spot=section.boolean("fargate_spot"),
        container_image=section.string("container_image", IMAGE_RE, "must be an image reference without spaces"),
        container_port=section.integer("container_port", 1024, 65535),
        certificate_arn=_certificate(section, "certificate_arn", None),
        # An interactive shell in production is an exception someone turns on, not a default.
        exec_enabled=section.boolean("exec_enabled", default=not production),
    )
    if result.min_tasks > result.max_tasks:
        raise section.fail("min_tasks", f"must be <= {section.path('max_tasks')} "
                                        f"({result.min_tasks} > {result.max_tasks})")
    section.done()
    return result


def _certificate(section: _Section, key: str, region: str | None) -> str | None:
    """An ACM certificate ARN; `region`, when given, is where it must live (CloudFront: us-east-1)."""
    arn = section.string(key, CERTIFICATE_RE, "must be an ACM certificate ARN", optional=True)
    if arn and region and CERTIFICATE_RE.fullmatch(arn).group(1) != region:
        raise section.fail(key, f"must be a certificate in {region} (got {arn})")
    return arn


def _frontend(section: _Section) -> FrontendConfig:
    result = FrontendConfig(
        certificate_arn=_certificate(section, "certificate_arn", "us-east-1"),
        content_security_policy=section.string(
            "content_security_policy", CSP_RE, "must be one printable line with a default-src directive",
            optional=True),
    )
    section.done()
    return result


# Settings that exist once per account and region, so no environment may own them.
ACCOUNT_LEVEL_FEATURES = ("cloudtrail", "config")


def _features(section: _Section) -> FeatureToggles:
    for key in ACCOUNT_LEVEL_FEATURES:
        if section.has(key):
            raise section.fail(key, f"is set once per account and region: use {key} in a [[baseline]] of "
                                    f"{PROJECT_FILE} (environments may share an account)")
    result = FeatureToggles(
        waf=section.boolean("waf"),
        waf_rate_limit=section.integer("waf_rate_limit", *WAF_RATE_LIMITS, default=DEFAULT_WAF_RATE_LIMIT),
        vpc_interface_endpoints=section.boolean("vpc_interface_endpoints"),
        cache=section.boolean("cache"),
        tracing=section.boolean("tracing", default=False),
    )
    section.done()
    return result


def _tracing(section: _Section) -> TracingConfig:
    result = TracingConfig(
        sampling_rate=section.number("sampling_rate", 0, 1, 0.01, default=TracingConfig.sampling_rate))
    section.done()
    return result


def _cost(section: _Section) -> CostConfig:
    result = CostConfig(
        budget_monthly_usd=section.integer("budget_monthly_usd", 1, 100_000),
        anomaly_threshold_usd=section.integer("anomaly_threshold_usd", 1, 100_000),
    )
    section.done()
    return result


def _cron_value(text: str, low: int, high: int, names: tuple[str, ...]) -> bool:
    if text.isdigit():
        return low <= int(text) <= high
    return text.upper() in names


def _cron_field(text: str, low: int, high: int, names: tuple[str, ...]) -> bool:
    """One field of an AWS cron expression: `*`, values, ranges `a-b`, steps `*/n` or `a/n`, lists."""
    for item in text.split(","):
        base, _, step = item.partition("/")
        if step and not (step.isdigit() and 0 < int(step) <= high):
            return False
        if base == "*":
            continue
        first, _, last = base.partition("-")
        if not _cron_value(first, low, high, names) or (last and not _cron_value(last, low, high, names)):
            return False
    return True


def valid_schedule(expression: str) -> bool:
    """An AWS Backup schedule: at most hourly (one minute value), day fields per AWS's `?` rule."""
    if not SCHEDULE_RE.fullmatch(expression):
        return False
    fields = expression[5:-1].split()
    if len(fields) != 6 or not fields[0].isdigit() or int(fields[0]) > 59:
        return False
    hour, day_of_month, month, day_of_week, year = fields[1:]
    if (day_of_month == "?") == (day_of_week == "?"):
        return False
    checks = zip((hour, day_of_month, month, day_of_week, year), CRON_FIELDS, strict=True)
    for index, (text, (low, high, names)) in enumerate(checks):
        if text == "?" or (index == 1 and DAY_OF_MONTH_SPECIAL.fullmatch(text)) or (
                index == 3 and DAY_OF_WEEK_SPECIAL.fullmatch(text)):
            continue
        if not _cron_field(text, low, high, names):
            return False
    return True


def _partition(region: str) -> str:
    """The AWS partition of a region name: replication and backup copies never cross partitions."""
    if "-gov-" in region:
        return "aws-us-gov"
    if "-iso" in region:
        return "aws-iso"
    return "aws-cn" if region.startswith("cn-") else "aws"


def _second_region(section: _Section, key: str, region: str, primary: str, optional: bool = False) -> str | None:
    """A region for copies of what lives in `region` (the setting `primary`): another one, same partition."""
    second = section.string(key, REGION_RE, "must be an AWS region such as eu-central-1", optional=optional)
    if second is None:
        return None
    if second == region:
        raise section.fail(key, f"must differ from {primary} ({region})")
    if _partition(second) != _partition(region):
        raise section.fail(key, f"must be in the same AWS partition as {region} (got {second})")
    return second


def _dr(section: _Section, region: str) -> DisasterRecoveryConfig | None:
    if not section.present:
        return None
    dr_region = _second_region(section, "region", region, "region")
    # Any string first, so a rate(...) gets its own rule rather than the cron one.
    schedule = section.string("backup_schedule", ANY_TEXT_RE, CRON_RULE)
    if schedule.strip().startswith("rate("):
        raise section.fail("backup_schedule", f"{RATE_RULE} (got {schedule!r})")
    if not valid_schedule(schedule):
        raise section.fail("backup_schedule", f"{CRON_RULE} (got {schedule!r})")
    strategy = DrStrategy(section.choice("strategy", tuple(s.value for s in DrStrategy))
                          if section.has("strategy") else DrStrategy.BACKUP)
    result = DisasterRecoveryConfig(
        region=dr_region,
        backup_schedule=schedule,
        copy_retention_days=section.integer("copy_retention_days", *COPY_RETENTION_DAYS),
        vault_lock=section.boolean("vault_lock", default=False),
        strategy=strategy,
        standby_cidr=_cidr(section, "standby_cidr", optional=strategy is DrStrategy.BACKUP),
        standby_min_tasks=_standby_min_tasks(section, strategy),
        restore_from_snapshot=_dr_snapshot(section, strategy),
    )
    section.done()
    return result


def _role_in_account(section: _Section, key: str, account_id: str | None) -> str | None:
    """An optional role ARN that must live in the account the same table names (so it needs `account_id`)."""
    arn = section.string(key, ROLE_ARN_RE, ROLE_ARN_RULE, optional=True)
    if arn is None:
        return None
    if account_id is None:
        raise section.fail(key, "needs account_id in the same table: a role is assumed in a known account")
    found = ROLE_ARN_RE.fullmatch(arn).group(2)
    if found != account_id:
        raise section.fail(key, f"must be a role in account_id {account_id} (got one in {found})")
    return arn


def _standby_min_tasks(section: _Section, strategy: DrStrategy) -> int:
    """Required by a standby (0 allowed: a failover starts the tasks); meaningless without one."""
    if strategy is DrStrategy.STANDBY:
        return section.integer("standby_min_tasks", 0, 100)
    if section.has("standby_min_tasks"):
        section.integer("standby_min_tasks", 0, 100)  # a number out of range is told as such first
        raise section.fail("standby_min_tasks", 'is only allowed with strategy = "standby" (a backup DR stack '
                                                "runs api.min_tasks once deployed)")
    return 0


def _dr_snapshot(section: _Section, strategy: DrStrategy) -> str | None:
    """The copied recovery point a backup DR stack's database starts from; a standby replicates instead."""
    snapshot = section.string("restore_from_snapshot", SNAPSHOT_RE,
                              "must be a cluster snapshot identifier or a cluster snapshot ARN", optional=True)
    if snapshot is not None and strategy is DrStrategy.STANDBY:
        raise section.fail("restore_from_snapshot", 'is only allowed with strategy = "backup" (a standby\'s '
                                                    "database is the global database's secondary)")
    return snapshot


def _tag_fields(section: _Section) -> tuple[str, str, str, str | None]:
    return (
        section.string("application", APPLICATION_RE,
                       f"must be 2-20 lowercase letters, digits or hyphens, starting with a letter{NAME_ENDING}"),
        section.string("owner", TAG_VALUE_RE, "must be a valid AWS tag value"),
        section.string("cost_center", TAG_VALUE_RE, "must be a valid AWS tag value"),
        section.string("account_id", ACCOUNT_RE, "must be a 12-digit AWS account id", optional=True),
    )


def load_environment(path: Path, label: str) -> EnvironmentConfig:
    """Parse one environment file; `label` is how the file is named in error messages."""
    section = _Section(_read_toml(path, label), label)
    name = section.string("name", NAME_RE,
                          f"must be 2-16 lowercase letters, digits or hyphens, starting with a letter{NAME_ENDING}")
    if name != path.stem:
        raise section.fail("name", f"must match the file name {path.stem!r} (got {name!r})")
    if name in RESERVED_NAMES:
        raise section.fail("name", f"must not be one of {', '.join(RESERVED_NAMES)}: that stack already exists")
    production = section.boolean("production")
    region = section.string("region", REGION_RE, "must be an AWS region such as eu-west-1")
    application, owner, cost_center, account_id = _tag_fields(section)
    env = EnvironmentConfig(
        name=name,
        source=label,
        production=production,
        region=region,
        account_id=account_id,
        application=application,
        owner=owner,
        cost_center=cost_center,
        domain=section.string("domain", DOMAIN_RE, "must be a lowercase DNS name such as app.example.com"),
        alarm_emails=section.string_list("alarm_emails", EMAIL_RE, "must be an e-mail address"),
        log_retention_days=section.choice("log_retention_days", LOG_RETENTION_DAYS),
        network=_network(section.table("network")),
        database=_database(section.table("database")),
        api=_api(section.table("api"), production),
        features=_features(section.table("features")),
        cost=_cost(section.table("cost")),
        hosted_zone_id=section.string("hosted_zone_id", HOSTED_ZONE_RE, "must be a Route 53 hosted zone id",
                                      optional=True),
        frontend=_frontend(section.table("frontend", optional=True)),
        tracing=_tracing(section.table("tracing", optional=True)),
        dr=_dr(section.table("dr", optional=True), region),
        deploy_role_arn=_role_in_account(section, "deploy_role_arn", account_id),
    )
    section.done()
    _check_production_rules(env, section)
    _check_api_certificate_region(env, section)
    _check_snapshot_region(env, section)
    _check_standby(env, section)
    return env


def _check_standby(env: EnvironmentConfig, section: _Section) -> None:
    """A standby is a scaled-down copy of the API, and its database is the primary's global secondary."""
    if not env.dr:
        return
    found = SNAPSHOT_ARN_RE.match(env.dr.restore_from_snapshot or "")
    if found and found.group(1) != env.dr.region:
        raise section.fail("dr.restore_from_snapshot",
                           f"must be a snapshot in {env.dr.region} (got one in {found.group(1)})")
    if not env.standby:
        return
    if env.dr.standby_min_tasks > env.api.max_tasks:
        raise section.fail("dr.standby_min_tasks", f"must be <= api.max_tasks "
                                                   f"({env.dr.standby_min_tasks} > {env.api.max_tasks})")
    if env.database.restore_from_snapshot:
        raise section.fail("database.restore_from_snapshot",
                           'must not be set with dr.strategy = "standby": a restored cluster would replace the '
                           "global database's primary (docs/runbooks.md, Region lost and Restore Aurora)")


def _check_api_certificate_region(env: EnvironmentConfig, section: _Section) -> None:
    """The load balancer can only use a certificate from its own region."""
    arn = env.api.certificate_arn
    if arn and CERTIFICATE_RE.fullmatch(arn).group(1) != env.region:
        raise section.fail("api.certificate_arn", f"must be a certificate in {env.region} (got {arn})")


def _check_snapshot_region(env: EnvironmentConfig, section: _Section) -> None:
    """RDS restores a cluster only from a snapshot in its own region (a copy brings one there)."""
    found = SNAPSHOT_ARN_RE.match(env.database.restore_from_snapshot or "")
    if found and found.group(1) != env.region:
        raise section.fail("database.restore_from_snapshot",
                           f"must be a snapshot in {env.region} (got one in {found.group(1)})")


def _check_production_rules(env: EnvironmentConfig, section: _Section) -> None:
    """Production must survive a bad day: no Spot interruptions, no accidental deletion, a lost region.

    And it runs exactly the bytes that were tested: a tag can be moved to other content (public tags are
    moved all the time), a digest cannot.
    """
    if not env.production:
        return
    if env.api.fargate_spot:
        raise section.fail("api.fargate_spot", "must be false when production = true")
    if not env.database.deletion_protection:
        raise section.fail("database.deletion_protection", "must be true when production = true")
    for field, image in (("api.container_image", env.api.container_image),
                         ("database.bootstrap_image", env.database.bootstrap_image)):
        if not DIGEST_PINNED_RE.fullmatch(image):
            raise section.fail(field, f"must be pinned by digest (<repository>@sha256:<64 hex digits>) when "
                                      f"production = true (got {image!r})")
    if env.dr is None:
        raise section.fail("dr", "must be set when production = true (a second region for backups and the site)")
    if not env.dr.vault_lock:
        raise section.fail("dr.vault_lock", "must be true when production = true")


def _state(section: _Section) -> StateBackendConfig:
    region = section.string("region", REGION_RE, "must be an AWS region such as eu-west-1")
    result = StateBackendConfig(
        region=region,
        bucket=section.string("bucket", BUCKET_RE, "must be a valid S3 bucket name of 3-51 lowercase "
                                                   "letters, digits or hyphens"),
        lock_table=section.string("lock_table", TABLE_RE, "must be a valid DynamoDB table name"),
        kms_alias=section.string("kms_alias", KMS_ALIAS_RE, "must look like alias/<name> (not alias/aws/...)"),
        noncurrent_version_days=section.integer("noncurrent_version_days", 1, 3650),
        bootstrap_state_in_bucket=section.boolean("bootstrap_state_in_bucket", default=False),
        replica_region=_second_region(section, "replica_region", region, "state.region", optional=True),
        account_id=section.string("account_id", ACCOUNT_RE, "must be a 12-digit AWS account id", optional=True),
        administrators=_administrators(section),
    )
    section.done()
    if result.account_id and not result.administrators:
        raise section.fail("administrators", "is required with account_id: the state bucket and key admit only "
                                             "the stacks' state roles and these roles")
    for index, arn in enumerate(result.administrators):
        if not result.account_id:
            raise section.fail("administrators", "needs account_id: administrators are roles of the state account")
        if ROLE_ARN_RE.fullmatch(arn).group(2) != result.account_id:
            raise section.fail(f"administrators[{index}]", f"must be a role in the state account "
                                                           f"{result.account_id} (got {arn})")
    return result


def _administrators(section: _Section) -> tuple[str, ...]:
    return section.string_list("administrators", ROLE_ARN_RE, ROLE_ARN_RULE) if section.has("administrators") else ()


def _baseline(section: _Section) -> BaselineConfig:
    result = BaselineConfig(
        region=section.string("region", REGION_RE, "must be an AWS region such as eu-west-1"),
        account_id=section.string("account_id", ACCOUNT_RE, "must be a 12-digit AWS account id", optional=True),
        config=section.boolean("config"),
        cloudtrail=section.boolean("cloudtrail"),
        alarm_emails=section.string_list("alarm_emails", EMAIL_RE, "must be an e-mail address"),
        log_retention_days=section.choice("log_retention_days", LOG_RETENTION_DAYS),
        xray_encryption=section.boolean("xray_encryption", default=False),
    )
    result = replace(result, deploy_role_arn=_role_in_account(section, "deploy_role_arn", result.account_id))
    section.done()
    if not (result.config or result.cloudtrail or result.xray_encryption):
        raise section.fail("config", "must be true when cloudtrail and xray_encryption are false: the baseline "
                                     "would have nothing to deploy (remove it instead)")
    return result


def _baselines(section: _Section, file: str) -> tuple[BaselineConfig, ...]:
    """`[[baseline]]` tables: one per account and region, checked so no once-per-account resource repeats."""
    baselines = [_baseline(table) for table in section.table_list("baseline", "[[baseline]]")]
    _check_baselines(file, baselines)
    return _mark_global_recording(baselines)


def _check_baselines(file: str, baselines: list[BaselineConfig]) -> None:
    """Once-per-account resources never twice: one baseline per account and region, one trail per account."""
    named = [baseline.account_id is not None for baseline in baselines]
    if any(named) and not all(named):
        index = named.index(False)
        raise ConfigError(file, f"baseline[{index}].account_id", "is required when another baseline names "
                                "its account: an unnamed account may be that same account")
    for index, baseline in enumerate(baselines):
        for other_index, other in enumerate(baselines[:index]):
            if other.account_id != baseline.account_id:
                continue
            if other.region == baseline.region:
                raise ConfigError(file, f"baseline[{index}].region", (
                    f"must not repeat baseline[{other_index}] ({baseline.region}, {baseline.account_label}): "
                    "AWS Config and CloudTrail exist once per account and region"))
            if other.cloudtrail and baseline.cloudtrail:
                raise ConfigError(file, f"baseline[{index}].cloudtrail", (
                    f"must be false: baseline[{other_index}] already has the multi-region trail of "
                    f"{baseline.account_label}, and one per account is enough"))


def _mark_global_recording(baselines: list[BaselineConfig]) -> tuple[BaselineConfig, ...]:
    """The first baseline of each account that records configuration also records global types (IAM)."""
    recorded: set[str | None] = set()
    result = []
    for baseline in baselines:
        first = baseline.config and baseline.account_id not in recorded
        if first:
            recorded.add(baseline.account_id)
        result.append(replace(baseline, record_global_resources=first))
    return tuple(result)


def _check_across(project_label: str, application: str, envs: list[EnvironmentConfig]) -> None:
    """Rules that no single file can check: isolation between environments."""
    seen_domains: dict[str, str] = {}
    for index, env in enumerate(envs):
        if env.application != application:
            raise ConfigError(env.source, "application",
                              f"must equal application in {project_label} ({application!r})")
        if env.domain in seen_domains:
            raise ConfigError(env.source, "domain",
                              f"must differ from every other environment (also used by {seen_domains[env.domain]})")
        seen_domains[env.domain] = env.source
        mine = ipaddress.IPv4Network(env.network.cidr)
        for other in envs[:index]:
            if mine.overlaps(ipaddress.IPv4Network(other.network.cidr)):
                raise ConfigError(env.source, "network.cidr",
                                  f"must not overlap other environments ({mine} overlaps "
                                  f"{other.network.cidr} in {other.source})")
    _check_standby_networks(envs)
    _check_dr_stack_names(envs)


def _blocks(envs: list[EnvironmentConfig]) -> list[tuple[str, str, str]]:
    """(source, field, CIDR) of every VPC: each environment's network and each standby's."""
    blocks = [(env.source, "network.cidr", env.network.cidr) for env in envs]
    return blocks + [(env.source, "dr.standby_cidr", env.dr.standby_cidr) for env in envs
                     if env.dr and env.dr.standby_cidr]


def _check_standby_networks(envs: list[EnvironmentConfig]) -> None:
    """A standby's VPC overlaps no environment's and no other standby's: failover must not need readdressing,
    and any later peering or Transit Gateway route (SPEC isolation) stays possible."""
    blocks = _blocks(envs)
    for source, field, cidr in blocks[len(envs):]:
        mine = ipaddress.IPv4Network(cidr)
        for other_source, other_field, other_cidr in blocks:
            if (other_source, other_field) != (source, field) and mine.overlaps(ipaddress.IPv4Network(other_cidr)):
                raise ConfigError(source, field, f"must not overlap any environment's or standby's network "
                                                 f"({mine} overlaps {other_field} {other_cidr} in {other_source})")


def _check_dr_stack_names(envs: list[EnvironmentConfig]) -> None:
    """`<env>-dr` is the DR-region stack of <env>: no environment may carry that name too."""
    dr_stacks = {env.dr_stack_name: env.source for env in envs if env.dr}
    for env in envs:
        if env.name in dr_stacks:
            raise ConfigError(env.source, "name", f"must not be {env.name!r}: that is the DR-region stack of "
                                                  f"{dr_stacks[env.name]} (names ending in {DR_STACK_SUFFIX} "
                                                  "are taken by [dr] tables)")


def parse_access(value: str | None) -> Access:
    """INFRA_ACCESS: which identities to synthesize for (unset: deploying)."""
    try:
        return Access(value or Access.DEPLOY)
    except ValueError:
        raise ConfigError("INFRA_ACCESS", "", f"must be one of {', '.join(Access)} (got {value!r})") from None


def _emulator(endpoint: str | None) -> EmulatorConfig | None:
    if not endpoint:
        return None
    if not ENDPOINT_RE.fullmatch(endpoint):
        raise ConfigError("INFRA_AWS_ENDPOINT", "", f"must be an http(s) URL such as http://127.0.0.1:5000 "
                                                    f"(got {endpoint!r})")
    return EmulatorConfig(endpoint=endpoint.rstrip("/"))


def _looks_like_foreign_config(path: Path) -> bool:
    """Another format's configuration file, or a TOML file whose suffix is not exactly `.toml` (QA.TOML)."""
    suffix = path.suffix.lower()
    return path.is_file() and (suffix in FOREIGN_CONFIG_SUFFIXES
                               or (suffix == ENVIRONMENT_SUFFIX and path.suffix != ENVIRONMENT_SUFFIX))


def _reject_foreign_config_files(directory: Path, label: Callable[[Path], str]) -> None:
    """An environment written in another format (qa.yaml, qa.json) is an error, not silently skipped."""
    for path in sorted(directory.iterdir()):
        if _looks_like_foreign_config(path):
            raise ConfigError(label(path), "", f"is not an environment file: environments are TOML files named "
                                               f"<name>{ENVIRONMENT_SUFFIX} (convert it to "
                                               f"{path.stem.lower()}{ENVIRONMENT_SUFFIX}, or move it out of "
                                               f"{directory.name}/)")


def _ci(section: _Section) -> CiConfig | None:
    if not section.present:
        return None
    access_role = section.string("account_access_role", ROLE_NAME_RE, "must be an IAM role name", optional=True)
    result = CiConfig(
        repository=section.string("repository", REPOSITORY_RE, "must be a GitHub repository as owner/name"),
        account_access_role=access_role or CiConfig.account_access_role,
    )
    section.done()
    return result


def _configured_arns(state: StateBackendConfig, baselines, envs) -> list[tuple[str, str, str]]:
    """(file label, field, ARN) of every role ARN in the configuration."""
    found = [("", f"state.administrators[{index}]", arn) for index, arn in enumerate(state.administrators)]
    found += [("", f"baseline[{index}].deploy_role_arn", baseline.deploy_role_arn)
              for index, baseline in enumerate(baselines) if baseline.deploy_role_arn]
    found += [(env.source, "deploy_role_arn", env.deploy_role_arn) for env in envs if env.deploy_role_arn]
    return found


def _arn_partition(project_label: str, state: StateBackendConfig, baselines, envs) -> str:
    """Every ARN in one partition: a role in aws-cn cannot be assumed from aws, nor state kept across them."""
    partition = None
    for file, field, arn in _configured_arns(state, baselines, envs):
        found = ROLE_ARN_RE.fullmatch(arn).group(1)
        if partition is None:
            partition = found
        elif found != partition:
            raise ConfigError(file or project_label, field, f"must be in the partition of the other role ARNs "
                                                            f"({partition}), got {found}")
    return partition or "aws"


def _with_ci_roles(project_label: str, ci: CiConfig | None, state: StateBackendConfig, application: str,
                   partition: str, envs: list[EnvironmentConfig]) -> list[EnvironmentConfig]:
    """With `[ci]`, each environment is deployed as the deploy role the bootstrap creates in its account."""
    if ci is None:
        return envs
    if not state.account_id:
        raise ConfigError(project_label, "ci", "needs state.account_id: CI plans reach the state only through "
                                               "read-only state roles")
    result = []
    for env in envs:
        if env.account_id is None:
            raise ConfigError(env.source, "account_id", "is required with [ci] in "
                                                        f"{project_label}: the bootstrap creates this environment's "
                                                        "CI roles in its account")
        expected = f"arn:{partition}:iam::{env.account_id}:role/{application}-{env.name}-deploy"
        if env.deploy_role_arn not in (None, expected):
            raise ConfigError(env.source, "deploy_role_arn", f"must be {expected} with [ci] (the deploy role the "
                                                             f"bootstrap creates), or left out")
        result.append(replace(env, deploy_role_arn=expected))
    return result


def load_project(directory: Path, emulator_endpoint: str | None = None,
                 access: Access = Access.DEPLOY) -> ProjectConfig:
    """Load `project.toml` and every environment file in `directory`, validating all of it.

    File names in errors are shown relative to the folder's parent (`environments/dev.toml`),
    so messages are the same on every machine.
    """
    directory = Path(directory)

    def label(path: Path) -> str:
        return f"{directory.name}/{path.name}"

    project_path = directory / PROJECT_FILE
    project_label = label(project_path)
    section = _Section(_read_toml(project_path, project_label), project_label)
    application, owner, cost_center, account_id = _tag_fields(section)
    state = _state(section.table("state"))
    baselines = _baselines(section, project_label)
    ci = _ci(section.table("ci", optional=True))
    section.done()
    _reject_foreign_config_files(directory, label)
    env_paths = sorted(p for p in directory.glob(f"*{ENVIRONMENT_SUFFIX}") if p.name != PROJECT_FILE)
    if not env_paths:
        raise ConfigError(str(directory.name), "", "holds no environment file (<name>.toml)")
    envs = [load_environment(path, label(path)) for path in env_paths]
    _check_across(project_label, application, envs)
    partition = _arn_partition(project_label, state, baselines, envs)
    envs = _with_ci_roles(project_label, ci, state, application, partition, envs)
    return ProjectConfig(
        source=project_label,
        application=application,
        owner=owner,
        cost_center=cost_center,
        account_id=account_id,
        state=state,
        environments=tuple(envs),
        emulator=_emulator(emulator_endpoint),
        baselines=baselines,
        ci=ci,
        partition=partition,
        access=access,
    )
