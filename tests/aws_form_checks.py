"""Issue 21: the forms AWS documents for grants, principals and settings, checked on synthesized stacks.

moto evaluates no policy, so these checks pin the documented form itself: a statement AWS would refuse
(EventBridge under a source condition), a principal of the wrong kind for the region (ALB log delivery),
a missing statement (CloudFront's ACL check), an undocumented one (X-Ray), a mutable image in production,
a failover that serves deleted content, a backup role reaching other environments' recovery points, and
a trail that does not watch the state or the master secrets.
"""

from __future__ import annotations

import json

from core.elb import ELB_LOG_ACCOUNTS, LOG_DELIVERY_SERVICE
from environments.model import EnvironmentConfig
from tests.conftest import only, resources_of
from tests.iam_checks import key_policies
from tests.network_checks import ACCOUNT_REF, iam_documents, policy_document, ref_name

PARTITION_REF = "${data.aws_partition.partition.partition}"
DIGEST = "@sha256:"


def document_statements(stack: dict, service: str):
    """(document id, statement) of every Allow statement granting `service` in a policy document."""
    for name, document in iam_documents(stack).items():
        for item in document["statement"]:
            granted = [i for p in item.get("principals", []) if p["type"] == "Service" for i in p["identifiers"]]
            if service in granted and item.get("effect", "Allow") == "Allow":
                yield name, item


def key_statements(stack: dict, service: str):
    """(key id, statement) of every key policy statement granting `service`."""
    for key_id, policy in key_policies(stack).items():
        for item in policy["Statement"]:
            if item["Principal"].get("Service") == service:
                yield key_id, item


def check_eventbridge_grants(stack: dict) -> None:
    """Key statements for EventBridge carry no condition (SNS guide); every topic statement names rule ARNs."""
    keys = list(key_statements(stack, "events.amazonaws.com"))
    topics = list(document_statements(stack, "events.amazonaws.com"))
    assert keys and len(keys) == len(topics), (keys, topics)
    for key_id, item in keys:
        assert "Condition" not in item, f"{key_id}: EventBridge's key statement takes no condition: {item['Condition']}"
        assert sorted(item["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"], item
    for name, item in topics:
        (condition,) = item["condition"]
        assert condition["variable"] == "aws:SourceArn" and ":rule/" in condition["values"][0], name


def alb_log_statement(stack: dict) -> dict:
    """The one statement of the ALB log bucket's policy that lets someone other than the account write."""
    bucket = next(body for body in resources_of(stack, "aws_s3_bucket").values() if "-alb-logs-" in body["bucket"])
    (item,) = [s for s in _bucket_statements(stack, bucket["bucket"]) if s.get("sid") == "AlbLogDelivery"]
    return item


def _bucket_statements(stack: dict, bucket_name: str) -> list[dict]:
    buckets = {ref: body["bucket"] for ref, body in resources_of(stack, "aws_s3_bucket").items()}
    for policy in resources_of(stack, "aws_s3_bucket_policy").values():
        if buckets[ref_name(policy["bucket"], "aws_s3_bucket")] == bucket_name:
            return policy_document(stack, policy["policy"])["statement"]
    raise AssertionError(f"no policy on {bucket_name}")


def check_alb_log_writer(stack: dict, region: str) -> None:
    """The region's ELB account before August 2022, else the service principal; no condition either way;
    only this account's AWSLogs/ path."""
    item = alb_log_statement(stack)
    account = ELB_LOG_ACCOUNTS.get(region)
    expected = ({"type": "AWS", "identifiers": [f"arn:{PARTITION_REF}:iam::{account}:root"]} if account
                else {"type": "Service", "identifiers": [LOG_DELIVERY_SERVICE]})
    assert item["principals"] == [expected], f"{region}: {item['principals']}"
    assert "condition" not in item, f"{region}: a condition AWS does not document: {item['condition']}"
    assert item["actions"] == ["s3:PutObject"]
    (resource,) = item["resources"]
    assert resource.endswith(f"/AWSLogs/{ACCOUNT_REF}/*"), resource


def check_cloudfront_log_acl_check(stack: dict) -> None:
    """Vended delivery's GetBucketAcl statement on the log bucket itself, for this delivery source only."""
    (source,) = resources_of(stack, "aws_cloudwatch_log_delivery_source").values()
    arn = f"arn:{PARTITION_REF}:logs:us-east-1:{ACCOUNT_REF}:delivery-source:{source['name']}"
    found = {item["sid"]: item for _, item in document_statements(stack, "delivery.logs.amazonaws.com")}
    check = found.get("CloudFrontLogDeliveryAclCheck")
    assert check, f"no s3:GetBucketAcl statement for delivery.logs.amazonaws.com: {sorted(found)}"
    assert check["actions"] == ["s3:GetBucketAcl"]
    (bucket,) = check["resources"]
    assert bucket.startswith("arn:aws:s3:::") and "/" not in bucket.removeprefix("arn:aws:s3:::"), bucket
    assert {(c["variable"], tuple(c["values"])) for c in check["condition"]} == {
        ("aws:SourceAccount", (ACCOUNT_REF,)), ("aws:SourceArn", (arn,))}


def check_no_xray_grant(stack: dict) -> None:
    """X-Ray uses the caller's grants: no key policy or document names xray.amazonaws.com."""
    assert "xray.amazonaws.com" not in json.dumps(stack), "an undocumented grant to xray.amazonaws.com"


def container_images(stack: dict) -> dict[str, str]:
    """`<task family>/<container>` -> image, for every container of every task definition."""
    return {f"{task['family']}/{container['name']}": container["image"]
            for task in resources_of(stack, "aws_ecs_task_definition").values()
            for container in json.loads(task["container_definitions"])}


def check_images_pinned_by_digest(stack: dict) -> None:
    """Every container of every task definition runs an image pinned by content."""
    images = container_images(stack)
    assert images
    loose = {name: image for name, image in images.items() if DIGEST not in image}
    assert not loose, f"images not pinned by digest: {loose}"


def backup_role_statements(stack: dict) -> list[dict]:
    (role_ref,) = [ref for ref, role in resources_of(stack, "aws_iam_role").items() if role["name"].endswith("-backup")]
    (policy,) = [p for p in resources_of(stack, "aws_iam_role_policy").values()
                 if p["role"] == f"${{aws_iam_role.{role_ref}.id}}"]
    return policy_document(stack, policy["policy"])["statement"]


def check_backup_role_scoped(stack: dict, env: EnvironmentConfig) -> None:
    """Deleting or tagging a recovery point requires it to be this environment's (its Environment tag)."""
    for item in backup_role_statements(stack):
        risky = {"rds:DeleteDBClusterSnapshot", "rds:AddTagsToResource"} & set(item["actions"])
        if not risky or not any(":cluster-snapshot:" in r for r in item["resources"]):
            continue
        tags = {c["variable"]: (c["test"], c["values"]) for c in item.get("condition", [])}
        test, values = tags.get("aws:ResourceTag/Environment", (None, None))
        assert values == [env.name], f"{sorted(risky)} on any environment's recovery points"
        if "rds:DeleteDBClusterSnapshot" in risky:
            assert test == "StringEquals", "an untagged snapshot must not be deletable"
        if "rds:AddTagsToResource" in risky:
            assert tags.get("aws:RequestTag/Environment") == ("StringEqualsIfExists", [env.name]), \
                "a snapshot could be re-tagged into this environment"


def check_trail_watches_state_and_secrets(stack: dict, state_buckets: tuple[str, ...],
                                          bootstrap_roles: tuple[str, ...]) -> None:
    """S3 data events for the state buckets' objects; an alarm on master-secret reads by other roles."""
    trail = only(stack, "aws_cloudtrail")
    (selector,) = trail["event_selector"]
    (data,) = selector["data_resource"]
    assert data["type"] == "AWS::S3::Object"
    assert sorted(data["values"]) == sorted(f"arn:{PARTITION_REF}:s3:::{b}/" for b in state_buckets), \
        f"state objects not recorded as data events: {data['values']}"
    assert selector["read_write_type"] == "All"
    metric_filter = only(stack, "aws_cloudwatch_log_metric_filter")
    assert metric_filter["log_group_name"].startswith("${aws_cloudwatch_log_group.")
    pattern = metric_filter["pattern"]
    for term in ('$.eventName = "GetSecretValue"', '(($.requestParameters.secretId = "*rds!*") || '
                 '($.requestParameters.secretId = "*-database-master*"))'):
        assert term in pattern, pattern
    allowed = sorted(part.split("assumed-role/")[1].split("/")[0] for part in pattern.split("&&")
                     if "$.userIdentity.arn !=" in part)
    assert allowed == sorted(bootstrap_roles), f"readers allowed by the filter: {allowed}"
    alarm = only(stack, "aws_cloudwatch_metric_alarm")
    transformation = metric_filter["metric_transformation"]
    assert (alarm["metric_name"], alarm["namespace"]) == (transformation["name"], transformation["namespace"])
    assert alarm["threshold"] == 0 and alarm["comparison_operator"] == "GreaterThanThreshold"
    (action,) = alarm["alarm_actions"]
    assert action.startswith("${aws_sns_topic."), action
