"""core.naming: names that fit AWS length limits, stay distinct and stay valid."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.naming import bounded_name
from tests.strategies import application_names, environment_names

VALID = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")


def prefixes() -> st.SearchStrategy[str]:
    """`<app>-<env>` exactly as the environment stacks build it, from loader-valid names."""
    return st.builds(lambda app, env: f"{app}-{env}", application_names(), environment_names())


def test_a_name_that_fits_is_left_alone():
    assert bounded_name("webapp-production", "cache", 40) == "webapp-production-cache"


@given(prefix=prefixes(), limit=st.sampled_from([32, 40]))
def test_every_name_fits_its_limit_and_stays_a_valid_name(prefix, limit):
    name = bounded_name(prefix, "cache", limit)
    assert len(name) <= limit
    assert VALID.match(name) and "--" not in name, name
    assert name.endswith("-cache")


@given(first=prefixes(), second=prefixes())
def test_different_prefixes_never_share_a_shortened_name(first, second):
    if first != second:
        assert bounded_name(first, "api", 32) != bounded_name(second, "api", 32)


def test_environments_sharing_a_long_prefix_get_distinct_names():
    app = "a" * 20
    names = {bounded_name(f"{app}-{env}", "api", 32) for env in ("production-eu-1", "production-eu-2")}
    assert len(names) == 2 and all(len(name) <= 32 for name in names)


def test_a_limit_too_small_for_the_component_is_refused():
    with pytest.raises(ValueError, match="leaves no room"):
        bounded_name("a" * 40, "component", 12)
