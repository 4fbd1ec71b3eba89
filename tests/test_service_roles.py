"""Every service role of every synthesized stack can do its documented job (rules in tests/role_checks.py)."""

from __future__ import annotations

import pytest

from tests import role_checks

EVERY_KIND = {"ecs", "flow logs", "monitoring", "config", "trail", "alb logs", "s3 logs", "vended logs", "backup",
              "replication"}


def test_the_shipped_stacks_hold_every_kind_of_service_role(stacks):
    """Otherwise a kind of role would be required by nothing the suite synthesizes."""
    present = set().union(*(role_checks.service_roles_present(stack) for stack in stacks.values()))
    assert present == EVERY_KIND


@pytest.mark.parametrize("name", ["dev", "staging", "production", "bootstrap", "baseline-eu-west-1"])
def test_every_service_role_can_do_its_job(stacks, name):
    role_checks.check_service_roles(stacks[name])
