"""Read `terraform show -json` output: drift between state and the real world, and plan summaries.

Terraform's machine-readable plan (https://developer.hashicorp.com/terraform/internals/json-format)
is the one source: `resource_drift` lists what a refresh found changed outside Terraform,
`resource_changes` what a plan would do. Nothing here runs Terraform, so every rule is unit-tested
on recorded plans (tests/fixtures/plans/).

Values are never printed, only resource addresses and attribute names: a plan may hold secrets.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

# Attribute paths deeper than this are reported at this depth ("tags.Owner").
ATTRIBUTE_DEPTH = 2


@dataclass(frozen=True)
class Drift:
    """One managed resource that differs from its state: changed attributes, or gone."""

    address: str
    deleted: bool
    attributes: tuple[str, ...]

    def describe(self) -> str:
        if self.deleted:
            return f"{self.address}: deleted outside Terraform"
        return f"{self.address}: {', '.join(self.attributes)}"


def _meaningful(value: Any) -> Any:
    """The value with representation-only differences removed: null, "", [] and {} are all "unset",
    and lists compare as sets (Terraform renders sets as lists, in no fixed order)."""
    if isinstance(value, dict):
        kept = {key: _meaningful(item) for key, item in value.items()}
        return {key: item for key, item in kept.items() if item is not None} or None
    if isinstance(value, list):
        kept = [item for item in map(_meaningful, value) if item is not None]
        return sorted(kept, key=lambda item: json.dumps(item, sort_keys=True)) or None
    return None if value == "" else value


def changed_paths(before: Any, after: Any, prefix: str = "", depth: int = ATTRIBUTE_DEPTH) -> Iterator[str]:
    """Dotted attribute paths whose values really differ, e.g. `tags.Owner`, `cidr_ipv4`, `ingress`.

    Lists are reported as a whole (their elements have no stable position to name).
    """
    before, after = _meaningful(before), _meaningful(after)
    if before == after:
        return
    if isinstance(before, dict) or isinstance(after, dict):  # an unset map compares as an empty one
        before, after = before if before is not None else {}, after if after is not None else {}
    if depth == 0 or not (isinstance(before, dict) and isinstance(after, dict)):
        yield prefix or "(whole object)"
        return
    for key in sorted(set(before) | set(after)):
        yield from changed_paths(before.get(key), after.get(key), f"{prefix}.{key}" if prefix else key, depth - 1)


def drift_of(shown: Mapping[str, Any]) -> list[Drift]:
    """Every managed resource a refresh found changed or deleted outside Terraform, by address."""
    drifts = []
    for entry in shown.get("resource_drift", []):
        change = entry["change"]
        if entry.get("mode") != "managed" or change["actions"] == ["no-op"]:
            continue
        deleted = change["actions"] == ["delete"] or change.get("after") is None
        attributes = () if deleted else tuple(changed_paths(change.get("before") or {}, change["after"]))
        if deleted or attributes:  # a null that came back as {} is not drift
            drifts.append(Drift(entry["address"], deleted, attributes))
    return sorted(drifts, key=lambda drift: drift.address)


def drift_lines(environment: str, drifts: list[Drift], unaccounted: list[str] = ()) -> list[str]:
    """What `python -m ops drift` prints: one line per drifted resource, naming its drifted attributes, then
    one per thing the state holds that no managed resource accounts for."""
    if not drifts and not unaccounted:
        return [f"{environment}: no drift: every resource matches its state"]
    lines = []
    if drifts:
        noun = "resource differs" if len(drifts) == 1 else "resources differ"
        lines += [f"{environment}: DRIFT: {len(drifts)} {noun} from the state (changed outside Terraform):",
                  *(f"  {drift.describe()}" for drift in drifts)]
    if unaccounted:
        lines += [f"{environment}: DRIFT: {len(unaccounted)} in the state that no managed resource accounts for "
                  "(added outside Terraform; a deploy's refresh keeps it):", *(f"  {line}" for line in unaccounted)]
    return lines


# --- plan summaries --------------------------------------------------------------------------------

# Resource types whose replacement or destruction loses data, by the kind a reviewer reads.
STATEFUL_KINDS = {
    "aws_rds_cluster": "database",
    "aws_rds_cluster_instance": "database",
    # Replacing or destroying it detaches the DR region's secondary: the standby stops replicating.
    "aws_rds_global_cluster": "global database",
    "aws_db_instance": "database",
    "aws_dynamodb_table": "database",
    "aws_s3_bucket": "bucket",
    "aws_kms_key": "key",
    "aws_cloudwatch_log_group": "log group",
    "aws_backup_vault": "backup vault",
}
# Attributes that hold a resource's own name, in order of preference (the address is shown too).
NAME_ATTRIBUTES = ("bucket", "identifier", "cluster_identifier", "name", "description", "id")
# Terraform's action lists (json-format "actions") and what the summary counts them as.
ACTION_COLUMNS = {("create",): "add", ("update",): "change", ("delete", "create"): "replace",
                  ("create", "delete"): "replace", ("delete",): "destroy"}
COLUMNS = ("add", "change", "replace", "destroy")
STATE_BACKEND = "state backend"


@dataclass(frozen=True)
class Risk:
    """A stateful resource the plan replaces or destroys."""

    action: str  # "replace" or "destroy"
    kind: str  # "database", "bucket", ..., or "state backend"
    name: str
    address: str


@dataclass(frozen=True)
class PlanSummary:
    counts: dict[str, int]
    risks: tuple[Risk, ...]

    @property
    def changes(self) -> bool:
        return any(self.counts.values())


def _name_of(change: Mapping[str, Any]) -> str:
    values = change.get("before") or change.get("after") or {}
    for attribute in NAME_ATTRIBUTES:
        if isinstance(values.get(attribute), str) and values[attribute]:
            return values[attribute]
    return "(unnamed)"


def summarize_plan(shown: Mapping[str, Any], state_backend_names: frozenset[str] = frozenset()) -> PlanSummary:
    """Counts per action and every stateful replacement or destruction, from `terraform show -json PLAN`.

    `state_backend_names` are the state bucket's and lock table's names: those resources are
    reported as the state backend, whatever their type.
    """
    counts = dict.fromkeys(COLUMNS, 0)
    risks = []
    for entry in shown.get("resource_changes", []):
        column = ACTION_COLUMNS.get(tuple(entry["change"]["actions"]))
        if entry.get("mode") != "managed" or column is None:
            continue  # no-op, read (data sources), forget
        counts[column] += 1
        kind = STATEFUL_KINDS.get(entry["type"])
        name = _name_of(entry["change"])
        if kind and name in state_backend_names:
            kind = STATE_BACKEND
        if kind and column in ("replace", "destroy"):
            risks.append(Risk(column, kind, name, entry["address"]))
    return PlanSummary(counts, tuple(sorted(risks, key=lambda risk: (risk.action, risk.kind, risk.address))))


def summary_markdown(environment: str, summary: PlanSummary) -> str:
    """The table a pull-request comment starts with: counts, then every stateful loss, flagged."""
    lines = [f"| `{environment}` | " + " | ".join(COLUMNS) + " |",
             "|---|" + "---:|" * len(COLUMNS),
             "| resources | " + " | ".join(str(summary.counts[column]) for column in COLUMNS) + " |"]
    if not summary.risks:
        note = "no stateful resource is replaced or destroyed" if summary.changes else "no changes"
        return "\n".join([*lines, "", note]) + "\n"
    lines += ["", f"**:warning: {len(summary.risks)} stateful resource(s) replaced or destroyed: "
                  "their data is lost unless backed up**", "",
              "| | action | kind | name | address |", "|---|---|---|---|---|"]
    lines += [f"| :warning: | **{risk.action}** | {risk.kind} | `{risk.name}` | `{risk.address}` |"
              for risk in summary.risks]
    return "\n".join(lines) + "\n"


def summary_lines(environment: str, summary: PlanSummary) -> list[str]:
    """The same for a terminal: one count line, then one WARNING line per stateful loss."""
    counts = ", ".join(f"{summary.counts[column]} to {column}" for column in COLUMNS)
    return [f"{environment}: {counts}",
            *(f"  WARNING: {risk.action} {risk.kind} {risk.name} ({risk.address})" for risk in summary.risks)]
