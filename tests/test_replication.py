"""S3 replication to the DR region and CloudFront failover (issue 15); rules in tests/dr_checks.py.

Also what the narrowed checkov skips for CKV_AWS_144 (cross-region replication) and CKV_AWS_310
(origin failover) leave to tests: wherever [dr] is set, every bucket holding data replicates and
the distribution fails over; the state bucket replicates wherever state.replica_region is set.
"""

from __future__ import annotations

import copy

import pytest

from tests import dr_checks
from tests.conftest import only, resources_of
from tests.network_checks import edit_documents


def test_site_replicates_and_the_distribution_fails_over_exactly_with_dr(env_stack):
    env, stack = env_stack
    dr_checks.check_site_replication(stack, env)
    dr_checks.check_failover(stack, env)


def test_every_data_bucket_replicates_wherever_dr_is_set(stacks, project):
    with_dr = [env for env in project.environments if env.dr]
    assert with_dr, "the shipped configuration has environments with [dr]"
    for env in with_dr:
        stack = stacks[env.name]
        sources = dr_checks.data_buckets(stack)
        site = {name for name, bucket in resources_of(stack, "aws_s3_bucket").items()
                if bucket["bucket"].startswith(f"{env.resource_name('site')}-")
                and not bucket["bucket"].startswith(env.resource_name("site-dr"))}
        assert site and site <= sources == set(dr_checks.replications(stack)), env.name


def test_the_state_bucket_replicates_to_its_replica_region(stacks, project):
    """The shipped project sets state.replica_region, as every configuration with [dr] should."""
    bootstrap, state = stacks["bootstrap"], project.state
    assert state.replica_region
    (source,) = [name for name, b in resources_of(bootstrap, "aws_s3_bucket").items() if b["bucket"] == state.bucket]
    assert dr_checks.data_buckets(bootstrap) == {source} == set(dr_checks.replications(bootstrap))
    dr_checks.check_replication(bootstrap, source, state.replica_region)
    replica = dr_checks.replications(bootstrap)[source]["rule"][0]["destination"]["bucket"]
    replica_bucket = resources_of(bootstrap, "aws_s3_bucket")[dr_checks.ref_name(replica, "aws_s3_bucket")]
    assert replica_bucket["lifecycle"]["prevent_destroy"] is True
    keys = [key for key in resources_of(bootstrap, "aws_kms_key").values() if "provider" in key]
    assert len(keys) == 1 and keys[0]["lifecycle"]["prevent_destroy"] is True


# Each breakage, the check that must notice, and what it must say.
REPLICATION_BREAKAGES = {
    "prefix": ("replication", "every object"), "delete-markers": ("replication", "delete markers must replicate"),
    "replica-key": ("replication", "not the replica bucket's own key"),
    "replica-region": ("replication", "the replica is not in eu-central-1"),
    "role-reads-replica": ("replication", "'sid': 'ReadSourceObjects'"),
    "role-writes-source": ("replication", "'sid': 'WriteReplicaObjects'"),
    "failover-codes": ("failover", "failover on \\[403, 404, 500, 502, 503, 504\\], not \\[500, 502, 503, 504\\]"),
    "behaviour-skips-group": ("failover", "behaviours read \\['site', 'site-with-failover'\\]"),
    "versioning-order": ("replication", "versioning of both buckets first"),
}
CHECKS = {"replication": dr_checks.check_site_replication, "failover": dr_checks.check_failover}


def widen_statement(stack: dict, sid: str) -> None:
    """The one statement `sid` of the stack's policy documents on every resource ("*")."""
    widened = []

    def edit(_, document: dict) -> None:
        for statement in document.get("statement", []):
            if statement.get("sid") == sid:
                statement["resources"] = ["*"]
                widened.append(sid)
    edit_documents(stack, edit)
    assert widened == [sid], widened


@pytest.mark.parametrize("breakage", sorted(REPLICATION_BREAKAGES))
def test_the_checks_catch_a_broken_stack(stacks, project, breakage):
    """One breakage per rule, caught by its own check for its own reason (no KeyError passes for a catch)."""
    env = project.environment("staging")
    stack = copy.deepcopy(stacks["staging"])
    (config,) = resources_of(stack, "aws_s3_bucket_replication_configuration").values()
    (rule,) = config["rule"]
    distribution = only(stack, "aws_cloudfront_distribution")
    if breakage == "prefix":
        rule["filter"] = {"prefix": "assets/"}
    elif breakage == "delete-markers":
        rule["delete_marker_replication"]["status"] = "Disabled"
    elif breakage == "replica-key":
        rule["destination"]["encryption_configuration"]["replica_kms_key_id"] = "${aws_kms_key.other.arn}"
    elif breakage == "replica-region":
        stack["provider"]["aws"][-1]["region"] = "eu-north-1"
    elif breakage == "role-reads-replica":
        widen_statement(stack, "ReadSourceObjects")
    elif breakage == "role-writes-source":
        widen_statement(stack, "WriteReplicaObjects")
    elif breakage == "failover-codes":
        distribution["origin_group"][0]["failover_criteria"]["status_codes"] = [403, 404, 500, 502, 503, 504]
    elif breakage == "behaviour-skips-group":
        distribution["default_cache_behavior"]["target_origin_id"] = "site"
    elif breakage == "versioning-order":
        config["depends_on"] = []
    check, reason = REPLICATION_BREAKAGES[breakage]
    with pytest.raises(AssertionError, match=reason):
        CHECKS[check](stack, env)
