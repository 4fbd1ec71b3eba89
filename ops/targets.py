"""Which stack a name on the command line means, and what the safety rules need to know about it.

Every command that takes an environment takes any synthesized stack: the bootstrap, an account
baseline (`baseline-eu-west-1`) or an environment. The bootstrap and the baselines hold what every
environment depends on (all state; the account's recorder and trail), so they are guarded like
production: named to be applied, and no stateful resource lost without `--allow-replace`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from core.access import AssumedRole, backend_role, provider_role
from environments.model import BOOTSTRAP_STACK, EnvironmentConfig, ProjectConfig


class Kind(StrEnum):
    BOOTSTRAP = "bootstrap"
    BASELINE = "baseline"
    ENVIRONMENT = "environment"
    DR_REGION = "DR-region"


@dataclass(frozen=True)
class Target:
    """One synthesized stack, as the operator commands see it."""

    name: str
    kind: Kind
    # The account the credentials must be in (None: any) and the file that says so.
    account_id: str | None
    account_source: str
    # Where its state lives in the state bucket; None for the bootstrap's local state.
    state_key: str | None
    # Production environments, the bootstrap and the baselines: confirmed by name, losses refused.
    guarded: bool
    environment: EnvironmentConfig | None = None
    # The role its providers assume in its account, and the state role its backend assumes (None: the caller's).
    deploy_role: AssumedRole | None = None
    state_role: AssumedRole | None = None


class UnknownStack(LookupError):
    """A name that is no stack of this configuration; the message lists the stacks."""


def resolve(project: ProjectConfig, name: str) -> Target:
    """The stack `name` names, or UnknownStack listing every stack there is."""
    if name == BOOTSTRAP_STACK:
        key = project.state.bootstrap_key if project.state.bootstrap_state_in_bucket else None
        return Target(name, Kind.BOOTSTRAP, project.state.account_id or project.account_id, project.source, key,
                      guarded=True)
    for baseline in project.baselines:
        if baseline.stack_name == name:
            return Target(name, Kind.BASELINE, baseline.account_id or project.account_id, project.source,
                          baseline.state_key, guarded=True, deploy_role=provider_role(project, name, baseline),
                          state_role=backend_role(project, name))
    for env in project.environments:
        if env.name == name:
            source = env.source if env.account_id else project.source
            return Target(name, Kind.ENVIRONMENT, env.account_id or project.account_id, source, env.state_key,
                          guarded=env.production, environment=env, deploy_role=provider_role(project, name, env),
                          state_role=backend_role(project, name))
        if env.dr and env.dr_stack_name == name:
            # The environment in its DR region: same account, same guard, its own state key and state role.
            source = env.source if env.account_id else project.source
            return Target(name, Kind.DR_REGION, env.account_id or project.account_id, source, env.dr_state_key,
                          guarded=env.production, environment=env, deploy_role=provider_role(project, name, env),
                          state_role=backend_role(project, name))
    raise UnknownStack(f"unknown stack {name!r}: the stacks are {', '.join(project.stack_names)}")
