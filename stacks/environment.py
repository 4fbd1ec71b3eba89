"""One application environment (dev, staging, production, or any file added under environments/)."""

from __future__ import annotations

import json

from cdktf import TerraformOutput
from constructs import Construct

from core.aws import aws
from environments.model import EnvironmentConfig, ProjectConfig
from stacks.base import EnvironmentStackBase


class EnvironmentStack(EnvironmentStackBase):
    def __init__(self, scope: Construct, project: ProjectConfig, env: EnvironmentConfig):
        super().__init__(scope, project, env)
        self._resource_group(env)

    def _resource_group(self, env: EnvironmentConfig) -> None:
        """Groups everything tagged for this environment, so operators see it in one place."""
        query = {
            "ResourceTypeFilters": ["AWS::AllSupported"],
            "TagFilters": [
                {"Key": "Application", "Values": [env.application]},
                {"Key": "Environment", "Values": [env.name]},
            ],
        }
        groups = aws.resourcegroups_group
        group = groups.ResourcegroupsGroup(
            self,
            "resource-group",
            name=env.resource_name("resources"),
            description=f"Every resource of {env.application} in {env.name}",
            resource_query=groups.ResourcegroupsGroupResourceQuery(query=json.dumps(query)),
        )
        TerraformOutput(self, "ResourceGroupArn", value=group.arn,
                        description="Resource group listing this environment's resources")
