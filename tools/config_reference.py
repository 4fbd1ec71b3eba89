"""Generate docs/configuration.md: every configuration field, its type, whether it is required, its rule
and the value each shipped file gives it.

Why generated: a hand-written reference drifts the day someone adds a field. Here the list of fields
comes from the model's dataclasses (`dataclasses.fields`), types and required/optional from their
annotations and defaults, rules from environments/reference.py (which points at the loader's own
patterns and tables), and the values from loading the shipped environments/*.toml. A test fails
when the checked-in file differs from what this script writes.

Usage::

    python tools/config_reference.py [--out docs/configuration.md]
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import itertools
import sys
import types
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python tools/config_reference.py`
    sys.path.insert(0, str(ROOT))

from environments import loader  # noqa: E402
from environments.model import BaselineConfig, EnvironmentConfig, ProjectConfig  # noqa: E402
from environments.reference import (  # noqa: E402
    BASELINE_SCOPE,
    CROSS_FIELD_RULES,
    ENVIRONMENT_SCOPE,
    PROJECT_SCOPE,
    REFERENCE,
    FieldDoc,
)

DEFAULT_OUT = ROOT / "docs" / "configuration.md"
REGENERATE = "python tools/config_reference.py"
ROOT_CLASSES = {PROJECT_SCOPE: ProjectConfig, ENVIRONMENT_SCOPE: EnvironmentConfig, BASELINE_SCOPE: BaselineConfig}
SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean"}


@dataclasses.dataclass(frozen=True)
class ModelField:
    """One field of the model, found by walking the dataclasses."""

    path: str  # dotted, as written in TOML: `network.cidr`
    type: str  # in TOML words: string, integer, table, array of strings...
    required: bool
    table: bool


def _unwrap_optional(hint) -> tuple[object, bool]:
    """`X | None` -> (X, True); anything else -> (hint, False)."""
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        rest = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(rest) == 1:
            return rest[0], True
    return hint, False


def toml_type(hint) -> str:
    """How a user writes a value of this Python type in TOML."""
    hint, _ = _unwrap_optional(hint)
    if typing.get_origin(hint) is tuple:
        return f"array of {toml_type(typing.get_args(hint)[0])}s"
    if dataclasses.is_dataclass(hint):
        return "table"
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "string"
    return SCALARS.get(hint, getattr(hint, "__name__", str(hint)))


def model_fields(cls: type, prefix: str = "") -> Iterator[ModelField]:
    """Every field of a config dataclass, nested tables included, in declaration order."""
    hints = typing.get_type_hints(cls)
    for item in dataclasses.fields(cls):
        hint, optional = _unwrap_optional(hints[item.name])
        has_default = item.default is not dataclasses.MISSING or item.default_factory is not dataclasses.MISSING
        is_table = dataclasses.is_dataclass(hint)
        path = f"{prefix}{item.name}"
        yield ModelField(path=path, type=toml_type(hints[item.name]), required=not (optional or has_default),
                         table=is_table)
        if is_table:
            yield from model_fields(hint, f"{path}.")


def fields_of(scope: str) -> list[ModelField]:
    return list(model_fields(ROOT_CLASSES[scope]))


def file_fields(scope: str) -> list[ModelField]:
    """The fields users write in files (not those the loader fills in)."""
    docs = REFERENCE[scope]
    return [item for item in fields_of(scope) if item.path in docs and docs[item.path].in_file]


def value_at(config, path: str):
    """The value at a dotted path; None below an optional table the file leaves out (`dr.region` without [dr])."""
    for part in path.split("."):
        if config is None:
            return None
        config = getattr(config, part)
    return config


def format_value(value) -> str:
    """A shipped value as a user would write it in TOML."""
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, tuple):
        return "<br>".join(format_value(item) for item in value)
    return f"`{value}`"


def rule_text(doc: FieldDoc) -> str:
    """The rule in words, then the exact range, choices or pattern the loader applies."""
    parts = [doc.rule] if doc.rule else []
    if doc.minimum is not None:
        steps = f" in steps of {doc.step:g}" if doc.step else ""
        parts.append(f"{doc.minimum:g} to {doc.maximum:g}{steps}")
    if doc.choices:
        parts.append("one of " + ", ".join(f"`{choice}`" for choice in doc.choices))
    if doc.pattern is not None:
        parts.append(f"pattern `{doc.pattern.pattern}`")
    return "; ".join(parts) or "-"


def cell(text: str) -> str:
    """Markdown table cells cannot hold a bare `|` (patterns do)."""
    return text.replace("|", "\\|").replace("\n", " ")


def _row(values: Sequence[str]) -> str:
    return "| " + " | ".join(cell(value) for value in values) + " |"


def _field_table(scope: str, configs: Sequence[tuple[str, object]]) -> list[str]:
    """One row per field: tables as a bold header row, their keys below with the shipped values."""
    docs = REFERENCE[scope]
    header = ["Field", "Type", "Required", "Meaning", "Rule", *(f"{name}" for name, _ in configs)]
    lines = [_row(header), _row(["---"] * len(header))]
    for item in file_fields(scope):
        doc = docs[item.path]
        required = "required" if item.required else "optional"
        if item.table:
            lines.append(_row([f"**`[{item.path}]`**", "table", required, doc.description, "-",
                               *("" for _ in configs)]))
            continue
        values = [format_value(value_at(config, item.path)) for _, config in configs]
        lines.append(_row([f"`{item.path}`", item.type, required, doc.description, rule_text(doc), *values]))
    return lines


def _fargate_sizes() -> list[str]:
    lines = [_row(["`api.cpu`", "allowed `api.memory` (MiB)"]), _row(["---", "---"])]
    for cpu, sizes in loader.FARGATE_MEMORY.items():
        steps = {later - earlier for earlier, later in itertools.pairwise(sizes)}
        allowed = (f"{sizes[0]} to {sizes[-1]} in steps of {steps.pop()}" if len(sizes) > 3 and len(steps) == 1
                   else ", ".join(map(str, sizes)))
        lines.append(_row([str(cpu), allowed]))
    return lines


def _derived_fields() -> list[str]:
    lines = [_row(["Field", "Of", "Where the value comes from", "Rule"]), _row(["---"] * 4)]
    for scope, docs in REFERENCE.items():
        for item in fields_of(scope):
            doc = docs.get(item.path)
            if doc and not doc.in_file:
                lines.append(_row([f"`{item.path}`", f"`{ROOT_CLASSES[scope].__name__}`", doc.origin,
                                   rule_text(doc)]))
    return lines


def render(project: ProjectConfig) -> str:
    """The whole reference for a loaded configuration (the shipped one for docs/configuration.md)."""
    # Columns in promotion order: non-production environments first, production last.
    environments = [(env.name, env) for env in sorted(project.environments, key=lambda env: (env.production,
                                                                                             env.name))]
    lines = [
        "# Configuration reference",
        "",
        f"<!-- Generated by tools/config_reference.py; do not edit. Regenerate: {REGENERATE} -->",
        "",
        "Configuration lives in `environments/`: `project.toml` (shared) and one `<name>.toml` per",
        "environment. `python main.py` validates all of it before synthesizing anything; a bad value stops",
        "with one line naming the file, the field and the rule (exit status 2). Unknown keys are refused.",
        "Types are TOML types; `integer` never accepts `true`/`false`, `number` accepts `2` or `2.5`.",
        "",
        "The value columns are the shipped files, which carry the SPEC defaults.",
        "",
        "## `project.toml`",
        "",
        *_field_table(PROJECT_SCOPE, [("project.toml", project)]),
        "",
        "## Environment files (`environments/<name>.toml`)",
        "",
        *_field_table(ENVIRONMENT_SCOPE, environments),
        "",
        "## Account baselines (`[[baseline]]` in `project.toml`)",
        "",
        "Once-per-account resources (AWS Config, the multi-region CloudTrail), one table and one stack per",
        "account and region, because environments may share an account (docs/architecture.md).",
        "",
        *_field_table(BASELINE_SCOPE, [(baseline.stack_name, baseline) for baseline in project.baselines]),
        "",
        "## Rules across fields and files",
        "",
        *[f"- {rule}" for _, _, rule in CROSS_FIELD_RULES],
        "",
        "### Fargate task sizes",
        "",
        *_fargate_sizes(),
        "",
        "## Not set in the files",
        "",
        *_derived_fields(),
    ]
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Write the configuration reference (docs/configuration.md).")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="default: docs/configuration.md")
    parser.add_argument("--config-dir", type=Path, default=ROOT / "environments",
                        help="the configuration whose values fill the value columns (default: environments)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        project = loader.load_project(args.config_dir)
    except loader.ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(project), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
