"""SPEC 4.4, the frontend tier, on the shipped environments (property 6 for CloudFront included)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from modules.frontend import SPA_FUNCTION_CODE
from tests.api_checks import check_https_only_cloudfront, check_waf_protects_the_distribution
from tests.conftest import only, resources_of
from tests.network_checks import policy_document, ref_name

ENVIRONMENTS = ("dev", "staging", "production")
# SPEC 4.4: HTML 5 minutes, hashed assets one year, default one hour (seconds).
FIVE_MINUTES, ONE_HOUR, ONE_YEAR = 300, 3600, 365 * 24 * 3600



def cache_policy(stack: dict, reference: str) -> dict:
    return resources_of(stack, "aws_cloudfront_cache_policy")[ref_name(reference, "aws_cloudfront_cache_policy")]


def test_every_behavior_is_https_only(env_stack):
    check_https_only_cloudfront(env_stack[1])


def test_distribution_serves_the_domain_over_http2_http3_and_ipv6(env_stack):
    env, stack = env_stack
    distribution = only(stack, "aws_cloudfront_distribution")
    assert distribution["aliases"] == [env.domain]
    assert distribution["http_version"] == "http2and3" and distribution["is_ipv6_enabled"] is True
    assert distribution["default_root_object"] == "index.html"


def test_cache_ttls_follow_the_spec(env_stack):
    _, stack = env_stack
    distribution = only(stack, "aws_cloudfront_distribution")
    default = cache_policy(stack, distribution["default_cache_behavior"]["cache_policy_id"])
    assert default["default_ttl"] == ONE_HOUR and default["max_ttl"] == ONE_HOUR
    by_pattern = {b["path_pattern"]: cache_policy(stack, b["cache_policy_id"])
                  for b in distribution["ordered_cache_behavior"]}
    assert by_pattern["*.html"]["default_ttl"] == FIVE_MINUTES and by_pattern["*.html"]["max_ttl"] == FIVE_MINUTES
    for pattern in ("*.js", "*.css", "*.png", "*.svg", "*.woff2"):
        policy = by_pattern[pattern]
        assert policy["min_ttl"] == policy["default_ttl"] == policy["max_ttl"] == ONE_YEAR, pattern


def test_everything_is_compressed_with_gzip_and_brotli(env_stack):
    _, stack = env_stack
    distribution = only(stack, "aws_cloudfront_distribution")
    for behavior in [distribution["default_cache_behavior"], *distribution["ordered_cache_behavior"]]:
        assert behavior["compress"] is True
    for policy in resources_of(stack, "aws_cloudfront_cache_policy").values():
        key = policy["parameters_in_cache_key_and_forwarded_to_origin"]
        assert key["enable_accept_encoding_gzip"] is True and key["enable_accept_encoding_brotli"] is True


def test_security_headers(env_stack):
    env, stack = env_stack
    distribution = only(stack, "aws_cloudfront_distribution")
    behaviors = [distribution["default_cache_behavior"], *distribution["ordered_cache_behavior"]]
    (policy_ref,) = {b["response_headers_policy_id"] for b in behaviors}
    policy = resources_of(stack, "aws_cloudfront_response_headers_policy")[
        ref_name(policy_ref, "aws_cloudfront_response_headers_policy")]
    headers = policy["security_headers_config"]
    hsts = headers["strict_transport_security"]
    assert hsts["access_control_max_age_sec"] >= 2 * 365 * 24 * 3600
    assert hsts["include_subdomains"] is True and hsts["preload"] is True
    assert headers["content_type_options"]["override"] is True
    assert headers["frame_options"]["frame_option"] == "DENY"
    assert headers["referrer_policy"]["referrer_policy"] == "strict-origin-when-cross-origin"
    csp = headers["content_security_policy"]["content_security_policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert f"https://api.{env.domain}" in csp


def test_site_bucket_is_private_and_readable_only_by_this_distribution(env_stack):
    """Every origin (the site, and with [dr] its replica) is a bucket only this distribution reads, through OAC."""
    env, stack = env_stack
    distribution_name, distribution = next(iter(resources_of(stack, "aws_cloudfront_distribution").items()))
    assert len(distribution["origin"]) == (2 if env.dr else 1)
    buckets = {b["bucket"]: name for name, b in resources_of(stack, "aws_s3_bucket").items()}
    for origin in distribution["origin"]:
        control = resources_of(stack, "aws_cloudfront_origin_access_control")[
            ref_name(origin["origin_access_control_id"], "aws_cloudfront_origin_access_control")]
        assert control["signing_behavior"] == "always" and control["origin_access_control_origin_type"] == "s3"
        site_name = buckets[origin["domain_name"].split(".s3.")[0]]
        (policy,) = [p for p in resources_of(stack, "aws_s3_bucket_policy").values()
                     if p["bucket"] == f"${{aws_s3_bucket.{site_name}.id}}"]
        statements = policy_document(stack, policy["policy"])["statement"]
        allows = [s for s in statements if s.get("effect", "Allow") == "Allow"]
        (read,) = allows
        assert read["actions"] == ["s3:GetObject"]
        assert read["principals"] == [{"type": "Service", "identifiers": ["cloudfront.amazonaws.com"]}]
        assert read["condition"] == [{"test": "StringEquals", "variable": "AWS:SourceArn",
                                      "values": [f"${{aws_cloudfront_distribution.{distribution_name}.arn}}"]}]


def test_site_bucket_lifecycle(env_stack):
    _, stack = env_stack
    site = next(name for name, b in resources_of(stack, "aws_s3_bucket").items() if "-site-" in b["bucket"])
    (lifecycle,) = [c for c in resources_of(stack, "aws_s3_bucket_lifecycle_configuration").values()
                    if c["bucket"] == f"${{aws_s3_bucket.{site}.id}}"]
    (rule,) = lifecycle["rule"]
    assert rule["transition"] == [{"days": 30, "storage_class": "INTELLIGENT_TIERING"}]
    assert rule["noncurrent_version_expiration"][0]["noncurrent_days"] == 90
    assert rule["abort_incomplete_multipart_upload"][0]["days_after_initiation"] >= 1


def test_certificate_and_cloudfront_scoped_resources_are_in_us_east_1(env_stack):
    _, stack = env_stack
    providers = {p.get("alias"): p["region"] for p in stack["provider"]["aws"]}
    assert providers["us_east_1"] == "us-east-1"
    certificates = [c for c in resources_of(stack, "aws_acm_certificate").values()
                    if c.get("provider") == "aws.us_east_1"]
    assert len(certificates) == 1
    for delivery_type in ("aws_cloudwatch_log_delivery_source", "aws_cloudwatch_log_delivery_destination",
                          "aws_cloudwatch_log_delivery"):
        assert only(stack, delivery_type)["provider"] == "aws.us_east_1"


def test_access_logs_are_delivered_for_the_distribution(env_stack):
    _, stack = env_stack
    source = only(stack, "aws_cloudwatch_log_delivery_source")
    assert source["log_type"] == "ACCESS_LOGS"
    ref_name(source["resource_arn"], "aws_cloudfront_distribution")


def test_waf_follows_the_toggle(env_stack):
    env, stack = env_stack
    distribution = only(stack, "aws_cloudfront_distribution")
    assert bool(distribution.get("web_acl_id")) is env.features.waf
    if env.features.waf:
        check_waf_protects_the_distribution(stack)


def test_frontend_outputs(env_stack):
    env, stack = env_stack
    assert stack["output"]["FrontendUrl"]["value"] == f"https://{env.domain}"
    assert ref_name(stack["output"]["FrontendBucketName"]["value"], "aws_s3_bucket")


# -- the SPA routing function, run by Node on sample requests ----------------------------------

SPA_CASES = {
    "/": "/index.html",
    "/orders": "/index.html",
    "/orders/42": "/index.html",
    "/orders/42/": "/index.html",
    "/index.html": "/index.html",
    "/assets/app.3f9a1c.js": "/assets/app.3f9a1c.js",
    "/assets/site.css": "/assets/site.css",
    "/favicon.ico": "/favicon.ico",
    "/robots.txt": "/robots.txt",
    "/.well-known/security.txt": "/.well-known/security.txt",
}


def test_spa_function_rewrites_routes_and_leaves_files_alone(tmp_path):
    node = shutil.which("node")
    if not node:
        pytest.fail("node is required (it also runs jsii behind cdktf)")
    script = tmp_path / "run.js"
    script.write_text(SPA_FUNCTION_CODE + """
const cases = JSON.parse(process.argv[2]);
const out = {};
for (const uri of cases) { out[uri] = handler({request: {uri: uri, method: 'GET'}}).uri; }
console.log(JSON.stringify(out));
""")
    result = subprocess.run([node, str(script), json.dumps(list(SPA_CASES))],
                            capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(result.stdout) == SPA_CASES
