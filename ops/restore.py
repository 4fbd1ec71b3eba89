"""Restore an environment's database from a recovery point, through Terraform (`python -m ops restore`).

The restored cluster becomes the environment's database by configuration: `[database]
restore_from_snapshot = "<snapshot>"` in environments/<env>.toml makes modules/database.py create the
cluster from that snapshot with every setting of the module (TLS-only parameter group, the
environment's key, IAM authentication, subnets, security group, managed master password, alarms).
The deploy that follows points the API at it (`DB_HOST` and `rds-db:connect` reference the cluster)
and runs the database bootstrap task for the new cluster; the master secret reaches nobody else.

This command finds the recovery point and says (or, with `--write`, makes) that one-line change:

- the recovery points are cluster snapshots of the environment's clusters: AWS Backup's in its
  region, their copies in the `[dr]` region, and any manual or automated snapshot; the newest
  available one is used unless a snapshot is named, which must be one of them and available;
- the account check runs first (the preflight, exactly as `deploy` runs it);
- in the environment's region, the change and the deploy steps are printed; `--write` edits the
  file and validates it with the loader (an invalid result is put back, exit 2);
- a snapshot the file already names is "nothing to do": a second run changes nothing;
- in the `[dr]` region (strategy `backup`), the change is `[dr] restore_from_snapshot`: the DR-region stack
  `<env>-dr` creates its cluster from the copy, so "Region lost" is: restore --region DR --write, then
  deploy `<env>-dr` (docs/runbooks.md); a standby's DR database is the global secondary: `failover` instead.

Nothing here creates or deletes anything in AWS. tests/test_restore.py checks the rules through
`ops.tools.Tools`, and the Terraform addresses printed against the synthesized stacks.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from core.access import provider_role
from core.naming import database_cluster_identifier
from environments.loader import ConfigError, load_project
from environments.model import EnvironmentConfig
from ops import preflight
from ops.errors import Refused, UsageError
from ops.project import load_target
from ops.targets import Kind

if TYPE_CHECKING:
    from ops.tools import Tools

# Snapshot kinds RDS lists separately: AWS Backup's (and their copies), manual, automated.
SNAPSHOT_TYPES = ("awsbackup", "manual", "automated")
FIELD = "restore_from_snapshot"
TABLE_HEADER = re.compile(r"^\s*\[([^\[\]]+)\]\s*(#.*)?$")
# hashicorp/terraform-provider-aws#35189: a cluster created from a snapshot gets IAM authentication
# only from the next apply (RestoreDBClusterFromSnapshot is sent without it).
IAM_AUTH_ISSUE = "hashicorp/terraform-provider-aws#35189"


def cluster_identifier(env: EnvironmentConfig) -> str:
    """The cluster the environment's configuration describes now (core/naming.py, as modules/database.py)."""
    return database_cluster_identifier(f"{env.application}-{env.name}", env.database.restore_from_snapshot)


def is_environments_cluster(env: EnvironmentConfig, identifier: str) -> bool:
    """`<app>-<env>-db`, or one restored from a snapshot (`<app>-<env>-db-r<8 hex>`)."""
    return re.fullmatch(rf"{re.escape(env.application)}-{re.escape(env.name)}-db(-r[0-9a-f]{{8}})?", identifier) \
        is not None


# --- Terraform addresses (cdktf's logical ids of stacks/environment.py's "database" construct) ---------------

def terraform_address(kind: str, *path: str) -> str:
    """cdktf's address for a construct path: the path (a component the previous one ends with left out)
    joined by `_`, then the first 8 hex digits of the MD5 of the whole path joined by `/`."""
    shown = [part for index, part in enumerate(path) if index == 0 or not path[index - 1].endswith(part)]
    digest = hashlib.md5("/".join(path).encode(), usedforsecurity=False).hexdigest()[:8].upper()
    return f"{kind}.{'_'.join(shown)}_{digest}"


def replaced_addresses(env: EnvironmentConfig) -> tuple[str, ...]:
    """What a restore replaces: the cluster, its instances and its log group (named after the cluster).

    These are the stateful resources the deploy guard (ops/deploy.py) wants named with --allow-replace.
    """
    instances = ["writer", *(f"reader-{index}" for index in range(1, env.database.reader_count + 1))]
    return (terraform_address("aws_rds_cluster", "database", "cluster"),
            *(terraform_address("aws_rds_cluster_instance", "database", f"instance-{role}") for role in instances),
            terraform_address("aws_cloudwatch_log_group", "database", "postgresql-log-group", "group"))


# --- finding the recovery point ------------------------------------------------------------------

@dataclass(frozen=True)
class Snapshot:
    identifier: str
    arn: str
    cluster: str
    created: datetime
    engine: str
    engine_version: str


def _error_code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _snapshot(raw: dict) -> Snapshot:
    return Snapshot(identifier=raw["DBClusterSnapshotIdentifier"], arn=raw["DBClusterSnapshotArn"],
                    cluster=raw["DBClusterIdentifier"], created=raw["SnapshotCreateTime"], engine=raw["Engine"],
                    engine_version=raw["EngineVersion"])


def _snapshots_of_kind(rds, kind: str) -> list[dict]:
    found, marker = [], None
    while True:
        page = rds.describe_db_cluster_snapshots(SnapshotType=kind, **({"Marker": marker} if marker else {}))
        found += page["DBClusterSnapshots"]
        marker = page.get("Marker")
        if not marker:
            return found


def find_snapshot(rds, env: EnvironmentConfig, region: str, name: str | None) -> Snapshot:
    """The named snapshot, or the newest available one, of one of this environment's clusters."""
    if name:
        try:
            found = rds.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=name)["DBClusterSnapshots"]
        except Exception as error:  # botocore's ClientError; its code says what went wrong
            if _error_code(error) == "DBClusterSnapshotNotFoundFault":
                raise Refused(f"no cluster snapshot {name} in {region}") from None
            raise
        if not found or not is_environments_cluster(env, found[0]["DBClusterIdentifier"]):
            owner = found[0]["DBClusterIdentifier"] if found else "nothing"
            raise Refused(f"snapshot {name} in {region} belongs to {owner}, not to a cluster of {env.name} "
                          f"({cluster_identifier(env)})")
        if found[0]["Status"] != "available":
            raise Refused(f"snapshot {name} is {found[0]['Status']}, not available")
        return _snapshot(found[0])
    candidates = [raw for kind in SNAPSHOT_TYPES for raw in _snapshots_of_kind(rds, kind)
                  if is_environments_cluster(env, raw["DBClusterIdentifier"]) and raw["Status"] == "available"]
    if not candidates:
        raise Refused(f"no available snapshot of {env.name}'s cluster in {region}: nothing to restore "
                      "(AWS Backup copies arrive after the first scheduled backup)")
    return _snapshot(max(candidates, key=lambda raw: raw["SnapshotCreateTime"]))


# --- the configuration change ----------------------------------------------------------------------

def setting_line(snapshot: Snapshot) -> str:
    """The identifier, not the ARN: the snapshot is in the environment's own region and account."""
    return f"{FIELD} = {json.dumps(snapshot.identifier)}"


def with_setting(text: str, line: str, table: str = "database") -> str:
    """`text` (a TOML file) with `line` as the `table` table's restore setting, replaced or added."""
    lines = text.splitlines(keepends=True)
    start = next((index for index, current in enumerate(lines)
                  if (header := TABLE_HEADER.match(current)) and header.group(1).strip() == table), None)
    if start is None:
        raise UsageError(f"the environment file has no [{table}] table to write the restore into")
    end = next((index for index in range(start + 1, len(lines)) if TABLE_HEADER.match(lines[index])), len(lines))
    for index in range(start + 1, end):
        if re.match(rf"^\s*{FIELD}\s*=", lines[index]):
            lines[index] = line + "\n"
            return "".join(lines)
    last = max((index for index in range(start, end) if lines[index].strip()), default=start)
    lines.insert(last + 1, line + "\n")
    return "".join(lines)


def propose(tools: Tools, path: Path, line: str, table: str, write: bool) -> None:
    """Write `line` into `[table]` of the environment's file, or only show it (without --write)."""
    if write:
        write_setting(tools, path, line, table)
        tools.say(f"wrote to environments/{path.name}, [{table}]: {line}")
    else:
        tools.say(f"the change (not written; --write writes it): environments/{path.name}, [{table}]: {line}")


def write_setting(tools: Tools, path: Path, line: str, table: str = "database") -> None:
    """Write the setting, then load the whole configuration: if the loader refuses it, put the file back."""
    original = path.read_text()
    path.write_text(with_setting(original, line, table))
    try:
        load_project(tools.root / "environments")
    except ConfigError as error:
        path.write_text(original)
        raise UsageError(f"configuration error: {error} (nothing written)") from None


# --- what the operator does next -------------------------------------------------------------------

def deploy_steps(env: EnvironmentConfig, old_cluster: str) -> list[str]:
    """The deploy that makes the restored cluster the environment's database, in order."""
    allow = " ".join(f"--allow-replace {address}" for address in replaced_addresses(env))
    steps = []
    if env.database.deletion_protection:
        steps.append(f"release the old cluster's deletion protection (Terraform deletes it last, with its final "
                     f"snapshot {old_cluster}-final): aws rds modify-db-cluster --region {env.region} "
                     f"--db-cluster-identifier {old_cluster} --no-deletion-protection --apply-immediately")
    else:
        steps.append(f"database.deletion_protection is off, so the old cluster {old_cluster} is deleted without a "
                     f"final snapshot: to keep it, first run aws rds create-db-cluster-snapshot --region "
                     f"{env.region} --db-cluster-identifier {old_cluster} "
                     f"--db-cluster-snapshot-identifier {old_cluster}-before-restore")
    steps += [
        f"python -m ops deploy {env.name} {allow}: creates the restored cluster with every setting of the "
        f"environment, points the API at it (DB_HOST, rds-db:connect), runs the database bootstrap task for it "
        f"(the only holder of the master secret), then deletes {old_cluster}, its instances and its log group",
        f"python -m ops deploy {env.name} once more: it turns on IAM authentication, which the provider leaves off "
        f"when it restores ({IAM_AUTH_ISSUE}); the API logs in only after this step",
        "commit the change to the environment file: the line stays; removing it would replace the cluster again",
    ]
    return [f"  {number}. {step}" for number, step in enumerate(steps, 1)]


def dr_steps(env: EnvironmentConfig, region: str) -> list[str]:
    """After losing the region: the DR-region stack, its cluster created from the copy, serves the environment."""
    name = env.dr_stack_name
    return [
        f"  1. python -m ops deploy {name}: its cluster is created from the copy with every setting of the module "
        f"(the TLS-only parameter group, a key of {region}, IAM authentication), and its API, which logs in as the "
        "application's user from the copied data",
        f"  2. python -m ops deploy {name} once more: IAM authentication is turned on by the second apply "
        f"({IAM_AUTH_ISSUE})",
        f"  3. traffic: with a hosted zone Route 53 failover records send api.{env.domain} to {region} once the "
        f"primary's health check fails; without one, point api.{env.domain} at output ApiLoadBalancerDnsName of "
        f"{name} (docs/runbooks.md, Region lost)",
    ]


def restore_in_dr_region(tools: Tools, env: EnvironmentConfig, snapshot: Snapshot, region: str, write: bool) -> int:
    """`[dr] restore_from_snapshot`: the DR-region stack's database is created from the copy (backup strategy)."""
    path = tools.root / "environments" / f"{env.name}.toml"
    if env.dr.restore_from_snapshot in (snapshot.identifier, snapshot.arn):
        tools.say(f"nothing to do: {path.name} already creates {env.dr_stack_name}'s cluster from it; if that is "
                  f"not deployed yet: python -m ops deploy {env.dr_stack_name} (docs/runbooks.md, Region lost)")
        return 0
    propose(tools, path, setting_line(snapshot), "dr", write)
    tools.say(f"{env.dr_stack_name} (the environment in {region}) gets its database from it; next steps:")
    for step in dr_steps(env, region):
        tools.say(step)
    return 0


def _check_account(tools: Tools, project, name: str) -> None:
    """The preflight `deploy` runs: the credentials are the configured account's, the state backend is sound."""
    result = tools.run_preflight(project, name)
    preflight.report(result, tools.out, tools.err)
    if not result.ok:
        raise Refused(f"not restoring {name}: preflight failed ({', '.join(c.name for c in result.failures)}); "
                      "fix the lines above first")


def cmd_restore(tools: Tools, args: argparse.Namespace) -> int:
    """Find the recovery point; print (or --write) the configuration change and the deploy steps."""
    project, stack = load_target(tools, args.environment, Kind.ENVIRONMENT)
    env = stack.environment
    region = args.region or env.region
    allowed = [env.region] + ([env.dr.region] if env.dr else [])
    if region not in allowed:
        raise UsageError(f"{env.name} restores only into {' or '.join(allowed)} (its region"
                         f"{' or its [dr] region' if env.dr else ''}), not {region}")
    if region != env.region and env.standby:
        raise Refused(f"{env.name} has a standby in {region}: its database there is the global database's secondary, "
                      f"always current; move to it with python -m ops failover {env.name} (docs/runbooks.md)")
    _check_account(tools, project, env.name)
    try:
        rds = tools.aws(project, "rds", region, role=provider_role(project, env.name, env))  # as the deploy role
        snapshot = find_snapshot(rds, env, region, args.snapshot)
    except preflight.AWS_ERRORS as error:
        raise Refused(f"not restoring {env.name}: {preflight.describe_error(error)}") from None
    tools.say(f"{env.name}: recovery point {snapshot.identifier} in {region} (of {snapshot.cluster}, taken "
              f"{snapshot.created:%Y-%m-%d %H:%M} UTC, {snapshot.engine} {snapshot.engine_version}); "
              "everything written after it is lost")
    if region != env.region:
        return restore_in_dr_region(tools, env, snapshot, region, args.write)
    path = tools.root / "environments" / f"{env.name}.toml"
    if env.database.restore_from_snapshot in (snapshot.identifier, snapshot.arn):
        tools.say(f"nothing to do: {path.name} already restores cluster {cluster_identifier(env)} from it; "
                  f"if that is not deployed yet: python -m ops deploy {env.name} (docs/runbooks.md, Restore Aurora)")
        return 0
    line = setting_line(snapshot)
    old_cluster = cluster_identifier(env)
    new_cluster = database_cluster_identifier(f"{env.application}-{env.name}", snapshot.identifier)
    propose(tools, path, line, "database", args.write)
    tools.say(f"the environment's database becomes {new_cluster}, replacing {old_cluster}; next steps:")
    for step in deploy_steps(env, old_cluster):
        tools.say(step)
    return 0
