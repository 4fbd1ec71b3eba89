"""Attribute references of provider resources written in Python, not read from jsii's Node process.

Reading `bucket.arn` asks the jsii kernel for a token (one round trip, ~0.5 ms on a loaded machine)
that cdktf later resolves to `${aws_s3_bucket.<logical id>.arn}` in the stack that holds the bucket.
An environment stack made ~130 such reads. The logical id is a pure function of the construct's path
below its stack (cdktf 0.21, `makeUniqueId` in lib/private/unique.js: the path's ids, the human part
and an MD5 of the path), and every construct is created from Python with its scope and id, so this
module records each construct's path as jsii creates it and the provider's string attributes return
the reference text directly (core/aws.py installs both, except under INFRA_PROVIDER_BUNDLE=stock).

Where that text would not be what cdktf renders, the attribute is read from jsii as before: a
construct whose path was not seen being created, an iterated resource (`for_each`: references end
in `.*`; `count`, kept with it), an element whose logical id was overridden. A reference used in
another stack would need cdktf's cross-stack outputs; the stacks here never do that, and
Terraform's validation of every synthesized stack (tests/test_terraform_validate.py, the property
tests) would refuse the dangling reference. tests/test_provider_bundle.py synthesizes every shipped
stack with the references read from jsii (the stock mode) and written here, and requires
byte-identical output.

The same records keep the resource-level `tags` each resource was given (in its configuration or
through the `tags` setter), so the tagging aspect (core/tagging.py) can check them without having
Node render the whole stack once more; an element with a raw override is marked as not known here.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import jsii
from cdktf import TerraformDataSource, TerraformElement, TerraformResource, TerraformStack

# cdktf's lib/private/unique.js
HIDDEN_ID, HIDDEN_FROM_HUMAN_ID = "Default", "Resource"
HASH_LEN, MAX_HUMAN_LEN, MAX_ID_LEN = 8, 240, 255
_DISALLOWED = re.compile(r"[^A-Za-z0-9_-]")

# construct -> the ids of its path below its stack (the stack's own id excluded), as cdktf counts them
_PATHS: weakref.WeakKeyDictionary[Any, tuple[str, ...]] = weakref.WeakKeyDictionary()
_LOGICAL_IDS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
# resource -> the `tags` it was given from Python (None: none); absent: not known here
_GIVEN_TAGS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def make_unique_id(components: Sequence[str]) -> str:
    """cdktf's logical id for the path `components` below a stack (lib/private/unique.js, makeUniqueId)."""
    components = [component for component in components if component != HIDDEN_ID]
    if not components:
        raise ValueError("no path components")
    if len(components) == 1:
        candidate = _DISALLOWED.sub("", components[0])
        if len(candidate) <= MAX_ID_LEN:
            return candidate
    digest = hashlib.md5("/".join(components).encode()).hexdigest()[:HASH_LEN].upper()
    human: list[str] = []
    for component in components:  # removeDupes: skip a component its predecessor ends with
        if not human or not human[-1].endswith(component):
            human.append(component)
    text = "_".join(_DISALLOWED.sub("", part) for part in human if part != HIDDEN_FROM_HUMAN_ID)
    return f"{text[:MAX_HUMAN_LEN]}_{digest}"


def _record(obj: Any, args: Sequence[Any]) -> None:
    """Remember where a construct jsii just created sits below its stack, and a resource's tags."""
    if len(args) < 2 or not isinstance(args[1], str):
        return
    config = args[2] if len(args) > 2 else None
    if isinstance(obj, TerraformResource):
        _GIVEN_TAGS[obj] = getattr(config, "tags", None)
    scope = args[0]
    parent = () if isinstance(scope, TerraformStack) else _PATHS.get(scope)
    if parent is None:
        return
    if getattr(config, "count", None) is not None or getattr(config, "for_each", None) is not None:
        return
    with contextlib.suppress(TypeError):  # not weakly referenceable: not a construct of ours
        _PATHS[obj] = (*parent, args[1])


def logical_id(element: Any) -> str | None:
    """The element's logical id as cdktf will allocate it, or None when it is not known here."""
    known = _LOGICAL_IDS.get(element)
    if known is None:
        path = _PATHS.get(element)
        if path is None:
            return None
        known = _LOGICAL_IDS[element] = make_unique_id(path)
    return known


def _recording_create(create: Callable) -> Callable:
    def create_and_record(klass: type, obj: Any, args: list | None = None):
        ref = create(klass, obj, args)
        if args:
            _record(obj, args)
        return ref
    create_and_record.__wrapped__ = create
    return create_and_record


def given_tags(resource: Any) -> tuple[bool, Any]:
    """(True, the `tags` the resource was given from Python, None for none), or (False, None): not known here."""
    if resource in _GIVEN_TAGS:
        return True, _GIVEN_TAGS[resource]
    return False, None


def _forgetting_override(override: Callable) -> Callable:
    def override_logical_id(self, new_logical_id: str) -> None:
        _PATHS.pop(self, None)
        _LOGICAL_IDS.pop(self, None)
        return override(self, new_logical_id)
    override_logical_id.__wrapped__ = override
    return override_logical_id


def _forgetting_tags(add_override: Callable) -> Callable:
    def add_raw_override(self, path: str, value: Any) -> None:
        _GIVEN_TAGS.pop(self, None)  # any raw override may reach the tags
        return add_override(self, path, value)
    add_raw_override.__wrapped__ = add_override
    return add_raw_override


def install() -> None:
    """Record construct paths from now on (idempotent). Before any stack is built: its children need it."""
    if not hasattr(jsii.create, "__wrapped__"):
        jsii.create = _recording_create(jsii.create)
    for name, wrap in (("override_logical_id", _forgetting_override), ("add_override", _forgetting_tags)):
        if not hasattr(getattr(TerraformElement, name), "__wrapped__"):
            setattr(TerraformElement, name, wrap(getattr(TerraformElement, name)))


def _snake(jsii_name: str) -> str:
    return re.sub(r"([A-Z])", r"_\1", jsii_name).lower()


def _recording_tags(original: property) -> property:
    setter = original.fset

    def set_tags(self, value: Any) -> None:
        setter(self, value)
        if self in _GIVEN_TAGS:
            _GIVEN_TAGS[self] = value
    set_tags.__wrapped__ = setter
    return property(original.fget, set_tags, original.fdel, original.__doc__)


def _forgetting_reset(reset: Callable) -> Callable:
    def reset_tags(self) -> None:
        reset(self)
        if self in _GIVEN_TAGS:
            _GIVEN_TAGS[self] = None
    reset_tags.__wrapped__ = reset
    return reset_tags


def _reference_property(original: property, prefix: str, attribute: str) -> property:
    getter = original.fget

    def get(self) -> str:
        known = logical_id(self)
        if known is None:
            return getter(self)
        return "${" + f"{prefix}.{known}.{attribute}" + "}"
    get.__wrapped__ = getter
    return property(get, original.fset, original.fdel, original.__doc__)


def patch_module(module: Any, module_name: str) -> None:
    """Make the string attributes of the module's resource or data source class return reference text.

    The Terraform type comes from the module's name (`kms_key` holds aws_kms_key, `data_aws_partition`
    the data source aws_partition); an attribute is patched only where its Terraform name is certain:
    a plain string getter whose Python name is the snake case of its jsii name (not an `_input`, not a
    renamed `_attribute`).
    """
    is_data = module_name.startswith("data_aws_")
    prefix = f"data.{module_name[len('data_'):]}" if is_data else f"aws_{module_name}"
    base = TerraformDataSource if is_data else TerraformResource
    for cls in list(vars(module).values()):
        if not (isinstance(cls, type) and issubclass(cls, base) and cls.__module__ == module.__name__):
            continue
        tags = vars(cls).get("tags")
        if isinstance(tags, property) and tags.fset is not None:
            cls.tags = _recording_tags(tags)
        if callable(vars(cls).get("reset_tags")):
            cls.reset_tags = _forgetting_reset(cls.reset_tags)
        for name, member in list(vars(cls).items()):
            if not isinstance(member, property) or member.fget is None or name.endswith(("_input", "_attribute")):
                continue
            jsii_name = getattr(member.fget, "__jsii_name__", None)
            returns = member.fget.__annotations__.get("return")
            if jsii_name is None or _snake(jsii_name) != name or returns not in (str, "builtins.str"):
                continue
            setattr(cls, name, _reference_property(member, prefix, name))
