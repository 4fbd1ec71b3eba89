"""Network tier (SPEC 4.1): VPC, three subnet tiers, routing, NACLs, flow logs, endpoints, SGs.

Subnets are carved deterministically from the VPC CIDR: the block is split into sixteen equal
parts (prefix + 4); public subnets take parts 0-3, application subnets 4-7 and data subnets 8-11,
one per availability zone. The same configuration therefore always yields the same addresses,
and the remaining parts stay free for later tiers.

Data subnets get a route table with no default route at all: nothing in them can reach the
internet, with or without a NAT gateway.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

from cdktf import Fn
from constructs import Construct

from core.account import Account
from core.aws import aws
from core.iam import service_role as make_service_role
from core.iam import statement
from modules.log_group import LogGroup, LogGroupProps

ANYWHERE = "0.0.0.0/0"
HTTPS, HTTP, POSTGRES = 443, 80, 5432
EPHEMERAL = (1024, 65535)
SUBNET_PARTS = {"public": 0, "app": 4, "data": 8}
INTERFACE_ENDPOINTS = ("ecr.api", "ecr.dkr", "logs", "secretsmanager", "kms")
# Where ECR keeps image layers: an AWS-owned bucket that image pulls download from through the S3 endpoint.
ECR_LAYER_BUCKET = "prod-{region}-starport-layer-bucket"


@dataclass(frozen=True)
class NetworkProps:
    name_prefix: str  # "<app>-<env>"
    environment: str
    region: str
    account: Account
    cidr: str
    availability_zones: tuple[str, ...]
    nat_per_az: bool
    container_port: int
    cache_port: int | None
    interface_endpoints: bool
    log_retention_days: int
    logs_kms_key_arn: str


def subnet_cidrs(cidr: str, az_count: int) -> dict[str, list[str]]:
    """The CIDR of every subnet, per tier, in availability-zone order."""
    network = ipaddress.IPv4Network(cidr)
    parts = list(network.subnets(prefixlen_diff=4))
    return {tier: [str(parts[first + az]) for az in range(az_count)] for tier, first in SUBNET_PARTS.items()}


class Network(Construct):
    """Exposes `vpc_id`, subnet id lists per tier and the security groups other tiers attach to."""

    def __init__(self, scope: Construct, id: str, props: NetworkProps):
        super().__init__(scope, id)
        self.props = props
        self.cidrs = subnet_cidrs(props.cidr, len(props.availability_zones))
        self.availability_zones = self._zones(props.availability_zones)
        self.vpc = aws.vpc.Vpc(self, "vpc", cidr_block=props.cidr, enable_dns_support=True,
                               enable_dns_hostnames=True, tags={"Name": props.name_prefix})
        self.vpc_id: str = self.vpc.id
        self._lock_down_defaults()
        self.subnet_ids = {tier: self._subnets(tier) for tier in SUBNET_PARTS}
        self._routing()
        self._network_acls()
        self._flow_logs()
        self._security_groups()
        self._endpoints()

    def _zones(self, names: tuple[str, ...]) -> list[str]:
        """The configured zones, looked up by name so a plan fails if one is not available.

        Zones are named in configuration rather than taken from "all available zones": a zone
        AWS adds later must never move subnets around.
        """
        zones = aws.data_aws_availability_zones
        found = zones.DataAwsAvailabilityZones(
            self, "zones", state="available",
            filter=[zones.DataAwsAvailabilityZonesFilter(name="zone-name", values=list(names))])
        sorted_names = Fn.sort(found.names)
        return [Fn.element(sorted_names, index) for index in range(len(names))]

    # -- subnets and routing ------------------------------------------------------------------

    def _name(self, component: str) -> dict[str, str]:
        return {"Name": f"{self.props.name_prefix}-{component}"}

    def _subnets(self, tier: str) -> list[str]:
        ids = []
        for az, cidr in enumerate(self.cidrs[tier]):
            subnet = aws.subnet.Subnet(
                self, f"{tier}-subnet-{az}", vpc_id=self.vpc_id, cidr_block=cidr,
                availability_zone=self.availability_zones[az], map_public_ip_on_launch=False,
                tags={**self._name(f"{tier}-{az}"), "Tier": tier},
            )
            ids.append(subnet.id)
        return ids

    def _route_table(self, id: str, subnet_ids: list[str]):
        table_id = aws.route_table.RouteTable(self, id, vpc_id=self.vpc_id, tags=self._name(id)).id
        for index, subnet_id in enumerate(subnet_ids):
            aws.route_table_association.RouteTableAssociation(
                self, f"{id}-association-{index}", route_table_id=table_id, subnet_id=subnet_id)
        return table_id

    def _routing(self) -> None:
        gateway = aws.internet_gateway.InternetGateway(self, "internet-gateway", vpc_id=self.vpc_id,
                                                       tags=self._name("igw"))
        public = self._route_table("public-routes", self.subnet_ids["public"])
        aws.route.Route(self, "public-default-route", route_table_id=public,
                        destination_cidr_block=ANYWHERE, gateway_id=gateway.id)
        nat_count = len(self.props.availability_zones) if self.props.nat_per_az else 1
        nat_ids = []
        for index in range(nat_count):
            eip = aws.eip.Eip(self, f"nat-eip-{index}", domain="vpc", tags=self._name(f"nat-{index}"))
            nat = aws.nat_gateway.NatGateway(
                self, f"nat-gateway-{index}", allocation_id=eip.id,
                subnet_id=self.subnet_ids["public"][index], tags=self._name(f"nat-{index}"),
                depends_on=[gateway],
            )
            nat_ids.append(nat.id)
        self.nat_gateway_ids = nat_ids
        self.app_route_table_ids = []
        for az, subnet_id in enumerate(self.subnet_ids["app"]):
            table = self._route_table(f"app-routes-{az}", [subnet_id])
            aws.route.Route(self, f"app-default-route-{az}", route_table_id=table,
                            destination_cidr_block=ANYWHERE, nat_gateway_id=nat_ids[az % nat_count])
            self.app_route_table_ids.append(table)
        # Deliberately no routes: the data tier has no path to the internet.
        self.data_route_table_id = self._route_table("data-routes", self.subnet_ids["data"])

    def _lock_down_defaults(self) -> None:
        """The default security group and NACL allow everything; manage them with no rules."""
        aws.default_security_group.DefaultSecurityGroup(
            self, "default-security-group", vpc_id=self.vpc_id, tags=self._name("default-deny-all"))
        aws.default_network_acl.DefaultNetworkAcl(
            self, "default-network-acl", default_network_acl_id=self.vpc.default_network_acl_id,
            tags=self._name("default-deny-all"),
        )

    # -- network ACLs ---------------------------------------------------------------------------

    def _network_acls(self) -> None:
        """Stateless rules per tier; every allowed flow needs its return path spelled out."""
        props, cidrs = self.props, self.cidrs
        data_ports = [POSTGRES] + ([props.cache_port] if props.cache_port else [])
        public = self._acl("public", [
            ("in", HTTPS, HTTPS, [ANYWHERE]),
            ("in", HTTP, HTTP, [ANYWHERE]),
            ("in", *EPHEMERAL, [ANYWHERE]),  # responses to NAT'ed traffic and from the API targets
            ("out", HTTPS, HTTPS, [ANYWHERE]),  # NAT forwarding the app tier's HTTPS calls
            ("out", *EPHEMERAL, [ANYWHERE]),  # responses to clients and to the app tier
            ("out", props.container_port, props.container_port, cidrs["app"]),  # ALB to targets
        ])
        app_rules = [
            ("in", props.container_port, props.container_port, cidrs["public"]),
            ("in", *EPHEMERAL, [ANYWHERE]),  # responses from the internet, data tier and AWS APIs
            ("out", HTTPS, HTTPS, [ANYWHERE]),
            ("out", *EPHEMERAL, cidrs["public"]),  # responses to the load balancer
        ]
        app_rules += [("out", port, port, cidrs["data"]) for port in data_ports]
        if props.interface_endpoints:
            # Tasks call the endpoints' interfaces in every zone (private DNS returns them all); inside
            # one subnet no ACL applies, across zones the request and the endpoint's reply both cross one.
            app_rules += [("in", HTTPS, HTTPS, cidrs["app"]), ("out", *EPHEMERAL, cidrs["app"])]
        app = self._acl("app", app_rules)
        data_rules = [("in", port, port, cidrs["app"]) for port in data_ports] + [("out", *EPHEMERAL, cidrs["app"])]
        if props.cache_port:
            # The cache's primary and replicas sit in different zones' data subnets and replicate to each other:
            # the cache port one way, the replies' ephemeral ports the other (the range holds the cache port).
            data_rules += [("in", *EPHEMERAL, cidrs["data"]), ("out", *EPHEMERAL, cidrs["data"])]
        data = self._acl("data", data_rules)
        self.network_acl_ids = {"public": public, "app": app, "data": data}

    def _acl(self, tier: str, rules: list[tuple]) -> str:
        acl_id = aws.network_acl.NetworkAcl(self, f"{tier}-acl", vpc_id=self.vpc_id,
                                            subnet_ids=self.subnet_ids[tier], tags=self._name(f"{tier}-acl")).id
        numbers = {"in": 100, "out": 100}
        for direction, from_port, to_port, sources in rules:
            for source in sources:
                aws.network_acl_rule.NetworkAclRule(
                    self, f"{tier}-acl-{direction}-{numbers[direction]}", network_acl_id=acl_id,
                    rule_number=numbers[direction], egress=direction == "out", protocol="tcp",
                    rule_action="allow", cidr_block=source, from_port=from_port, to_port=to_port,
                )
                numbers[direction] += 10
        return acl_id

    # -- flow logs ------------------------------------------------------------------------------

    def _flow_logs(self) -> None:
        props = self.props
        group = LogGroup(self, "flow-log-group", LogGroupProps(
            name=f"/aws/vpc/flowlogs-{props.environment}", retention_days=props.log_retention_days,
            kms_key_arn=props.logs_kms_key_arn))
        role = make_service_role(
            self, "flow-log-role", name=f"{props.name_prefix}-vpc-flow-logs",
            # VPC User Guide, "IAM role for publishing flow logs to CloudWatch Logs".
            service="vpc-flow-logs.amazonaws.com", account_id=props.account.id,
            description="Lets VPC Flow Logs write to this VPC's flow log group only",
            policy_statements=[statement(
                "WriteFlowLogs",
                ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                [group.arn, f"{group.arn}:*"],
            )],
        )
        aws.flow_log.FlowLog(self, "flow-log", vpc_id=self.vpc_id, traffic_type="ALL",
                             log_destination_type="cloud-watch-logs", log_destination=group.arn,
                             iam_role_arn=role.arn, max_aggregation_interval=60, tags=self._name("flow-log"))

    # -- security groups ------------------------------------------------------------------------

    def _group(self, component: str, description: str) -> str:
        group = aws.security_group.SecurityGroup(
            self, f"{component}-sg", name=f"{self.props.name_prefix}-{component}", description=description,
            vpc_id=self.vpc_id, tags=self._name(component), revoke_rules_on_delete=True)
        return group.id

    def _ingress(self, id: str, group: str, port: int, description: str, *, cidr: str | None = None,
                 source_group: str | None = None) -> None:
        aws.vpc_security_group_ingress_rule.VpcSecurityGroupIngressRule(
            self, id, security_group_id=group, description=description, ip_protocol="tcp",
            from_port=port, to_port=port, cidr_ipv4=cidr, referenced_security_group_id=source_group)

    def _egress(self, id: str, group: str, port: int, description: str, *, cidr: str | None = None,
                target_group: str | None = None) -> None:
        aws.vpc_security_group_egress_rule.VpcSecurityGroupEgressRule(
            self, id, security_group_id=group, description=description, ip_protocol="tcp",
            from_port=port, to_port=port, cidr_ipv4=cidr, referenced_security_group_id=target_group)

    def _security_groups(self) -> None:
        """SPEC 4.1: only the load balancer faces the internet, each hop admits only the previous."""
        port = self.props.container_port
        self.alb_security_group_id = alb = self._group("alb", "Public load balancer: HTTPS, HTTP only to redirect")
        self.api_security_group_id = api = self._group("api", "API tasks: container port from the load balancer")
        self.database_security_group_id = db = self._group("database", "Aurora: PostgreSQL from the API only")
        self._ingress("alb-https-in", alb, HTTPS, "HTTPS from the internet", cidr=ANYWHERE)
        self._ingress("alb-http-in", alb, HTTP, "HTTP from the internet, only redirected to HTTPS", cidr=ANYWHERE)
        self._egress("alb-to-api", alb, port, "Forward requests to the API tasks", target_group=api)
        self._ingress("api-from-alb", api, port, "Requests from the load balancer", source_group=alb)
        self._egress("api-https-out", api, HTTPS, "AWS APIs, image pulls and outbound HTTPS", cidr=ANYWHERE)
        self._egress("api-to-database", api, POSTGRES, "PostgreSQL to Aurora", target_group=db)
        self._ingress("database-from-api", db, POSTGRES, "PostgreSQL from the API tasks", source_group=api)
        self.cache_security_group_id = None
        if self.props.cache_port:
            cache_port = self.props.cache_port
            self.cache_security_group_id = cache = self._group("cache", "Redis: from the API only")
            self._egress("api-to-cache", api, cache_port, "Redis to the cache", target_group=cache)
            self._ingress("cache-from-api", cache, cache_port, "Redis from the API tasks", source_group=api)
            self._egress("cache-to-cache", cache, cache_port, "Replication to the other cache nodes",
                         target_group=cache)
            self._ingress("cache-from-cache", cache, cache_port, "Replication from the other cache nodes",
                          source_group=cache)

    # -- VPC endpoints --------------------------------------------------------------------------

    def _endpoint_policy(self, aws_owned_objects: tuple[str, ...] = ()) -> str:
        """What may pass an endpoint: this account's principals on this account's resources, nothing else.

        AWS's default endpoint policy allows everything, so a task (or stolen credentials inside the VPC)
        could copy data to any other account's bucket or secret through it. `aws_owned_objects` are the
        objects of AWS's own buckets a service here must read (ECR layers, which the S3 endpoint carries).

        Written as JSON, not through `aws_iam_policy_document`: in an endpoint policy `Principal: *` and
        `Action: *` are bounded by the conditions, and scanners that read IAM documents as identity
        policies would take them for an administrator grant (the same reason as modules/kms_key.py).
        """
        account = self.props.account
        statements: list[dict] = [{
            "Sid": "ThisAccountsPrincipalsOnThisAccountsResources",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": "*",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:PrincipalAccount": account.id, "aws:ResourceAccount": account.id}},
        }]
        if aws_owned_objects:
            statements.append({"Sid": "AwsOwnedObjects", "Effect": "Allow", "Principal": {"AWS": "*"},
                               "Action": "s3:GetObject", "Resource": list(aws_owned_objects)})
        return json.dumps({"Version": "2012-10-17", "Statement": statements})

    def _endpoints(self) -> None:
        props = self.props
        layers = f"arn:{props.account.partition}:s3:::{ECR_LAYER_BUCKET.format(region=props.region)}/*"
        aws.vpc_endpoint.VpcEndpoint(
            self, "s3-endpoint", vpc_id=self.vpc_id, service_name=f"com.amazonaws.{props.region}.s3",
            vpc_endpoint_type="Gateway", route_table_ids=self.app_route_table_ids, tags=self._name("s3"),
            policy=self._endpoint_policy((layers,)))
        if not props.interface_endpoints:
            return
        group = self._group("endpoints", "Interface endpoints: HTTPS from the API tasks")
        self._ingress("endpoints-from-api", group, HTTPS, "HTTPS from the API tasks",
                      source_group=self.api_security_group_id)
        policy = self._endpoint_policy()
        for service in INTERFACE_ENDPOINTS:
            aws.vpc_endpoint.VpcEndpoint(
                self, f"{service.replace('.', '-')}-endpoint", vpc_id=self.vpc_id,
                service_name=f"com.amazonaws.{props.region}.{service}", vpc_endpoint_type="Interface",
                private_dns_enabled=True, subnet_ids=self.subnet_ids["app"], security_group_ids=[group],
                tags=self._name(service.replace(".", "-")), policy=policy)
