"""Issue 14: wherever an AWS service acts for this stack, it may do so for this stack's resources only.

A grant to a service principal without a source condition lets that service act for ANY customer
(the "confused deputy"): another account's alarm could use our topic key, another distribution
could read our site. Shared by the example tests (shipped environments) and the properties.
"""

from __future__ import annotations

import json
import re

from environments.model import EnvironmentConfig
from tests.conftest import only, resources_of
from tests.iam_checks import key_policies
from tests.network_checks import ACCOUNT_REF, REF, iam_documents, policy_document, ref_name

PARTITION_REF = "${data.aws_partition.partition.partition}"
# Condition keys that confine a service to this account's resources (IAM compares keys case-insensitively).
SOURCE_KEYS = {"aws:sourceaccount", "aws:sourcearn", "kms:encryptioncontext:aws:logs:arn"}


def _allow_statements(stack: dict):
    """(where, service principals, {condition key (lower case): value}) of every Allow statement with a Service
    principal, in IAM policy documents and in KMS key policies."""
    for name, document in iam_documents(stack).items():
        for item in document["statement"]:
            services = [i for p in item.get("principals", []) if p["type"] == "Service" for i in p["identifiers"]]
            if services and item.get("effect", "Allow") == "Allow":
                yield name, services, {c["variable"].lower(): c["values"] for c in item.get("condition", [])}
    for name, policy in key_policies(stack).items():
        for item in policy["Statement"]:
            if "Service" in item["Principal"]:
                tests = item.get("Condition", {}).values()
                keys = {var.lower(): value for test in tests for var, value in test.items()}
                yield name, [item["Principal"]["Service"]], keys


# Grants AWS documents as taking no source condition (issue 21): they must carry none (a condition AWS does
# not support makes the service's request fail), and nothing else may go without. Keyed by (service
# principal, where the grant is: "key policy" or "policy document").
UNCONDITIONED_GRANTS = {
    # EventBridge delivering to an encrypted topic uses the topic's key without the source keys.
    ("events.amazonaws.com", "key policy"):
        "SNS Developer Guide, Enable compatibility between event sources from AWS services and encrypted topics",
    # ALB access logs in regions from August 2022: AWS's statement for the log delivery principal has none.
    ("logdelivery.elasticloadbalancing.amazonaws.com", "policy document"):
        "ELB User Guide for ALBs, Enable access logs for your Application Load Balancer",
}
# Condition operators that confine: a value must match (IAM's negated, IfExists and set operators do not).
ACCOUNT_OPERATORS = {"StringEquals"}
ARN_OPERATORS = {"StringEquals", "StringLike", "ArnEquals", "ArnLike"}
PARTITIONS = {"aws", PARTITION_REF}


def _grants(stack: dict):
    """(where, kind, service principals, [(operator, condition key (lower case), [values])]) of every Allow
    statement with a Service principal, in IAM policy documents and in KMS key policies."""
    for name, document in iam_documents(stack).items():
        for item in document["statement"]:
            services = [i for p in item.get("principals", []) if p["type"] == "Service" for i in p["identifiers"]]
            if services and item.get("effect", "Allow") == "Allow":
                yield name, "policy document", services, [(c["test"], c["variable"].lower(), c["values"])
                                                          for c in item.get("condition", [])]
    for name, policy in key_policies(stack).items():
        for item in policy["Statement"]:
            if "Service" in item["Principal"]:
                services = item["Principal"]["Service"]
                conditions = [(operator, key.lower(), value if isinstance(value, list) else [value])
                              for operator, test in item.get("Condition", {}).items() for key, value in test.items()]
                yield name, "key policy", services if isinstance(services, list) else [services], conditions


def _is_own_resource(stack: dict, value: str) -> bool:
    """A `${type.name.attr}` reference to a resource of this stack."""
    match = REF.match(value)
    return bool(match) and match.group(2) in stack.get("resource", {}).get(match.group(1), {})


def _is_own_arn(value: str) -> bool:
    """An ARN in this account whose only wildcard, if any, ends a non-empty resource part (`alarm:*`,
    `rule/webapp-dev-*`): no wildcard partition, service, region or account, no bare `*`."""
    parts = value.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[1] not in PARTITIONS or parts[4] != ACCOUNT_REF:
        return False
    head, resource = ":".join(parts[:5]), parts[5]
    literal = resource.rstrip("*")
    return not re.search(r"[*?]", head) and bool(literal) and not re.search(r"[*?]", literal)


def _check_source_condition(stack: dict, where: str, operator: str, key: str, values: list[str]) -> None:
    """A source condition must match (positive operator) and name this account or this stack's resource."""
    arn_key = key != "aws:sourceaccount"
    allowed = ARN_OPERATORS if arn_key else ACCOUNT_OPERATORS
    assert operator in allowed, f"{where}: {operator} {key} is not a positive operator (one of {sorted(allowed)})"
    for value in values:
        own = (_is_own_resource(stack, value) or _is_own_arn(value)) if arn_key else value == ACCOUNT_REF
        assert own, f"{where}: {operator} {key} {value!r} does not name this account or this stack's resource"


def check_service_grants_are_confined(stack: dict) -> None:
    """Every grant to a service principal carries a source condition confining it by value, except AWS's
    documented exceptions (UNCONDITIONED_GRANTS), which carry none."""
    for where, kind, services, conditions in _grants(stack):
        sources = [(operator, key, values) for operator, key, values in conditions if key in SOURCE_KEYS]
        exempt = all((service, kind) in UNCONDITIONED_GRANTS for service in services)
        if exempt:
            assert not sources, f"{where}: {services} takes no condition AWS does not support, got {sources}"
            continue
        assert sources, f"{where}: {services} may act for any account's resources"
        for operator, key, values in sources:
            _check_source_condition(stack, where, operator, key, values)


def _statement(document: dict, sid: str) -> dict:
    found = [item for item in document["statement"] if item.get("sid") == sid]
    assert len(found) == 1, f"expected one statement {sid}, found {len(found)}"
    return found[0]


def check_alarm_topics(stack: dict, env: EnvironmentConfig) -> None:
    """Topic keys: CloudWatch only for this account's alarms in the topic's region (other publishers, such as
    AWS Budgets, are held to this account by check_service_grants_are_confined). Topics: TLS only."""
    topics = resources_of(stack, "aws_sns_topic")
    assert topics
    for topic in topics.values():
        region = "us-east-1" if topic.get("provider") == "aws.us_east_1" else env.region
        key = resources_of(stack, "aws_kms_key")[ref_name(topic["kms_master_key_id"], "aws_kms_key")]
        (grant,) = [s for s in json.loads(key["policy"])["Statement"]
                    if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
        assert grant.get("Condition") == {
            "StringEquals": {"aws:SourceAccount": ACCOUNT_REF},
            "ArnLike": {"aws:SourceArn": f"arn:{PARTITION_REF}:cloudwatch:{region}:{ACCOUNT_REF}:alarm:*"}}
    check_topics_are_tls_only(stack)


def check_topics_are_tls_only(stack: dict) -> None:
    """Every SNS topic's policy refuses publishing over plain HTTP."""
    topics = resources_of(stack, "aws_sns_topic")
    policies = {ref_name(p["arn"], "aws_sns_topic"): p for p in resources_of(stack, "aws_sns_topic_policy").values()}
    assert set(policies) == set(topics)
    for name, policy in policies.items():
        deny = _statement(policy_document(stack, policy["policy"]), "DenyInsecureTransport")
        assert deny["effect"] == "Deny" and deny["principals"] == [{"type": "*", "identifiers": ["*"]}]
        assert "sns:Publish" in deny["actions"] and deny["resources"] == [f"${{aws_sns_topic.{name}.arn}}"]
        assert deny["condition"] == [{"test": "Bool", "variable": "aws:SecureTransport", "values": ["false"]}]


def check_frontend_key_serves_this_distribution_only(stack: dict) -> None:
    """The site's key (and, with [dr], its replica's key: one per origin) decrypts for this distribution only."""
    (distribution,) = resources_of(stack, "aws_cloudfront_distribution")
    origins = len(only(stack, "aws_cloudfront_distribution")["origin"])
    cloudfront = [(where, keys) for where, services, keys in _allow_statements(stack)
                  if services == ["cloudfront.amazonaws.com"] and where in resources_of(stack, "aws_kms_key")]
    assert len(cloudfront) == origins, cloudfront
    for key_id, keys in cloudfront:
        assert keys == {"aws:sourcearn": f"${{aws_cloudfront_distribution.{distribution}.arn}}"}
        # The grant is attached after the distribution exists; the key, and the buckets' encryption and
        # replication under it, do not wait for the distribution (nor stop where it cannot be created).
        assert "aws_cloudfront_distribution" not in json.dumps(resources_of(stack, "aws_kms_key")[key_id]), key_id


def check_log_delivery_is_confined(stack: dict) -> None:
    """CloudFront's log delivery (write and ACL check): this account's delivery source of this distribution."""
    (source,) = resources_of(stack, "aws_cloudwatch_log_delivery_source").values()
    delivery_source = f"arn:{PARTITION_REF}:logs:us-east-1:{ACCOUNT_REF}:delivery-source:{source['name']}"
    grants = [keys for _, services, keys in _allow_statements(stack) if services == ["delivery.logs.amazonaws.com"]]
    assert len(grants) == 2, grants  # s3:PutObject and s3:GetBucketAcl (tests/aws_form_checks.py)
    for keys in grants:
        assert {k: v for k, v in keys.items() if k.startswith("aws:")} == {
            "aws:sourceaccount": [ACCOUNT_REF], "aws:sourcearn": [delivery_source]}


def check_service_grants(stack: dict, env: EnvironmentConfig) -> None:
    check_service_grants_are_confined(stack)
    check_alarm_topics(stack, env)
    check_frontend_key_serves_this_distribution_only(stack)
    check_log_delivery_is_confined(stack)
