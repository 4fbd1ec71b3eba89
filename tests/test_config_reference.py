"""docs/configuration.md: complete, current, and saying what the loader really enforces.

The reference is generated (tools/config_reference.py) from the model's dataclasses, the rule
table in environments/reference.py and the shipped files. These tests make each of those claims
checkable: every model field is documented (and nothing else is), the checked-in file is what the
generator writes now, and each documented rule (required, range, choices, pattern) is what the
loader does to a copy of the shipped files with that one value changed.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from environments.loader import ConfigError, load_project
from environments.reference import BASELINE_SCOPE, CROSS_FIELD_RULES, ENVIRONMENT_SCOPE, PROJECT_SCOPE, REFERENCE
from tests.strategies import to_toml
from tools.config_reference import DEFAULT_OUT, fields_of, file_fields, main, render

REGENERATE = "python tools/config_reference.py"
# The file each scope's settings are tried in: the shared file, and one shipped environment that
# has the optional [dr] table (so its settings can be removed or broken) and is not production.
FILES = {PROJECT_SCOPE: "project.toml", ENVIRONMENT_SCOPE: "staging.toml", BASELINE_SCOPE: "project.toml"}
# Where a scope's keys live in its file: the first [[baseline]] table for baseline settings.
TABLES = {BASELINE_SCOPE: ("baseline", 0)}
# Refused by every documented pattern: a space and a "!" fit no name, id, region, URL or image.
INVALID_TEXT = "not valid !"


def settings(predicate) -> list[tuple[str, str]]:
    """(scope, dotted field) of every file setting whose documentation satisfies `predicate`."""
    return [(scope, item.path) for scope in REFERENCE for item in file_fields(scope)
            if predicate(REFERENCE[scope][item.path], item)]


def ids(cases: list[tuple[str, str]]) -> list[str]:
    return [f"{FILES[scope]}:{'{}[{}].'.format(*TABLES[scope]) if scope in TABLES else ''}{path}"
            for scope, path in cases]



def edit(directory: Path, scope: str, path: str, value: Any = None, *, remove: bool = False,
         keep_absent_tables: bool = False) -> None:
    """Set (creating tables as needed) or remove one dotted setting in the scope's file."""
    file = directory / FILES[scope]
    document = tomllib.loads(file.read_text())
    *tables, key = path.split(".")
    table = document
    if scope in TABLES:
        name, index = TABLES[scope]
        table = document[name][index]
    for part in tables:
        if keep_absent_tables and part not in table:
            return  # leaving out a key of a table the file leaves out changes nothing
        table = table.setdefault(part, {})
    if remove:
        table.pop(key, None)
    else:
        table[key] = value
    file.write_text(to_toml(document))


def refusal(directory: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_project(directory)
    return caught.value


def assert_refused(directory: Path, scope: str, path: str, rule_part: str) -> None:
    error = refusal(directory)
    field = error.field.removeprefix("{}[{}].".format(*TABLES[scope])) if scope in TABLES else error.field
    assert error.file.endswith(FILES[scope]) and field.split("[")[0] == path, str(error)
    assert rule_part in error.rule, f"documented {rule_part!r}, loader says {error.rule!r}"


# -- complete and current -------------------------------------------------------------------------


@pytest.mark.parametrize("scope", [PROJECT_SCOPE, ENVIRONMENT_SCOPE, BASELINE_SCOPE])
def test_every_model_field_has_a_reference_entry_and_nothing_else_does(scope):
    model = {item.path for item in fields_of(scope)}
    documented = set(REFERENCE[scope])
    assert not model - documented, f"undocumented {scope} fields: add them to environments/reference.py"
    assert not documented - model, f"environments/reference.py documents fields the model lacks: {documented - model}"


def test_cross_field_rules_name_real_fields():
    for scope, fields, rule in CROSS_FIELD_RULES:
        unknown = set(fields) - {item.path for item in fields_of(scope)}
        assert not unknown, f"{rule!r} names unknown fields {unknown}"


def test_every_setting_is_in_the_generated_reference(project):
    text = render(project)
    for scope in REFERENCE:
        for item in fields_of(scope):
            in_file = REFERENCE[scope][item.path].in_file
            shown = f"`[{item.path}]`" if item.table and in_file else f"`{item.path}`"
            assert f"| {shown}" in text or f"| **{shown}**" in text, f"{item.path} missing from the reference"


def test_checked_in_configuration_md_is_up_to_date(project):
    assert DEFAULT_OUT.is_file(), f"docs/configuration.md is missing; generate it: {REGENERATE}"
    assert DEFAULT_OUT.read_text(encoding="utf-8") == render(project), (
        f"docs/configuration.md is stale; regenerate: {REGENERATE}")


def test_the_cli_writes_the_reference_and_refuses_bad_configuration(project, config_dir, tmp_path, capsys):
    out = tmp_path / "configuration.md"
    assert main(["--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render(project)
    edit(config_dir, ENVIRONMENT_SCOPE, "network.az_count", 9)
    assert main(["--out", str(tmp_path / "other.md"), "--config-dir", str(config_dir)]) == 2
    assert "network.az_count" in capsys.readouterr().err and not (tmp_path / "other.md").exists()


def test_value_columns_come_from_the_files(project, config_dir):
    """One column per environment, filled from the loaded files: change a file, the reference changes."""
    text = render(project)
    environment_section = text.split("## Environment files", 1)[1]
    header = next(line for line in environment_section.splitlines() if line.startswith("| Field | Type |"))
    assert set(header.strip("| ").split(" | ")[5:]) == {env.name for env in project.environments}
    edit(config_dir, ENVIRONMENT_SCOPE, "domain", "changed.example.org")
    assert "`changed.example.org`" in render(load_project(config_dir))
    assert "changed.example.org" not in text


# -- documented rules are the loader's rules ------------------------------------------------------

REQUIRED = settings(lambda doc, item: item.required)
OPTIONAL = settings(lambda doc, item: not item.required)
RANGED = settings(lambda doc, item: doc.minimum is not None)
CHOICES = settings(lambda doc, item: bool(doc.choices))
PATTERNED = settings(lambda doc, item: doc.pattern is not None)


def test_every_kind_of_documented_rule_is_exercised():
    """Guards the parametrizations below against silently becoming empty."""
    assert REQUIRED and OPTIONAL and RANGED and CHOICES and PATTERNED


@pytest.mark.parametrize(("scope", "path"), REQUIRED, ids=ids(REQUIRED))
def test_a_documented_required_setting_is_required(config_dir, scope, path):
    edit(config_dir, scope, path, remove=True)
    assert_refused(config_dir, scope, path, "is required")


@pytest.mark.parametrize(("scope", "path"), OPTIONAL, ids=ids(OPTIONAL))
def test_a_documented_optional_setting_may_be_left_out(config_dir, scope, path):
    edit(config_dir, scope, path, remove=True, keep_absent_tables=True)
    load_project(config_dir)


@pytest.mark.parametrize(("scope", "path"), RANGED, ids=ids(RANGED))
def test_a_documented_range_is_the_loader_s(config_dir, scope, path):
    """The loader's message carries its bounds, so one value past each end proves both match."""
    doc = REFERENCE[scope][path]
    step = doc.step or 1
    bounds = f"between {doc.minimum:g} and {doc.maximum:g}"
    for outside in (doc.minimum - step, doc.maximum + step):
        edit(config_dir, scope, path, outside if doc.step else int(outside))
        assert_refused(config_dir, scope, path, bounds)


@pytest.mark.parametrize(("scope", "path"), CHOICES, ids=ids(CHOICES))
def test_documented_choices_are_the_loader_s(config_dir, scope, path):
    choices = REFERENCE[scope][path].choices
    wrong = max(choices) + 1 if isinstance(choices[0], int) else "not-a-choice"
    edit(config_dir, scope, path, wrong)
    assert_refused(config_dir, scope, path, "must be one of " + ", ".join(map(str, choices)))


@pytest.mark.parametrize(("scope", "path"), PATTERNED, ids=ids(PATTERNED))
def test_a_documented_pattern_is_enforced_on_its_setting(config_dir, scope, path):
    doc = REFERENCE[scope][path]
    assert not doc.pattern.fullmatch(INVALID_TEXT), "pick a value the documented pattern refuses"
    item = next(item for item in fields_of(scope) if item.path == path)
    edit(config_dir, scope, path, [INVALID_TEXT] if item.type.startswith("array") else INVALID_TEXT)
    assert_refused(config_dir, scope, path, f"(got {INVALID_TEXT!r})")
