"""One application environment (dev, staging, production, or any file added under environments/)."""

from __future__ import annotations

import json

from cdktf import TerraformOutput
from constructs import Construct

from core.aws import aws
from environments.model import EnvironmentConfig, NatMode, ProjectConfig
from modules.api import Api, ApiProps
from modules.database import CACHE_PORT, DATABASE_NAME, POSTGRES_PORT, CacheProps, Database, DatabaseProps
from modules.kms_key import KmsKey, KmsKeyProps, ServiceGrant
from modules.network import Network, NetworkProps
from stacks.base import EnvironmentStackBase

# Load balancer access logs are kept this long (days).
ACCESS_LOG_DAYS = 90


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
            cache_port=CACHE_PORT if env.features.cache else None,
            interface_endpoints=env.features.vpc_interface_endpoints,
            log_retention_days=env.log_retention_days,
            logs_kms_key_arn=self.logs_key.arn,
        ))
        TerraformOutput(self, "VpcId", value=self.network.vpc_id, description="The environment's VPC")
        self.database = self._database(env)
        self.api = self._api(env)
        self._resource_group(env)

    def _database(self, env: EnvironmentConfig) -> Database:
        network, db = self.network, env.database
        cache = CacheProps(security_group_id=network.cache_security_group_id) if env.features.cache else None
        database = Database(self, "database", DatabaseProps(
            name_prefix=f"{env.application}-{env.name}",
            region=env.region,
            account_id=self.account_id,
            subnet_ids=tuple(network.subnet_ids["data"]),
            security_group_id=network.database_security_group_id,
            min_acu=db.min_acu,
            max_acu=db.max_acu,
            reader_count=db.reader_count,
            backup_retention_days=db.backup_retention_days,
            deletion_protection=db.deletion_protection,
            secret_rotation_days=db.secret_rotation_days,
            log_retention_days=env.log_retention_days,
            logs_kms_key_arn=self.logs_key.arn,
            cache=cache,
        ))
        TerraformOutput(self, "DatabaseSecretArn", value=database.secret_arn,
                        description="Secrets Manager secret with the database master credentials")
        return database

    def _api(self, env: EnvironmentConfig) -> Api:
        network, api = self.network, env.api
        service = Api(self, "api", ApiProps(
            name_prefix=f"{env.application}-{env.name}",
            environment=env.name,
            region=env.region,
            account_id=self.account_id,
            domain=f"api.{env.domain}",
            hosted_zone_id=None,
            certificate_arn=None,
            vpc_id=network.vpc_id,
            public_subnet_ids=tuple(network.subnet_ids["public"]),
            app_subnet_ids=tuple(network.subnet_ids["app"]),
            alb_security_group_id=network.alb_security_group_id,
            api_security_group_id=network.api_security_group_id,
            container_image=api.container_image,
            container_port=api.container_port,
            cpu=api.cpu,
            memory=api.memory,
            min_tasks=api.min_tasks,
            max_tasks=api.max_tasks,
            fargate_spot=api.fargate_spot,
            # Production never drops below full capacity while deploying.
            minimum_healthy_percent=100 if env.production else 50,
            deletion_protection=env.database.deletion_protection,
            waf=env.features.waf,
            log_retention_days=env.log_retention_days,
            logs_kms_key_arn=self.logs_key.arn,
            database_secret_arn=self.database.secret_arn,
            database_kms_key_arn=self.database.kms_key_arn,
            database_host=self.database.endpoint,
            database_port=str(POSTGRES_PORT),
            database_name=DATABASE_NAME,
            access_log_days=ACCESS_LOG_DAYS,
        ))
        TerraformOutput(self, "ApiEndpoint", value=service.endpoint, description="Public HTTPS URL of the API")
        TerraformOutput(self, "ApiLoadBalancerDnsName", value=service.load_balancer_dns_name,
                        description="Point the API's DNS name here when no hosted zone is configured")
        TerraformOutput(self, "EcsClusterName", value=service.cluster_name, description="ECS cluster of the API")
        TerraformOutput(self, "EcrRepositoryUrl", value=service.repository_url,
                        description="Push API images here (immutable tags)")
        return service

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
