"""As whom each stack is deployed and reaches its state: names shared by the bootstrap and every stack.

The bootstrap creates the roles (bootstrap/access.py, bootstrap/ci.py); every other stack assumes
them by ARN in its provider and backend blocks, which Terraform reads before it can look anything
up, so both sides compute the same literal ARNs from configuration here.

- Each stack kept in the state bucket has two state roles in the state account, under the path
  `/terraform-state/`: `<app>-<stack>-rw` (read and write its own state object, hold its own locks) and
  `<app>-<stack>-ro` (read its own state object only: plans run with `-lock=false`). Role names are at
  most 64 characters; the longest stack name (`baseline-<account>-<region>`) still fits.
- With `[ci]`, each environment account has `<app>-<env>-deploy` and `<app>-<env>-plan`, trusted by
  GitHub's OIDC provider for that repository only.
"""

from __future__ import annotations

from dataclasses import dataclass

from environments.model import Access, BaselineConfig, EnvironmentConfig, ProjectConfig

STATE_ROLE_PATH = "/terraform-state/"
STATE_ROLE_SUFFIX = {Access.DEPLOY: "rw", Access.PLAN: "ro"}
CI_ROLE_SUFFIX = {Access.DEPLOY: "deploy", Access.PLAN: "plan"}
# GitHub's OIDC issuer and the audience aws-actions/configure-aws-credentials requests (GitHub Docs,
# "Configuring OpenID Connect in Amazon Web Services").
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
GITHUB_OIDC_AUDIENCE = "sts.amazonaws.com"


@dataclass(frozen=True)
class AssumedRole:
    """The role a provider or backend assumes, and the session name CloudTrail records it under."""

    role_arn: str
    session_name: str


def role_arn(partition: str, account_id: str, name: str, path: str = "/") -> str:
    return f"arn:{partition}:iam::{account_id}:role{path}{name}"


def state_role_name(project: ProjectConfig, stack: str, access: Access) -> str:
    return f"{project.application}-{stack}-{STATE_ROLE_SUFFIX[access]}"


def state_role_arn(project: ProjectConfig, stack: str, access: Access) -> str:
    return role_arn(project.partition, project.state.account_id, state_role_name(project, stack, access),
                    STATE_ROLE_PATH)


def ci_role_name(project: ProjectConfig, env: EnvironmentConfig, access: Access) -> str:
    return f"{project.application}-{env.name}-{CI_ROLE_SUFFIX[access]}"


def ci_role_arn(project: ProjectConfig, env: EnvironmentConfig, access: Access) -> str:
    return role_arn(project.partition, env.account_id, ci_role_name(project, env, access))


def session(project: ProjectConfig, stack: str) -> str:
    """`<app>-<stack>`: CloudTrail names the stack behind every call its providers make."""
    return f"{project.application}-{stack}"


def backend_role(project: ProjectConfig, stack: str) -> AssumedRole | None:
    """The state role this stack's backend assumes for the synthesis's access; None without isolation."""
    if not project.state.isolated:
        return None
    return AssumedRole(state_role_arn(project, stack, project.access), session(project, stack))


def provider_role(project: ProjectConfig, stack: str, target: EnvironmentConfig | BaselineConfig) -> AssumedRole | None:
    """The role every provider of the stack assumes: its deploy role, or for plans its CI plan role.

    A plan synthesized without a CI plan role (no `[ci]`, or a baseline) assumes the deploy role: the
    read-only part of such a plan is its state role, which cannot write or lock.
    """
    arn = target.deploy_role_arn
    if project.access is Access.PLAN and project.ci and isinstance(target, EnvironmentConfig):
        arn = ci_role_arn(project, target, Access.PLAN)
    return AssumedRole(arn, session(project, stack)) if arn else None


def stack_account(project: ProjectConfig, target: EnvironmentConfig | BaselineConfig) -> str | None:
    """The account a stack deploys into, when configuration knows it."""
    return target.account_id or project.account_id
