"""Enforce SPEC 4.6's required tags on every taggable resource, at synthesis time.

Tags are applied by the AWS provider's `default_tags` (see core.provider). This aspect proves
they land everywhere: it fails synthesis, naming the resource, when a taggable resource would
end up without a required tag, for example under a provider that has no default tags, or with
a resource-level tag that overrides a required one with a different value.
"""

from __future__ import annotations

from collections.abc import Mapping

import jsii
from cdktf import Annotations, Aspects, IAspect, TerraformResource, TerraformStack
from constructs import Construct, IConstruct

from core import references
from core.aws import aws

# The childless construct the aspect is registered on (see RequiredTags.enforce).
ANCHOR_ID = "required-tags"


def _default_tags(provider) -> dict[str, str]:
    merged: dict[str, str] = {}
    for block in provider.default_tags_input or []:
        merged.update(block.tags or {})
    return merged


def _is_taggable(construct: IConstruct) -> bool:
    return isinstance(construct, TerraformResource) and hasattr(type(construct), "tags_input")


@jsii.implements(IAspect)
class RequiredTags:
    """Checks a whole stack in one visit.

    cdktf calls an aspect once for every construct under the one it is registered on, and each
    call (like each property read) is a round trip from jsii's Node process into Python. Checked
    construct by construct, a stack of ~200 constructs cost ~0.1 s per stack, the largest single
    part of synthesis. `enforce` therefore registers the aspect on a childless construct of the
    stack, so it runs once per synthesis, and the visit reads the stack's constructs in one call.
    """

    def __init__(self, stack: TerraformStack, tags: Mapping[str, str]):
        self.stack = stack
        self.tags = dict(tags)

    @classmethod
    def enforce(cls, stack: TerraformStack, tags: Mapping[str, str]) -> RequiredTags:
        """Fail the synthesis of `stack` if any of its taggable resources would lack one of `tags`."""
        aspect = cls(stack, tags)
        Aspects.of(Construct(stack, ANCHOR_ID)).add(aspect)
        return aspect

    def visit(self, node: IConstruct) -> None:
        """Check every taggable resource of the stack, whichever construct cdktf passes in."""
        constructs = self.stack.node.find_all()
        providers = [c for c in constructs if isinstance(c, aws.provider.AwsProvider)]
        tags_by_provider = {id(provider): _default_tags(provider) for provider in providers}
        if providers and not any(map(self._missing, tags_by_provider.values())):
            # Whichever provider a resource uses supplies the tags; only an override can break them.
            self._check_overrides(constructs)
            return
        for resource in filter(_is_taggable, constructs):
            provider = resource.provider
            inherited = (tags_by_provider.get(id(provider), {}) if provider
                         else self._unaliased_provider_tags(providers, tags_by_provider))
            missing = self._missing({**inherited, **(resource.tags_input or {})})
            if missing:
                self._report(resource, sorted(missing))

    def _check_overrides(self, constructs: list) -> None:
        """Report each resource whose own tags change a required one.

        The tags are the ones each resource was given from Python (core.references records them as
        jsii creates the resource, and follows the `tags` setter): no round trip at all. Where one is
        not known there (a raw override, a token for a required key's value, the stock bundle), they
        come from the stack's Terraform JSON, read in one call: reading each resource's `tags_input`
        instead cost a round trip into Node per taggable resource (~100 of an environment stack's ~600),
        and rendering the stack costs Node about as much again as the synthesis writing it. Only a
        failure maps the JSON back to constructs (more round trips).
        """
        taggable = list(filter(_is_taggable, constructs))
        given = [references.given_tags(resource) for resource in taggable]
        if all(known and self._checkable(tags) for known, tags in given):
            for resource, (_, tags) in zip(taggable, given, strict=True):
                missing = self._overridden(tags or {})
                if missing:
                    self._report(resource, sorted(missing))
            return
        overriding = {}
        for resource_type, resources in self.stack.to_terraform().get("resource", {}).items():
            for logical_id, body in resources.items():
                missing = self._overridden(body.get("tags") or {})
                if missing:
                    overriding[(resource_type, logical_id)] = sorted(missing)
        if not overriding:
            return
        for resource in filter(_is_taggable, constructs):
            missing = overriding.get((resource.terraform_resource_type, resource.friendly_unique_id))
            if missing:
                self._report(resource, missing)

    def _overridden(self, tags) -> list[str]:
        """The required tags a resource's own `tags` change (a whole-map reference cannot be checked: all)."""
        if not isinstance(tags, Mapping):
            return list(self.tags)
        return [key for key, value in tags.items() if key in self.tags and value != self.tags[key]]

    def _checkable(self, tags) -> bool:
        """Given tags whose required keys hold plain text (a token would have to be resolved by Node)."""
        return not isinstance(tags, Mapping) or all(
            isinstance(tags[key], str) and "Token[" not in tags[key] for key in self.tags if key in tags)

    def _missing(self, effective: Mapping[str, str]) -> list[str]:
        return [key for key, value in self.tags.items() if effective.get(key) != value]

    @staticmethod
    def _unaliased_provider_tags(providers: list, tags_by_provider: Mapping[int, dict[str, str]]) -> dict[str, str]:
        """A resource without an explicit provider uses the stack's provider that has no alias."""
        defaults = [provider for provider in providers if not provider.alias]
        return tags_by_provider[id(defaults[0])] if defaults else {}

    def _report(self, resource: TerraformResource, missing: list[str]) -> None:
        Annotations.of(resource).add_error(
            f"{resource.terraform_resource_type} {resource.node.path} would lack the required tags "
            f"{', '.join(f'{key}={self.tags[key]}' for key in missing)} (SPEC 4.6); tag it through the "
            "provider's default_tags and do not override them on the resource")
