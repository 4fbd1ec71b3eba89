"""SPEC section 2, as properties: every valid configuration loads exactly as written, every broken
one is refused with one line naming file, field and rule, and every valid one synthesizes.

Valid configurations come from tests/strategies.py. Invalid ones are a valid configuration with
exactly one generated mutation, so the expected file, field and rule are known for each example.
"""

from __future__ import annotations

import copy
import dataclasses
import ipaddress
import re
import string
import tempfile
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from environments.loader import ConfigError, load_project
from environments.model import (
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
    NatMode,
    NetworkConfig,
    ProjectConfig,
    StateBackendConfig,
    TracingConfig,
)
from tests.conftest import synthesize
from tests.strategies import (
    ACU_RANGE,
    AZ_COUNTS,
    BACKUP_RETENTION_DAYS,
    BOOLEAN,
    CONFIG_FOLDER,
    CONTAINER_PORTS,
    FARGATE_SIZES,
    INTEGER,
    LOG_RETENTION_DAYS,
    MAX_ACU_FLOOR,
    MAX_READERS,
    NONCURRENT_VERSION_DAYS,
    NUMBER,
    OPTIONAL_FIELDS,
    PRIVATE_BLOCKS,
    PROJECT_FILE,
    SECRET_ROTATION_DAYS,
    STRING,
    STRING_LIST,
    TABLE,
    TABLE_LIST,
    TASK_COUNT,
    VPC_PREFIXES,
    WAF_RATE_LIMITS,
    RawConfig,
    application_names,
    config_directory,
    configurations,
    container_images,
    delete_field,
    environment_names,
    fields_of,
    get_field,
    half_steps,
    has_field,
    is_optional,
    set_field,
    to_toml,
    write_config,
)

# --- (a) valid configurations load and round-trip ---------------------------------------------

# docs/configuration.md: the bootstrap task's image when `database.bootstrap_image` is not set.
DEFAULT_BOOTSTRAP_IMAGE = "public.ecr.aws/docker/library/postgres:16-alpine"
# docs/configuration.md: the per-IP WAF limit when `features.waf_rate_limit` is not set.
DEFAULT_WAF_RATE_LIMIT = 2000


def expected_dr(table: dict) -> DisasterRecoveryConfig:
    """The [dr] table as the model holds it: the strategy as its enum (backup when left out)."""
    return DisasterRecoveryConfig(**{**table, "strategy": DrStrategy(table.get("strategy", "backup"))})


def expected_environment(stem: str, doc: dict[str, Any]) -> EnvironmentConfig:
    """What SPEC section 2 says a document means, built independently of the loader."""
    network, database, api = doc["network"], doc["database"], doc["api"]
    return EnvironmentConfig(
        name=doc["name"],
        source=f"{CONFIG_FOLDER}/{stem}.toml",
        production=doc["production"],
        region=doc["region"],
        account_id=doc.get("account_id"),
        application=doc["application"],
        owner=doc["owner"],
        cost_center=doc["cost_center"],
        domain=doc["domain"],
        alarm_emails=tuple(doc["alarm_emails"]),
        log_retention_days=doc["log_retention_days"],
        network=NetworkConfig(cidr=network["cidr"], az_count=network["az_count"],
                              nat_gateways=NatMode(network["nat_gateways"])),
        database=DatabaseConfig(
            min_acu=float(database["min_acu"]),
            max_acu=float(database["max_acu"]),
            reader_count=database["reader_count"],
            backup_retention_days=database["backup_retention_days"],
            deletion_protection=database["deletion_protection"],
            secret_rotation_days=database["secret_rotation_days"],
            bootstrap_image=database.get("bootstrap_image", DEFAULT_BOOTSTRAP_IMAGE),
            restore_from_snapshot=database.get("restore_from_snapshot"),
        ),
        # Issue 14: ECS Exec, when not written, is off in production and on elsewhere.
        api=ApiConfig(**{"exec_enabled": not doc["production"], **api}),
        features=FeatureToggles(**{"waf_rate_limit": DEFAULT_WAF_RATE_LIMIT, **doc["features"]}),
        cost=CostConfig(**doc["cost"]),
        tracing=TracingConfig(sampling_rate=float(doc["tracing"]["sampling_rate"])),
        dr=expected_dr(doc["dr"]) if "dr" in doc else None,
        deploy_role_arn=doc.get("deploy_role_arn"),
    )


def expected_baselines(tables: list[dict[str, Any]]) -> tuple[BaselineConfig, ...]:
    """Global resource types are recorded by the first baseline of each account that records at all."""
    recording: set[str | None] = set()
    baselines = []
    for table in tables:
        first = table["config"] and table.get("account_id") not in recording
        recording |= {table.get("account_id")} if table["config"] else set()
        baselines.append(BaselineConfig(
            region=table["region"], account_id=table.get("account_id"), config=table["config"],
            cloudtrail=table["cloudtrail"], alarm_emails=tuple(table["alarm_emails"]),
            log_retention_days=table["log_retention_days"], xray_encryption=table["xray_encryption"],
            record_global_resources=first, deploy_role_arn=table.get("deploy_role_arn")))
    return tuple(baselines)


def expected_project(config: RawConfig, emulator: str | None) -> ProjectConfig:
    doc = config.project
    stems = sorted(config.environments, key=lambda stem: f"{stem}.toml")  # the loader reads files in name order
    return ProjectConfig(
        source=f"{CONFIG_FOLDER}/{PROJECT_FILE}",
        application=doc["application"],
        owner=doc["owner"],
        cost_center=doc["cost_center"],
        account_id=doc.get("account_id"),
        state=StateBackendConfig(**{**doc["state"], "administrators": tuple(doc["state"].get("administrators", ()))}),
        environments=tuple(with_ci_deploy_role(doc, expected_environment(stem, config.environments[stem]))
                           for stem in stems),
        emulator=EmulatorConfig(emulator.rstrip("/")) if emulator else None,
        baselines=expected_baselines(doc.get("baseline", [])),
        ci=CiConfig(**doc["ci"]) if "ci" in doc else None,
    )


def with_ci_deploy_role(project: dict[str, Any], env: EnvironmentConfig) -> EnvironmentConfig:
    """With [ci], an environment deploys as the role the bootstrap creates in its account."""
    if "ci" not in project:
        return env
    return dataclasses.replace(env, deploy_role_arn=(
        f"arn:aws:iam::{env.account_id}:role/{project['application']}-{env.name}-deploy"))


def assert_same_types(actual: Any, expected: Any, path: str = "project") -> None:
    """`==` says 1 == True == 1.0; configuration values must also have the documented type."""
    assert type(actual) is type(expected), f"{path}: {type(actual).__name__} != {type(expected).__name__}"
    if dataclasses.is_dataclass(expected):
        for item in dataclasses.fields(expected):
            assert_same_types(getattr(actual, item.name), getattr(expected, item.name), f"{path}.{item.name}")
    elif isinstance(expected, tuple):
        for index, (left, right) in enumerate(zip(actual, expected, strict=True)):
            assert_same_types(left, right, f"{path}[{index}]")


emulator_endpoints = st.builds(
    lambda scheme, host, port, slash: f"{scheme}://{host}{port}{slash}",
    st.sampled_from(("http", "https")),
    st.sampled_from(("127.0.0.1", "localhost", "moto", "[::1]", "motoserver.internal")),
    st.sampled_from(("", ":5000", ":4566", ":65535")),
    st.sampled_from(("", "/")),
)


@settings(max_examples=150, deadline=None)
@given(config=configurations(), emulator=st.none() | emulator_endpoints)
def test_every_valid_configuration_loads_exactly_as_written(config: RawConfig, emulator: str | None):
    with config_directory(config) as directory:
        loaded = load_project(directory, emulator)
    expected = expected_project(config, emulator)
    assert loaded == expected
    assert_same_types(loaded, expected)
    for env in loaded.environments:
        assert env.state_key == f"{env.name}/terraform.tfstate"


def toml_scalars() -> st.SearchStrategy[Any]:
    return (st.text() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
            | st.floats(allow_nan=False))


def toml_documents() -> st.SearchStrategy[dict[str, Any]]:
    """Arbitrary documents of the shapes to_toml supports: scalars, lists, one level of tables."""
    keys = st.text(min_size=1, max_size=10)
    values = toml_scalars() | st.lists(st.text(), max_size=3)
    return st.dictionaries(keys, values | st.dictionaries(keys, values, max_size=4), max_size=6)


@settings(max_examples=100, deadline=None)
@given(toml_documents())
def test_to_toml_writes_what_tomllib_reads_back(document: dict[str, Any]):
    assert tomllib.loads(to_toml(document)) == document


# --- (b) every invalid configuration is refused with file, field and rule -----------------------


@dataclass
class Broken:
    """A configuration with one known fault, and the error SPEC section 2 requires for it."""

    config: RawConfig
    file: str  # file name in the folder, e.g. "dev.toml"
    field: str  # dotted field; "" when the file cannot be parsed at all
    rule: str  # a fragment the rule text must contain
    raw: dict[str, bytes] = field(default_factory=dict)  # files whose bytes replace the written document


def env_files(config: RawConfig) -> list[str]:
    """Environment file names in the order the loader reads (and cross-checks) them."""
    return sorted(f"{stem}.toml" for stem in config.environments)


def later(*files: str) -> str:
    """Of two files in one conflict, the loader reports the one it reads second."""
    return max(files)


def any_file(config: RawConfig) -> st.SearchStrategy[str]:
    return st.sampled_from(sorted(config.documents()))


def two_environments(config: RawConfig) -> st.SearchStrategy[tuple[str, str]]:
    return st.permutations(env_files(config)).map(lambda files: (files[0], files[1]))


def fields_in(file: str, document: dict[str, Any], kinds: set[str] | None = None) -> list[str]:
    """Fields present in `document` (optional ones only when set), optionally of some kinds."""
    return [name for name, kind in fields_of(file).items()
            if (kinds is None or kind in kinds) and (not is_optional(name) or has_field(document, name))]


not_strings = (st.integers(-5, 5) | st.floats(allow_nan=False) | st.booleans()
               | st.lists(st.text(max_size=4), max_size=2) | st.just({}))
WRONG_TYPES: dict[str, st.SearchStrategy[Any]] = {
    STRING: not_strings,
    INTEGER: st.text(max_size=4) | st.floats(allow_nan=False) | st.booleans() | st.lists(st.integers(), max_size=2)
    | st.just({}),
    NUMBER: st.text(max_size=4) | st.booleans() | st.lists(st.integers(), max_size=2) | st.just({}),
    BOOLEAN: st.text(max_size=4) | st.integers(0, 1) | st.floats(allow_nan=False) | st.just([]) | st.just({}),
    STRING_LIST: st.text(max_size=8) | st.integers() | st.booleans() | st.just({}),
    TABLE: st.text(max_size=8) | st.integers() | st.booleans() | st.lists(st.text(max_size=4), max_size=2),
    TABLE_LIST: st.text(max_size=8) | st.integers() | st.booleans() | st.just({}),
}


@st.composite
def wrong_type(draw, config: RawConfig) -> Broken:
    file = draw(any_file(config))
    doc = config.documents()[file]
    name = draw(st.sampled_from(fields_in(file, doc)))
    set_field(doc, name, draw(WRONG_TYPES[fields_of(file)[name]]))
    # The type check says "must be <kind>, got <type> <value>"; range and pattern checks say "(got ...)".
    return Broken(config, file, name, ", got ")


@st.composite
def wrong_list_item(draw, config: RawConfig) -> Broken:
    file = draw(st.sampled_from(env_files(config)))
    emails = config.documents()[file]["alarm_emails"]
    index = draw(st.integers(0, len(emails) - 1))
    emails[index] = draw(not_strings)
    return Broken(config, file, f"alarm_emails[{index}]", "must be an e-mail address")


@st.composite
def missing_field(draw, config: RawConfig) -> Broken:
    file = draw(any_file(config))
    doc = config.documents()[file]
    name = draw(st.sampled_from([name for name in fields_in(file, doc) if name not in OPTIONAL_FIELDS]))
    delete_field(doc, name)
    return Broken(config, file, name, "is required")


@st.composite
def unknown_key(draw, config: RawConfig) -> Broken:
    file = draw(any_file(config))
    doc = config.documents()[file]
    tables = [name for name, kind in fields_of(file).items() if kind == TABLE and has_field(doc, name)]
    where = draw(st.sampled_from(["", *tables]))
    known = set(get_field(doc, where) if where else doc) | {name.split(".")[-1] for name in fields_of(file)}
    key = draw(st.text(string.ascii_lowercase + "_", min_size=1, max_size=12).filter(lambda key: key not in known))
    name = f"{where}.{key}" if where else key
    set_field(doc, name, draw(st.text(max_size=4) | st.integers() | st.booleans()))
    return Broken(config, file, name, "is not a known setting")


INTEGER_RANGES = {
    "network.az_count": (min(AZ_COUNTS), max(AZ_COUNTS)),
    "database.reader_count": (0, MAX_READERS),
    "database.backup_retention_days": BACKUP_RETENTION_DAYS,
    "database.secret_rotation_days": SECRET_ROTATION_DAYS,
    "api.min_tasks": TASK_COUNT,
    "api.max_tasks": TASK_COUNT,
    "api.container_port": CONTAINER_PORTS,
    "features.waf_rate_limit": WAF_RATE_LIMITS,  # optional: set out of range, still refused
}
TOML_INTEGERS = (-(2**63), 2**63 - 1)


def outside(low: int, high: int) -> st.SearchStrategy[int]:
    return st.integers(TOML_INTEGERS[0], low - 1) | st.integers(high + 1, TOML_INTEGERS[1])


@st.composite
def out_of_range(draw, config: RawConfig) -> Broken:
    """Integers outside their range, capacity units off the 0.5 grid or outside 0.5..256."""
    file = draw(st.sampled_from([PROJECT_FILE, *env_files(config)]))
    doc = config.documents()[file]
    if file == PROJECT_FILE:
        set_field(doc, "state.noncurrent_version_days", draw(outside(*NONCURRENT_VERSION_DAYS)))
        return Broken(config, file, "state.noncurrent_version_days", "must be between")
    name = draw(st.sampled_from([*INTEGER_RANGES, "database.min_acu", "database.max_acu"]))
    if name in INTEGER_RANGES:
        value = draw(outside(*INTEGER_RANGES[name]))
    else:
        low = ACU_RANGE[0] if name == "database.min_acu" else MAX_ACU_FLOOR
        off_grid = st.floats(low, ACU_RANGE[1]).filter(lambda acu: acu * 2 != int(acu * 2))
        value = draw(off_grid | half_steps(-10, low - 0.5) | half_steps(ACU_RANGE[1] + 0.5, 1000))
    set_field(doc, name, value)
    return Broken(config, file, name, "must be between")


@st.composite
def not_an_allowed_value(draw, config: RawConfig) -> Broken:
    """Values outside the fixed lists: log retention, NAT mode, Fargate CPU and memory."""
    file = draw(st.sampled_from(env_files(config)))
    doc = config.documents()[file]
    choice = draw(st.sampled_from(("log_retention_days", "network.nat_gateways", "api.cpu", "api.memory")))
    if choice == "api.memory":
        cpu = doc["api"]["cpu"]
        doc["api"]["memory"] = draw(st.integers(512, 122880).filter(lambda memory: memory not in FARGATE_SIZES[cpu]))
        return Broken(config, file, choice, f"is not a Fargate size for cpu {cpu}")
    values = {
        # n + 1 is never an allowed period when n is one (1 -> 2, 7 -> 8, 3653 -> 3654).
        "log_retention_days": st.integers(-10, 4000).map(lambda days: days + 1 if days in LOG_RETENTION_DAYS else days),
        "network.nat_gateways": st.text(max_size=8).filter(lambda mode: mode not in ("single", "per_az")),
        "api.cpu": st.integers(0, 20000).filter(lambda cpu: cpu not in FARGATE_SIZES),
    }
    set_field(doc, choice, draw(values[choice]))
    return Broken(config, file, choice, "must be one of")


@st.composite
def malformed_string(draw, config: RawConfig) -> Broken:
    """A trailing newline (or garbage) makes every string field invalid, whatever its pattern."""
    file = draw(any_file(config))
    doc = config.documents()[file]
    name = draw(st.sampled_from(fields_in(file, doc, {STRING, STRING_LIST})))
    suffix = draw(st.sampled_from(("\n", " \t", "\u00a0!", "\r\n")))
    value = get_field(doc, name)
    if isinstance(value, list):
        index = draw(st.integers(0, len(value) - 1))
        value[index] += suffix
        malformed, name = value[index], f"{name}[{index}]"
    else:
        malformed = value + suffix
        set_field(doc, name, malformed)
    return Broken(config, file, name, f"(got {malformed!r})")  # the field's pattern rule, quoting this value


@st.composite
def min_above_max(draw, config: RawConfig) -> Broken:
    file = draw(st.sampled_from(env_files(config)))
    doc = config.documents()[file]
    if draw(st.booleans()):
        low = draw(st.integers(TASK_COUNT[0], TASK_COUNT[1] - 1))
        doc["api"]["min_tasks"], doc["api"]["max_tasks"] = draw(st.integers(low + 1, TASK_COUNT[1])), low
        return Broken(config, file, "api.min_tasks", "must be <= api.max_tasks")
    low = draw(half_steps(MAX_ACU_FLOOR, ACU_RANGE[1] - 0.5))
    doc["database"]["min_acu"], doc["database"]["max_acu"] = draw(half_steps(low + 0.5, ACU_RANGE[1])), low
    return Broken(config, file, "database.min_acu", "must be <= database.max_acu")


@st.composite
def overlapping_cidr(draw, config: RawConfig) -> Broken:
    """One environment takes a network inside (or equal to) another environment's."""
    mine, theirs = draw(two_environments(config))
    docs = config.documents()
    network = ipaddress.IPv4Network(docs[theirs]["network"]["cidr"])
    prefix = draw(st.integers(network.prefixlen, VPC_PREFIXES[1]))
    docs[mine]["network"]["cidr"] = str(draw(st.sampled_from(list(network.subnets(new_prefix=prefix)))))
    return Broken(config, later(mine, theirs), "network.cidr", "must not overlap other environments")


def public_networks() -> st.SearchStrategy[str]:
    networks = st.builds(lambda address, prefix: ipaddress.IPv4Network(f"{address}/{prefix}", strict=False),
                         st.ip_addresses(v=4), st.integers(*VPC_PREFIXES))
    return networks.filter(lambda net: not any(net.subnet_of(block) for block in PRIVATE_BLOCKS)).map(str)


@st.composite
def invalid_cidr(draw, config: RawConfig) -> Broken:
    """Not RFC 1918, a prefix outside /16-/20, host bits set, or not an IPv4 network at all."""
    file = draw(st.sampled_from(env_files(config)))
    network = ipaddress.IPv4Network(config.documents()[file]["network"]["cidr"])
    kind = draw(st.sampled_from(("public", "prefix", "host bits", "garbage")))
    if kind == "public":
        cidr, rule = draw(public_networks()), "must be a private (RFC 1918) range"
    elif kind == "prefix":
        prefix = draw(st.integers(0, VPC_PREFIXES[0] - 1) | st.integers(VPC_PREFIXES[1] + 1, 32))
        cidr = str(ipaddress.IPv4Network(f"{network.network_address}/{prefix}", strict=False))
        rule = "prefix must be between /16 and /20"
    elif kind == "host bits":
        host = draw(st.integers(1, network.num_addresses - 1))
        cidr, rule = f"{network.network_address + host}/{network.prefixlen}", "has host bits set"
    else:
        cidr = draw(st.sampled_from(("10.0.0.0/", "10.0.0/16", "256.0.0.0/16", "10.0.0.0/16/1",
                                     "fd00::/16", "ten.zero/16", "")))
        rule = "must be an IPv4"
    config.documents()[file]["network"]["cidr"] = cidr
    return Broken(config, file, "network.cidr", rule)


@st.composite
def production_rule_broken(draw, config: RawConfig) -> Broken:
    file = draw(st.sampled_from(env_files(config)))
    doc = config.documents()[file]
    was_production = doc["production"]
    doc["production"] = True
    rule = draw(st.sampled_from(("spot", "deletion", "image")))
    if rule == "spot":
        doc["api"]["fargate_spot"], doc["database"]["deletion_protection"] = True, draw(st.booleans())
        return Broken(config, file, "api.fargate_spot", "must be false when production = true")
    if rule == "deletion":
        doc["api"]["fargate_spot"], doc["database"]["deletion_protection"] = False, False
        return Broken(config, file, "database.deletion_protection", "must be true when production = true")
    doc["api"]["fargate_spot"], doc["database"]["deletion_protection"] = False, True
    if was_production and draw(st.booleans()):
        # Issue 15: a production document is valid in every other respect, so only its [dr] rule fails.
        if "dr" in doc and draw(st.booleans()):
            doc["dr"]["vault_lock"] = False
            return Broken(config, file, "dr.vault_lock", "must be true when production = true")
        doc.pop("dr", None)
        return Broken(config, file, "dr", "must be set when production = true")
    # Issue 14: production runs only images pinned by digest; a tag (or no tag) is refused.
    doc["api"]["container_image"] = draw(container_images()).split("@")[0]
    return Broken(config, file, "api.container_image", "must be pinned by digest")


@st.composite
def duplicate_domain(draw, config: RawConfig) -> Broken:
    mine, theirs = draw(two_environments(config))
    docs = config.documents()
    docs[mine]["domain"] = docs[theirs]["domain"]
    return Broken(config, later(mine, theirs), "domain", "must differ from every other environment")


@st.composite
def foreign_application(draw, config: RawConfig) -> Broken:
    file = draw(st.sampled_from(env_files(config)))
    application = config.project["application"]
    config.documents()[file]["application"] = draw(application_names().filter(lambda name: name != application))
    return Broken(config, file, "application", f"must equal application in {CONFIG_FOLDER}/{PROJECT_FILE}")


@st.composite
def wrong_name(draw, config: RawConfig) -> Broken:
    """The name must be the file's stem; names of existing stacks are refused."""
    stem = draw(st.sampled_from(sorted(config.environments)))
    if draw(st.booleans()):
        config.environments[stem]["name"] = draw(environment_names().filter(lambda name: name != stem))
        return Broken(config, f"{stem}.toml", "name", f"must match the file name {stem!r}")
    doc = config.environments.pop(stem)
    doc["name"] = "bootstrap"
    config.environments["bootstrap"] = doc
    return Broken(config, "bootstrap.toml", "name", "must not be")


# A lone 0xE9 byte, as an ISO-8859-1 editor saves "café" (kept as a surrogate until encoded).
NOT_UTF8_LINE = 'latin1 = "caf\udce9"'
BROKEN_LINES = ("= 1", "[network", "bad key = 1", "key =", 'text = "unterminated', "[[", "x = [1, 2]]", "a.=1",
                NOT_UTF8_LINE)


@st.composite
def malformed_toml(draw, config: RawConfig) -> Broken:
    """A line TOML cannot parse, inserted anywhere; the error gives its line number."""
    file = draw(any_file(config))
    lines = to_toml(config.documents()[file]).splitlines()
    index = draw(st.integers(0, len(lines)))
    line = draw(st.sampled_from(BROKEN_LINES))
    lines.insert(index, line)
    raw = ("\n".join(lines) + "\n").encode("utf-8", errors="surrogateescape")
    rule = "not UTF-8" if line == NOT_UTF8_LINE else f"(at line {index + 1}, column "  # not line 12 for line 1
    return Broken(config, file, "", rule, raw={file: raw})


MUTATIONS = (wrong_type, wrong_list_item, missing_field, unknown_key, out_of_range, not_an_allowed_value,
             malformed_string, min_above_max, overlapping_cidr, invalid_cidr, production_rule_broken,
             duplicate_domain, foreign_application, wrong_name, malformed_toml)


def broken_configurations(mutation) -> st.SearchStrategy[Broken]:
    """A valid configuration of 2-4 environments with exactly one fault, made by `mutation`."""
    valid = configurations(min_environments=2, max_environments=4)
    return valid.map(copy.deepcopy).flatmap(mutation)


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda mutation: mutation.__name__)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_broken_configuration_is_refused_with_file_field_and_rule(mutation, data):
    broken: Broken = data.draw(broken_configurations(mutation), label="broken")
    with tempfile.TemporaryDirectory() as temporary:
        directory = write_config(Path(temporary) / CONFIG_FOLDER, broken.config.project, broken.config.environments)
        for name, raw in broken.raw.items():
            (directory / name).write_bytes(raw)
        label = f"{CONFIG_FOLDER}/{broken.file}"
        with pytest.raises(ConfigError, match=f"^{re.escape(label)}: ") as caught:  # a traceback fails the test
            load_project(directory)
    error = caught.value
    assert (error.file, error.field) == (label, broken.field), str(error)
    assert broken.rule in error.rule, str(error)
    assert str(error) == (f"{label}: {broken.field}: {error.rule}" if broken.field else f"{label}: {error.rule}")
    assert len(str(error).splitlines()) == 1, "the error must print as one line"
    if not broken.field:
        assert "is not valid TOML" in error.rule


# --- (c) valid configurations always synthesize ------------------------------------------------


@pytest.mark.slow
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configurations(min_environments=1, max_environments=3))
def test_every_valid_configuration_synthesizes_one_stack_per_environment(config: RawConfig):
    with config_directory(config) as directory:
        project = load_project(directory)
        stacks = synthesize(project, directory.parent / "cdktf.out")
    names = set(config.environments)
    baselines = {baseline.stack_name: baseline.state_key for baseline in project.baselines}
    dr_stacks = {env.dr_stack_name: env.dr_state_key for env in project.environments if env.dr}
    assert set(stacks) == {"bootstrap"} | names | set(baselines) | set(dr_stacks)
    keys = {}
    for name in names:
        backend = stacks[name]["terraform"]["backend"]["s3"]
        assert backend["bucket"] == config.project["state"]["bucket"]
        assert backend["region"] == config.project["state"]["region"]
        keys[name] = backend["key"]
        (default,) = [provider for provider in stacks[name]["provider"]["aws"] if "alias" not in provider]
        assert default["region"] == config.environments[name]["region"]
    assert keys == {name: f"{name}/terraform.tfstate" for name in names}
    assert len(set(keys.values())) == len(names), "two environments would share one state file"
    published = stacks["bootstrap"]["output"]["backend_settings"]["value"]["keys"]
    assert published == keys | baselines | dr_stacks
    assert not set(baselines.values()) & set(keys.values()), "a baseline would share an environment's state"
    recorders = Counter()
    for baseline in project.baselines:
        recorders[baseline.account_id, baseline.region] += len(
            stacks[baseline.stack_name].get("resource", {}).get("aws_config_configuration_recorder", {}))
    assert all(count <= 1 for count in recorders.values()), f"two recorders in one account and region: {recorders}"
    for name in names:
        assert not stacks[name].get("resource", {}).get("aws_config_configuration_recorder"), name


@settings(max_examples=20, deadline=None)
@given(configurations())
def test_field_tables_describe_every_generated_setting(config: RawConfig):
    """The mutations draw fields from these tables, so a setting missing there would go untested."""
    for file, doc in config.documents().items():
        present = {key for key in doc} | {f"{table}.{key}" for table, value in doc.items()
                                          if isinstance(value, dict) for key in value}
        assert present <= set(fields_of(file)), file
        assert all(is_optional(name) for name in set(fields_of(file)) - present), file
