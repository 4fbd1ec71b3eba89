"""The two checkov skips about buckets hold only for log sinks; everything else is asserted here."""

from __future__ import annotations

from tests.conftest import resources_of


def bucket_ref(name: str) -> str:
    return f"${{aws_s3_bucket.{name}.id}}"


def log_sinks(stack: dict) -> set[str]:
    """Buckets that receive access logs: S3 server access logs or load balancer access logs."""
    targets = {log["target_bucket"] for log in resources_of(stack, "aws_s3_bucket_logging").values()}
    targets |= {lb["access_logs"]["bucket"] for lb in resources_of(stack, "aws_lb").values() if "access_logs" in lb}
    return {name for name, bucket in resources_of(stack, "aws_s3_bucket").items()
            if f"${{aws_s3_bucket.{name}.bucket}}" in targets or bucket["bucket"] in targets}


def test_every_bucket_except_log_sinks_has_access_logging(stacks):
    for stack_name, stack in stacks.items():
        logged = {log["bucket"] for log in resources_of(stack, "aws_s3_bucket_logging").values()}
        sinks = log_sinks(stack)
        for name in resources_of(stack, "aws_s3_bucket"):
            assert name in sinks or bucket_ref(name) in logged, f"{stack_name}: {name} has no access logging"


def test_every_bucket_except_log_sinks_uses_a_customer_managed_key(stacks):
    for stack_name, stack in stacks.items():
        sinks = log_sinks(stack)
        encryption = {sse["bucket"]: sse["rule"][0]["apply_server_side_encryption_by_default"]
                      for sse in resources_of(stack, "aws_s3_bucket_server_side_encryption_configuration").values()}
        for name in resources_of(stack, "aws_s3_bucket"):
            default = encryption.get(bucket_ref(name))
            assert default, f"{stack_name}: {name} has no default encryption"
            if name not in sinks:
                assert default["sse_algorithm"] == "aws:kms", f"{stack_name}: {name} is not KMS-encrypted"
                assert default["kms_master_key_id"].startswith("${aws_kms_key."), name


def test_the_state_bucket_logs_to_a_sink(stacks):
    bootstrap = stacks["bootstrap"]
    assert log_sinks(bootstrap), "the bootstrap stack must keep the state bucket's access logs"


def test_access_logging_waits_for_the_sink_policy(stacks):
    """S3 checks at PutBucketLogging that log delivery may write to the target."""
    for stack_name, stack in stacks.items():
        for name, log in resources_of(stack, "aws_s3_bucket_logging").items():
            assert any(dep.startswith("aws_s3_bucket_policy.") for dep in log.get("depends_on", [])), \
                f"{stack_name}: {name} is configured before its sink's policy exists"


def test_only_disposable_environments_destroy_buckets_with_their_objects(stacks, project):
    assert not any(b.get("force_destroy") for b in resources_of(stacks["bootstrap"], "aws_s3_bucket").values())
    for env in project.environments:
        buckets = resources_of(stacks[env.name], "aws_s3_bucket").values()
        assert all(bool(b.get("force_destroy")) is (not env.database.deletion_protection) for b in buckets), env.name
