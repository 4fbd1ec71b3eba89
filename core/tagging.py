"""Enforce SPEC 4.6's required tags on every taggable resource, at synthesis time.

Tags are applied by the AWS provider's `default_tags` (see core.provider). This aspect proves
they land everywhere: it fails synthesis, naming the resource, when a taggable resource would
end up without a required tag, for example under a provider that has no default tags, or with
a resource-level tag that overrides a required one with a different value.
"""

from __future__ import annotations

from collections.abc import Mapping

import jsii
from cdktf import Annotations, IAspect, TerraformResource, TerraformStack
from constructs import IConstruct

from core.aws import aws


def _default_tags(provider) -> dict[str, str]:
    merged: dict[str, str] = {}
    for block in provider.default_tags_input or []:
        merged.update(block.tags or {})
    return merged


@jsii.implements(IAspect)
class RequiredTags:
    """One instance per stack. Every jsii property read is a round trip to Node, so provider tags
    are read once per provider and cached; per resource only its tags and provider are read."""

    def __init__(self, tags: Mapping[str, str]):
        self.tags = dict(tags)
        self._default_tags: dict[str, str] | None = None
        self._tags_by_provider: dict[int, dict[str, str]] = {}

    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, TerraformResource) or not hasattr(type(node), "tags_input"):
            return  # not a resource, or a resource type AWS cannot tag
        effective = {**self._provider_tags(node), **(node.tags_input or {})}
        wrong = sorted(key for key, value in self.tags.items() if effective.get(key) != value)
        if wrong:
            Annotations.of(node).add_error(
                f"{node.terraform_resource_type} {node.node.path} would lack the required tags "
                f"{', '.join(f'{key}={self.tags[key]}' for key in wrong)} (SPEC 4.6); tag it through the "
                "provider's default_tags and do not override them on the resource")

    def _provider_tags(self, resource: TerraformResource) -> dict[str, str]:
        provider = resource.provider
        if provider is None:
            if self._default_tags is None:
                self._default_tags = self._default_provider_tags(resource)
            return self._default_tags
        key = id(provider)
        if key not in self._tags_by_provider:
            self._tags_by_provider[key] = _default_tags(provider)
        return self._tags_by_provider[key]

    @staticmethod
    def _default_provider_tags(resource: TerraformResource) -> dict[str, str]:
        stack = TerraformStack.of(resource)
        defaults = [child for child in stack.node.children
                    if isinstance(child, aws.provider.AwsProvider) and not child.alias]
        return _default_tags(defaults[0]) if defaults else {}
