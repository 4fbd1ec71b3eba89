"""SPEC section 2: the shipped configuration, and every rule of environments/loader.py.

Each refused input must raise one ConfigError naming the file, the dotted field and the rule.
Tests work on a copy of environments/*.toml in tmp_path with one file changed.
"""

from __future__ import annotations

import dataclasses
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest

from environments.loader import ConfigError, load_project
from environments.model import EmulatorConfig, NatMode
from tests.strategies import (
    ENVIRONMENT_FIELDS,
    PROJECT_FIELDS,
    delete_field,
    is_optional,
    set_field,
    to_toml,
)

# SPEC section 2, defaults table.
SPEC = {
    "dev": {
        "cidr": "10.0.0.0/16", "nat": NatMode.SINGLE, "acu": (0.5, 2.0), "readers": 0, "backup": 7,
        "deletion_protection": False, "cpu": 256, "memory": 512, "tasks": (1, 3), "spot": True, "logs": 7,
        "domain": "dev.example.com",
    },
    "staging": {
        "cidr": "10.1.0.0/16", "nat": NatMode.SINGLE, "acu": (1.0, 4.0), "readers": 1, "backup": 7,
        "deletion_protection": True, "cpu": 512, "memory": 1024, "tasks": (2, 6), "spot": True, "logs": 30,
        "domain": "staging.example.com",
    },
    "production": {
        "cidr": "10.2.0.0/16", "nat": NatMode.PER_AZ, "acu": (2.0, 16.0), "readers": 1, "backup": 30,
        "deletion_protection": True, "cpu": 1024, "memory": 2048, "tasks": (3, 20), "spot": False, "logs": 90,
        "domain": "example.com",
    },
}
SPEC_AZ_COUNT = 2
SPEC_SECRET_ROTATION_DAYS = 30



def set_value(directory: Path, file: str, field: str, value: Any) -> None:
    """Rewrite one setting of one file (`field` is dotted: `network.cidr`)."""
    path = directory / file
    document = tomllib.loads(path.read_text())
    set_field(document, field, value)
    path.write_text(to_toml(document))


def remove_value(directory: Path, file: str, field: str) -> None:
    path = directory / file
    document = tomllib.loads(path.read_text())
    delete_field(document, field)
    path.write_text(to_toml(document))


def replace_line(directory: Path, file: str, number: int, text: str) -> None:
    """Replace 1-based line `number` of a file with raw text (for syntax errors)."""
    path = directory / file
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")


def refusal(directory: Path, emulator: str | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_project(directory, emulator)
    error = caught.value
    assert len(str(error).splitlines()) == 1, "a configuration error prints as exactly one line"
    return error


def assert_refused(directory: Path, file: str, field: str, rule: str) -> ConfigError:
    """The load fails with `environments/<file>: <field>: <rule...>`."""
    error = refusal(directory)
    label = f"environments/{file}"
    assert (error.file, error.field) == (label, field), str(error)
    assert rule in error.rule, str(error)
    assert str(error) == f"{label}: {field}: {error.rule}"
    return error


# --- The shipped configuration ----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SPEC))
def test_shipped_environment_matches_the_spec_defaults(project, name):
    spec = SPEC[name]
    env = project.environment(name)
    assert env.name == name and env.source == f"environments/{name}.toml"
    assert env.production is (name == "production")
    assert env.domain == spec["domain"]
    assert env.log_retention_days == spec["logs"] and type(env.log_retention_days) is int
    assert env.network.cidr == spec["cidr"]
    assert env.network.az_count == SPEC_AZ_COUNT and type(env.network.az_count) is int
    assert env.network.nat_gateways is spec["nat"]
    database = env.database
    assert (database.min_acu, database.max_acu) == spec["acu"]
    assert type(database.min_acu) is float and type(database.max_acu) is float
    assert database.reader_count == spec["readers"] and type(database.reader_count) is int
    assert database.backup_retention_days == spec["backup"] >= 7
    assert database.deletion_protection is spec["deletion_protection"]
    assert database.secret_rotation_days == SPEC_SECRET_ROTATION_DAYS
    api = env.api
    assert (api.cpu, api.memory) == (spec["cpu"], spec["memory"])
    assert type(api.cpu) is int and type(api.memory) is int
    assert (api.min_tasks, api.max_tasks) == spec["tasks"]
    assert api.fargate_spot is spec["spot"]
    assert env.state_key == f"{name}/terraform.tfstate"


def test_shipped_project_holds_exactly_the_spec_environments(project):
    assert [env.name for env in project.environments] == sorted(SPEC)  # read in file-name order
    assert isinstance(project.environments, tuple)
    assert {env.application for env in project.environments} == {project.application}
    assert project.source == "environments/project.toml"
    assert project.emulator is None
    with pytest.raises(KeyError, match="qa"):
        project.environment("qa")


def test_configuration_objects_are_immutable(project):
    env = project.environment("dev")
    mutations = [
        (project, "environments", ()), (project.state, "bucket", "other"), (env, "name", "qa"),
        (env.network, "cidr", "10.9.0.0/16"), (env.database, "deletion_protection", True),
        (env.api, "fargate_spot", False), (env.features, "waf", True),
    ]
    for target, attribute, value in mutations:
        with pytest.raises(dataclasses.FrozenInstanceError, match=f"cannot assign to field '{attribute}'"):
            setattr(target, attribute, value)
    assert isinstance(env.alarm_emails, tuple), "a list inside a frozen object could still be changed"


def test_an_environment_is_added_by_adding_a_file(config_dir):
    qa = (config_dir / "dev.toml").read_text().replace('name = "dev"', 'name = "qa"')
    qa = qa.replace("10.0.0.0/16", "10.3.0.0/20").replace("dev.example.com", "qa.example.com")
    (config_dir / "qa.toml").write_text(qa)
    project = load_project(config_dir)
    assert [env.name for env in project.environments] == ["dev", "production", "qa", "staging"]
    assert project.environment("qa").source == "environments/qa.toml"
    assert project.environment("qa").state_key == "qa/terraform.tfstate"


def test_account_ids_are_optional_and_kept_as_text(config_dir):
    set_value(config_dir, "dev.toml", "account_id", "012345678901")
    set_value(config_dir, "project.toml", "account_id", "109876543210")
    project = load_project(config_dir)
    assert project.account_id == "109876543210"
    assert project.environment("dev").account_id == "012345678901"  # the leading zero survives
    assert project.environment("staging").account_id is None


# --- Types ------------------------------------------------------------------------------------

TYPE_ERRORS = [
    ("dev.toml", "name", 1, "must be a string"),
    ("dev.toml", "production", "false", "must be true or false"),
    ("dev.toml", "production", 1, "must be true or false"),
    ("dev.toml", "region", ["eu-west-1"], "must be a string"),
    ("dev.toml", "account_id", 123456789012, "must be a string"),
    ("dev.toml", "alarm_emails", "alerts-dev@example.com", "must be a list of strings"),
    ("dev.toml", "log_retention_days", "7", "got str"),
    ("dev.toml", "log_retention_days", True, "got a boolean"),
    ("dev.toml", "network", "10.0.0.0/16", "must be a table"),
    ("dev.toml", "network.cidr", 10, "must be a string"),
    ("dev.toml", "network.az_count", True, "must be an integer, got a boolean"),
    ("dev.toml", "network.az_count", 2.0, "must be an integer, got float"),
    ("dev.toml", "network.az_count", "2", "must be an integer, got str"),
    ("dev.toml", "database.min_acu", True, "must be a number, got a boolean"),
    ("dev.toml", "database.max_acu", "2", "must be a number, got str"),
    ("dev.toml", "database.reader_count", False, "must be an integer, got a boolean"),
    ("dev.toml", "database.backup_retention_days", 7.5, "must be an integer"),
    ("dev.toml", "database.deletion_protection", 0, "must be true or false"),
    ("dev.toml", "api.cpu", True, "got a boolean"),
    ("dev.toml", "api.memory", True, "must be an integer, got a boolean"),
    ("dev.toml", "api.min_tasks", True, "must be an integer, got a boolean"),
    ("dev.toml", "api.max_tasks", 3.0, "must be an integer, got float"),
    ("dev.toml", "api.fargate_spot", "yes", "must be true or false"),
    ("dev.toml", "api.container_port", "8080", "must be an integer"),
    ("dev.toml", "features.waf", "false", "must be true or false"),
    ("dev.toml", "features", ["waf"], "must be a table"),
    ("project.toml", "application", 1, "must be a string"),
    ("project.toml", "state", "webapp-terraform-state-example", "must be a table"),
    ("project.toml", "state.noncurrent_version_days", True, "must be an integer, got a boolean"),
]


@pytest.mark.parametrize(("file", "field", "value", "rule"), TYPE_ERRORS,
                         ids=[f"{file}:{field}={value!r}" for file, field, value, _ in TYPE_ERRORS])
def test_a_value_of_the_wrong_type_is_refused(config_dir, file, field, value, rule):
    set_value(config_dir, file, field, value)
    assert_refused(config_dir, file, field, rule)


def test_a_non_string_alarm_email_names_its_position(config_dir):
    set_value(config_dir, "dev.toml", "alarm_emails", ["ok@example.com", 7])
    assert_refused(config_dir, "dev.toml", "alarm_emails[1]", "must be an e-mail address")


# --- Missing and unknown keys -----------------------------------------------------------------

REQUIRED = [("dev.toml", name) for name in ENVIRONMENT_FIELDS if not is_optional(name)] + [
    ("project.toml", name) for name in PROJECT_FIELDS if not is_optional(name)]


@pytest.mark.parametrize(("file", "field"), REQUIRED, ids=[f"{file}:{field}" for file, field in REQUIRED])
def test_a_missing_setting_is_refused(config_dir, file, field):
    remove_value(config_dir, file, field)
    assert_refused(config_dir, file, field, "is required")


UNKNOWN = [
    ("dev.toml", "nmae"),  # a typo must not be silently ignored
    ("dev.toml", "redis"),
    ("dev.toml", "network.cidr_block"),
    ("dev.toml", "database.multi_az"),
    ("dev.toml", "api.spot"),
    ("dev.toml", "features.cdn"),
    ("project.toml", "region"),
    ("project.toml", "state.encrypt"),
]


@pytest.mark.parametrize(("file", "field"), UNKNOWN, ids=[f"{file}:{field}" for file, field in UNKNOWN])
def test_an_unknown_setting_is_refused(config_dir, file, field):
    set_value(config_dir, file, field, True)
    assert_refused(config_dir, file, field, "is not a known setting")


def test_an_unknown_table_is_refused(config_dir):
    with (config_dir / "staging.toml").open("a") as handle:
        handle.write("\n[cache]\nnode_type = \"cache.t4g.micro\"\n")
    assert_refused(config_dir, "staging.toml", "cache", "is not a known setting")


# --- Ranges and formats -----------------------------------------------------------------------

RANGE_ERRORS = [
    ("network.az_count", 1, "must be between 2 and 3"),
    ("network.az_count", 4, "must be between 2 and 3"),
    ("database.reader_count", -1, "must be between 0 and 15"),
    ("database.reader_count", 16, "must be between 0 and 15"),
    ("database.backup_retention_days", 6, "must be between 7 and 35"),
    ("database.backup_retention_days", 0, "must be between 7 and 35"),
    ("database.backup_retention_days", 36, "must be between 7 and 35"),
    ("database.secret_rotation_days", 0, "must be between 1 and 365"),
    ("database.secret_rotation_days", 366, "must be between 1 and 365"),
    ("database.min_acu", 0, "must be between 0.5 and 256 in steps of 0.5"),
    ("database.min_acu", 0.25, "in steps of 0.5"),
    ("database.min_acu", 0.75, "in steps of 0.5"),
    ("database.max_acu", 0.5, "must be between 1 and 256"),
    ("database.max_acu", 256.5, "must be between 1 and 256"),
    ("database.max_acu", float("inf"), "must be between 1 and 256"),
    ("database.max_acu", float("nan"), "must be between 1 and 256"),
    ("api.min_tasks", 0, "must be between 1 and 100"),
    ("api.max_tasks", 101, "must be between 1 and 100"),
    ("api.container_port", 80, "must be between 1024 and 65535"),
    ("api.container_port", 65536, "must be between 1024 and 65535"),
    ("log_retention_days", 10, "must be one of"),
    ("log_retention_days", 0, "must be one of"),
    ("network.nat_gateways", "multi", "must be one of single, per_az"),
    ("network.nat_gateways", "SINGLE", "must be one of single, per_az"),
]


@pytest.mark.parametrize(("field", "value", "rule"), RANGE_ERRORS,
                         ids=[f"{field}={value!r}" for field, value, _ in RANGE_ERRORS])
def test_a_value_out_of_range_is_refused(config_dir, field, value, rule):
    set_value(config_dir, "dev.toml", field, value)
    assert_refused(config_dir, "dev.toml", field, rule)


@pytest.mark.parametrize(("field", "value"), [
    ("network.az_count", 3), ("database.backup_retention_days", 35), ("database.reader_count", 15),
    ("database.min_acu", 0.5), ("database.max_acu", 256), ("api.container_port", 1024), ("log_retention_days", 3653),
])
def test_values_at_the_edge_of_their_range_load(config_dir, field, value):
    set_value(config_dir, "dev.toml", field, value)
    *tables, key = field.split(".")
    loaded = load_project(config_dir).environment("dev")
    for table in tables:
        loaded = getattr(loaded, table)
    assert getattr(loaded, key) == value


FORMAT_ERRORS = [
    ("dev.toml", "name", "Dev", "must be 2-16 lowercase letters"),
    ("dev.toml", "name", "dev\n", "must be 2-16 lowercase letters"),
    ("dev.toml", "region", "Europe", "must be an AWS region"),
    ("dev.toml", "region", "eu-west-1\n", "must be an AWS region"),  # `$` alone accepts a trailing newline
    ("dev.toml", "region", "eu-west-\u0661", "must be an AWS region"),  # an Arabic-Indic digit is still \d
    ("dev.toml", "account_id", "12345", "must be a 12-digit AWS account id"),
    ("dev.toml", "account_id", "\u0661" * 12, "must be a 12-digit AWS account id"),
    ("dev.toml", "application", "Web_App", "must be 2-20 lowercase letters"),
    # AWS rejects "--" in RDS identifiers (found by property 10's terraform validate).
    ("dev.toml", "application", "web--app", "no two hyphens in a row"),
    ("project.toml", "application", "web--app", "no two hyphens in a row"),
    ("dev.toml", "name", "de--v", "no two hyphens in a row"),
    ("dev.toml", "owner", "team#1", "must be a valid AWS tag value"),
    ("dev.toml", "owner", "platform-team\n", "must be a valid AWS tag value"),
    ("dev.toml", "cost_center", "", "must be a valid AWS tag value"),
    ("dev.toml", "domain", "Dev.Example.com", "must be a lowercase DNS name"),
    ("dev.toml", "domain", "localhost", "must be a lowercase DNS name"),
    ("dev.toml", "domain", "dev.example.com\n", "must be a lowercase DNS name"),
    ("dev.toml", "alarm_emails", [], "must list at least one value"),
    ("dev.toml", "alarm_emails", ["a@example.com", "a@example.com"], "must not repeat a value"),
    ("dev.toml", "api.container_image", "nginx latest", "must be an image reference without spaces"),
    ("dev.toml", "api.container_image", "nginx\n", "must be an image reference without spaces"),
    ("project.toml", "state.region", "EU-WEST-1", "must be an AWS region"),
    ("project.toml", "state.bucket", "Webapp_State", "must be a valid S3 bucket name"),
    ("project.toml", "state.bucket", "b" * 52, "must be a valid S3 bucket name"),
    ("project.toml", "state.lock_table", "ab", "must be a valid DynamoDB table name"),
    ("project.toml", "state.kms_alias", "alias/aws/s3", "must look like alias/<name>"),
    ("project.toml", "state.kms_alias", "webapp-state", "must look like alias/<name>"),
    ("project.toml", "state.noncurrent_version_days", 0, "must be between 1 and 3650"),
    ("project.toml", "state.noncurrent_version_days", 3651, "must be between 1 and 3650"),
]


@pytest.mark.parametrize(("file", "field", "value", "rule"), FORMAT_ERRORS,
                         ids=[f"{file}:{field}={value!r}" for file, field, value, _ in FORMAT_ERRORS])
def test_a_badly_formed_value_is_refused(config_dir, file, field, value, rule):
    set_value(config_dir, file, field, value)
    assert_refused(config_dir, file, field, rule)


@pytest.mark.parametrize(("value", "position"), [(["not-an-email"], 0), (["a@example.com", "b@example.com\n"], 1)])
def test_a_bad_alarm_email_names_its_position(config_dir, value, position):
    set_value(config_dir, "dev.toml", "alarm_emails", value)
    assert_refused(config_dir, "dev.toml", f"alarm_emails[{position}]", "must be an e-mail address")


def test_the_longest_allowed_state_bucket_name_loads(config_dir):
    set_value(config_dir, "project.toml", "state.bucket", "b" * 51)  # + "-access-logs" = 63, the S3 limit
    assert load_project(config_dir).state.bucket == "b" * 51


# --- Fargate task sizes -----------------------------------------------------------------------

# AWS Fargate: every CPU size with its smallest and largest memory, and one size in between.
VALID_SIZES = [(256, 512), (256, 1024), (256, 2048), (512, 1024), (512, 3072), (512, 4096), (1024, 2048),
               (1024, 5120), (1024, 8192), (2048, 4096), (2048, 16384), (4096, 8192), (4096, 30720),
               (8192, 16384), (8192, 20480), (8192, 61440), (16384, 32768), (16384, 40960), (16384, 122880)]
INVALID_SIZES = [(256, 256), (256, 3072), (256, 4096), (512, 512), (512, 5120), (1024, 1024), (1024, 9216),
                 (2048, 3072), (2048, 17408), (4096, 31744), (8192, 18432), (8192, 65536), (16384, 36864),
                 (16384, 131072)]


@pytest.mark.parametrize(("cpu", "memory"), VALID_SIZES)
def test_every_fargate_cpu_accepts_its_documented_memory_sizes(config_dir, cpu, memory):
    set_value(config_dir, "dev.toml", "api.cpu", cpu)
    set_value(config_dir, "dev.toml", "api.memory", memory)
    api = load_project(config_dir).environment("dev").api
    assert (api.cpu, api.memory) == (cpu, memory)


@pytest.mark.parametrize(("cpu", "memory"), INVALID_SIZES)
def test_a_memory_size_fargate_does_not_offer_for_the_cpu_is_refused(config_dir, cpu, memory):
    set_value(config_dir, "dev.toml", "api.cpu", cpu)
    set_value(config_dir, "dev.toml", "api.memory", memory)
    error = refusal(config_dir)
    assert (error.file, error.field) == ("environments/dev.toml", "api.memory"), str(error)
    assert "Fargate size" in error.rule or "must be between" in error.rule


@pytest.mark.parametrize("cpu", [128, 300, 1000, 32768])
def test_a_cpu_size_fargate_does_not_offer_is_refused(config_dir, cpu):
    set_value(config_dir, "dev.toml", "api.cpu", cpu)
    assert_refused(config_dir, "dev.toml", "api.cpu", "must be one of 256, 512, 1024, 2048, 4096, 8192, 16384")


# --- Names ------------------------------------------------------------------------------------


def test_the_name_must_match_the_file_name(config_dir):
    set_value(config_dir, "dev.toml", "name", "staging")
    assert_refused(config_dir, "dev.toml", "name", "must match the file name 'dev' (got 'staging')")


def test_a_copied_file_keeps_a_foreign_name_and_is_refused(config_dir):
    """Two environments can never share a name: each name must equal its own file's name."""
    shutil.copy(config_dir / "dev.toml", config_dir / "qa.toml")
    assert_refused(config_dir, "qa.toml", "name", "must match the file name 'qa'")


def test_an_environment_cannot_take_the_bootstrap_stack_name(config_dir):
    text = (config_dir / "dev.toml").read_text().replace('name = "dev"', 'name = "bootstrap"')
    (config_dir / "bootstrap.toml").write_text(text.replace("10.0.0.0/16", "10.9.0.0/16")
                                               .replace("dev.example.com", "ops.example.com"))
    assert_refused(config_dir, "bootstrap.toml", "name", "must not be one of bootstrap")


def test_reserved_names_include_every_stack_the_app_creates_besides_environments():
    from bootstrap.stack import STACK_NAME
    from environments.loader import RESERVED_NAMES

    assert STACK_NAME in RESERVED_NAMES


# --- Networks ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("file", "cidr", "reported", "other"), [
    ("staging.toml", "10.0.0.0/16", "staging.toml", "dev.toml"),  # identical
    ("staging.toml", "10.0.128.0/17", "staging.toml", "dev.toml"),  # inside dev
    ("production.toml", "10.1.0.0/20", "staging.toml", "production.toml"),  # reported by the file read later
])
def test_overlapping_networks_are_refused(config_dir, file, cidr, reported, other):
    set_value(config_dir, file, "network.cidr", cidr)
    error = assert_refused(config_dir, reported, "network.cidr", "must not overlap other environments")
    assert f"in environments/{other}" in error.rule


def test_neighbouring_networks_load(config_dir):
    set_value(config_dir, "dev.toml", "network.cidr", "10.3.0.0/20")
    set_value(config_dir, "staging.toml", "network.cidr", "10.3.16.0/20")
    assert load_project(config_dir).environment("staging").network.cidr == "10.3.16.0/20"


@pytest.mark.parametrize("cidr", ["11.0.0.0/16", "8.8.0.0/16", "172.32.0.0/16", "192.169.0.0/16", "100.64.0.0/16",
                                  "127.0.0.0/16", "169.254.0.0/16", "0.0.0.0/16", "198.18.0.0/16", "240.0.0.0/16"])
def test_a_network_outside_rfc1918_is_refused(config_dir, cidr):
    set_value(config_dir, "dev.toml", "network.cidr", cidr)
    assert_refused(config_dir, "dev.toml", "network.cidr", "must be a private (RFC 1918) range")


@pytest.mark.parametrize("cidr", ["10.0.0.0/8", "172.16.0.0/12", "10.0.0.0/15", "10.0.0.0/21", "10.0.0.0/24",
                                  "10.0.0.0"])
def test_a_network_prefix_outside_16_to_20_is_refused(config_dir, cidr):
    set_value(config_dir, "dev.toml", "network.cidr", cidr)
    assert_refused(config_dir, "dev.toml", "network.cidr", "prefix must be between /16 and /20")


@pytest.mark.parametrize(("cidr", "rule"), [
    ("10.0.0.1/16", "has host bits set"), ("10.0.0/16", "must be an IPv4 network address"),
    ("10.0.0.0/16/1", "must be an IPv4 network address"), ("fd00::/16", "must be an IPv4 CIDR block"),
    ("10.0.0.0/16\n", "must be an IPv4 CIDR block"), ("", "must be an IPv4 CIDR block"),
])
def test_a_malformed_network_is_refused(config_dir, cidr, rule):
    set_value(config_dir, "dev.toml", "network.cidr", cidr)
    assert_refused(config_dir, "dev.toml", "network.cidr", rule)


@pytest.mark.parametrize("cidr", ["172.16.0.0/16", "172.31.240.0/20", "192.168.0.0/16", "192.168.240.0/20"])
def test_every_rfc1918_block_is_accepted(config_dir, cidr):
    set_value(config_dir, "dev.toml", "network.cidr", cidr)
    assert load_project(config_dir).environment("dev").network.cidr == cidr


# --- min <= max -------------------------------------------------------------------------------


def test_min_acu_above_max_acu_is_refused(config_dir):
    set_value(config_dir, "dev.toml", "database.min_acu", 4)
    set_value(config_dir, "dev.toml", "database.max_acu", 2)
    assert_refused(config_dir, "dev.toml", "database.min_acu", "must be <= database.max_acu (4 > 2)")


def test_min_tasks_above_max_tasks_is_refused(config_dir):
    set_value(config_dir, "staging.toml", "api.min_tasks", 7)
    assert_refused(config_dir, "staging.toml", "api.min_tasks", "must be <= api.max_tasks (7 > 6)")


def test_min_equal_to_max_loads(config_dir):
    set_value(config_dir, "dev.toml", "database.min_acu", 2)
    set_value(config_dir, "dev.toml", "api.min_tasks", 3)
    dev = load_project(config_dir).environment("dev")
    assert (dev.database.min_acu, dev.api.min_tasks) == (dev.database.max_acu, dev.api.max_tasks) == (2.0, 3)


# --- Production rules -------------------------------------------------------------------------


def test_production_on_fargate_spot_is_refused(config_dir):
    set_value(config_dir, "production.toml", "api.fargate_spot", True)
    assert_refused(config_dir, "production.toml", "api.fargate_spot", "must be false when production = true")


def test_production_without_deletion_protection_is_refused(config_dir):
    set_value(config_dir, "production.toml", "database.deletion_protection", False)
    assert_refused(config_dir, "production.toml", "database.deletion_protection",
                   "must be true when production = true")


DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize("image", [
    "public.ecr.aws/nginx/nginx:1.27",  # a tag can be moved to other content
    "nginx",  # implicitly :latest
    f"registry.example.com/api@{DIGEST[:-1]}",  # 63 hex digits
    f"registry.example.com/api@{DIGEST.upper()}",  # not as digests are written
    f"registry.example.com/api@sha512:{'0' * 64}",
    f"registry.example.com/api@{DIGEST}@{DIGEST}",
])
@pytest.mark.parametrize("field", ["api.container_image", "database.bootstrap_image"])
def test_production_images_must_be_pinned_by_digest(config_dir, field, image):
    set_value(config_dir, "production.toml", field, image)
    assert_refused(config_dir, "production.toml", field,
                   f"must be pinned by digest (<repository>@sha256:<64 hex digits>) when production = true "
                   f"(got {image!r})")


def test_production_needs_its_own_bootstrap_image_pinned(config_dir):
    """The default bootstrap image is a tag: production must name a digest."""
    path = config_dir / "production.toml"
    document = tomllib.loads(path.read_text())
    del document["database"]["bootstrap_image"]
    path.write_text(to_toml(document))
    assert_refused(config_dir, "production.toml", "database.bootstrap_image", "must be pinned by digest")


@pytest.mark.parametrize("image", [f"registry.example.com/api@{DIGEST}", f"registry.example.com/api:v1.2@{DIGEST}"])
def test_digest_pinned_production_images_load(config_dir, image):
    set_value(config_dir, "production.toml", "api.container_image", image)
    assert load_project(config_dir).environment("production").api.container_image == image


def test_other_environments_may_run_tags(project):
    assert "@sha256:" not in project.environment("dev").api.container_image


def test_any_environment_marked_production_gets_the_production_rules(config_dir):
    set_value(config_dir, "staging.toml", "production", True)  # staging ships with Spot on
    assert_refused(config_dir, "staging.toml", "api.fargate_spot", "must be false when production = true")


# --- Rules across files -----------------------------------------------------------------------


def test_a_domain_used_by_two_environments_is_refused(config_dir):
    set_value(config_dir, "staging.toml", "domain", "dev.example.com")
    error = assert_refused(config_dir, "staging.toml", "domain", "must differ from every other environment")
    assert "environments/dev.toml" in error.rule


def test_an_environment_of_another_application_is_refused(config_dir):
    set_value(config_dir, "staging.toml", "application", "otherapp")
    assert_refused(config_dir, "staging.toml", "application",
                   "must equal application in environments/project.toml ('webapp')")


def test_renaming_the_application_in_project_toml_only_is_refused(config_dir):
    set_value(config_dir, "project.toml", "application", "shop")
    assert_refused(config_dir, "dev.toml", "application", "must equal application in environments/project.toml")


# --- Files ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("file", "line", "text"), [
    ("dev.toml", 5, 'application = "webapp'),  # unterminated string
    ("dev.toml", 2, 'name = "dev-again"'),  # duplicate key
    ("staging.toml", 12, "[network"),  # unclosed table header
    ("production.toml", 20, "min_acu == 2"),
    ("project.toml", 7, "[state]]"),
])
def test_malformed_toml_is_refused_with_file_and_line(config_dir, file, line, text):
    replace_line(config_dir, file, line, text)
    error = refusal(config_dir)
    assert (error.file, error.field) == (f"environments/{file}", "")
    assert error.rule.startswith("is not valid TOML: ") and f"line {line}," in error.rule, str(error)
    assert str(error) == f"environments/{file}: {error.rule}"


def test_a_file_that_is_not_utf8_is_refused(config_dir):
    path = config_dir / "staging.toml"
    path.write_bytes(path.read_bytes().replace(b"platform-team", b"plateforme-\xe9quipe"))  # saved as Latin-1
    error = refusal(config_dir)
    assert (error.file, error.field) == ("environments/staging.toml", "")
    assert error.rule.startswith("is not valid TOML: not UTF-8"), str(error)


def test_a_missing_project_file_is_refused(config_dir):
    (config_dir / "project.toml").unlink()
    error = refusal(config_dir)
    assert str(error) == "environments/project.toml: cannot be read: No such file or directory"


def test_an_empty_folder_is_refused(tmp_path):
    (tmp_path / "environments").mkdir()
    error = refusal(tmp_path / "environments")
    assert str(error) == "environments/project.toml: cannot be read: No such file or directory"


def test_a_folder_without_environment_files_is_refused(config_dir):
    for path in config_dir.glob("*.toml"):
        if path.name != "project.toml":
            path.unlink()
    error = refusal(config_dir)
    assert (error.file, error.field) == ("environments", "")
    assert "holds no environment file" in error.rule


# --- Emulator endpoint ------------------------------------------------------------------------


@pytest.mark.parametrize(("endpoint", "expected"), [
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"), ("http://localhost:4566/", "http://localhost:4566"),
    ("https://moto.internal", "https://moto.internal"), ("http://[::1]:5000", "http://[::1]:5000"),
])
def test_an_emulator_endpoint_is_accepted(config_dir, endpoint, expected):
    assert load_project(config_dir, endpoint).emulator == EmulatorConfig(endpoint=expected)


@pytest.mark.parametrize("endpoint", [None, ""])
def test_no_emulator_endpoint_means_real_aws(config_dir, endpoint):
    assert load_project(config_dir, endpoint).emulator is None


@pytest.mark.parametrize("endpoint", ["127.0.0.1:5000", "ftp://127.0.0.1:21", "http://127.0.0.1:5000/moto",
                                      "http://127.0.0.1:5000\n", "http://moto:\u0665\u0660\u0660\u0660",
                                      "http:// moto:5000", "http://"])
def test_an_invalid_emulator_endpoint_is_refused(config_dir, endpoint):
    error = refusal(config_dir, endpoint)
    assert (error.file, error.field) == ("INFRA_AWS_ENDPOINT", "")
    assert str(error).startswith("INFRA_AWS_ENDPOINT: must be an http(s) URL such as http://127.0.0.1:5000")


# --- database.restore_from_snapshot (written by `python -m ops restore`) ---------------------------

@pytest.mark.parametrize("value", [
    "awsbackup:job-0123abcd-4567", "rds:webapp-dev-db-2026-12-01-03-00", "before-migration",
    "arn:aws:rds:eu-west-1:123456789012:cluster-snapshot:awsbackup:job-1",
])
def test_a_snapshot_identifier_or_arn_in_the_region_is_accepted(config_dir, value):
    set_value(config_dir, "dev.toml", "database.restore_from_snapshot", value)
    assert load_project(config_dir).environment("dev").database.restore_from_snapshot == value


@pytest.mark.parametrize(("value", "rule"), [
    ("", "must be a cluster snapshot identifier or a cluster snapshot ARN"),
    ("1-starts-with-a-digit", "must be a cluster snapshot identifier"),
    ("two--hyphens", "must be a cluster snapshot identifier"),
    ("ends-with-a-hyphen-", "must be a cluster snapshot identifier"),
    ("has space", "must be a cluster snapshot identifier"),
    ("snap\n", "must be a cluster snapshot identifier"),
    ("s" * 256, "must be a cluster snapshot identifier"),
    ("arn:aws:rds:eu-west-1:123:cluster-snapshot:x", "must be a cluster snapshot identifier or a cluster snapshot"),
    ("arn:aws:rds:eu-west-1:123456789012:snapshot:x", "must be a cluster snapshot identifier or a cluster snapshot"),
    ("arn:aws:rds:eu-central-1:123456789012:cluster-snapshot:x", "must be a snapshot in eu-west-1 (got one in "
                                                                 "eu-central-1)"),
    (7, "must be a string"),
])
def test_a_bad_snapshot_is_refused_in_one_line(config_dir, value, rule):
    set_value(config_dir, "dev.toml", "database.restore_from_snapshot", value)
    assert_refused(config_dir, "dev.toml", "database.restore_from_snapshot", rule)
