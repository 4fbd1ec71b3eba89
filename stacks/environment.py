"""One application environment (dev, staging, production, or any file added under environments/)."""

from __future__ import annotations

import json

from cdktf import TerraformOutput
from constructs import Construct

from core.account import look_up_account
from core.aws import aws
from environments.model import EnvironmentConfig, NatMode, ProjectConfig
from modules.api import Api, ApiProps
from modules.backup import Backup, BackupCopy, BackupProps
from modules.cost import CostGuardrails, CostProps
from modules.database import (
    CACHE_PORT,
    DATABASE_NAME,
    POSTGRES_PORT,
    CacheProps,
    Database,
    DatabaseProps,
    GlobalDatabaseProps,
    SecretReplica,
)
from modules.database_bootstrap import APP_USER, DatabaseBootstrap, DatabaseBootstrapProps
from modules.frontend import Frontend, FrontendProps, SiteReplica
from modules.kms_key import KmsKey, KmsKeyProps, logs_grant
from modules.network import Network, NetworkProps
from modules.observability import Observability, ObservabilityProps, Watched, api_alarm_names
from modules.tracing import Tracing, TracingProps
from stacks.base import EnvironmentStackBase

# Load balancer and CloudFront access logs are kept this long (days).
ACCESS_LOG_DAYS = 90


def default_content_security_policy(api_domain: str) -> str:
    """Same-origin everything; the app may call its own API."""
    return ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
            f"connect-src 'self' https://{api_domain}; object-src 'none'; base-uri 'self'; form-action 'self'; "
            "frame-ancestors 'none'; upgrade-insecure-requests")


def database_props(stack: EnvironmentStackBase, env: EnvironmentConfig) -> DatabaseProps:
    """The environment's database in its home region; the DR-region stack starts from the same settings."""
    network, db = stack.network, env.database
    cache = CacheProps(security_group_id=network.cache_security_group_id) if env.features.cache else None
    return DatabaseProps(
        name_prefix=stack.name_prefix,
        region=env.region,
        account=stack.account,
        subnet_ids=tuple(network.subnet_ids["data"]),
        security_group_id=network.database_security_group_id,
        min_acu=db.min_acu,
        max_acu=db.max_acu,
        reader_count=db.reader_count,
        backup_retention_days=db.backup_retention_days,
        deletion_protection=db.deletion_protection,
        secret_rotation_days=db.secret_rotation_days,
        log_retention_days=env.log_retention_days,
        logs_kms_key_arn=stack.logs_key.arn,
        cache=cache,
        restore_from_snapshot=db.restore_from_snapshot,
        # With a standby, this cluster is the primary of the global database the DR-region stack joins.
        global_database=GlobalDatabaseProps(identifier=env.resource_name("global"), owns=True)
        if env.standby else None,
    )


def tracing(stack: EnvironmentStackBase, env: EnvironmentConfig, environment: str) -> Tracing | None:
    """The environment's tracing in the stack's region (`features.tracing`), named for `environment`."""
    if not env.features.tracing:
        return None
    return Tracing(stack, "tracing", TracingProps(
        name_prefix=stack.name_prefix, environment=environment, region=stack.region,
        sampling_rate=env.tracing.sampling_rate, log_retention_days=env.log_retention_days,
        logs_kms_key_arn=stack.logs_key.arn))


def api_props(stack: EnvironmentStackBase, env: EnvironmentConfig) -> ApiProps:
    """The environment's API in its home region; the DR-region stack starts from the same settings."""
    network, api = stack.network, env.api
    return ApiProps(
        name_prefix=stack.name_prefix,
        environment=env.name,
        region=env.region,
        account=stack.account,
        domain=f"api.{env.domain}",
        hosted_zone_id=env.hosted_zone_id,
        certificate_arn=env.api.certificate_arn,
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
        waf_rate_limit=env.features.waf_rate_limit,
        log_retention_days=env.log_retention_days,
        logs_kms_key_arn=stack.logs_key.arn,
        database_kms_key_arn=stack.database.kms_key_arn,
        database_host=stack.database.endpoint,
        database_port=str(POSTGRES_PORT),
        database_name=DATABASE_NAME,
        database_user=APP_USER,
        database_cluster_resource_id=stack.database.cluster_resource_id,
        exec_enabled=api.exec_enabled,
        access_log_days=ACCESS_LOG_DAYS,
        deployment_alarm_names=api_alarm_names(stack.name_prefix),
        cache_endpoint=stack.database.cache_endpoint,
        cache_secret_arn=stack.database.cache_secret_arn,
        tracing=stack.tracing,
        # With a [dr] region the API's name fails over to the DR-region stack's load balancer.
        dns_failover="PRIMARY" if env.dr else None,
    )


class EnvironmentStack(EnvironmentStackBase):
    def __init__(self, scope: Construct, project: ProjectConfig, env: EnvironmentConfig):
        super().__init__(scope, project, env)
        self.name_prefix = f"{env.application}-{env.name}"
        self.account = look_up_account(self)
        self.logs_key = self._logs_key(env, env.region, "logs-key")
        self.network = Network(self, "network", NetworkProps(
            name_prefix=self.name_prefix,
            environment=env.name,
            region=env.region,
            account=self.account,
            cidr=env.network.cidr,
            availability_zones=env.network.availability_zones(env.region),
            nat_per_az=env.network.nat_gateways is NatMode.PER_AZ,
            container_port=env.api.container_port,
            cache_port=CACHE_PORT if env.features.cache else None,
            interface_endpoints=env.features.vpc_interface_endpoints,
            log_retention_days=env.log_retention_days,
            logs_kms_key_arn=self.logs_key.arn,
        ))
        self._output("VpcId", self.network.vpc_id, "The environment's VPC")
        self.database = self._database(env)
        self.tracing = tracing(self, env, env.name)
        self.api = self._api(env)
        self.database_bootstrap = self._database_bootstrap(env)
        self.us_east_1 = self.region_provider("us-east-1", alias="us_east_1")
        # The disaster-recovery region's provider, only where configuration names one.
        self.dr = self.region_provider(env.dr.region, alias="dr") if env.dr else None
        if env.standby:  # the primary of the global database keeps the master secret: a replica in the DR region
            self.database.replicate_master_secret(SecretReplica(region=env.dr.region, provider=self.dr))
        self.edge_logs_key = self._logs_key(env, "us-east-1", "edge-logs-key", self.us_east_1)
        self.frontend = self._frontend(env)
        self.observability = self._observability(env)
        CostGuardrails(self, "cost", CostProps(
            name_prefix=self.name_prefix, environment=env.name, budget_monthly_usd=env.cost.budget_monthly_usd,
            anomaly_threshold_usd=env.cost.anomaly_threshold_usd, topic_arn=self.observability.warning_topic_arn,
            emails=env.alarm_emails))
        self.backup = self._backup(env)
        self._resource_group(env)

    def _database(self, env: EnvironmentConfig) -> Database:
        database = Database(self, "database", database_props(self, env))
        self._output("DatabaseSecretArn", database.secret_arn, "Secret with the database master credentials")
        return database

    def _api(self, env: EnvironmentConfig) -> Api:
        service = Api(self, "api", api_props(self, env))
        self._output("ApiEndpoint", service.endpoint, "Public HTTPS URL of the API")
        self._output("ApiLoadBalancerDnsName", service.load_balancer_dns_name,
                     "Point the API's DNS name here when no hosted zone is configured")
        self._output("EcsClusterName", service.cluster_name, "ECS cluster of the API")
        self._output("EcrRepositoryUrl", service.repository_url, "Push API images here (immutable tags)")
        return service

    def _database_bootstrap(self, env: EnvironmentConfig) -> DatabaseBootstrap:
        """The one-off task that creates the API's database role; `python -m ops deploy` runs it (see its output)."""
        bootstrap = DatabaseBootstrap(self, "database-bootstrap", DatabaseBootstrapProps(
            name_prefix=self.name_prefix,
            environment=env.name,
            region=env.region,
            account=self.account,
            image=env.database.bootstrap_image,
            cluster_arn=self.api.cluster_arn,
            subnet_ids=tuple(self.network.subnet_ids["app"]),
            # The API's group: the database admits it on 5432, so no new path into the data tier.
            security_group_id=self.network.api_security_group_id,
            database_host=self.database.endpoint,
            database_port=str(POSTGRES_PORT),
            database_name=DATABASE_NAME,
            database_cluster_resource_id=self.database.cluster_resource_id,
            master_secret_arn=self.database.secret_arn,
            database_kms_key_arn=self.database.kms_key_arn,
            log_retention_days=env.log_retention_days,
            logs_kms_key_arn=self.logs_key.arn,
        ))
        self._output("DatabaseBootstrap", bootstrap.run_settings,
                     "How python -m ops deploy runs the one-off database bootstrap task (docs/runbooks.md)")
        return bootstrap

    def _backup(self, env: EnvironmentConfig) -> Backup:
        copy = BackupCopy(region=env.dr.region, provider=self.dr,
                          retention_days=env.dr.copy_retention_days) if env.dr else None
        backup = Backup(self, "backup", BackupProps(
            name_prefix=self.name_prefix,
            account=self.account,
            region=env.region,
            cluster_arn=self.database.cluster_arn,
            cluster_kms_key_arn=self.database.kms_key_arn,
            schedule=env.backup_schedule,
            recovery_point_tag=("Environment", self.tags["Environment"]),
            retention_days=env.database.backup_retention_days,
            notification_topic_arn=self.observability.warning_topic_arn,
            vault_lock=bool(env.dr and env.dr.vault_lock),
            copy=copy,
        ))
        self._output("BackupVaultName", backup.vault.name, "AWS Backup vault of the database's recovery points")
        if backup.copy_vault:
            self._output("BackupCopyVaultName", backup.copy_vault.name,
                         f"Copies of the recovery points in {env.dr.region}")
        return backup

    def _observability(self, env: EnvironmentConfig) -> Observability:
        watch = Observability(self, "observability", ObservabilityProps(
            name_prefix=self.name_prefix,
            account=self.account,
            region=env.region,
            alarm_emails=env.alarm_emails,
            critical_topic=env.production,
            traced_service=self.tracing.service_name if self.tracing else None,
            us_east_1=self.us_east_1,
            watched=Watched(
                load_balancer_arn_suffix=self.api.load_balancer_arn_suffix,
                target_group_arn_suffix=self.api.target_group_arn_suffix,
                cluster_name=self.api.cluster_name,
                service_name=self.api.service_name,
                min_tasks=env.api.min_tasks,
                db_cluster_identifier=self.database.cluster_identifier,
                db_log_group_name=self.database.log_group.name,
                distribution_id=self.frontend.distribution_id,
            ),
        ))
        self._output("WarningTopicArn", watch.warning_topic_arn, "Early-warning alarms")
        if watch.critical_topic_arn:
            self._output("CriticalTopicArn", watch.critical_topic_arn, "Alarms that mean users are affected now")
        self._output("EdgeWarningTopicArn", watch.edge_topic_arn, "CloudFront alarms (us-east-1)")
        return watch

    def _frontend(self, env: EnvironmentConfig) -> Frontend:
        site = Frontend(self, "frontend", FrontendProps(
            name_prefix=self.name_prefix,
            region=env.region,
            account=self.account,
            domain=env.domain,
            hosted_zone_id=env.hosted_zone_id,
            certificate_arn=env.frontend.certificate_arn,
            content_security_policy=env.frontend.content_security_policy
            or default_content_security_policy(f"api.{env.domain}"),
            waf=env.features.waf,
            waf_rate_limit=env.features.waf_rate_limit,
            log_retention_days=env.log_retention_days,
            access_log_days=ACCESS_LOG_DAYS,
            us_east_1=self.us_east_1,
            us_east_1_logs_kms_key_arn=self.edge_logs_key.arn,
            # Environments without deletion protection (dev) are meant to be torn down, logs and all.
            force_destroy=not env.database.deletion_protection,
            replica=SiteReplica(region=env.dr.region, provider=self.dr) if env.dr else None,
        ))
        self._output("FrontendUrl", site.url, "Public HTTPS URL of the web app")
        self._output("FrontendBucketName", site.bucket_name, "Upload the built app here")
        self._output("FrontendDistributionId", site.distribution_id, "Invalidate this distribution after each upload")
        if site.replica_bucket_name:
            self._output("FrontendReplicaBucketName", site.replica_bucket_name,
                         f"Replica of the site in {env.dr.region} (CloudFront's failover origin)")
        return site

    def _logs_key(self, env: EnvironmentConfig, region: str, id: str, provider=None) -> KmsKey:
        """One CMK per region for the environment's log groups; CloudWatch Logs may use it for its own groups."""
        suffix = "logs" if provider is None else f"logs-{region}"
        return KmsKey(self, id, KmsKeyProps(
            account=self.account,
            alias=f"alias/{env.resource_name(suffix)}",
            description=f"Encrypts the CloudWatch log groups of {env.application} {env.name} in {region}",
            provider=provider,
            service_grants=(logs_grant(region),),
        ))

    def _output(self, name: str, value, description: str) -> None:
        TerraformOutput(self, name, value=value, description=description)

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
        self._output("ResourceGroupArn", group.arn, "Resource group listing this environment's resources")
