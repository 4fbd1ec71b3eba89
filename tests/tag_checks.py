"""Property 4 on synthesized JSON: every taggable resource carries every required tag."""

from __future__ import annotations

import functools

from core.aws import aws


@functools.cache
def taggable(resource_type: str) -> bool:
    """Whether the provider schema lets this resource type carry tags (read from the binding)."""
    module = getattr(aws, resource_type.removeprefix("aws_"))
    classes = [value for value in vars(module).values()
               if isinstance(value, type) and getattr(value, "TF_RESOURCE_TYPE", None) == resource_type]
    assert classes, f"no binding class for {resource_type}"
    return hasattr(classes[0], "tags_input")


def provider_tags(stack: dict) -> dict[str | None, dict[str, str]]:
    """Default tags per provider alias (None is the default provider)."""
    result = {}
    for provider in stack["provider"]["aws"]:
        merged: dict[str, str] = {}
        for block in provider.get("default_tags", []):
            merged.update(block["tags"])
        result[provider.get("alias")] = merged
    return result


def check_required_tags(stack: dict, required: dict[str, str]) -> int:
    """Assert property 4; returns how many taggable resources were checked."""
    defaults = provider_tags(stack)
    checked = 0
    for resource_type, resources in stack.get("resource", {}).items():
        if not taggable(resource_type):
            continue
        for name, resource in resources.items():
            alias = resource.get("provider", "aws").removeprefix("aws").removeprefix(".") or None
            effective = {**defaults[alias], **resource.get("tags", {})}
            missing = {k: v for k, v in required.items() if effective.get(k) != v}
            assert not missing, f"{resource_type}.{name} lacks {missing}"
            checked += 1
    return checked
