"""Checks on per-stack state isolation, shared by tests/test_accounts.py and the property tests.

`reach(policy)` reads a state role's policy as data: which S3 object ARNs, listing prefixes and lock
items its Allow statements admit (wildcards kept). `covers` then matches them the way IAM matches
ARNs (`*` any run of characters, `?` one), so "stack A's role never reaches stack B's state" is a
plain assertion over the synthesized JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from environments.model import ProjectConfig


@dataclass
class Reach:
    objects: set[str] = field(default_factory=set)
    prefixes: set[str] = field(default_factory=set)
    lock_items: set[str] = field(default_factory=set)
    object_actions: set[str] = field(default_factory=set)
    lock_actions: set[str] = field(default_factory=set)


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def reach(policy: dict) -> Reach:
    result = Reach()
    for statement in policy["Statement"]:
        if statement["Effect"] != "Allow":
            continue
        actions = set(_as_list(statement["Action"]))
        condition = statement.get("Condition", {})
        if "s3:ListBucket" in actions:
            result.prefixes.update(condition["StringLike"]["s3:prefix"])
        object_actions = {action for action in actions if action.startswith("s3:") and "Object" in action}
        if object_actions:
            result.objects.update(_as_list(statement["Resource"]))
            result.object_actions |= object_actions
        item_actions = {action for action in actions if action.startswith("dynamodb:") and "Item" in action}
        if item_actions:
            # Without LeadingKeys the statement would reach every item: make that visible as "*".
            keys = condition.get("ForAllValues:StringEquals", {}).get("dynamodb:LeadingKeys", ["*"])
            result.lock_items.update(keys)
            result.lock_actions |= item_actions
    return result


def covers(pattern: str, value: str) -> bool:
    """IAM's wildcard match (`*` any characters, `?` one), case-sensitive as for ARNs."""
    regex = "".join(".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
    return re.fullmatch(regex, value) is not None


def stack_state(project: ProjectConfig, state_key: str) -> dict[str, list[str]]:
    """What belongs to one stack's state: its object and lock file, its listing prefix, its lock items."""
    bucket = project.state.bucket
    arn = f"arn:{project.partition}:s3:::{bucket}/{state_key}"
    return {"objects": [arn, f"{arn}.tflock"], "prefixes": [state_key.rsplit("/", 1)[0] + "/"],
            "lock_items": [f"{bucket}/{state_key}", f"{bucket}/{state_key}-md5"]}


def state_role_policies(bootstrap: dict) -> dict[str, dict]:
    """Every state role's policy in the synthesized bootstrap, by role name."""
    roles = bootstrap["resource"]["aws_iam_role"]
    policies = bootstrap["resource"]["aws_iam_role_policy"]
    by_id = {f"${{aws_iam_role.{logical}.id}}": role["name"] for logical, role in roles.items()
             if role.get("path") == "/terraform-state/"}
    return {by_id[policy["role"]]: json.loads(policy["policy"]) for policy in policies.values()
            if policy["role"] in by_id}


def check_no_role_reaches_another_stack(project: ProjectConfig, bootstrap: dict) -> None:
    """For every pair of distinct stacks, neither stack's state roles reach the other's state."""
    policies = state_role_policies(bootstrap)
    keys = project.state_keys
    assert len(policies) == 2 * len(keys), sorted(policies)
    for role, policy in policies.items():
        owner = next(stack for stack in keys if role in (f"{project.application}-{stack}-rw",
                                                          f"{project.application}-{stack}-ro"))
        found = reach(policy)
        for other, key in keys.items():
            if other == owner:
                continue
            theirs = stack_state(project, key)
            for kind in ("objects", "prefixes", "lock_items"):
                for value in theirs[kind]:
                    for pattern in getattr(found, kind):
                        assert not covers(pattern, value), f"{role} reaches {other}'s {value} through {pattern}"
