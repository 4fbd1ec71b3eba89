"""An environment in its DR region (`<env>-dr`): the same modules, the DR region's provider, its own state key.

Two strategies, from `[dr] strategy` (AWS whitepaper "Disaster Recovery of Workloads on AWS"):

- `standby` (warm standby): deployed all the time. Its cluster is the secondary of the Aurora Global
  Database whose primary is the environment's cluster (the environment's stack owns the global
  cluster); its API runs `standby_min_tasks` tasks until `python -m ops failover` scales it up.
- `backup` (backup and restore): synthesized and validated with every change, deployed only when
  needed. Its cluster is created from `[dr] restore_from_snapshot`, a copied recovery point that
  `python -m ops restore ENV --region <dr region> --write` names; its API runs `api.min_tasks`.

Names: every resource is named with `<app>-<env>-dr` (log groups with `<env>-dr`), so nothing collides with
the environment's own stack in the same account (IAM names are global); the Environment tag stays the
environment's name, so cost and resource-group views show both regions as one environment.
With a hosted zone, the API's records are the SECONDARY half of Route 53 failover routing.

No module here knows which strategy it serves: the stack turns the configuration into props. Its own backup
plan (and a warning topic for backup failures) protects the database once it serves the environment.
Not here: the frontend (CloudFront is global and already fails over to the site's replica in this
region), the cost guardrails (scoped by the Environment tag, so they cover this stack too) and the
alarms of modules/observability.py (their distribution and us-east-1 parts belong to the
environment's stack; the DR region's API and database alarms are not built yet).
"""

from __future__ import annotations

from dataclasses import replace

from cdktf import TerraformOutput
from constructs import Construct

from core.account import look_up_account
from environments.model import EnvironmentConfig, NatMode, ProjectConfig
from modules.alert_topic import AlertTopic, AlertTopicProps, Publisher
from modules.api import Api
from modules.backup import Backup, BackupProps
from modules.database import (
    CACHE_PORT,
    Database,
    GlobalDatabaseProps,
)
from modules.kms_key import KmsKey, KmsKeyProps, logs_grant
from modules.network import Network, NetworkProps
from stacks.base import EnvironmentStackBase
from stacks.environment import api_props, database_props, tracing


def global_cluster_identifier(env: EnvironmentConfig) -> str:
    """The Aurora Global Database of an environment with a standby (owned by the environment's stack)."""
    return env.resource_name("global")


class DisasterRecoveryStack(EnvironmentStackBase):
    """`<env>-dr`: the environment's network, database and API in `[dr] region`."""

    def __init__(self, scope: Construct, project: ProjectConfig, env: EnvironmentConfig):
        super().__init__(scope, project, env, stack_name=env.dr_stack_name, state_key=env.dr_state_key,
                         region=env.dr.region)
        self.name_prefix = env.resource_name("dr")
        self.account = look_up_account(self)
        self.logs_key = KmsKey(self, "logs-key", KmsKeyProps(
            account=self.account, alias=f"alias/{self.name_prefix}-logs",
            description=f"Encrypts the CloudWatch log groups of {env.application} {env.name} in {self.region}",
            service_grants=(logs_grant(self.region),)))
        self.network = self._network(env)
        self.database = self._database(env)
        self.tracing = tracing(self, env, env.dr_stack_name)
        self.api = self._api(env)
        self.backup = self._backup(env)

    @property
    def min_tasks(self) -> int:
        """A standby idles at standby_min_tasks (failover scales it up); a backup stack is the environment."""
        return self.env.dr.standby_min_tasks if self.env.standby else self.env.api.min_tasks

    def _network(self, env: EnvironmentConfig) -> Network:
        network = Network(self, "network", NetworkProps(
            name_prefix=self.name_prefix,
            environment=env.dr_stack_name,
            region=self.region,
            account=self.account,
            cidr=env.dr.standby_cidr or env.network.cidr,
            availability_zones=env.network.availability_zones(self.region),
            nat_per_az=env.network.nat_gateways is NatMode.PER_AZ,
            container_port=env.api.container_port,
            cache_port=CACHE_PORT if env.features.cache else None,
            interface_endpoints=env.features.vpc_interface_endpoints,
            log_retention_days=env.log_retention_days,
            logs_kms_key_arn=self.logs_key.arn,
        ))
        self._output("VpcId", network.vpc_id, f"The environment's VPC in {self.region}")
        return network

    def _database(self, env: EnvironmentConfig) -> Database:
        """The standby's global secondary, or (backup) a cluster created from the copied recovery point."""
        membership = GlobalDatabaseProps(identifier=global_cluster_identifier(env), owns=False) \
            if env.standby else None
        database = Database(self, "database", replace(
            database_props(self, env), region=self.region, restore_from_snapshot=env.dr.restore_from_snapshot,
            global_database=membership))
        self._output("DatabaseClusterIdentifier", database.cluster_identifier,
                     f"The environment's database in {self.region}")
        return database

    def _api(self, env: EnvironmentConfig) -> Api:
        service = Api(self, "api", replace(
            api_props(self, env), environment=env.dr_stack_name, region=self.region,
            # A certificate ARN in configuration is the home region's; ACM issues one here.
            certificate_arn=None, min_tasks=self.min_tasks, deployment_alarm_names=(), dns_failover="SECONDARY"))
        self._output("ApiLoadBalancerDnsName", service.load_balancer_dns_name,
                     f"The API's load balancer in {self.region} (Route 53's failover target)")
        self._output("EcsClusterName", service.cluster_name, f"ECS cluster of the API in {self.region}")
        self._output("EcsServiceName", service.service_name, "The API service python -m ops failover scales up")
        return service

    def _backup(self, env: EnvironmentConfig) -> Backup:
        """The database's backup plan in this region: once it serves the environment (a failover, a region
        lost), its recovery points must not depend on the region it replaces. Failures go to a topic here."""
        account, prefix = self.account, self.name_prefix
        topic = AlertTopic(self, "warning-topic", AlertTopicProps(
            name=f"{prefix}-warning", account=account, emails=env.alarm_emails,
            publishers=(Publisher(service="events.amazonaws.com", source_arn=(
                f"arn:{account.partition}:events:{self.region}:{account.id}:rule/{prefix}-*")),)))
        backup = Backup(self, "backup", BackupProps(
            name_prefix=prefix,
            account=account,
            region=self.region,
            cluster_arn=self.database.cluster_arn,
            cluster_kms_key_arn=self.database.kms_key_arn,
            schedule=env.backup_schedule,
            recovery_point_tag=("Environment", self.tags["Environment"]),
            retention_days=env.database.backup_retention_days,
            notification_topic_arn=topic.arn,
            vault_lock=env.dr.vault_lock,
        ))
        self._output("WarningTopicArn", topic.arn, f"Backup failures of the database in {self.region}")
        self._output("BackupVaultName", backup.vault.name, f"AWS Backup vault of the database in {self.region}")
        return backup

    def _output(self, name: str, value, description: str) -> None:
        TerraformOutput(self, name, value=value, description=description)

