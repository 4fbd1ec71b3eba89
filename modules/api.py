"""API tier (SPEC 4.3): ECR, ECS Fargate behind an HTTPS load balancer, autoscaling and WAF.

The ECR repository lives in each environment (see the README, "Promoting an image"): every
environment may sit in its own AWS account, so an image is promoted by copying the same
immutable digest into the next environment's repository rather than by sharing one registry
across accounts.

Two roles, never one: the execution role is what ECS itself uses before the container starts
(pull the image, create log streams, read exactly the secrets it injects: the cache's AUTH token
when there is a cache); the task role is what the application code gets: `rds-db:connect` as its
own database user on exactly this cluster (IAM database authentication, so the application holds
no database password and never sees the master secret, which only the one-off bootstrap task in
modules/database_bootstrap.py reads), and the audited ECS Exec channel when `exec_enabled`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cdktf import TerraformResourceLifecycle
from constructs import Construct

from core.account import Account
from core.aws import aws
from core.elb import alb_log_writer
from core.iam import condition, principal, service_role, statement
from core.naming import bounded_name
from modules.kms_key import KmsKey, KmsKeyProps
from modules.log_group import LogGroup, LogGroupProps
from modules.secure_bucket import SecureBucket, SecureBucketProps
from modules.tracing import Tracing
from modules.waf import WafProps, WebAcl

CONTAINER_NAME = "api"
CONTAINER_USER = "1000:1000"  # never root
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"  # TLS 1.3 and 1.2 only
KEEP_IMAGES = 30
# Load balancer and target group names: at most 32 characters.
LOAD_BALANCER_NAME_LIMIT = 32
HEALTH_CHECK = {"path": "/health", "interval": 30, "timeout": 5, "healthy_threshold": 2, "unhealthy_threshold": 3}
CPU_TARGET, MEMORY_TARGET = 70, 80


@dataclass(frozen=True)
class ApiProps:
    name_prefix: str  # "<app>-<env>"
    environment: str
    region: str
    account: Account
    domain: str  # the API's own DNS name, e.g. api.example.com
    hosted_zone_id: str | None
    certificate_arn: str | None
    vpc_id: str
    public_subnet_ids: tuple[str, ...]
    app_subnet_ids: tuple[str, ...]
    alb_security_group_id: str
    api_security_group_id: str
    container_image: str
    container_port: int
    cpu: int
    memory: int
    min_tasks: int
    max_tasks: int
    fargate_spot: bool
    minimum_healthy_percent: int
    deletion_protection: bool
    waf: bool
    waf_rate_limit: int  # requests per client IP in 5 minutes
    log_retention_days: int
    logs_kms_key_arn: str
    database_kms_key_arn: str  # also encrypts the cache's AUTH token secret
    database_host: str
    database_port: str
    database_name: str
    database_user: str  # the application's own role, logging in with IAM tokens
    database_cluster_resource_id: str  # `cluster-...`: what rds-db:connect ARNs name
    exec_enabled: bool  # ECS Exec: an audited shell in running tasks
    access_log_days: int
    # CloudWatch alarms that, when in ALARM during a deployment, make ECS roll it back.
    deployment_alarm_names: tuple[str, ...] = ()
    # The optional Redis cache: its endpoint and the secret holding its AUTH token.
    cache_endpoint: str | None = None
    cache_secret_arn: str | None = None
    # Distributed tracing, when on: its collector sidecar, the app's OTEL_* variables and X-Ray permissions.
    tracing: Tracing | None = None
    # With a hosted zone: this load balancer's role in Route 53 failover routing ("PRIMARY" or "SECONDARY"),
    # each record health-checked on /health; None: plain alias records.
    dns_failover: str | None = None


class Api(Construct):
    """Exposes `endpoint`, `cluster_name`, `service_name`, `repository_url`, `load_balancer_arn_suffix`,
    `target_group_arn_suffix`, `log_group_name`."""

    def __init__(self, scope: Construct, id: str, props: ApiProps):
        super().__init__(scope, id)
        self.props = props
        self.key = KmsKey(self, "key", KmsKeyProps(
            account=props.account,
            alias=f"alias/{props.name_prefix}-api",
            description=f"Encrypts the {props.name_prefix} image repository and ECS Exec sessions"))
        self.repository = self._repository()
        self.log_group = LogGroup(self, "log-group", LogGroupProps(
            name=f"/aws/ecs/api-{props.environment}", retention_days=props.log_retention_days,
            kms_key_arn=props.logs_kms_key_arn))
        self.exec_log_group = LogGroup(self, "exec-log-group", LogGroupProps(
            name=f"/aws/ecs/exec-{props.environment}", retention_days=props.log_retention_days,
            kms_key_arn=props.logs_kms_key_arn))
        self.cluster = self._cluster()
        task_definition = self._task_definition()
        load_balancer, target_group, listeners = self._load_balancer()
        self.service = self._service(task_definition, target_group, listeners)
        self._autoscaling()
        if props.waf:
            acl = WebAcl(self, "waf", WafProps(
                name=f"{props.name_prefix}-api", scope="REGIONAL", log_retention_days=props.log_retention_days,
                logs_kms_key_arn=props.logs_kms_key_arn, rate_limit=props.waf_rate_limit,
                sql_injection=True))  # the API talks to PostgreSQL
            aws.wafv2_web_acl_association.Wafv2WebAclAssociation(
                self, "waf-association", resource_arn=load_balancer.arn, web_acl_arn=acl.arn)
        self.endpoint = f"https://{props.domain}"
        self.load_balancer_dns_name: str = load_balancer.dns_name
        self.load_balancer_arn_suffix: str = load_balancer.arn_suffix
        self.target_group_arn_suffix: str = target_group.arn_suffix
        self.cluster_name: str = self.cluster.name
        self.cluster_arn: str = self.cluster.arn
        self.service_name: str = self.service.name
        self.repository_url: str = self.repository.repository_url
        self.log_group_name: str = self.log_group.name

    # -- image repository -----------------------------------------------------------------------

    def _repository(self):
        ecr = aws.ecr_repository
        repository = ecr.EcrRepository(
            self, "repository", name=f"{self.props.name_prefix}-api", image_tag_mutability="IMMUTABLE",
            image_scanning_configuration=ecr.EcrRepositoryImageScanningConfiguration(scan_on_push=True),
            encryption_configuration=[ecr.EcrRepositoryEncryptionConfiguration(
                encryption_type="KMS", kms_key=self.key.arn)],
        )
        policy = {"rules": [
            {"rulePriority": 1, "description": "Drop untagged layers after a week",
             "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days",
                           "countNumber": 7},
             "action": {"type": "expire"}},
            {"rulePriority": 2, "description": f"Keep the last {KEEP_IMAGES} images",
             "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": KEEP_IMAGES},
             "action": {"type": "expire"}},
        ]}
        aws.ecr_lifecycle_policy.EcrLifecyclePolicy(
            self, "repository-lifecycle", repository=repository.name, policy=json.dumps(policy))
        return repository

    # -- cluster and task -----------------------------------------------------------------------

    def _cluster(self):
        ecs = aws.ecs_cluster
        cluster = ecs.EcsCluster(
            self, "cluster", name=f"{self.props.name_prefix}-cluster",
            setting=[ecs.EcsClusterSetting(name="containerInsights", value="enabled")],
            configuration=ecs.EcsClusterConfiguration(
                execute_command_configuration=ecs.EcsClusterConfigurationExecuteCommandConfiguration(
                    kms_key_id=self.key.arn, logging="OVERRIDE",
                    log_configuration=ecs.EcsClusterConfigurationExecuteCommandConfigurationLogConfiguration(
                        cloud_watch_encryption_enabled=True,
                        cloud_watch_log_group_name=self.exec_log_group.name))),
        )
        providers = aws.ecs_cluster_capacity_providers
        providers.EcsClusterCapacityProviders(
            self, "capacity-providers", cluster_name=cluster.name,
            capacity_providers=["FARGATE", "FARGATE_SPOT"],
            default_capacity_provider_strategy=[providers.EcsClusterCapacityProvidersDefaultCapacityProviderStrategy(
                capacity_provider="FARGATE", base=1, weight=1)],
        )
        return cluster

    def _execution_role(self) -> str:
        props = self.props
        return service_role(
            self, "execution-role", name=f"{props.name_prefix}-api-execution",
            # ECS Developer Guide, "Amazon ECS task execution IAM role" (trust policy).
            service="ecs-tasks.amazonaws.com", account_id=props.account.id,
            description="ECS pulls the API image, writes its logs and injects the database secret",
            policy_statements=[
                # GetAuthorizationToken has no resource to scope to; the pulls below are scoped.
                statement("EcrLogin", ["ecr:GetAuthorizationToken"], ["*"]),
                statement("PullApiImage", ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer",
                                           "ecr:BatchGetImage"], [self.repository.arn]),
                statement("DecryptApiImage", ["kms:Decrypt"], [self.key.arn]),
                statement("WriteApiLogs", ["logs:CreateLogStream", "logs:PutLogEvents"],
                          [f"{self.log_group.arn}:*",
                           *([f"{props.tracing.log_group_arn}:*"] if props.tracing else [])]),
                *self._secret_read(self._cache_secret()),
            ],
        ).arn

    def _cache_secret(self) -> list[str]:
        return [self.props.cache_secret_arn] if self.props.cache_secret_arn else []

    def _secret_read(self, secret_arns: list[str]) -> list:
        """GetSecretValue on exactly these secrets (none: no statement), their key only through Secrets Manager."""
        props = self.props
        if not secret_arns:
            return []
        return [
            statement("ReadSecrets", ["secretsmanager:GetSecretValue"], secret_arns),
            statement("DecryptSecrets", ["kms:Decrypt"], [props.database_kms_key_arn],
                      conditions=[condition("StringEquals", "kms:ViaService",
                                            f"secretsmanager.{props.region}.amazonaws.com")]),
        ]

    def _task_role(self) -> str:
        props = self.props
        account = props.account
        database_user = (f"arn:{account.partition}:rds-db:{props.region}:{account.id}:dbuser:"
                         f"{props.database_cluster_resource_id}/{props.database_user}")
        return service_role(
            self, "task-role", name=f"{props.name_prefix}-api-task",
            # ECS Developer Guide, "Amazon ECS task IAM role" (trust policy, aws:SourceAccount).
            service="ecs-tasks.amazonaws.com", account_id=account.id,
            description="The API application's own permissions: its database login"
                        + (" and the audited ECS Exec channel" if props.exec_enabled else ""),
            policy_statements=[
                statement("ConnectAsAppUser", ["rds-db:connect"], [database_user]),
                *(self._exec_statements() if props.exec_enabled else []),
                *(props.tracing.task_role_statements if props.tracing else []),
            ],
        ).arn

    def _exec_statements(self) -> list:
        """What the ECS Exec agent in the task needs: the session channel, its audit log and key."""
        return [
            # The SSM session channel actions cannot be scoped to a resource.
            statement("EcsExecChannel", ["ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
                                         "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"],
                      ["*"]),
            statement("EcsExecAuditLog", ["logs:CreateLogStream", "logs:PutLogEvents",
                                          "logs:DescribeLogStreams"], [f"{self.exec_log_group.arn}:*"]),
            statement("EcsExecLogGroups", ["logs:DescribeLogGroups"], ["*"]),
            statement("EcsExecEncryption", ["kms:Decrypt", "kms:GenerateDataKey"], [self.key.arn]),
        ]

    def _container(self) -> dict:
        """The container definition (ECS's own JSON format, camelCase, as AWS documents it)."""
        props = self.props
        # No database password: the app signs an IAM token for DB_USER (README, "The application's database login").
        environment = [
            {"name": "DB_HOST", "value": props.database_host},
            {"name": "DB_PORT", "value": props.database_port},
            {"name": "DB_NAME", "value": props.database_name},
            {"name": "DB_USER", "value": props.database_user},
            {"name": "DB_REGION", "value": props.region},
            {"name": "PORT", "value": str(props.container_port)},
        ]
        # Injected by ECS from Secrets Manager at start: never in the task definition itself.
        secrets: list[dict] = []
        if props.cache_endpoint and props.cache_secret_arn:
            environment += [{"name": "REDIS_HOST", "value": props.cache_endpoint},
                            {"name": "REDIS_TLS", "value": "true"}]
            secrets.append({"name": "REDIS_AUTH_TOKEN", "valueFrom": props.cache_secret_arn})
        if props.tracing:
            environment += props.tracing.app_environment
        definition = {
            "name": CONTAINER_NAME,
            "image": props.container_image,
            "essential": True,
            "user": CONTAINER_USER,
            "readonlyRootFilesystem": True,
            "portMappings": [{"containerPort": props.container_port, "protocol": "tcp"}],
            "environment": environment,
            "mountPoints": [{"sourceVolume": "tmp", "containerPath": "/tmp", "readOnly": False}],
            # An init process reaps ECS Exec's session processes (and any other orphans).
            "linuxParameters": {"initProcessEnabled": True},
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": self.log_group.name, "awslogs-region": props.region,
                "awslogs-stream-prefix": CONTAINER_NAME}},
        }
        if secrets:  # ECS drops an empty list, which would show as a change on every plan
            definition["secrets"] = secrets
        return definition

    def _task_definition(self):
        props = self.props
        tasks = aws.ecs_task_definition
        return tasks.EcsTaskDefinition(
            self, "task-definition", family=f"{props.name_prefix}-api", requires_compatibilities=["FARGATE"],
            network_mode="awsvpc", cpu=str(props.cpu), memory=str(props.memory),
            execution_role_arn=self._execution_role(), task_role_arn=self._task_role(),
            runtime_platform=tasks.EcsTaskDefinitionRuntimePlatform(
                operating_system_family="LINUX", cpu_architecture="X86_64"),
            volume=[tasks.EcsTaskDefinitionVolume(name="tmp")],
            container_definitions=json.dumps(
                [self._container(), *([props.tracing.container] if props.tracing else [])]),
        )

    # -- load balancer --------------------------------------------------------------------------

    def _access_log_bucket(self) -> SecureBucket:
        """ALB access logs; S3 only accepts them SSE-S3-encrypted, from the region's ELB log writer."""
        props = self.props
        bucket_name = f"{props.name_prefix}-alb-logs-{props.account.id}"
        objects = f"arn:aws:s3:::{bucket_name}/alb/AWSLogs/{props.account.id}/*"
        kind, writer = alb_log_writer(props.region, props.account.partition)
        # ELB User Guide for ALBs, "Enable access logs for your Application Load Balancer": the region's ELB
        # account (regions before August 2022) or the log delivery service principal, without conditions AWS
        # does not document for it; the object path (AWSLogs/<this account>/) keeps it to this account's logs.
        delivery = [statement("AlbLogDelivery", ["s3:PutObject"], [objects], principals=[principal(kind, writer)])]
        return SecureBucket(self, "access-logs", SecureBucketProps(
            name=bucket_name, kms_key_arn=None, noncurrent_version_days=props.access_log_days,
            expiration_days=props.access_log_days, policy_statements=tuple(delivery),
            force_destroy=not props.deletion_protection))

    def _certificate(self) -> str:
        """A configured ARN, or a DNS-validated certificate (validated automatically with a hosted zone)."""
        props = self.props
        if props.certificate_arn:
            return props.certificate_arn
        certificate = aws.acm_certificate.AcmCertificate(
            self, "certificate", domain_name=props.domain, validation_method="DNS",
            lifecycle=TerraformResourceLifecycle(create_before_destroy=True))
        if not props.hosted_zone_id:
            return certificate.arn
        option = certificate.domain_validation_options
        record = aws.route53_record.Route53Record(
            self, "certificate-validation-record", zone_id=props.hosted_zone_id, allow_overwrite=True,
            name=option.get(0).resource_record_name, type=option.get(0).resource_record_type,
            records=[option.get(0).resource_record_value], ttl=300)
        validation = aws.acm_certificate_validation.AcmCertificateValidation(
            self, "certificate-validation", certificate_arn=certificate.arn, validation_record_fqdns=[record.fqdn])
        return validation.certificate_arn

    def _load_balancer(self):
        props = self.props
        logs = self._access_log_bucket()
        lb = aws.lb
        name = bounded_name(props.name_prefix, "api", LOAD_BALANCER_NAME_LIMIT)
        load_balancer = lb.Lb(
            self, "load-balancer", name=name, load_balancer_type="application",
            internal=False, subnets=list(props.public_subnet_ids), security_groups=[props.alb_security_group_id],
            drop_invalid_header_fields=True, desync_mitigation_mode="strictest",
            enable_deletion_protection=props.deletion_protection,
            access_logs=lb.LbAccessLogs(bucket=logs.name, prefix="alb", enabled=True),
            depends_on=[logs.policy],
        )
        groups = aws.lb_target_group
        target_group = groups.LbTargetGroup(
            self, "target-group", name=name, target_type="ip", protocol="HTTP",
            port=props.container_port, vpc_id=props.vpc_id, deregistration_delay="30",
            health_check=groups.LbTargetGroupHealthCheck(
                enabled=True, protocol="HTTP", matcher="200", **HEALTH_CHECK),
        )
        listeners = aws.lb_listener
        https = listeners.LbListener(
            self, "https-listener", load_balancer_arn=load_balancer.arn, port=443, protocol="HTTPS",
            ssl_policy=TLS_POLICY, certificate_arn=self._certificate(),
            default_action=[listeners.LbListenerDefaultAction(type="forward", target_group_arn=target_group.arn)])
        http = listeners.LbListener(
            self, "http-listener", load_balancer_arn=load_balancer.arn, port=80, protocol="HTTP",
            default_action=[listeners.LbListenerDefaultAction(
                type="redirect", redirect=listeners.LbListenerDefaultActionRedirect(
                    protocol="HTTPS", port="443", status_code="HTTP_301"))])
        if props.hosted_zone_id:
            self._alias_records(load_balancer)
        return load_balancer, target_group, [https, http]

    def _alias_records(self, load_balancer) -> None:
        """The API's name points at the load balancer: plainly, or as one side of a failover pair."""
        props = self.props
        records = aws.route53_record
        routing = {}
        if props.dns_failover:
            # Route 53 Developer Guide, "Configuring active-passive failover with one primary and one secondary
            # resource": failover alias records, each with a health check (HTTPS on /health here).
            routing = {"set_identifier": f"{props.name_prefix}-{props.dns_failover.lower()}",
                       "failover_routing_policy": records.Route53RecordFailoverRoutingPolicy(type=props.dns_failover),
                       "health_check_id": self._health_check(load_balancer)}
        for record_type in ("A", "AAAA"):
            records.Route53Record(
                self, f"alias-{record_type.lower()}", zone_id=props.hosted_zone_id, name=props.domain,
                type=record_type, alias=records.Route53RecordAlias(
                    name=load_balancer.dns_name, zone_id=load_balancer.zone_id, evaluate_target_health=True),
                **routing)

    def _health_check(self, load_balancer) -> str:
        """Route 53 asks this load balancer's /health over HTTPS (the API's own name, for SNI)."""
        check = aws.route53_health_check.Route53HealthCheck(
            self, "health-check", type="HTTPS", fqdn=load_balancer.dns_name, port=443,
            resource_path=HEALTH_CHECK["path"], enable_sni=False, request_interval=30, failure_threshold=3,
            tags={"Name": f"{self.props.name_prefix}-api-health"})
        return check.id

    # -- service and scaling --------------------------------------------------------------------

    def _capacity_strategy(self) -> list:
        services = aws.ecs_service
        if not self.props.fargate_spot:
            return [services.EcsServiceCapacityProviderStrategy(capacity_provider="FARGATE", base=1, weight=1)]
        # One task always on demand, the rest mostly on Spot.
        return [
            services.EcsServiceCapacityProviderStrategy(capacity_provider="FARGATE", base=1, weight=1),
            services.EcsServiceCapacityProviderStrategy(capacity_provider="FARGATE_SPOT", weight=3),
        ]

    def _service(self, task_definition, target_group, listeners):
        props = self.props
        services = aws.ecs_service
        return services.EcsService(
            self, "service", name=f"{props.name_prefix}-api", cluster=self.cluster.arn,
            task_definition=task_definition.arn, desired_count=props.min_tasks,
            capacity_provider_strategy=self._capacity_strategy(),
            network_configuration=services.EcsServiceNetworkConfiguration(
                subnets=list(props.app_subnet_ids), security_groups=[props.api_security_group_id],
                assign_public_ip=False),
            load_balancer=[services.EcsServiceLoadBalancer(
                target_group_arn=target_group.arn, container_name=CONTAINER_NAME,
                container_port=props.container_port)],
            deployment_circuit_breaker=services.EcsServiceDeploymentCircuitBreaker(enable=True, rollback=True),
            alarms=services.EcsServiceAlarms(alarm_names=list(props.deployment_alarm_names), enable=True,
                                             rollback=True) if props.deployment_alarm_names else None,
            deployment_minimum_healthy_percent=props.minimum_healthy_percent,
            deployment_maximum_percent=200,
            health_check_grace_period_seconds=60,
            enable_execute_command=props.exec_enabled,
            propagate_tags="SERVICE",
            enable_ecs_managed_tags=True,
            # Autoscaling owns the task count after the first apply.
            lifecycle=TerraformResourceLifecycle(ignore_changes=["desired_count"]),
            depends_on=listeners,
        )

    def _autoscaling(self) -> None:
        props = self.props
        target = aws.appautoscaling_target.AppautoscalingTarget(
            self, "scaling-target", service_namespace="ecs", scalable_dimension="ecs:service:DesiredCount",
            resource_id=f"service/{self.cluster.name}/{self.service.name}",
            min_capacity=props.min_tasks, max_capacity=props.max_tasks)
        policies = aws.appautoscaling_policy
        tracking = policies.AppautoscalingPolicyTargetTrackingScalingPolicyConfiguration
        metric_spec = policies.AppautoscalingPolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecification
        namespace, dimension, resource_id = target.service_namespace, target.scalable_dimension, target.resource_id
        for metric, value in (("ECSServiceAverageCPUUtilization", CPU_TARGET),
                              ("ECSServiceAverageMemoryUtilization", MEMORY_TARGET)):
            policies.AppautoscalingPolicy(
                self, f"scale-on-{metric}", name=f"{props.name_prefix}-api-{metric}",
                policy_type="TargetTrackingScaling", service_namespace=namespace,
                scalable_dimension=dimension, resource_id=resource_id,
                target_tracking_scaling_policy_configuration=tracking(
                    target_value=value, scale_in_cooldown=300, scale_out_cooldown=60,
                    predefined_metric_specification=metric_spec(predefined_metric_type=metric)))
