"""Frontend tier (SPEC 4.4): private S3 origin behind CloudFront with OAC, headers and SPA routing.

SPA routing is a viewer-request CloudFront Function on the site's default behavior: a request
whose last path segment has no file extension (a client-side route such as /orders/42) is
rewritten to /index.html, so the app shell is served with a 200. Custom error responses
(403/404 -> /index.html) would also turn real errors of any other origin added later into 200s
and hide missing assets; the function touches nothing that looks like a file.

Access logs use CloudFront's v2 log delivery (CloudWatch Logs delivery to S3): the legacy
`logging_config` needs ACLs on the log bucket, and every bucket here has ACLs disabled.

CloudFront-scoped resources (certificate, WAF, log delivery) are created through the aliased
us-east-1 provider the stack passes in.

With a `SiteReplica` (the stack passes the DR region's provider), the site bucket replicates every
object to a replica built the same way (SecureBucket, its own CMK in that region, access logs to a
sink there), and the distribution reads through an origin group: when the primary origin answers
one of FAILOVER_STATUS_CODES (or cannot be reached), CloudFront retries the request on the replica.
Both origins are signed with the same Origin Access Control and each bucket admits only this
distribution. Only 5xx answers fail over, never 403 or 404: S3 replication does not replicate the
deletion of a specific object version, so a file taken down with "delete all versions" is still in
the replica, and failing over on the primary's 404 (or the 403 S3 answers for a missing key) would
serve it again. A takedown therefore also deletes the object's versions in the replica
(docs/runbooks.md, "Taking content down").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cdktf import TerraformResourceLifecycle
from constructs import Construct

from core.account import Account
from core.aws import aws
from core.iam import condition, principal, statement
from modules.kms_key import KmsKey, KmsKeyProps, ServiceGrant
from modules.replication import BucketReplication, ReplicationProps
from modules.secure_bucket import SecureBucket, SecureBucketProps
from modules.waf import WafProps, WebAcl

SPA_FUNCTION_CODE = """\
function handler(event) {
  var request = event.request;
  var last = request.uri.split('/').pop();
  if (last.indexOf('.') === -1) {
    request.uri = '/index.html';
  }
  return request;
}
"""
MINUTES, HOURS, YEAR = 60, 3600, 31536000
# Cache policies (seconds): name -> (min, default, max) TTL.
CACHE_TTLS = {"html": (0, 5 * MINUTES, 5 * MINUTES), "assets": (YEAR, YEAR, YEAR), "default": (0, HOURS, HOURS)}
HTML_PATTERNS = ("*.html",)
# Build tools fingerprint these file types; they never change under the same name.
ASSET_PATTERNS = ("*.js", "*.css", "*.woff", "*.woff2", "*.ttf", "*.png", "*.jpg", "*.jpeg", "*.gif", "*.svg",
                  "*.webp", "*.avif")
HSTS_SECONDS = 63072000  # two years
MINIMUM_TLS = "TLSv1.2_2021"
SITE_ORIGIN, REPLICA_ORIGIN, FAILOVER_GROUP = "site", "site-replica", "site-with-failover"
# Answers of the primary origin on which CloudFront retries the request on the replica: server errors only,
# so content deleted from the primary is never served from the replica (see the module docstring).
FAILOVER_STATUS_CODES = (500, 502, 503, 504)
SITE_NONCURRENT_DAYS, SITE_TIERING_DAYS = 90, 30


@dataclass(frozen=True)
class SiteReplica:
    """A copy of the site in another region: the distribution's failover origin."""

    region: str
    provider: Any  # aliased provider of `region`


@dataclass(frozen=True)
class FrontendProps:
    name_prefix: str  # "<app>-<env>"
    region: str
    account: Account
    domain: str
    hosted_zone_id: str | None
    certificate_arn: str | None
    content_security_policy: str
    waf: bool
    waf_rate_limit: int  # requests per client IP in 5 minutes
    log_retention_days: int
    access_log_days: int
    us_east_1: Any  # aliased provider for CloudFront-scoped resources
    us_east_1_logs_kms_key_arn: str
    force_destroy: bool = False  # buckets of a disposable environment may be destroyed with their objects
    replica: SiteReplica | None = None  # replicate the site there and fail over to it


class Frontend(Construct):
    """Exposes `url`, `bucket_name`, `distribution_id`, `distribution_arn` (and `replica_bucket_name` or None)."""

    def __init__(self, scope: Construct, id: str, props: FrontendProps):
        super().__init__(scope, id)
        self.props = props
        # Known before the buckets exist: the distribution's origins and the bucket policies need each other.
        self.site_bucket_name = f"{props.name_prefix}-site-{props.account.id}"
        self._log_source_name = f"{props.name_prefix}-cloudfront"
        self.replica_bucket_name = f"{props.name_prefix}-site-dr-{props.account.id}" if props.replica else None
        self.logs = self._log_bucket()
        self.distribution = self._distribution()
        self.site, site_key = self._site_bucket()
        if props.replica:
            self._replicate(props.replica, site_key)
        self._access_logs()
        if props.hosted_zone_id:
            self._alias_records()
        self.url = f"https://{props.domain}"
        self.bucket_name: str = self.site.name
        self.distribution_id: str = self.distribution.id
        self.distribution_arn: str = self.distribution.arn

    # -- buckets --------------------------------------------------------------------------------

    def _log_bucket(self) -> SecureBucket:
        """Sink for the site bucket's S3 access logs and CloudFront's access logs (SSE-S3, as both require)."""
        props = self.props
        name = f"{props.name_prefix}-web-logs-{props.account.id}"
        account = props.account
        # Only this distribution's delivery source (_access_logs) may write, named by ARN: the source
        # itself is created after the bucket.
        source = f"arn:{account.partition}:logs:us-east-1:{account.id}:delivery-source:{self._log_source_name}"
        delivery_service = [principal("Service", "delivery.logs.amazonaws.com")]
        this_source = [condition("StringEquals", "aws:SourceAccount", account.id),
                       condition("ArnLike", "aws:SourceArn", source)]
        # CloudWatch Logs User Guide, "Enable logging from AWS services", "Logs sent to Amazon S3": the write
        # statement (objects owned by the bucket owner) and the ACL check statement, both for this source only.
        delivery = (
            statement("CloudFrontLogDelivery", ["s3:PutObject"], [f"arn:aws:s3:::{name}/cloudfront/*"],
                      principals=delivery_service,
                      conditions=[*this_source,
                                  condition("StringEquals", "s3:x-amz-acl", "bucket-owner-full-control")]),
            statement("CloudFrontLogDeliveryAclCheck", ["s3:GetBucketAcl"], [f"arn:aws:s3:::{name}"],
                      principals=delivery_service, conditions=this_source),
        )
        return SecureBucket(self, "logs", SecureBucketProps(
            name=name, kms_key_arn=None, noncurrent_version_days=props.access_log_days,
            expiration_days=props.access_log_days, s3_access_logs_from_account=props.account.id,
            policy_statements=delivery,
            force_destroy=props.force_destroy))

    def _site_key(self, id: str, alias_suffix: str, region: str, provider: Any) -> KmsKey:
        props = self.props
        # CloudFront may decrypt for this distribution only (CloudFront Developer Guide, "Restrict access to an
        # Amazon S3 origin", SSE-KMS key policy). No cycle: the distribution names its origins
        # by the buckets' (known) names, never by a bucket or a key. The policy is attached on its own,
        # so the key, the bucket's encryption and its replication do not wait for the distribution.
        return KmsKey(self, id, KmsKeyProps(
            account=props.account, alias=f"alias/{props.name_prefix}-{alias_suffix}", provider=provider,
            separate_policy=True,
            description=f"Encrypts the {props.name_prefix} site bucket in {region}; CloudFront decrypts for its "
                        "distribution",
            service_grants=(ServiceGrant(service="cloudfront.amazonaws.com", actions=("kms:Decrypt",),
                                         conditions=(("StringEquals", "aws:SourceArn", self.distribution.arn),)),)))

    def _origin_bucket(self, id: str, name: str, key: KmsKey, logs: SecureBucket, provider: Any) -> SecureBucket:
        """Private origin: only this distribution may read it, signed through Origin Access Control."""
        # CloudFront Developer Guide, "Restrict access to an Amazon S3 origin" (origin access control).
        read = statement(
            "OnlyThisDistributionReads", ["s3:GetObject"], [f"arn:aws:s3:::{name}/*"],
            principals=[principal("Service", "cloudfront.amazonaws.com")],
            conditions=[condition("StringEquals", "AWS:SourceArn", self.distribution.arn)])
        return SecureBucket(self, id, SecureBucketProps(
            name=name, kms_key_arn=key.arn, noncurrent_version_days=SITE_NONCURRENT_DAYS,
            intelligent_tiering_after_days=SITE_TIERING_DAYS, access_log_bucket=logs, policy_statements=(read,),
            force_destroy=self.props.force_destroy, provider=provider))

    def _site_bucket(self) -> tuple[SecureBucket, KmsKey]:
        key = self._site_key("key", "frontend", self.props.region, None)
        return self._origin_bucket("site", self.site_bucket_name, key, self.logs, None), key

    def _replicate(self, replica: SiteReplica, site_key: KmsKey) -> None:
        """The replica (own key and access-log sink in its region) and the replication into it."""
        props = self.props
        logs = SecureBucket(self, "replica-logs", SecureBucketProps(
            name=f"{props.name_prefix}-dr-logs-{props.account.id}", kms_key_arn=None,
            noncurrent_version_days=props.access_log_days, expiration_days=props.access_log_days,
            s3_access_logs_from_account=props.account.id, force_destroy=props.force_destroy,
            provider=replica.provider))
        key = self._site_key("replica-key", "frontend-dr", replica.region, replica.provider)
        bucket = self._origin_bucket("replica", self.replica_bucket_name, key, logs, replica.provider)
        BucketReplication(self, "replication", ReplicationProps(
            name=f"{props.name_prefix}-site-replication", account=props.account,
            source=self.site, source_region=props.region, source_kms_key_arn=site_key.arn,
            replica=bucket, replica_region=replica.region, replica_kms_key_arn=key.arn))

    # -- distribution ---------------------------------------------------------------------------

    def _certificate(self) -> str:
        """In us-east-1 (CloudFront's region): a configured ARN or DNS-validated with the hosted zone."""
        props = self.props
        if props.certificate_arn:
            return props.certificate_arn
        certificate = aws.acm_certificate.AcmCertificate(
            self, "certificate", domain_name=props.domain, validation_method="DNS", provider=props.us_east_1,
            lifecycle=TerraformResourceLifecycle(create_before_destroy=True))
        if not props.hosted_zone_id:
            return certificate.arn
        option = certificate.domain_validation_options.get(0)
        record = aws.route53_record.Route53Record(
            self, "certificate-validation-record", zone_id=props.hosted_zone_id, allow_overwrite=True,
            name=option.resource_record_name, type=option.resource_record_type,
            records=[option.resource_record_value], ttl=300)
        return aws.acm_certificate_validation.AcmCertificateValidation(
            self, "certificate-validation", certificate_arn=certificate.arn, validation_record_fqdns=[record.fqdn],
            provider=props.us_east_1).certificate_arn

    def _cache_policies(self) -> dict[str, str]:
        policies = aws.cloudfront_cache_policy
        key = policies.CloudfrontCachePolicyParametersInCacheKeyAndForwardedToOrigin
        ids = {}
        for name, (low, default, high) in CACHE_TTLS.items():
            ids[name] = policies.CloudfrontCachePolicy(
                self, f"cache-{name}", name=f"{self.props.name_prefix}-{name}", min_ttl=low, default_ttl=default,
                max_ttl=high, comment=f"{name}: {default} s",
                parameters_in_cache_key_and_forwarded_to_origin=key(
                    enable_accept_encoding_gzip=True, enable_accept_encoding_brotli=True,
                    cookies_config=policies.CloudfrontCachePolicyParametersInCacheKeyAndForwardedToOriginCookiesConfig(
                        cookie_behavior="none"),
                    headers_config=policies.CloudfrontCachePolicyParametersInCacheKeyAndForwardedToOriginHeadersConfig(
                        header_behavior="none"),
                    query_strings_config=policies
                    .CloudfrontCachePolicyParametersInCacheKeyAndForwardedToOriginQueryStringsConfig(
                        query_string_behavior="none")),
            ).id
        return ids

    def _security_headers(self) -> str:
        headers = aws.cloudfront_response_headers_policy
        prefix = "CloudfrontResponseHeadersPolicySecurityHeadersConfig"
        config = getattr(headers, prefix)(
            strict_transport_security=getattr(headers, f"{prefix}StrictTransportSecurity")(
                access_control_max_age_sec=HSTS_SECONDS, include_subdomains=True, preload=True, override=True),
            content_type_options=getattr(headers, f"{prefix}ContentTypeOptions")(override=True),
            frame_options=getattr(headers, f"{prefix}FrameOptions")(frame_option="DENY", override=True),
            content_security_policy=getattr(headers, f"{prefix}ContentSecurityPolicy")(
                content_security_policy=self.props.content_security_policy, override=True),
            referrer_policy=getattr(headers, f"{prefix}ReferrerPolicy")(
                referrer_policy="strict-origin-when-cross-origin", override=True),
        )
        return headers.CloudfrontResponseHeadersPolicy(
            self, "security-headers", name=f"{self.props.name_prefix}-security-headers",
            comment="HSTS, nosniff, DENY framing, CSP, referrer policy", security_headers_config=config).id

    def _distribution(self):
        props = self.props
        cdn = aws.cloudfront_distribution
        access = aws.cloudfront_origin_access_control.CloudfrontOriginAccessControl(
            self, "origin-access-control", name=f"{props.name_prefix}-site", origin_access_control_origin_type="s3",
            signing_behavior="always", signing_protocol="sigv4", description="CloudFront signs every origin request")
        spa = aws.cloudfront_function.CloudfrontFunction(
            self, "spa-routing", name=f"{props.name_prefix}-spa-routing", runtime="cloudfront-js-2.0",
            comment="Serve /index.html for client-side routes", publish=True, code=SPA_FUNCTION_CODE)
        policies = self._cache_policies()
        headers = self._security_headers()
        web_acl = None
        if props.waf:
            web_acl = WebAcl(self, "waf", WafProps(
                name=f"{props.name_prefix}-web", scope="CLOUDFRONT", log_retention_days=props.log_retention_days,
                logs_kms_key_arn=props.us_east_1_logs_kms_key_arn, rate_limit=props.waf_rate_limit,
                provider=props.us_east_1)).arn

        target = FAILOVER_GROUP if props.replica else SITE_ORIGIN

        def behavior(pattern: str, policy: str):
            return cdn.CloudfrontDistributionOrderedCacheBehavior(
                path_pattern=pattern, target_origin_id=target, viewer_protocol_policy="redirect-to-https",
                allowed_methods=["GET", "HEAD", "OPTIONS"], cached_methods=["GET", "HEAD"], compress=True,
                cache_policy_id=policies[policy], response_headers_policy_id=headers)

        return cdn.CloudfrontDistribution(
            self, "distribution", enabled=True, is_ipv6_enabled=True, http_version="http2and3",
            comment=f"{props.name_prefix} single-page app", aliases=[props.domain],
            default_root_object="index.html", price_class="PriceClass_100", web_acl_id=web_acl,
            origin=self._origins(access.id), origin_group=self._origin_groups(),
            default_cache_behavior=cdn.CloudfrontDistributionDefaultCacheBehavior(
                target_origin_id=target, viewer_protocol_policy="redirect-to-https",
                allowed_methods=["GET", "HEAD", "OPTIONS"], cached_methods=["GET", "HEAD"], compress=True,
                cache_policy_id=policies["default"], response_headers_policy_id=headers,
                function_association=[cdn.CloudfrontDistributionDefaultCacheBehaviorFunctionAssociation(
                    event_type="viewer-request", function_arn=spa.arn)]),
            ordered_cache_behavior=[behavior(p, "html") for p in HTML_PATTERNS]
            + [behavior(p, "assets") for p in ASSET_PATTERNS],
            viewer_certificate=cdn.CloudfrontDistributionViewerCertificate(
                acm_certificate_arn=self._certificate(), ssl_support_method="sni-only",
                minimum_protocol_version=MINIMUM_TLS),
            restrictions=cdn.CloudfrontDistributionRestrictions(
                geo_restriction=cdn.CloudfrontDistributionRestrictionsGeoRestriction(restriction_type="none")),
        )

    def _origins(self, access_control_id: str) -> list:
        """The site bucket and, with a replica, the replica: both S3 origins signed through OAC."""
        cdn, props = aws.cloudfront_distribution, self.props
        buckets = [(SITE_ORIGIN, self.site_bucket_name, props.region)]
        if props.replica:
            buckets.append((REPLICA_ORIGIN, self.replica_bucket_name, props.replica.region))
        return [cdn.CloudfrontDistributionOrigin(
            origin_id=origin_id, origin_access_control_id=access_control_id,
            domain_name=f"{name}.s3.{region}.amazonaws.com") for origin_id, name, region in buckets]

    def _origin_groups(self) -> list | None:
        if not self.props.replica:
            return None
        cdn = aws.cloudfront_distribution
        return [cdn.CloudfrontDistributionOriginGroup(
            origin_id=FAILOVER_GROUP,
            failover_criteria=cdn.CloudfrontDistributionOriginGroupFailoverCriteria(
                status_codes=list(FAILOVER_STATUS_CODES)),
            member=[cdn.CloudfrontDistributionOriginGroupMember(origin_id=SITE_ORIGIN),
                    cdn.CloudfrontDistributionOriginGroupMember(origin_id=REPLICA_ORIGIN)])]

    def _access_logs(self) -> None:
        """CloudFront v2 access logs to the log bucket; the delivery objects live in us-east-1."""
        props = self.props
        source = aws.cloudwatch_log_delivery_source.CloudwatchLogDeliverySource(
            self, "log-source", name=self._log_source_name, log_type="ACCESS_LOGS",
            resource_arn=self.distribution.arn, provider=props.us_east_1)
        destinations = aws.cloudwatch_log_delivery_destination
        destination = destinations.CloudwatchLogDeliveryDestination(
            self, "log-destination", name=f"{props.name_prefix}-cloudfront-s3", output_format="json",
            provider=props.us_east_1,
            delivery_destination_configuration=[
                destinations.CloudwatchLogDeliveryDestinationDeliveryDestinationConfiguration(
                    destination_resource_arn=f"{self.logs.arn}/cloudfront")])
        aws.cloudwatch_log_delivery.CloudwatchLogDelivery(
            self, "log-delivery", delivery_source_name=source.name, delivery_destination_arn=destination.arn,
            provider=props.us_east_1)

    def _alias_records(self) -> None:
        for record_type in ("A", "AAAA"):
            aws.route53_record.Route53Record(
                self, f"alias-{record_type.lower()}", zone_id=self.props.hosted_zone_id, name=self.props.domain,
                type=record_type, alias=aws.route53_record.Route53RecordAlias(
                    name=self.distribution.domain_name, zone_id=self.distribution.hosted_zone_id,
                    evaluate_target_health=False))
