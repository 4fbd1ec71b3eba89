"""CI identities (`[ci]` in project.toml): how GitHub Actions of one repository reach each environment.

One GitHub OIDC provider in the state account. Per environment, two entry roles there, each
trusted only by that repository: `<app>-<env>-ci-deploy` from the GitHub environment of the same
name, `<app>-<env>-ci-plan` from pull requests. An entry role can do exactly two things: assume the
environment's role in its own account, and assume that environment's state roles (its own stack's
and its DR-region stack's; read-write for deploys, read-only for plans). In the environment's
account the bootstrap creates (through `account_access_role` when that account is not the state
account):

- `<app>-<env>-deploy`: what a deploy of the environment needs (core/deploy_permissions.py);
- `<app>-<env>-plan`: read-only (AWS's ReadOnlyAccess).

Both trust only their entry role and the state administrators (operators deploying by hand). A
branch's code running in a pull request therefore gets one environment's read-only role and its
read-only state, never another environment's state and never a write.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from cdktf import TerraformOutput
from constructs import Construct

from core.access import GITHUB_OIDC_AUDIENCE, GITHUB_OIDC_HOST, ci_role_name, state_role_arn
from core.aws import aws
from core.deploy_permissions import deploy_policy
from environments.model import Access, EnvironmentConfig, ProjectConfig

# AWS managed policy for the plan roles: Terraform's refresh reads every resource type the stacks use.
READ_ONLY_POLICY = "ReadOnlyAccess"
ENTRY_SUFFIX = {Access.DEPLOY: "ci-deploy", Access.PLAN: "ci-plan"}


def github_subject(repository: str, env: EnvironmentConfig, access: Access) -> str:
    """The OIDC `sub` claim a job of `repository` presents (GitHub Docs, "About security hardening with
    OpenID Connect", example subject claims): deploy jobs run in the GitHub environment named after the
    environment, plan jobs on pull requests."""
    if access is Access.DEPLOY:
        return f"repo:{repository}:environment:{env.name}"
    return f"repo:{repository}:pull_request"


class CiIdentities(Construct):
    """Exposes `entry_arns[(env, access)]` (for the state roles' trust) and writes the `ci_roles` output."""

    def __init__(self, scope: Construct, id: str, *, project: ProjectConfig,
                 account_provider: Callable[[str], object]):
        super().__init__(scope, id)
        self.project, self.account_provider = project, account_provider
        self.oidc = aws.iam_openid_connect_provider.IamOpenidConnectProvider(
            self, "github", url=f"https://{GITHUB_OIDC_HOST}", client_id_list=[GITHUB_OIDC_AUDIENCE])
        self.entry_arns: dict[tuple[str, Access], str] = {}
        self._entries: dict[tuple[str, Access], object] = {}
        for env in project.environments:
            for access in Access:
                self._entry(env, access)
                self._environment_role(env, access)
        TerraformOutput(scope, "ci_roles", description="Role ARNs for each environment's CI jobs "
                                                       "(repository variables, docs/deployment.md)",
                        value={env.name: {str(access): self.entry_arns[(env.name, access)] for access in Access}
                               for env in project.environments})

    def _entry(self, env: EnvironmentConfig, access: Access) -> None:
        project = self.project
        # IAM User Guide, "Create a role for OpenID Connect federation": aud and sub conditions on the provider.
        trust = {"Version": "2012-10-17", "Statement": [{
            "Sid": "GitHubActionsOfThisRepository", "Effect": "Allow",
            "Principal": {"Federated": self.oidc.arn}, "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                f"{GITHUB_OIDC_HOST}:aud": GITHUB_OIDC_AUDIENCE,
                f"{GITHUB_OIDC_HOST}:sub": github_subject(project.ci.repository, env, access)}}}]}
        name = f"{project.application}-{env.name}-{ENTRY_SUFFIX[access]}"
        role = aws.iam_role.IamRole(self, f"{env.name}-{access}-entry", name=name,
                                    assume_role_policy=json.dumps(trust),
                                    description=f"GitHub Actions' {access} jobs for {env.name}")
        self._entries[(env.name, access)] = role
        self.entry_arns[(env.name, access)] = role.arn

    def _environment_role(self, env: EnvironmentConfig, access: Access) -> None:
        project = self.project
        provider = self.account_provider(env.account_id)
        entry = self.entry_arns[(env.name, access)]
        trust = {"Version": "2012-10-17", "Statement": [{
            "Sid": "EntryRoleAndAdministrators", "Effect": "Allow",
            "Principal": {"AWS": [entry, *project.state.administrators]}, "Action": "sts:AssumeRole"}]}
        name = ci_role_name(project, env, access)
        role = aws.iam_role.IamRole(self, f"{env.name}-{access}", name=name, provider=provider,
                                    assume_role_policy=json.dumps(trust),
                                    description=f"{'Deploys' if access is Access.DEPLOY else 'Plans'} {env.name}")
        if access is Access.DEPLOY:
            own = tuple(ci_role_name(project, env, each) for each in Access)
            policy = deploy_policy(project.partition, env.account_id, f"{env.application}-{env.name}", own)
            aws.iam_role_policy.IamRolePolicy(self, f"{env.name}-deploy-policy", name=f"{name}-permissions",
                                              role=role.id, policy=json.dumps(policy), provider=provider)
        else:
            aws.iam_role_policy_attachment.IamRolePolicyAttachment(
                self, f"{env.name}-plan-read-only", role=role.name, provider=provider,
                policy_arn=f"arn:{project.partition}:iam::aws:policy/{READ_ONLY_POLICY}")
            if env.standby:
                self._throwaway_password(env, name, role.id, provider)
        self._entry_policy(env, access, role.arn)

    def _throwaway_password(self, env: EnvironmentConfig, name: str, role_id: str, provider) -> None:
        """A standby's primary is planned with a throwaway password generated in the run (an ephemeral
        resource, opened by every plan: modules/database.py): GetRandomPassword returns random characters
        and touches no resource; it has no resource type, so `*` (Service Authorization Reference, AWS
        Secrets Manager)."""
        policy = {"Version": "2012-10-17", "Statement": [{
            "Sid": "GenerateThrowawayPasswords", "Effect": "Allow", "Action": "secretsmanager:GetRandomPassword",
            "Resource": "*"}]}
        aws.iam_role_policy.IamRolePolicy(self, f"{env.name}-plan-random-password", name=f"{name}-random-password",
                                          role=role_id, policy=json.dumps(policy), provider=provider)

    def _entry_policy(self, env: EnvironmentConfig, access: Access, environment_role_arn: str) -> None:
        """The entry role may assume exactly the environment's role and the matching state role."""
        project = self.project
        stacks = filter(None, (env.name, env.dr_stack_name))  # and its DR-region stack's state, where it has one
        policy = {"Version": "2012-10-17", "Statement": [{
            "Sid": "EnvironmentRoleAndOwnState", "Effect": "Allow", "Action": "sts:AssumeRole",
            "Resource": [environment_role_arn, *(state_role_arn(project, stack, access) for stack in stacks)]}]}
        entry = self._entries[(env.name, access)]
        aws.iam_role_policy.IamRolePolicy(self, f"{env.name}-{access}-entry-policy",
                                          name=f"{project.application}-{env.name}-{ENTRY_SUFFIX[access]}-assume",
                                          role=entry.id, policy=json.dumps(policy))
