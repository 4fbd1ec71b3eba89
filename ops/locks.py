"""Terraform state locks held in the lock table and as S3 lock files, read for the preflight report."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from botocore.exceptions import ClientError

from environments.model import BOOTSTRAP_STACK, ProjectConfig

LOCK_FILE_SUFFIX = ".tflock"
LOCK_HASH_KEY = "LockID"


def error_code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


@dataclass(frozen=True)
class HeldLock:
    """One Terraform state lock, as recorded in the DynamoDB table and/or an S3 lock file."""

    state: str  # "<bucket>/<key>" of the locked state file
    lock_id: str
    who: str
    created: str
    operation: str
    sources: tuple[str, ...]
    stack: str | None = None

    @property
    def unlock_command(self) -> str:
        return f"terraform force-unlock {self.lock_id}"

    def describe(self) -> str:
        where = " and ".join(self.sources)
        return (f"lock held on {self.state} ({where}): ID {self.lock_id}, who {self.who}, "
                f"created {self.created}, operation {self.operation}")

    def hint(self) -> str:
        folder = f"cdktf.out/stacks/{self.stack}" if self.stack else "the stack's folder"
        return f"if its holder is really gone, release it in {folder}: {self.unlock_command}"




def _lock_info(text: str) -> dict[str, Any]:
    try:
        info = json.loads(text)
    except ValueError:
        return {"ID": "unknown", "Who": f"unreadable lock info {text[:60]!r}"}
    return info if isinstance(info, dict) else {"ID": "unknown", "Who": f"unreadable lock info {text[:60]!r}"}


def _lock_from(info: dict[str, Any], state: str, source: str) -> HeldLock:
    return HeldLock(
        state=state, lock_id=str(info.get("ID") or "unknown"), who=str(info.get("Who") or "unknown"),
        created=str(info.get("Created") or "unknown"), operation=str(info.get("Operation") or "unknown"),
        sources=(source,),
    )


def dynamodb_locks(dynamodb, table: str) -> list[HeldLock]:
    """Lock items: Terraform writes `Info` while it holds a lock (the `-md5` digest items have none)."""
    locks = []
    pages = dynamodb.get_paginator("scan").paginate(
        TableName=table, ConsistentRead=True, FilterExpression="attribute_exists(#info)",
        ExpressionAttributeNames={"#info": "Info"},
    )
    for page in pages:
        for item in page.get("Items", []):
            state = item.get(LOCK_HASH_KEY, {}).get("S", "?")
            locks.append(_lock_from(_lock_info(item["Info"].get("S", "")), state, f"DynamoDB table {table}"))
    return locks


def s3_lock_files(s3, bucket: str) -> list[HeldLock]:
    """S3-native locks (`use_lockfile`): `<state key>.tflock` objects whose body is the lock info."""
    locks = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for entry in page.get("Contents", []):
            key = entry["Key"]
            if not key.endswith(LOCK_FILE_SUFFIX):
                continue
            try:
                body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8", "replace")
            except ClientError as error:
                if error_code(error) == "NoSuchKey":  # released between listing and reading
                    continue
                raise
            state = f"{bucket}/{key.removesuffix(LOCK_FILE_SUFFIX)}"
            locks.append(_lock_from(_lock_info(body), state, f"S3 lock file s3://{bucket}/{key}"))
    return locks


def own_locks(s3, dynamodb, project: ProjectConfig, state_key: str) -> list[HeldLock]:
    """The locks on one state only, read item by item: what a stack's own state role may see."""
    state = project.state
    path = f"{state.bucket}/{state_key}"
    locks = []
    item = dynamodb.get_item(TableName=state.lock_table, Key={LOCK_HASH_KEY: {"S": path}},
                             ConsistentRead=True).get("Item")
    if item and "Info" in item:
        locks.append(_lock_from(_lock_info(item["Info"].get("S", "")), path, f"DynamoDB table {state.lock_table}"))
    key = f"{state_key}{LOCK_FILE_SUFFIX}"
    try:
        body = s3.get_object(Bucket=state.bucket, Key=key)["Body"].read().decode("utf-8", "replace")
    except ClientError as error:
        # A role that may read the lock file but list only a prefix gets 403, not 404, for a missing one
        # (S3 answers 404 only to callers allowed to list the key): no lock file either way.
        if error_code(error) not in ("NoSuchKey", "404", "AccessDenied", "403"):
            raise
    else:
        locks.append(_lock_from(_lock_info(body), path, f"S3 lock file s3://{state.bucket}/{key}"))
    return locks


def state_paths(project: ProjectConfig) -> dict[str, str]:
    """Stack name by "<bucket>/<state key>", for every stack whose state lives in the bucket."""
    bucket = project.state.bucket
    paths = {f"{bucket}/{key}": name for name, key in project.state_keys.items()}
    paths[f"{bucket}/{project.state.bootstrap_key}"] = BOOTSTRAP_STACK  # bootstrap_state_in_bucket
    return paths


def merge_locks(locks: Sequence[HeldLock], project: ProjectConfig) -> tuple[HeldLock, ...]:
    """One entry per lock: Terraform writes the same lock ID to the table and the lock file."""
    stacks = state_paths(project)
    merged: dict[tuple[str, str], HeldLock] = {}
    for lock in locks:
        key = (lock.state, lock.lock_id)
        if key in merged:
            lock = replace(merged[key], sources=merged[key].sources + lock.sources)
        merged[key] = replace(lock, stack=stacks.get(lock.state))
    return tuple(sorted(merged.values(), key=lambda lock: (lock.state, lock.lock_id)))
