"""core.references: attribute references written in Python are what cdktf would render, and cost no round trip.

The shipped stacks are compared byte for byte with the stock provider (references read from jsii) by
tests/test_provider_bundle.py; these tests pin the logical-id algorithm on awkward paths and the
cases that must fall back to jsii.
"""

from __future__ import annotations

import json

import cdktf
import pytest
from constructs import Construct
from jsii._kernel.providers import process

from core import references
from core.aws import aws


@pytest.fixture
def stack():
    aws.s3_bucket  # noqa: B018 - loads the provider the lazy way, which installs core.references
    app = cdktf.Testing.app()
    stack = cdktf.TerraformStack(app, "stack")
    aws.provider.AwsProvider(stack, "aws", region="eu-west-1")
    return stack


def synthesized(stack) -> dict:
    return json.loads(cdktf.Testing.synth(stack))


@pytest.fixture
def round_trips(monkeypatch):
    sent = []
    send = process._NodeProcess.send
    monkeypatch.setattr(process._NodeProcess, "send",
                        lambda self, request, response_type: sent.append(request) or send(self, request, response_type))
    return sent


AWKWARD_PATHS = [
    ("bucket",),  # top level: the id itself
    ("a.b c!",),  # top level, characters removed
    ("outer", "bucket"),
    ("outer", "Default", "bucket"),  # hidden from the whole calculation
    ("outer", "Resource"),  # hidden from the human part only
    ("site", "site"),  # a component its predecessor ends with
    ("websites", "site", "bucket"),
    ("x" * 130, "y" * 130),  # the human part cut at 240 characters
    ("z" * 256,),  # a top-level id too long to be used as it is
]


@pytest.mark.parametrize("path", AWKWARD_PATHS, ids=range(len(AWKWARD_PATHS)))
def test_logical_ids_are_cdktfs(stack, path):
    scope = stack
    for component in path[:-1]:
        scope = Construct(scope, component)
    bucket = aws.s3_bucket.S3Bucket(scope, path[-1])
    assert references.logical_id(bucket) == bucket.friendly_unique_id


def test_an_attribute_read_costs_no_round_trip_and_renders_as_the_token_would(stack, round_trips):
    module = Construct(stack, "module")
    bucket = aws.s3_bucket.S3Bucket(module, "bucket")
    identity = aws.data_aws_caller_identity.DataAwsCallerIdentity(stack, "caller")
    round_trips.clear()
    arn, account = bucket.arn, identity.account_id
    assert round_trips == []
    token = type(bucket).arn.fget.__wrapped__(bucket)  # what jsii returns
    assert cdktf.Token.is_unresolved(token) and arn.startswith("${aws_s3_bucket.module_bucket_")
    aws.s3_bucket.S3Bucket(stack, "ours", bucket=f"{arn}/{account}")
    aws.s3_bucket.S3Bucket(stack, "jsii", bucket=f"{token}/{identity.account_id}")
    buckets = synthesized(stack)["resource"]["aws_s3_bucket"]
    assert buckets["ours"]["bucket"] == buckets["jsii"]["bucket"]
    assert buckets["ours"]["bucket"] == arn + "/${data.aws_caller_identity.caller.account_id}"


def test_counted_overridden_and_unseen_constructs_are_read_from_jsii(stack, round_trips):
    counted = aws.s3_bucket.S3Bucket(stack, "counted", count=2)
    renamed = aws.s3_bucket.S3Bucket(stack, "renamed")
    renamed.override_logical_id("other")
    round_trips.clear()
    for bucket in (counted, renamed):
        assert references.logical_id(bucket) is None
        assert cdktf.Token.is_unresolved(bucket.arn)
    assert [request.property for request in round_trips if type(request).__name__ == "GetRequest"] == ["arn", "arn"]
    aws.s3_bucket.S3Bucket(stack, "user", bucket=f"{counted.arn}|{renamed.arn}")
    assert synthesized(stack)["resource"]["aws_s3_bucket"]["user"]["bucket"] == (
        "${aws_s3_bucket.counted.arn}|${aws_s3_bucket.other.arn}")


def test_only_plain_string_attributes_are_written_in_python():
    bucket_class = aws.s3_bucket.S3Bucket
    assert hasattr(bucket_class.arn.fget, "__wrapped__") and hasattr(bucket_class.bucket.fget, "__wrapped__")
    assert not hasattr(bucket_class.bucket_input.fget, "__wrapped__")  # the value given, not a reference
    assert not hasattr(bucket_class.versioning.fget, "__wrapped__")  # a block (an output reference object)
    assert not hasattr(bucket_class.force_destroy.fget, "__wrapped__")  # not a string
