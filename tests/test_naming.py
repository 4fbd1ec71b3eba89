"""core.naming: names that fit AWS length limits, stay distinct and stay valid."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.naming import bounded_name
from tests.strategies import LOWER_DIGITS, RESERVED_ENVIRONMENT_NAMES, application_names, environment_names

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


@st.composite
def prefixes_differing_at_the_end(draw) -> tuple[str, str]:
    """Two `<app>-<env>` prefixes equal but for the environment name's last character.

    Shortening keeps the start of a prefix, so only something derived from the whole prefix (the
    digest) can keep these two apart once they are cut; a plain truncation gives both one name.
    """
    app, env = draw(application_names()), draw(environment_names())
    other = env[:-1] + draw(st.sampled_from(LOWER_DIGITS).filter(
        lambda last: last != env[-1] and env[:-1] + last not in RESERVED_ENVIRONMENT_NAMES))
    return f"{app}-{env}", f"{app}-{other}"


# 16 shortens nearly every prefix; 32 and 40 are the load balancer and cache limits.
SHORTENING_LIMITS = st.sampled_from([16, 32, 40])


def assert_names_differ(naming: Callable[[str, str, int], str], pair: tuple[str, str], limit: int) -> None:
    first, second = (naming(prefix, "api", limit) for prefix in pair)
    assert len(first) <= limit and len(second) <= limit
    assert first != second, f"{pair[0]!r} and {pair[1]!r} share the name {first!r}"


@given(pair=prefixes_differing_at_the_end(), limit=SHORTENING_LIMITS)
def test_prefixes_differing_only_at_the_end_keep_distinct_names(pair, limit):
    assert_names_differ(bounded_name, pair, limit)


def test_the_distinctness_property_catches_a_truncation_without_digest():
    """The property above, run on a naming function that only cuts the prefix off, must fail."""
    def truncated(prefix: str, component: str, limit: int) -> str:
        return f"{prefix[:limit - len(component) - 1].rstrip('-')}-{component}"

    @settings(database=None)
    @given(pair=prefixes_differing_at_the_end(), limit=SHORTENING_LIMITS)
    def property_on_truncation(pair, limit):
        assert_names_differ(truncated, pair, limit)

    with pytest.raises(AssertionError, match="share the name"):
        property_on_truncation()


def test_environments_sharing_a_long_prefix_get_distinct_names():
    app = "a" * 20
    names = {bounded_name(f"{app}-{env}", "api", 32) for env in ("production-eu-1", "production-eu-2")}
    assert len(names) == 2 and all(len(name) <= 32 for name in names)


def test_a_limit_too_small_for_the_component_is_refused():
    with pytest.raises(ValueError, match="leaves no room"):
        bounded_name("a" * 40, "component", 12)
