"""Issue 21 on synthesized stacks: each corrected form pinned, and each check broken in memory once.

Rules in tests/aws_form_checks.py. The ALB log writer is checked in one region of each kind of AWS's
table: eu-west-1 (shipped; available before August 2022: the ELB account) and eu-south-2 (opened later:
the log delivery service principal).
"""

from __future__ import annotations

import copy
import dataclasses
import json

import cdktf
import pytest

from core.elb import ELB_LOG_ACCOUNTS, LOG_DELIVERY_SERVICE
from modules.database_bootstrap import execution_role_name
from stacks.environment import EnvironmentStack
from tests import aws_form_checks as checks
from tests.conftest import resources_of
from tests.network_checks import edit_documents

NEWER_REGION = "eu-south-2"  # Europe (Spain), opened November 2022


@pytest.fixture(scope="module")
def newer_region_stack(project) -> dict:
    env = dataclasses.replace(project.environment("dev"), region=NEWER_REGION)
    return json.loads(cdktf.Testing.synth(EnvironmentStack(cdktf.Testing.app(), project, env)))


def baseline(stacks: dict) -> dict:
    (name,) = [name for name in stacks if name.startswith("baseline-")]
    return stacks[name]


def bootstrap_roles(project) -> tuple[str, ...]:
    return tuple(execution_role_name(f"{env.application}-{env.name}") for env in project.environments)


def state_buckets(project) -> tuple[str, ...]:
    return (project.state.bucket, f"{project.state.bucket}-replica")


# --- the corrected forms ------------------------------------------------------------------------


def test_eventbridge_key_grants_carry_no_source_condition(stacks):
    for name in ("production", "staging", "dev", next(n for n in stacks if n.startswith("baseline-"))):
        checks.check_eventbridge_grants(stacks[name])


def test_the_region_table_knows_both_kinds():
    assert "eu-west-1" in ELB_LOG_ACCOUNTS and NEWER_REGION not in ELB_LOG_ACCOUNTS


def test_alb_logs_are_written_by_the_elb_account_in_an_older_region(env_stack):
    env, stack = env_stack
    assert env.region == "eu-west-1"
    checks.check_alb_log_writer(stack, env.region)


def test_alb_logs_are_written_by_the_service_principal_in_a_newer_region(newer_region_stack):
    checks.check_alb_log_writer(newer_region_stack, NEWER_REGION)


def test_cloudfront_log_delivery_has_the_acl_check_statement(env_stack):
    checks.check_cloudfront_log_acl_check(env_stack[1])


def test_no_stack_grants_xray(stacks):
    for stack in stacks.values():
        checks.check_no_xray_grant(stack)


def test_production_runs_every_container_by_digest(stacks):
    images = checks.container_images(stacks["production"])
    families = {name.split("/")[0] for name in images}
    assert any(f.endswith("-api") for f in families) and any(f.endswith("-db-bootstrap") for f in families)
    assert any(name.endswith("/otel-collector") for name in images), "production traces: the collector counts"
    checks.check_images_pinned_by_digest(stacks["production"])


def test_the_backup_role_touches_only_this_environments_recovery_points(env_stack):
    env, stack = env_stack
    checks.check_backup_role_scoped(stack, env)


def test_the_trail_records_state_objects_and_alarms_on_master_secret_reads(stacks, project):
    checks.check_trail_watches_state_and_secrets(baseline(stacks), state_buckets(project), bootstrap_roles(project))


# --- each check bites ------------------------------------------------------------------------------


def _key_statement(stack: dict, service: str) -> dict:
    key_id, _ = next(checks.key_statements(stack, service))
    key = resources_of(stack, "aws_kms_key")[key_id]
    policy = json.loads(key["policy"])
    return key, policy, next(s for s in policy["Statement"] if s["Principal"].get("Service") == service)


def test_a_source_condition_on_eventbridges_key_grant_is_caught(stacks):
    stack = copy.deepcopy(stacks["production"])
    key, policy, item = _key_statement(stack, "events.amazonaws.com")
    item["Condition"] = {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    key["policy"] = json.dumps(policy)
    with pytest.raises(AssertionError, match="EventBridge's key statement takes no condition"):
        checks.check_eventbridge_grants(stack)


def test_the_service_principal_in_an_older_region_is_caught(stacks):
    stack = copy.deepcopy(stacks["production"])
    checks.alb_log_statement(stack)  # the statement exists before it is broken
    def edit(_, document: dict) -> None:
        for item in document["statement"]:
            if item.get("sid") == "AlbLogDelivery":
                item["principals"] = [{"type": "Service", "identifiers": [LOG_DELIVERY_SERVICE]}]
    edit_documents(stack, edit)
    with pytest.raises(AssertionError, match="eu-west-1: "):
        checks.check_alb_log_writer(stack, "eu-west-1")


def test_a_source_condition_on_the_alb_service_principal_is_caught(newer_region_stack):
    stack = copy.deepcopy(newer_region_stack)
    def edit(_, document: dict) -> None:
        for item in document["statement"]:
            if item.get("sid") == "AlbLogDelivery":
                item["condition"] = [{"test": "StringEquals", "variable": "aws:SourceAccount", "values": ["1"]}]
    edit_documents(stack, edit)
    with pytest.raises(AssertionError, match="a condition AWS does not document"):
        checks.check_alb_log_writer(stack, NEWER_REGION)


def test_a_missing_acl_check_statement_is_caught(stacks):
    stack = copy.deepcopy(stacks["production"])
    def edit(_, document: dict) -> None:
        document["statement"] = [s for s in document["statement"] if s.get("sid") != "CloudFrontLogDeliveryAclCheck"]
    edit_documents(stack, edit)
    with pytest.raises(AssertionError, match="no s3:GetBucketAcl statement"):
        checks.check_cloudfront_log_acl_check(stack)


def test_an_xray_grant_is_caught(stacks):
    stack = copy.deepcopy(baseline(stacks))
    key = next(body for body in resources_of(stack, "aws_kms_key").values() if "X-Ray" in body["description"])
    policy = json.loads(key["policy"])
    policy["Statement"].append({"Effect": "Allow", "Principal": {"Service": "xray.amazonaws.com"},
                                "Action": ["kms:Decrypt"], "Resource": "*"})
    key["policy"] = json.dumps(policy)
    with pytest.raises(AssertionError, match="undocumented grant to xray"):
        checks.check_no_xray_grant(stack)


@pytest.mark.parametrize("container", ["api", "otel-collector", "db-bootstrap"])
def test_an_image_by_tag_in_production_is_caught(stacks, container):
    stack = copy.deepcopy(stacks["production"])
    for task in resources_of(stack, "aws_ecs_task_definition").values():
        definitions = json.loads(task["container_definitions"])
        for definition in definitions:
            if definition["name"] == container:
                definition["image"] = definition["image"].split("@")[0]
        task["container_definitions"] = json.dumps(definitions)
    with pytest.raises(AssertionError, match=f"images not pinned by digest: .*/{container}"):
        checks.check_images_pinned_by_digest(stack)


@pytest.mark.parametrize("sid", ["DeleteItsRecoveryPoints", "TagItsRecoveryPoints"])
def test_a_backup_role_reaching_every_environment_is_caught(stacks, project, sid):
    stack = copy.deepcopy(stacks["production"])
    def edit(_, document: dict) -> None:
        for item in document["statement"]:
            if item.get("sid") == sid:
                del item["condition"]
    edit_documents(stack, edit)
    with pytest.raises(AssertionError, match="on any environment's recovery points"):
        checks.check_backup_role_scoped(stack, project.environment("production"))


@pytest.mark.parametrize("breakage", ["no-data-events", "another-reader"])
def test_a_trail_blind_to_state_or_secret_reads_is_caught(stacks, project, breakage):
    stack = copy.deepcopy(baseline(stacks))
    if breakage == "no-data-events":
        (trail,) = resources_of(stack, "aws_cloudtrail").values()
        trail["event_selector"][0]["data_resource"][0]["values"].pop()
        match = "state objects not recorded"
    else:
        (metric_filter,) = resources_of(stack, "aws_cloudwatch_log_metric_filter").values()
        metric_filter["pattern"] = metric_filter["pattern"].replace(
            " }", ' && ($.userIdentity.arn != "arn:aws:sts::1:assumed-role/webapp-dev-api-task/*") }')
        match = "readers allowed by the filter"
    with pytest.raises(AssertionError, match=match):
        checks.check_trail_watches_state_and_secrets(stack, state_buckets(project), bootstrap_roles(project))
