"""SPEC section 3: the state backend, asserted on the synthesized bootstrap stack."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import only, resources_of
from tests.iam_checks import check_key_policy_principals, key_policies
from tests.network_checks import policy_document

REFERENCE = re.compile(r"^\$\{(?:data\.)?([a-z0-9_]+)\.([A-Za-z0-9_-]+)\.([a-z_]+)\}$")


@pytest.fixture(scope="module")
def bootstrap(stacks):
    return stacks["bootstrap"]


@pytest.fixture(scope="module")
def state_bucket_id(bootstrap, project) -> str:
    (logical_id,) = [name for name, bucket in resources_of(bootstrap, "aws_s3_bucket").items()
                     if bucket["bucket"] == project.state.bucket]
    return logical_id


@pytest.fixture(scope="module")
def part(bootstrap, state_bucket_id):
    """The state bucket's resource of a given type (versioning, policy, ...)."""
    def find(resource_type: str) -> dict:
        (found,) = [r for r in resources_of(bootstrap, resource_type).values()
                    if r["bucket"] == f"${{aws_s3_bucket.{state_bucket_id}.id}}"]
        return found
    return find


def primary(stack: dict, resource_type: str) -> dict:
    """The one resource of a type in the state's own region (the replica's are made through another provider)."""
    (found,) = [r for r in resources_of(stack, resource_type).values() if "provider" not in r]
    return found


def referenced(stack: dict, expression: str, kind: str = "resource") -> tuple[dict, str]:
    """Follow `${type.name.attr}` to the referenced block; returns (block, attribute)."""
    match = REFERENCE.match(expression)
    assert match, f"{expression!r} is not a reference"
    resource_type, name, attribute = match.groups()
    return stack[kind][resource_type][name], attribute


def policy_statements(stack: dict, expression: str) -> list[dict]:
    """The statements of a policy attribute's document (inline JSON or a data source), in block form."""
    return policy_document(stack, expression)["statement"]


def test_state_bucket_is_named_from_config_and_cannot_be_destroyed(bootstrap, state_bucket_id):
    bucket = resources_of(bootstrap, "aws_s3_bucket")[state_bucket_id]
    assert bucket["lifecycle"]["prevent_destroy"] is True


def test_state_bucket_keeps_every_version(bootstrap, part):
    versioning = part("aws_s3_bucket_versioning")
    assert versioning["versioning_configuration"]["status"] == "Enabled"


def test_state_bucket_encrypts_with_the_rotating_customer_managed_key(bootstrap, part):
    rule = part("aws_s3_bucket_server_side_encryption_configuration")["rule"][0]
    default = rule["apply_server_side_encryption_by_default"]
    assert default["sse_algorithm"] == "aws:kms"
    assert rule["bucket_key_enabled"] is True
    key, attribute = referenced(bootstrap, default["kms_master_key_id"])
    assert attribute == "arn"
    assert key is primary(bootstrap, "aws_kms_key")
    assert key["enable_key_rotation"] is True
    assert key["lifecycle"]["prevent_destroy"] is True


def test_key_alias_is_the_one_the_backends_use(bootstrap, project):
    assert primary(bootstrap, "aws_kms_alias")["name"] == project.state.kms_alias


def test_key_policy_delegates_to_named_account_principals_only(bootstrap):
    for key_id, policy in key_policies(bootstrap).items():
        check_key_policy_principals(bootstrap, key_id)
        for statement in policy["Statement"]:
            assert statement["Effect"] == "Allow"


def test_state_bucket_blocks_all_public_access_and_enforces_ownership(bootstrap, part):
    block = part("aws_s3_bucket_public_access_block")
    for setting in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
        assert block[setting] is True, setting
    ownership = part("aws_s3_bucket_ownership_controls")
    assert ownership["rule"]["object_ownership"] == "BucketOwnerEnforced"


def test_state_bucket_policy_denies_plain_http_and_unencrypted_uploads(bootstrap, part):
    policy = part("aws_s3_bucket_policy")
    statements = {s["sid"]: s for s in policy_statements(bootstrap, policy["policy"])}

    tls = statements["DenyInsecureTransport"]
    assert tls["effect"] == "Deny" and tls["actions"] == ["s3:*"]
    assert tls["condition"] == [{"test": "Bool", "variable": "aws:SecureTransport", "values": ["false"]}]
    assert len(tls["resources"]) == 2  # the bucket and every object in it

    upload = statements["DenyUploadsNotEncryptedWithKms"]
    assert upload["effect"] == "Deny" and upload["actions"] == ["s3:PutObject"]
    assert upload["condition"][0]["variable"] == "s3:x-amz-server-side-encryption"
    assert upload["condition"][0]["values"] == ["aws:kms"]
    assert upload["condition"][0]["test"].startswith("StringNotEquals")


def test_state_bucket_lifecycle_expires_old_versions_and_abandoned_uploads(bootstrap, project, part):
    (rule,) = part("aws_s3_bucket_lifecycle_configuration")["rule"]
    assert rule["status"] == "Enabled"
    assert rule["noncurrent_version_expiration"][0]["noncurrent_days"] == project.state.noncurrent_version_days
    assert rule["abort_incomplete_multipart_upload"][0]["days_after_initiation"] >= 1


def test_lock_table_matches_what_the_s3_backend_expects(bootstrap, project):
    table = only(bootstrap, "aws_dynamodb_table")
    assert table["name"] == project.state.lock_table
    assert table["hash_key"] == "LockID"
    assert table["attribute"] == [{"name": "LockID", "type": "S"}]
    assert table["billing_mode"] == "PAY_PER_REQUEST"


def test_lock_table_is_recoverable_encrypted_and_protected(bootstrap):
    table = only(bootstrap, "aws_dynamodb_table")
    assert table["point_in_time_recovery"]["enabled"] is True
    assert table["server_side_encryption"]["enabled"] is True
    key, _ = referenced(bootstrap, table["server_side_encryption"]["kms_key_arn"])
    assert key is primary(bootstrap, "aws_kms_key"), "the table must use the same CMK as the bucket"
    assert table["deletion_protection_enabled"] is True
    assert table["lifecycle"]["prevent_destroy"] is True


def test_bootstrap_keeps_local_state_at_a_relative_path(bootstrap):
    backend = bootstrap["terraform"]["backend"]
    assert list(backend) == ["local"]
    path = backend["local"]["path"]
    assert not path.startswith("/"), "an absolute path would differ per machine"
    assert path.endswith(".tfstate")


def test_bootstrap_outputs_what_environment_stacks_need(bootstrap, project):
    outputs = bootstrap["output"]
    assert {"state_bucket", "lock_table", "kms_key_arn", "backend_settings"} <= set(outputs)
    settings = outputs["backend_settings"]["value"]
    assert settings["encrypt"] is True and settings["use_lockfile"] is True
    assert settings["kms_key_id"] == project.state.kms_alias
    assert settings["keys"] == {name: f"{name}/terraform.tfstate"
                                for name in project.stack_names if name != "bootstrap"}


def test_bootstrap_is_tagged_through_provider_default_tags(bootstrap, project):
    tags = bootstrap["provider"]["aws"][0]["default_tags"][0]["tags"]
    assert tags == {
        "Environment": "shared",
        "Application": project.application,
        "Project": project.application,
        "Owner": project.owner,
        "CostCenter": project.cost_center,
        "ManagedBy": "cdktf",
    }


def test_only_expected_resource_types_exist(bootstrap):
    """A new resource in the state stack should be a deliberate decision with its own tests."""
    assert sorted(bootstrap["resource"]) == sorted([
        "aws_dynamodb_table", "aws_kms_alias", "aws_kms_key", "aws_s3_bucket",
        "aws_s3_bucket_lifecycle_configuration", "aws_s3_bucket_logging", "aws_s3_bucket_ownership_controls",
        "aws_s3_bucket_policy", "aws_iam_role", "aws_iam_role_policy", "aws_s3_bucket_replication_configuration",
        "aws_s3_bucket_public_access_block", "aws_s3_bucket_server_side_encryption_configuration",
        "aws_s3_bucket_versioning",
    ])


def test_bootstrap_state_can_move_into_its_own_bucket(project):
    """After the first deploy: same resources, state in the bucket under a key no environment can use."""
    import dataclasses

    import cdktf

    from bootstrap.stack import BootstrapStack

    moved = dataclasses.replace(project, state=dataclasses.replace(project.state, bootstrap_state_in_bucket=True))
    stack = json.loads(cdktf.Testing.synth(BootstrapStack(cdktf.Testing.app(), moved)))
    backend = stack["terraform"]["backend"]["s3"]
    assert backend["key"] == "bootstrap/terraform.tfstate"
    assert backend["bucket"] == project.state.bucket and backend["use_lockfile"] is True
    assert backend["encrypt"] is True and backend["dynamodb_table"] == project.state.lock_table
    assert all(env.state_key != backend["key"] for env in project.environments)
