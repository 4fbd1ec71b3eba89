"""The account baseline (issue 17): once-per-account resources, AWS Config and its rules.

AWS allows one Config recorder per account and region, and one multi-region trail covers an
account, while environments may share an account (the shipped ones do: none names an account
id). These tests pin that the loader refuses every way of configuring one of them twice, that
no synthesis ever emits two recorders for one account and region, and what the recorder, its
delivery, its rules and its notifications look like.
"""

from __future__ import annotations

import copy
import gzip
import json
import re
import tomllib
from collections import Counter
from pathlib import Path

import cdktf
import moto
import pytest

from environments.loader import ConfigError, load_project
from stacks.baseline import BaselineStack
from tests import network_checks
from tests.conftest import only, resources_of
from tests.strategies import to_toml

# The checks issue 17 and seeds 001/002 ask AWS Config to run, as AWS managed rule identifiers.
REQUIRED_RULES = {
    "RDS_STORAGE_ENCRYPTED", "RDS_INSTANCE_PUBLIC_ACCESS_CHECK", "S3_BUCKET_SSL_REQUESTS_ONLY",
    "S3_BUCKET_PUBLIC_READ_PROHIBITED", "S3_BUCKET_PUBLIC_WRITE_PROHIBITED", "S3_BUCKET_VERSIONING_ENABLED",
    "VPC_DEFAULT_SECURITY_GROUP_CLOSED", "VPC_FLOW_LOGS_ENABLED", "CLOUD_TRAIL_ENABLED",
    "CLOUD_TRAIL_LOG_FILE_VALIDATION_ENABLED", "CLOUDWATCH_LOG_GROUP_ENCRYPTED",
    "ALB_HTTP_TO_HTTPS_REDIRECTION_CHECK", "ECR_PRIVATE_IMAGE_SCANNING_ENABLED",
    "SECRETSMANAGER_ROTATION_ENABLED_CHECK",
}
# AWS's managed-rule catalogue (identifier, trigger type) as moto ships it: a source independent of
# modules/compliance.py, so a misspelt identifier or a wrong trigger type fails here, not at deploy.
MANAGED_RULE_CATALOGUE = Path(moto.__file__).parent / "config" / "resources" / "aws_managed_rules.json.gz"
ONCE_PER_ACCOUNT = ("aws_config_configuration_recorder", "aws_config_delivery_channel", "aws_cloudtrail")


def managed_rule_catalogue() -> dict[str, dict]:
    return json.loads(gzip.decompress(MANAGED_RULE_CATALOGUE.read_bytes()))["ManagedRules"]


def baseline_stack(stacks: dict[str, dict], project) -> tuple:
    (baseline,) = project.baselines
    return baseline, stacks[baseline.stack_name]


def synthesize_baseline(directory: Path) -> dict:
    project = load_project(directory)
    (baseline,) = project.baselines
    return json.loads(cdktf.Testing.synth(BaselineStack(cdktf.Testing.app(), project, baseline)))


def edit_baselines(directory: Path, tables: list[dict]) -> None:
    path = directory / "project.toml"
    document = tomllib.loads(path.read_text())
    document["baseline"] = tables
    path.write_text(to_toml(document))


def shipped_baseline(directory: Path, **changes) -> dict:
    table = tomllib.loads((directory / "project.toml").read_text())["baseline"][0]
    return {**table, **changes}


# --- once per account and region: the configuration -----------------------------------------------

CLASHES = {
    "same region, unnamed account": (
        [{}, {}], "baseline[1].region",
        "must not repeat baseline[0] (eu-west-1, the account of environments without account_id): "
        "AWS Config and CloudTrail exist once per account and region"),
    "same region, same named account": (
        [{"account_id": "111111111111"}, {"account_id": "111111111111", "cloudtrail": False}],
        "baseline[1].region", "must not repeat baseline[0] (eu-west-1, account 111111111111)"),
    "two trails in one account": (
        [{}, {"region": "us-east-1"}], "baseline[1].cloudtrail",
        "must be false: baseline[0] already has the multi-region trail of the account of environments "
        "without account_id, and one per account is enough"),
    "named and unnamed accounts mixed": (
        [{"account_id": "111111111111"}, {"region": "us-east-1", "cloudtrail": False}], "baseline[1].account_id",
        "is required when another baseline names its account"),
    "nothing to deploy": ([{"config": False, "cloudtrail": False, "xray_encryption": False}], "baseline[0].config",
                          "must be true when cloudtrail and xray_encryption are false"),
}


@pytest.mark.parametrize("case", sorted(CLASHES))
def test_a_once_per_account_clash_is_a_configuration_error(config_dir, case):
    changes, field, rule = CLASHES[case]
    edit_baselines(config_dir, [shipped_baseline(config_dir, **change) for change in changes])
    expected = f"^environments/project.toml: {re.escape(field)}: {re.escape(rule)}"
    with pytest.raises(ConfigError, match=expected) as caught:
        load_project(config_dir)
    error = caught.value
    assert (error.file, error.field) == ("environments/project.toml", field)
    assert error.rule.startswith(rule), error.rule


def test_the_same_region_in_two_named_accounts_is_two_baselines(config_dir):
    edit_baselines(config_dir, [shipped_baseline(config_dir, account_id="111111111111"),
                                shipped_baseline(config_dir, account_id="222222222222")])
    project = load_project(config_dir)
    assert [b.stack_name for b in project.baselines] == ["baseline-111111111111-eu-west-1",
                                                         "baseline-222222222222-eu-west-1"]
    assert [b.record_global_resources for b in project.baselines] == [True, True], "one per account"


def test_global_resource_types_are_recorded_in_one_region_per_account(config_dir):
    edit_baselines(config_dir, [shipped_baseline(config_dir, config=False),
                                shipped_baseline(config_dir, region="us-east-1", cloudtrail=False),
                                shipped_baseline(config_dir, region="eu-central-1", cloudtrail=False)])
    assert [b.record_global_resources for b in load_project(config_dir).baselines] == [False, True, False]


@pytest.mark.parametrize("feature", ["cloudtrail", "config"])
def test_an_environment_cannot_own_a_once_per_account_resource(config_dir, feature):
    staging = config_dir / "staging.toml"
    staging.write_text(staging.read_text().replace("[features]", f"[features]\n{feature} = true"))
    with pytest.raises(ConfigError, match=f"^environments/staging.toml: features.{feature}: ") as caught:
        load_project(config_dir)
    assert str(caught.value).startswith(f"environments/staging.toml: features.{feature}: is set once per account "
                                        f"and region: use {feature} in a [[baseline]] of project.toml")


def test_main_refuses_a_clash_with_one_line_and_exit_2(tmp_path):
    from tests.test_main_cli import assert_refused_cleanly, copy_product, run_main

    repo = copy_product(tmp_path / "repo")
    project_file = repo / "environments" / "project.toml"
    text = project_file.read_text()
    table = text[text.index("[[baseline]]"):]
    project_file.write_text(text + "\n" + table.replace("cloudtrail = true", "cloudtrail = false"))
    assert_refused_cleanly(repo, run_main(repo), re.escape(
        "environments/project.toml: baseline[1].region: must not repeat baseline[0] (eu-west-1, the account of "
        "environments without account_id): AWS Config and CloudTrail exist once per account and region"))


# --- once per account and region: the synthesis ---------------------------------------------------

def test_environments_sharing_an_account_get_one_recorder_and_one_trail(project, stacks):
    """The shipped environments name no account, so they share one: exactly one of each, in the baseline."""
    assert len(project.environments) >= 2 and {env.account_id for env in project.environments} == {None}
    for kind in ONCE_PER_ACCOUNT:
        owners = Counter(name for name, stack in stacks.items() for _ in resources_of(stack, kind))
        assert list(owners.values()) == [1], f"{kind}: {dict(owners)}"
        (owner,) = owners
        assert owner.startswith("baseline-"), f"{kind} must live in the account baseline, not in {owner}"


def test_no_environment_stack_holds_a_once_per_account_resource(project, stacks):
    for env in project.environments:
        for kind in ONCE_PER_ACCOUNT:
            assert not resources_of(stacks[env.name], kind), f"{env.name} holds {kind}"


def test_the_baseline_has_its_own_state_key(project, stacks):
    (baseline,) = project.baselines
    keys = {name: body["terraform"]["backend"]["s3"]["key"] for name, body in stacks.items()
            if "s3" in body["terraform"].get("backend", {})}
    assert keys[baseline.stack_name] == f"{baseline.stack_name}/terraform.tfstate"
    assert len(set(keys.values())) == len(keys)
    published = stacks["bootstrap"]["output"]["backend_settings"]["value"]["keys"]
    assert published[baseline.stack_name] == keys[baseline.stack_name]


# --- AWS Config ------------------------------------------------------------------------------------

def test_the_rules_are_the_required_aws_managed_rules(project, stacks):
    _, stack = baseline_stack(stacks, project)
    rules = resources_of(stack, "aws_config_config_rule").values()
    identifiers = [rule["source"]["source_identifier"] for rule in rules]
    assert sorted(identifiers) == sorted(REQUIRED_RULES)
    assert {rule["source"]["owner"] for rule in rules} == {"AWS"}
    catalogue = managed_rule_catalogue()
    assert set(identifiers) <= set(catalogue), f"not AWS managed rules: {set(identifiers) - set(catalogue)}"


def test_periodic_rules_and_only_those_have_a_frequency(project, stacks):
    """AWS refuses a frequency on a rule triggered only by configuration changes."""
    _, stack = baseline_stack(stacks, project)
    catalogue = managed_rule_catalogue()
    for rule in resources_of(stack, "aws_config_config_rule").values():
        trigger = catalogue[rule["source"]["source_identifier"]]["Trigger type"]
        frequency = rule.get("maximum_execution_frequency")
        if trigger == "Periodic":
            assert frequency == "TwentyFour_Hours", rule["name"]
        else:
            assert frequency is None, f"{rule['name']} ({trigger}) must not set a frequency"


def test_the_recorder_records_every_supported_type_and_global_types_once(project, stacks):
    baseline, stack = baseline_stack(stacks, project)
    recorder = only(stack, "aws_config_configuration_recorder")
    assert recorder["recording_group"] == {"all_supported": True,
                                           "include_global_resource_types": baseline.record_global_resources}
    assert baseline.record_global_resources, "the shipped (only) baseline is its account's first"
    role = network_checks.ref_name(recorder["role_arn"], "aws_iam_role")
    trust = network_checks.policy_document(stack, stack["resource"]["aws_iam_role"][role]["assume_role_policy"])
    assert trust["statement"][0]["principals"] == [{"type": "Service", "identifiers": ["config.amazonaws.com"]}]
    status = only(stack, "aws_config_configuration_recorder_status")
    assert status["is_enabled"] is True
    recorder_id = next(iter(resources_of(stack, "aws_config_configuration_recorder")))
    assert status["name"] == f"${{aws_config_configuration_recorder.{recorder_id}.name}}"


def test_delivery_goes_to_a_hardened_encrypted_bucket(project, stacks):
    _, stack = baseline_stack(stacks, project)
    channel = only(stack, "aws_config_delivery_channel")
    bucket_id = network_checks.ref_name(channel["s3_bucket_name"], "aws_s3_bucket")
    assert channel["s3_kms_key_arn"].startswith("${aws_kms_key.")
    for kind in ("aws_s3_bucket_versioning", "aws_s3_bucket_public_access_block", "aws_s3_bucket_policy",
                 "aws_s3_bucket_server_side_encryption_configuration", "aws_s3_bucket_logging"):
        assert any(bucket_id in body["bucket"] for body in resources_of(stack, kind).values()), kind
    encryption = next(body for body in resources_of(stack, "aws_s3_bucket_server_side_encryption_configuration")
                      .values() if bucket_id in body["bucket"])
    default = encryption["rule"][0]["apply_server_side_encryption_by_default"]
    assert default["sse_algorithm"] == "aws:kms" and default["kms_master_key_id"] == channel["s3_kms_key_arn"]


def test_non_compliance_notifies_the_warning_topic(project, stacks):
    baseline, stack = baseline_stack(stacks, project)
    rule = only(stack, "aws_cloudwatch_event_rule")
    pattern = json.loads(rule["event_pattern"])
    assert pattern["source"] == ["aws.config"] and pattern["detail-type"] == ["Config Rules Compliance Change"]
    assert pattern["detail"]["newEvaluationResult"] == {"complianceType": ["NON_COMPLIANT"]}
    assert sorted(pattern["detail"]["configRuleName"]) == sorted(
        body["name"] for body in resources_of(stack, "aws_config_config_rule").values())
    target = only(stack, "aws_cloudwatch_event_target")
    topic_id = network_checks.ref_name(target["arn"], "aws_sns_topic")
    topic = stack["resource"]["aws_sns_topic"][topic_id]
    assert topic["name"].endswith("-compliance-warning") and topic["kms_master_key_id"].startswith("${aws_kms_key.")
    emails = {s["endpoint"] for s in resources_of(stack, "aws_sns_topic_subscription").values()
              if topic_id in s["topic_arn"]}
    assert emails == set(baseline.alarm_emails)


def test_only_this_event_rule_and_the_trails_alarms_may_publish_to_the_topic(project, stacks):
    _, stack = baseline_stack(stacks, project)
    rule_name = only(stack, "aws_cloudwatch_event_rule")["name"]
    (alarm,) = resources_of(stack, "aws_cloudwatch_metric_alarm").values()
    policy = network_checks.policy_document(stack, only(stack, "aws_sns_topic_policy")["policy"])
    services = [s for s in policy["statement"] if s["principals"][0]["type"] == "Service"]
    assert [s["principals"][0]["identifiers"] for s in services] == [["events.amazonaws.com"],
                                                                      ["cloudwatch.amazonaws.com"]]
    (events, alarms) = (only_condition(s) for s in services)
    assert events["variable"] == "aws:SourceArn" and events["values"][0].endswith(f":rule/{rule_name}")
    prefix = alarms["values"][0].rsplit(":alarm:", 1)[1].removesuffix("*")
    assert alarms["variable"] == "aws:SourceArn" and alarm["alarm_name"].startswith(prefix)
    key = json.loads(next(body["policy"] for body in resources_of(stack, "aws_kms_key").values()
                          if "Encrypts the" in body["description"] and "topic" in body["description"]))
    granted = [s["Principal"] for s in key["Statement"] if "Service" in s["Principal"]]
    assert granted == [{"Service": "events.amazonaws.com"}, {"Service": "cloudwatch.amazonaws.com"}]


def only_condition(statement: dict) -> dict:
    (condition,) = statement["condition"]
    return condition


def test_the_config_role_writes_only_its_own_prefix(project, stacks):
    _, stack = baseline_stack(stacks, project)
    check_config_role_writes_only_its_own_prefix(stack)
    attachments = [a["policy_arn"] for a in resources_of(stack, "aws_iam_role_policy_attachment").values()]
    assert attachments == ["arn:${data.aws_partition.partition.partition}:iam::aws:policy/service-role/AWS_ConfigRole"]


def test_the_config_prefix_check_catches_a_write_to_the_whole_bucket(project, stacks):
    _, stack = baseline_stack(stacks, project)
    broken = copy.deepcopy(stack)
    delivers = []

    def edit(_, document: dict) -> None:
        for statement in document["statement"]:
            if statement.get("sid") == "Deliver":
                statement["resources"] = [statement["resources"][0].split("/AWSLogs/")[0] + "/*"]
                delivers.append(statement)
    network_checks.edit_documents(broken, edit)
    assert len(delivers) == 1, delivers
    with pytest.raises(AssertionError, match=r"the Config role writes to .*/\*'\], not only"):
        check_config_role_writes_only_its_own_prefix(broken)


def check_config_role_writes_only_its_own_prefix(stack: dict) -> None:
    """Its S3 writes name exactly AWS Config's prefix of its own bucket; nothing else it holds is a wildcard."""
    role_policy = next(body for body in resources_of(stack, "aws_iam_role_policy").values()
                       if body["name"].endswith("-config-policy"))
    bucket = network_checks.ref_name(only(stack, "aws_config_delivery_channel")["s3_bucket_name"], "aws_s3_bucket")
    own_prefix = f"${{aws_s3_bucket.{bucket}.arn}}/AWSLogs/{network_checks.ACCOUNT_REF}/Config/*"
    writes = []
    for statement in network_checks.policy_document(stack, role_policy["policy"])["statement"]:
        assert "*" not in statement["resources"] and not any(a.endswith("*") for a in statement["actions"])
        if any(action.startswith("s3:") and not action.startswith(("s3:Get", "s3:List")) for action in
               statement["actions"]):
            writes += statement["resources"]
    assert writes == [own_prefix], f"the Config role writes to {writes}, not only {own_prefix}"


def test_the_trail_is_multi_region_validated_encrypted_and_records_reads(project, stacks):
    baseline, stack = baseline_stack(stacks, project)
    assert baseline.cloudtrail, "the shipped baseline owns the account's trail"
    trail = only(stack, "aws_cloudtrail")
    assert trail["is_multi_region_trail"] is True and trail["enable_log_file_validation"] is True
    assert trail["include_global_service_events"] is True
    network_checks.ref_name(trail["kms_key_id"], "aws_kms_key")
    assert trail["cloud_watch_logs_group_arn"].startswith("${aws_cloudwatch_log_group.")
    assert trail["event_selector"][0]["include_management_events"] is True
    assert trail["event_selector"][0]["read_write_type"] == "All", "GetSecretValue is a read event"
    group = only(stack, "aws_cloudwatch_log_group")
    assert group["retention_in_days"] == baseline.log_retention_days


# --- toggles off leave nothing behind -------------------------------------------------------------

# The warning topic serves both (Config's events, the trail's alarm): it goes only with both off.
CONFIG_TYPES = ("aws_config_configuration_recorder", "aws_config_delivery_channel", "aws_config_config_rule",
                "aws_config_configuration_recorder_status", "aws_cloudwatch_event_rule")
TRAIL_TYPES = ("aws_cloudtrail", "aws_cloudwatch_log_group", "aws_cloudwatch_log_metric_filter",
               "aws_cloudwatch_metric_alarm")


@pytest.mark.parametrize(("change", "gone", "kept"), [
    ({"config": False}, CONFIG_TYPES, TRAIL_TYPES),
    ({"cloudtrail": False}, TRAIL_TYPES, CONFIG_TYPES),
], ids=["config off", "cloudtrail off"])
def test_a_toggle_off_leaves_nothing_behind(config_dir, change, gone, kept):
    edit_baselines(config_dir, [shipped_baseline(config_dir, **change)])
    stack = synthesize_baseline(config_dir)
    assert {kind for kind in gone if resources_of(stack, kind)} == set()
    assert all(resources_of(stack, kind) for kind in kept)


def test_no_baseline_means_no_baseline_stack(config_dir):
    edit_baselines(config_dir, [])
    project = load_project(config_dir)
    assert not [name for name in project.stack_names if name.startswith("baseline")]

