"""What every environment stack starts from: its provider and its locked S3 state."""

from __future__ import annotations

from cdktf import TerraformStack
from constructs import Construct

from core.access import backend_role, provider_role, stack_account
from core.provider import aws_provider, required_tags, s3_backend
from core.tagging import RequiredTags
from environments.model import EnvironmentConfig, ProjectConfig


class EnvironmentStackBase(TerraformStack):
    """Provider (region, account guard, default tags) and backend, both from configuration."""

    def __init__(self, scope: Construct, project: ProjectConfig, env: EnvironmentConfig, *,
                 stack_name: str | None = None, state_key: str | None = None, region: str | None = None):
        """The environment's own stack by default; its DR-region stack names another stack, key and region."""
        super().__init__(scope, stack_name or env.name)
        self.env = env
        self.tags = required_tags(environment=env.name, application=env.application,
                                  owner=env.owner, cost_center=env.cost_center)
        self.project = project
        self.stack_name = stack_name or env.name
        self.region = region or env.region
        self.provider = self.region_provider(self.region)
        s3_backend(self, state=project.state, key=state_key or env.state_key, emulator=project.emulator,
                   role=backend_role(project, self.stack_name))
        RequiredTags.enforce(self, self.tags)

    def region_provider(self, region: str, alias: str | None = None):
        """An AWS provider of this environment's account in `region`: every provider of the stack is made here."""
        project, env = self.project, self.env
        return aws_provider(self, region=region, account_id=stack_account(project, env), tags=self.tags,
                            emulator=project.emulator, alias=alias,
                            role=provider_role(project, self.stack_name, env))
