"""One application environment (dev, staging, production, or any file added under environments/)."""

from __future__ import annotations

import json

from cdktf import TerraformOutput
from constructs import Construct

from core.aws import aws
from environments.model import EnvironmentConfig, NatMode, ProjectConfig
from modules.kms_key import KmsKey, KmsKeyProps, ServiceGrant
from modules.network import Network, NetworkProps
from stacks.base import EnvironmentStackBase

REDIS_PORT = 6379


class EnvironmentStack(EnvironmentStackBase):
    def __init__(self, scope: Construct, project: ProjectConfig, env: EnvironmentConfig):
        super().__init__(scope, project, env)
        self.account_id = aws.data_aws_caller_identity.DataAwsCallerIdentity(self, "caller").account_id
        self.logs_key = self._logs_key(env)
        self.network = Network(self, "network", NetworkProps(
            name_prefix=f"{env.application}-{env.name}",
            environment=env.name,
            region=env.region,
            account_id=self.account_id,
            cidr=env.network.cidr,
            availability_zones=env.network.availability_zones(env.region),
            nat_per_az=env.network.nat_gateways is NatMode.PER_AZ,
            container_port=env.api.container_port,
            cache_port=REDIS_PORT if env.features.cache else None,
            interface_endpoints=env.features.vpc_interface_endpoints,
            log_retention_days=env.log_retention_days,
            logs_kms_key_arn=self.logs_key.arn,
        ))
        TerraformOutput(self, "VpcId", value=self.network.vpc_id, description="The environment's VPC")
        self._resource_group(env)

    def _logs_key(self, env: EnvironmentConfig) -> KmsKey:
        """One CMK for every log group of the environment; CloudWatch Logs may use it for its own groups."""
        logs_service = f"logs.{env.region}.amazonaws.com"
        return KmsKey(self, "logs-key", KmsKeyProps(
            alias=f"alias/{env.resource_name('logs')}",
            description=f"Encrypts the CloudWatch log groups of {env.application} {env.name}",
            service_grants=(ServiceGrant(
                service=logs_service,
                conditions=(("ArnLike", "kms:EncryptionContext:aws:logs:arn",
                             f"arn:{{partition}}:logs:{env.region}:{{account}}:log-group:*"),),
            ),),
        ))

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
