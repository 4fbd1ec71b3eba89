"""Hypothesis strategies for VALID raw configurations, and a writer that puts them on disk.

A raw configuration is what a user writes: one `project.toml` document plus one document per
environment, as plain dicts. Every value drawn here is valid according to SPEC section 2 and the
AWS limits it relies on. The limits are written out in this module on purpose, independently of
`environments/loader.py`, so a wrong table in the loader cannot make its own tests pass.

Typical use::

    @given(configurations())
    def test_something(config):
        with config_directory(config) as directory:
            project = load_project(directory)

Strategies accept keyword arguments that pin a value (`environment_documents(production=True)`),
so tier-specific property tests can fix what they care about and let the rest vary.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import re
import string
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from hypothesis import strategies as st

PROJECT_FILE = "project.toml"
# load_project names files relative to the folder's parent, so tests use a folder of this name.
CONFIG_FOLDER = "environments"

# --- Limits (SPEC section 2 and AWS documentation) ------------------------------------------------

# Fargate task sizes: CPU units -> every memory size (MiB) AWS accepts with it.
FARGATE_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: (1024, 2048, 3072, 4096),
    1024: tuple(range(2 * 1024, 8 * 1024 + 1, 1024)),
    2048: tuple(range(4 * 1024, 16 * 1024 + 1, 1024)),
    4096: tuple(range(8 * 1024, 30 * 1024 + 1, 1024)),
    8192: tuple(range(16 * 1024, 60 * 1024 + 1, 4 * 1024)),
    16384: tuple(range(32 * 1024, 120 * 1024 + 1, 8 * 1024)),
}
# The only retention periods CloudWatch Logs accepts.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                      2557, 2922, 3288, 3653)
# RFC 1918: the only ranges a VPC of this project may use.
PRIVATE_BLOCKS = tuple(ipaddress.IPv4Network(block) for block in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
VPC_PREFIXES = (16, 20)
AZ_COUNTS = (2, 3)
NAT_MODES = ("single", "per_az")
ACU_RANGE = (0.5, 256.0)  # Aurora Serverless v2, in steps of 0.5
MAX_ACU_FLOOR = 1.0
MAX_READERS = 15  # Aurora replicas per cluster
BACKUP_RETENTION_DAYS = (7, 35)  # SPEC: >= 7 always; AWS: <= 35
# Project limits (README, not SPEC): yearly rotation at least, 100 tasks, unprivileged ports, 10 years.
SECRET_ROTATION_DAYS = (1, 365)
TASK_COUNT = (1, 100)
CONTAINER_PORTS = (1024, 65535)
NONCURRENT_VERSION_DAYS = (1, 3650)
# Project limits: a monthly budget and an anomaly-impact threshold, in whole US dollars.
BUDGET_USD = (1, 100_000)
ANOMALY_THRESHOLD_USD = (1, 100_000)
# Requests per client IP in 5 minutes: AWS's WAF accepts 10..2e9; the project allows 100..100,000 (docs).
WAF_RATE_LIMITS = (100, 100_000)
REGIONS = ("eu-west-1", "eu-west-2", "eu-central-1", "eu-north-1", "us-east-1", "us-east-2", "us-west-2",
           "ap-southeast-2", "ap-northeast-1", "ca-central-1", "sa-east-1", "us-gov-west-1")
# AWS partitions: a DR region must be in the environment's (backups and replication never cross one).
GOV_REGIONS = ("us-gov-west-1", "us-gov-east-1")
COPY_RETENTION_DAYS = (7, 3650)  # project limit: a week (as the primary's points) to ten years
# AWS Backup schedules (UTC, at most hourly): what operators write.
BACKUP_SCHEDULES = ("cron(0 5 ? * * *)", "cron(0 */4 ? * * *)", "cron(30 1 ? * MON-FRI *)", "cron(0 3 L * ? *)",
                    "cron(15 2,14 ? * * *)", "cron(0 * ? * * *)", "cron(0 */12 ? * * *)", "cron(0 0 ? * * *)",
                    "cron(0 0 ? * SUN *)")  # no rate(...): AWS Backup takes cron expressions only
# project.toml is the shared file and "bootstrap" is the state stack: no environment may use them.
RESERVED_ENVIRONMENT_NAMES = frozenset({"project", "bootstrap"})

# --- Document shape -------------------------------------------------------------------------------

STRING, INTEGER, NUMBER, BOOLEAN, STRING_LIST, TABLE = "string", "integer", "number", "boolean", "list", "table"
TABLE_LIST = "tables"  # an array of tables: [[baseline]]

# Dotted field -> kind, for every setting of an environment file (tables listed before their keys).
ENVIRONMENT_FIELDS: dict[str, str] = {
    "name": STRING, "production": BOOLEAN, "region": STRING, "account_id": STRING, "application": STRING,
    "owner": STRING, "cost_center": STRING, "domain": STRING, "alarm_emails": STRING_LIST,
    "log_retention_days": INTEGER,
    "network": TABLE, "network.cidr": STRING, "network.az_count": INTEGER, "network.nat_gateways": STRING,
    "database": TABLE, "database.min_acu": NUMBER, "database.max_acu": NUMBER, "database.reader_count": INTEGER,
    "database.backup_retention_days": INTEGER, "database.deletion_protection": BOOLEAN,
    "database.secret_rotation_days": INTEGER, "database.bootstrap_image": STRING,
    "database.restore_from_snapshot": STRING,
    "api": TABLE, "api.cpu": INTEGER, "api.memory": INTEGER, "api.min_tasks": INTEGER, "api.max_tasks": INTEGER,
    "api.fargate_spot": BOOLEAN, "api.container_image": STRING, "api.container_port": INTEGER,
    "cost": TABLE, "cost.budget_monthly_usd": INTEGER, "cost.anomaly_threshold_usd": INTEGER,
    "api.exec_enabled": BOOLEAN,
    "features": TABLE, "features.waf": BOOLEAN,
    "features.vpc_interface_endpoints": BOOLEAN, "features.cache": BOOLEAN, "features.tracing": BOOLEAN,
    "features.waf_rate_limit": INTEGER,
    "tracing": TABLE, "tracing.sampling_rate": NUMBER,
    "dr": TABLE, "dr.region": STRING, "dr.backup_schedule": STRING, "dr.copy_retention_days": INTEGER,
    "dr.vault_lock": BOOLEAN, "dr.strategy": STRING, "dr.standby_cidr": STRING, "dr.standby_min_tasks": INTEGER,
    "dr.restore_from_snapshot": STRING, "deploy_role_arn": STRING,
}
PROJECT_FIELDS: dict[str, str] = {
    "application": STRING, "owner": STRING, "cost_center": STRING, "account_id": STRING, "baseline": TABLE_LIST,
    "state": TABLE, "state.region": STRING, "state.bucket": STRING, "state.lock_table": STRING,
    "state.kms_alias": STRING, "state.noncurrent_version_days": INTEGER, "state.replica_region": STRING,
    "state.account_id": STRING, "state.administrators": STRING_LIST,
    "ci": TABLE, "ci.repository": STRING, "ci.account_access_role": STRING,
}
# Settings a file may leave out; the keys of an optional table are optional with it when it is absent.
OPTIONAL_FIELDS = frozenset({"account_id", "baseline", "features.tracing", "tracing", "tracing.sampling_rate",
                             "api.exec_enabled", "database.bootstrap_image", "database.restore_from_snapshot",
                             "features.waf_rate_limit", "dr",
                             "dr.vault_lock", "state.replica_region", "deploy_role_arn", "state.account_id",
                             "state.administrators", "ci", "ci.account_access_role",
                             # optional for `backup` (the default); a standby needs standby_cidr and _min_tasks
                             "dr.strategy", "dr.standby_cidr", "dr.standby_min_tasks", "dr.restore_from_snapshot"})


def is_optional(dotted: str) -> bool:
    """Optional itself, or inside an optional table (absent with it)."""
    parts = dotted.split(".")
    return any(".".join(parts[:end]) in OPTIONAL_FIELDS for end in range(1, len(parts) + 1))


def has_field(document: Mapping[str, Any], dotted: str) -> bool:
    value: Any = document
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return False
        value = value[part]
    return True


def fields_of(file_name: str) -> dict[str, str]:
    """The field table for a file of a configuration: project.toml or an environment file."""
    return PROJECT_FIELDS if file_name == PROJECT_FILE else ENVIRONMENT_FIELDS


def get_field(document: Mapping[str, Any], dotted: str) -> Any:
    value: Any = document
    for part in dotted.split("."):
        value = value[part]
    return value


def set_field(document: dict[str, Any], dotted: str, value: Any) -> None:
    *tables, key = dotted.split(".")
    for part in tables:
        document = document[part]
    document[key] = value


def delete_field(document: dict[str, Any], dotted: str) -> None:
    *tables, key = dotted.split(".")
    for part in tables:
        document = document[part]
    del document[key]


# --- Scalar strategies ----------------------------------------------------------------------------

LOWER = string.ascii_lowercase
LOWER_DIGITS = LOWER + string.digits
TAG_ALPHABET = string.ascii_letters + string.digits + "_ .:/=+-@"


@functools.cache  # one strategy object: building and validating them dominates draw time
def words(first: str, middle: str, last: str, max_middle: int, min_middle: int = 0) -> st.SearchStrategy[str]:
    """`first` char, `min_middle`..`max_middle` `middle` chars, `last` char: a regex, but much faster to draw."""
    return st.builds(lambda head, body, tail: head + body + tail, st.sampled_from(first),
                     st.text(middle, min_size=min_middle, max_size=max_middle), st.sampled_from(last))


def single_hyphens(name: str) -> str:
    """AWS rejects "--" in RDS identifiers, so the loader does too; collapse runs instead of rejecting draws."""
    return re.sub("-+", "-", name)


@functools.cache
def environment_names() -> st.SearchStrategy[str]:
    """2-16 lowercase letters, digits or single hyphens, starting with a letter (also the file stem)."""
    names = words(LOWER, LOWER_DIGITS + "-", LOWER_DIGITS, 14).map(single_hyphens)
    return names.filter(lambda name: name not in RESERVED_ENVIRONMENT_NAMES)


@functools.cache
def application_names() -> st.SearchStrategy[str]:
    """2-20 lowercase letters, digits or single hyphens, starting with a letter."""
    return words(LOWER, LOWER_DIGITS + "-", LOWER_DIGITS, 18).map(single_hyphens)


@functools.cache
def tag_values() -> st.SearchStrategy[str]:
    """Owner / cost-centre values: characters AWS allows in tag values."""
    return st.text(alphabet=TAG_ALPHABET, min_size=1, max_size=40)


@functools.cache
def regions() -> st.SearchStrategy[str]:
    return st.sampled_from(REGIONS)


@functools.cache
def account_ids() -> st.SearchStrategy[str]:
    return st.integers(0, 10**12 - 1).map(lambda number: f"{number:012d}")


@functools.cache
def domains() -> st.SearchStrategy[str]:
    """Lowercase DNS names with one to three labels below a TLD, e.g. `a-1.example.io`."""
    label = st.sampled_from(LOWER_DIGITS) | words(LOWER_DIGITS, LOWER_DIGITS + "-", LOWER_DIGITS, 20)
    tld = st.text(LOWER, min_size=2, max_size=6)
    return st.builds(lambda labels, top: ".".join([*labels, top]), st.lists(label, min_size=1, max_size=3), tld)


@functools.cache
def emails() -> st.SearchStrategy[str]:
    local = st.builds(str.__add__, st.sampled_from(LOWER_DIGITS), st.text(LOWER_DIGITS + "._+-", max_size=15))
    return st.builds(lambda user, host: f"{user}@{host}", local, domains())


@functools.cache
def container_images() -> st.SearchStrategy[str]:
    realistic = st.sampled_from(("public.ecr.aws/nginx/nginx:1.27", "nginx", "ghcr.io/acme/api:v1.2.3",
                                 "123456789012.dkr.ecr.eu-west-1.amazonaws.com/api@sha256:" + "a" * 64))
    repository = st.builds(str.__add__, st.sampled_from(LOWER_DIGITS), st.text(LOWER_DIGITS + "./_-", max_size=40))
    tag = st.just("") | st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=20).map(":".__add__)
    return realistic | st.builds(str.__add__, repository, tag)


@functools.cache
def pinned_images() -> st.SearchStrategy[str]:
    """Images pinned by content (`repo[:tag]@sha256:<64 hex>`): the only kind production may run."""
    digest = st.text("0123456789abcdef", min_size=64, max_size=64).map("@sha256:".__add__)
    return st.builds(lambda image, pin: image + pin, container_images().map(lambda image: image.split("@")[0]), digest)


@functools.cache
def half_steps(low: float, high: float) -> st.SearchStrategy[float]:
    """Multiples of 0.5 in [low, high] (Aurora capacity units)."""
    return st.integers(int(low * 2), int(high * 2)).map(lambda halves: halves / 2)


@functools.cache
def toml_numbers(value: float) -> st.SearchStrategy[int | float]:
    """A whole number may be written `2` or `2.0` in TOML; both must load the same."""
    if value == int(value):
        return st.sampled_from((int(value), float(value)))
    return st.just(value)


@functools.cache
def private_cidrs(min_prefix: int = VPC_PREFIXES[0], max_prefix: int = VPC_PREFIXES[1]) -> st.SearchStrategy[str]:
    """Canonical RFC 1918 networks (`10.4.0.0/16`, `172.20.16.0/20`...) with a VPC-sized prefix."""
    return disjoint_cidrs(1, min_prefix, max_prefix).map(lambda networks: networks[0])


def _free_subnet(block: ipaddress.IPv4Network, prefix: int, start: int,
                 taken: list[ipaddress.IPv4Network]) -> ipaddress.IPv4Network | None:
    """The first /prefix subnet of `block` from position `start` on (wrapping) that overlaps nothing taken."""
    count = 2 ** (prefix - block.prefixlen)
    for step in range(count):
        address = block.network_address + ((start + step) % count) * 2 ** (32 - prefix)
        candidate = ipaddress.IPv4Network(f"{address}/{prefix}")
        if not any(candidate.overlaps(other) for other in taken):
            return candidate
    return None


@st.composite
def disjoint_cidrs(draw, count: int, min_prefix: int = VPC_PREFIXES[0],
                   max_prefix: int = VPC_PREFIXES[1]) -> list[str]:
    """`count` private networks, no two of which overlap (one per environment).

    A drawn position that is taken moves to the next free one instead of being rejected, so
    neighbours such as 10.0.0.0/20 and 10.0.16.0/20 are common and no draw is ever wasted.
    """
    chosen: list[ipaddress.IPv4Network] = []
    for _ in range(count):
        first = draw(st.integers(0, len(PRIVATE_BLOCKS) - 1))
        prefix = draw(st.integers(min_prefix, max_prefix))
        start = draw(st.integers(0, 2 ** (prefix - 8) - 1))
        for offset in range(len(PRIVATE_BLOCKS)):
            block = PRIVATE_BLOCKS[(first + offset) % len(PRIVATE_BLOCKS)]
            network = _free_subnet(block, max(prefix, block.prefixlen), start, chosen)
            if network is not None:
                break
        else:
            raise ValueError(f"no room for {count} disjoint private networks")
        chosen.append(network)
    return [str(network) for network in chosen]


# --- Tables ---------------------------------------------------------------------------------------


def optional(draw, key: str, values: st.SearchStrategy) -> dict[str, Any]:
    """`{key: value}` or `{}`: an optional setting is as often left out as written."""
    value = draw(st.none() | values)
    return {} if value is None else {key: value}


@st.composite
def network_tables(draw, cidr: str | None = None) -> dict[str, Any]:
    return {
        "cidr": cidr if cidr is not None else draw(private_cidrs()),
        "az_count": draw(st.sampled_from(AZ_COUNTS)),
        "nat_gateways": draw(st.sampled_from(NAT_MODES)),
    }


@st.composite
def database_tables(draw, production: bool = False) -> dict[str, Any]:
    """min_acu <= max_acu; production always keeps deletion protection."""
    first = draw(half_steps(*ACU_RANGE))
    second = draw(half_steps(MAX_ACU_FLOOR, ACU_RANGE[1]))
    min_acu, max_acu = min(first, second), max(first, second)
    return {
        "min_acu": draw(toml_numbers(min_acu)),
        "max_acu": draw(toml_numbers(max_acu)),
        "reader_count": draw(st.integers(0, MAX_READERS)),
        "backup_retention_days": draw(st.integers(*BACKUP_RETENTION_DAYS)),
        "deletion_protection": True if production else draw(st.booleans()),
        "secret_rotation_days": draw(st.integers(*SECRET_ROTATION_DAYS)),
        # Production must name a digest-pinned image (the default is a tag); elsewhere it is optional.
        **({"bootstrap_image": draw(pinned_images())} if production
           else optional(draw, "bootstrap_image", container_images() | pinned_images())),
        **optional(draw, "restore_from_snapshot", snapshot_identifiers()),
    }


@functools.cache
def snapshot_identifiers() -> st.SearchStrategy[str]:
    """Cluster snapshot identifiers as `python -m ops restore` writes them: AWS Backup's, automated, manual."""
    return st.builds(str.__add__, st.sampled_from(("awsbackup:job-", "rds:webapp-dev-db-", "before-migration-")),
                     st.text("0123456789abcdef", min_size=1, max_size=36))


@st.composite
def api_tables(draw, production: bool = False) -> dict[str, Any]:
    """A valid Fargate size, min_tasks <= max_tasks; production never runs on Spot, runs digest-pinned images."""
    cpu = draw(st.sampled_from(sorted(FARGATE_SIZES)))
    tasks = sorted(draw(st.lists(st.integers(*TASK_COUNT), min_size=2, max_size=2)))
    return {
        "cpu": cpu,
        "memory": draw(st.sampled_from(FARGATE_SIZES[cpu])),
        "min_tasks": tasks[0],
        "max_tasks": tasks[1],
        "fargate_spot": False if production else draw(st.booleans()),
        "container_image": draw(pinned_images() if production else container_images() | pinned_images()),
        "container_port": draw(st.integers(*CONTAINER_PORTS)),
        # Unset (the loader's default: off in production), on or off.
        **optional(draw, "exec_enabled", st.booleans()),
    }


def _same_partition(region: str) -> tuple[str, ...]:
    pool = GOV_REGIONS if region in GOV_REGIONS else tuple(r for r in REGIONS if r not in GOV_REGIONS)
    return tuple(candidate for candidate in pool if candidate != region)


@st.composite
def dr_tables(draw, region: str, production: bool = False, standby_cidr: str | None = None, max_tasks: int = 1,
              restored: bool = False) -> dict[str, Any]:
    """A second region of the same partition; production always locks its vaults. The strategy: left out
    (backup), backup (maybe with a copied recovery point and its own CIDR) or, given a CIDR of its own and no
    restore of the primary, a standby with 0..max_tasks tasks."""
    table: dict[str, Any] = {
        "region": draw(st.sampled_from(_same_partition(region))),
        "backup_schedule": draw(st.sampled_from(BACKUP_SCHEDULES)),
        "copy_retention_days": draw(st.integers(*COPY_RETENTION_DAYS)),
    }
    lock = True if production else draw(st.none() | st.booleans())
    if lock is not None:
        table["vault_lock"] = lock
    strategies = [None, "backup", *(["standby"] if standby_cidr and not restored else [])]
    strategy = draw(st.sampled_from(strategies))
    if strategy == "standby":
        table.update(strategy=strategy, standby_cidr=standby_cidr,
                     standby_min_tasks=draw(st.integers(0, max_tasks)))
    elif strategy == "backup":
        table["strategy"] = strategy
        table.update(optional(draw, "standby_cidr", st.just(standby_cidr) if standby_cidr else st.nothing()))
        table.update(optional(draw, "restore_from_snapshot", snapshot_identifiers()))
    return table


@st.composite
def feature_tables(draw) -> dict[str, Any]:
    toggles: dict[str, Any] = {name: draw(st.booleans())
                               for name in ("waf", "vpc_interface_endpoints", "cache", "tracing")}
    return {**toggles, **optional(draw, "waf_rate_limit", st.integers(*WAF_RATE_LIMITS))}


@st.composite
def tracing_tables(draw) -> dict[str, float]:
    """X-Ray's fixed rate: 0 to 1 in hundredths (written 0.07, or 0 / 1 as integers)."""
    return {"sampling_rate": draw(st.integers(0, 100).flatmap(lambda hundredths: toml_numbers(hundredths / 100)))}


@st.composite
def cost_tables(draw) -> dict[str, int]:
    return {"budget_monthly_usd": draw(st.integers(*BUDGET_USD)),
            "anomaly_threshold_usd": draw(st.integers(*ANOMALY_THRESHOLD_USD))}


# --- Documents ------------------------------------------------------------------------------------


@st.composite
def environment_documents(
    draw,
    *,
    name: str | None = None,
    application: str | None = None,
    production: bool | None = None,
    cidr: str | None = None,
    domain: str | None = None,
    standby_cidr: str | None = None,
) -> dict[str, Any]:
    """One valid environment file; pinned arguments are used as given."""
    production = draw(st.booleans()) if production is None else production
    document: dict[str, Any] = {
        "name": name if name is not None else draw(environment_names()),
        "production": production,
        "region": draw(regions()),
    }
    account_id = draw(st.none() | account_ids())
    if account_id is not None:
        document["account_id"] = account_id
    document.update({
        "application": application if application is not None else draw(application_names()),
        "owner": draw(tag_values()),
        "cost_center": draw(tag_values()),
        "domain": domain if domain is not None else draw(domains()),
        "alarm_emails": draw(st.lists(emails(), min_size=1, max_size=3, unique=True)),
        "log_retention_days": draw(st.sampled_from(LOG_RETENTION_DAYS)),
        "network": draw(network_tables(cidr)),
        "database": draw(database_tables(production)),
        "api": draw(api_tables(production)),
        "features": draw(feature_tables()),
        "cost": draw(cost_tables()),
        "tracing": draw(tracing_tables()),
    })
    # Production must have [dr]; other environments with and without it.
    if production or draw(st.booleans()):
        document["dr"] = draw(dr_tables(document["region"], production, standby_cidr, document["api"]["max_tasks"],
                                        restored="restore_from_snapshot" in document["database"]))
    return document


@st.composite
def baseline_tables(draw, region: str, account_id: str | None, cloudtrail: bool) -> dict[str, Any]:
    """One [[baseline]]: config and/or the trail (never neither), in the given account and region."""
    table: dict[str, Any] = {"region": region}
    if account_id is not None:
        table["account_id"] = account_id
    table.update({
        "config": True if not cloudtrail else draw(st.booleans()),
        "cloudtrail": cloudtrail,
        "xray_encryption": draw(st.booleans()),
        "alarm_emails": draw(st.lists(emails(), min_size=1, max_size=2, unique=True)),
        "log_retention_days": draw(st.sampled_from(LOG_RETENTION_DAYS)),
    })
    return table


@st.composite
def baseline_lists(draw, max_size: int = 2) -> list[dict[str, Any]]:
    """0..max_size baselines: distinct account/region pairs, account ids on all or none, one trail per account."""
    named = draw(st.booleans())
    pairs = draw(st.lists(st.tuples(account_ids() if named else st.none(), regions()), max_size=max_size,
                          unique=True))
    with_trail: set[str | None] = set()
    tables = []
    for account_id, region in pairs:
        cloudtrail = account_id not in with_trail and draw(st.booleans())
        if cloudtrail:
            with_trail.add(account_id)
        tables.append(draw(baseline_tables(region, account_id, cloudtrail)))
    return tables


@st.composite
def project_documents(draw, *, application: str | None = None) -> dict[str, Any]:
    """A valid project.toml: shared tags and the state backend."""
    document: dict[str, Any] = {
        "application": application if application is not None else draw(application_names()),
        "owner": draw(tag_values()),
        "cost_center": draw(tag_values()),
    }
    account_id = draw(st.none() | account_ids())
    if account_id is not None:
        document["account_id"] = account_id
    document["baseline"] = draw(baseline_lists())
    document["state"] = {
        "region": draw(regions()),
        # 3-51 characters: the bootstrap derives "<bucket>-access-logs" and S3 stops at 63.
        "bucket": draw(words(LOWER_DIGITS, LOWER_DIGITS + "-", LOWER_DIGITS, 49, min_middle=1)),
        "lock_table": draw(st.text(string.ascii_letters + string.digits + "_.-", min_size=3, max_size=60)),
        "kms_alias": "alias/" + draw(st.text(string.ascii_letters + string.digits + "/_-", min_size=1, max_size=40)
                                     .filter(lambda name: not name.startswith("aws/"))),
        "noncurrent_version_days": draw(st.integers(*NONCURRENT_VERSION_DAYS)),
    }
    if draw(st.booleans()):
        document["state"]["replica_region"] = draw(st.sampled_from(_same_partition(document["state"]["region"])))
    return document


class RawConfig(NamedTuple):
    """A project document plus environment documents keyed by file stem (`dev` -> dev.toml)."""

    project: dict[str, Any]
    environments: dict[str, dict[str, Any]]

    def documents(self) -> dict[str, dict[str, Any]]:
        """Every document by file name, project.toml first."""
        return {PROJECT_FILE: self.project, **{f"{stem}.toml": doc for stem, doc in self.environments.items()}}


def distinct(values: list[str], rename: Callable[[str, int], str]) -> list[str]:
    """Make drawn values unique by renaming repeats, instead of rejecting draws (hypothesis favours
    repeating small values like "aa", so `unique=True` would throw many examples away)."""
    seen: set[str] = set()
    result = []
    for value in values:
        number = 1
        while value in seen:
            value, number = rename(value, number), number + 1
        seen.add(value)
        result.append(value)
    return result


@st.composite
def configurations(draw, min_environments: int = 1, max_environments: int = 4) -> RawConfig:
    """A whole valid configuration: unique names and domains, disjoint CIDRs, one application."""
    project = draw(project_documents())
    # `<env>-dr` is the DR-region stack of <env>: no environment is given such a name.
    drawn = [f"{name[:-3]}-rd" if name.endswith("-dr") else name
             for name in draw(st.lists(environment_names(), min_size=min_environments, max_size=max_environments))]
    names = distinct(drawn, lambda name, number: f"{name[:12].rstrip('-')}-{number}")
    # One network per environment and one for its standby, no two overlapping (the loader's rule).
    cidrs = draw(disjoint_cidrs(2 * len(names)))
    hosts = distinct(draw(st.lists(domains(), min_size=len(names), max_size=len(names))),
                     lambda host, number: f"e{number}.{host}")
    environments = {
        name: draw(environment_documents(name=name, application=project["application"], cidr=cidr, domain=host,
                                         standby_cidr=standby))
        for name, cidr, standby, host in zip(names, cidrs[:len(names)], cidrs[len(names):], hosts, strict=True)
    }
    layout = draw(st.sampled_from(("one state account", "isolated state", "isolated state with CI")))
    if layout != "one state account":
        draw(multi_account(project, environments, ci=layout.endswith("CI")))
    return RawConfig(project, environments)


def role(account_id: str, name: str) -> str:
    return f"arn:aws:iam::{account_id}:role/{name}"


@st.composite
def multi_account(draw, project: dict[str, Any], environments: dict[str, dict[str, Any]], ci: bool) -> None:
    """Per-stack state isolation in a state account, with or without [ci]; deploy roles where accounts are named."""
    state_account = draw(account_ids())
    project["state"].update(account_id=state_account, administrators=[role(state_account, "state-admin")])
    if ci:
        project["ci"] = {"repository": "example-org/" + project["application"]}
    for name, document in environments.items():
        if ci and "account_id" not in document:
            document["account_id"] = draw(account_ids())
        if not ci and "account_id" in document and draw(st.booleans()):
            document["deploy_role_arn"] = role(document["account_id"], f"deployer-{name}")
    for baseline in project["baseline"]:
        if "account_id" in baseline and draw(st.booleans()):
            baseline["deploy_role_arn"] = role(baseline["account_id"], "baseline-deployer")


# --- TOML writer ----------------------------------------------------------------------------------

BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_string(text: str) -> str:
    escaped = []
    for char in text:
        if char in _ESCAPES:
            escaped.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04x}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def _toml_key(key: str) -> str:
    return key if BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # "0.5", "1e+16", "inf" and "nan" are all TOML floats
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def to_toml(document: Mapping[str, Any]) -> str:
    """TOML text for a document: top-level tables become `[sections]`, deeper ones inline tables.

    Plain keys are written first, because after a `[section]` header every key belongs to it.
    """
    lines = [f"{_toml_key(key)} = {_toml_value(value)}"
             for key, value in document.items() if not isinstance(value, Mapping)]
    for key, table in document.items():
        if isinstance(table, Mapping):
            lines += ["", f"[{_toml_key(key)}]"]
            lines += [f"{_toml_key(name)} = {_toml_value(value)}" for name, value in table.items()]
    return "\n".join(lines) + "\n"


def write_config(
    directory: Path | str,
    project_doc: Mapping[str, Any],
    env_docs: Mapping[str, Mapping[str, Any]] | Iterable[Mapping[str, Any]],
) -> Path:
    """Write project.toml and one `<stem>.toml` per environment into `directory` (created if needed).

    `env_docs` maps file stems to documents, or is a list of documents named by their `name`.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if not isinstance(env_docs, Mapping):
        env_docs = {doc["name"]: doc for doc in env_docs}
    (directory / PROJECT_FILE).write_text(to_toml(project_doc), encoding="utf-8")
    for stem, doc in env_docs.items():
        (directory / f"{stem}.toml").write_text(to_toml(doc), encoding="utf-8")
    return directory


@contextlib.contextmanager
def config_directory(config: RawConfig) -> Iterator[Path]:
    """A fresh `<tmp>/environments` folder holding `config` (hypothesis tests cannot use tmp_path)."""
    with tempfile.TemporaryDirectory(prefix="config-") as temporary:
        yield write_config(Path(temporary) / CONFIG_FOLDER, config.project, config.environments)
