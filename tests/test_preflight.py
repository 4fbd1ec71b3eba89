"""ops/preflight.py against a real moto server on 127.0.0.1.

Every test starts from an empty emulator, builds the state backend the bootstrap stack would
create (versioned, KMS-encrypted, public access blocked bucket; LockID lock table) with boto3,
then breaks exactly one thing and asserts that exactly the matching check fails, with a message
that names the problem. The correct backend passing is the control that makes each failure count.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace

import boto3
import pytest

from environments.loader import load_project
from environments.model import ProjectConfig
from ops import cli, errors, preflight
from ops import project as project_module
from ops.tools import Tools
from tests.conftest import ENVIRONMENTS_DIR, ROOT
from tests.moto_server import loopback_moto, reset_emulator

pytestmark = pytest.mark.emulator

LOOPBACK = "127.0.0.1"
MOTO_ACCOUNT = "123456789012"  # the account moto reports for any credentials
OTHER_ACCOUNT = "210987654321"
ENVIRONMENT = "dev"
# The four S3 public-access blocks, spelled out here rather than taken from the module under test.
PUBLIC_ACCESS_BLOCKS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
ALL_BACKEND_CHECKS = ["credentials", "account", "state bucket", "state bucket versioning",
                      "state bucket encryption", "state bucket public access", "lock table", "state lock"]


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory) -> Iterator[str]:
    """moto server on a free loopback port with fake credentials; nothing of this machine's AWS setup is read."""
    scratch = tmp_path_factory.mktemp("aws")
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("AWS_")]:
            patch.delenv(name)
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_CONFIG_FILE", str(scratch / "no-config"))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(scratch / "no-credentials"))
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        with loopback_moto(patch) as endpoint:
            yield endpoint


@pytest.fixture
def endpoint(moto_endpoint, monkeypatch) -> str:
    """An empty emulator, named by INFRA_AWS_ENDPOINT as a user would."""
    reset_emulator(moto_endpoint)
    monkeypatch.setenv(project_module.EMULATOR_VARIABLE, moto_endpoint)
    return moto_endpoint


@pytest.fixture
def project(endpoint) -> ProjectConfig:
    return load_project(ENVIRONMENTS_DIR, emulator_endpoint=endpoint)


class Aws:
    """boto3 clients on the emulator, and the correct state backend built from them."""

    def __init__(self, endpoint: str, project: ProjectConfig):
        self.project, self.state = project, project.state

        def client(service: str):
            return boto3.client(service, endpoint_url=endpoint, region_name=project.state.region)

        self.s3, self.dynamodb, self.kms = client("s3"), client("dynamodb"), client("kms")

    def create_backend(self) -> None:
        key = self.kms.create_key(Description="state key")["KeyMetadata"]
        self.kms.create_alias(AliasName=self.state.kms_alias, TargetKeyId=key["KeyId"])
        bucket = self.state.bucket
        self.s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": self.state.region})
        self.s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        self.encrypt_with({"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key["Arn"]})
        self.block_public_access(**dict.fromkeys(PUBLIC_ACCESS_BLOCKS, True))
        self.create_table("LockID", "S")

    def encrypt_with(self, default: dict[str, str]) -> None:
        self.s3.put_bucket_encryption(Bucket=self.state.bucket, ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": default}]})

    def block_public_access(self, **settings: bool) -> None:
        self.s3.put_public_access_block(Bucket=self.state.bucket, PublicAccessBlockConfiguration=settings)

    def create_table(self, hash_key: str, key_type: str) -> None:
        self.dynamodb.create_table(
            TableName=self.state.lock_table, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": hash_key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": hash_key, "AttributeType": key_type}],
        )

    def lock_path(self, environment: str) -> str:
        return f"{self.state.bucket}/{self.project.environment(environment).state_key}"

    def hold_dynamodb_lock(self, environment: str, info: dict) -> None:
        """What Terraform's S3 backend writes while it holds the lock (plus the digest item it always keeps)."""
        path = self.lock_path(environment)
        self.dynamodb.put_item(TableName=self.state.lock_table,
                               Item={"LockID": {"S": path}, "Info": {"S": json.dumps(info)}})
        self.dynamodb.put_item(TableName=self.state.lock_table,
                               Item={"LockID": {"S": f"{path}-md5"}, "Digest": {"S": "0" * 32}})

    def hold_s3_lock(self, environment: str, info: dict) -> None:
        key = f"{self.project.environment(environment).state_key}.tflock"
        self.s3.put_object(Bucket=self.state.bucket, Key=key, Body=json.dumps(info).encode())


@pytest.fixture
def aws(endpoint, project) -> Aws:
    return Aws(endpoint, project)


@pytest.fixture
def backend(aws) -> Aws:
    aws.create_backend()
    return aws


def lock_info(aws: Aws, environment: str, lock_id: str, who: str, operation: str) -> dict:
    """Lock info exactly as Terraform 1.11 records it (state/statemgr LockInfo)."""
    return {"ID": lock_id, "Operation": operation, "Info": "", "Who": who, "Version": "1.11.4",
            "Created": "2026-11-24T03:12:45.123456789Z", "Path": aws.lock_path(environment)}


def failed(result: preflight.PreflightResult) -> dict[str, str]:
    return {check.name: check.message for check in result.failures}


# --- the control -----------------------------------------------------------------------------------

def test_a_correct_backend_passes_every_check(backend, project):
    result = preflight.run_preflight(project, ENVIRONMENT)
    assert failed(result) == {}
    assert [check.name for check in result.checks] == ALL_BACKEND_CHECKS
    assert result.ok and result.account == MOTO_ACCOUNT and result.locks == ()


def test_the_configured_account_passes(backend, project):
    result = preflight.run_preflight(replace(project, account_id=MOTO_ACCOUNT), ENVIRONMENT)
    assert result.ok, failed(result)
    assert "is the configured account_id" in result.check("account").message


def test_bootstrap_preflight_checks_only_credentials_and_account(aws, project):
    """Before the bootstrap exists there is no bucket to check: that must not block deploying it."""
    result = preflight.run_preflight(project, "bootstrap")
    assert result.ok and [check.name for check in result.checks] == ["credentials", "account"]


def test_state_bucket_status_tells_missing_from_existing(aws, project):
    """What deploy-bootstrap uses to refuse creating a second state backend."""
    assert preflight.state_bucket_status(project) == "missing"
    aws.create_backend()
    assert preflight.state_bucket_status(project) == "exists"


# --- one broken thing at a time ----------------------------------------------------------------------

def test_missing_bucket_fails_and_says_to_bootstrap(aws, project):
    aws.create_table("LockID", "S")
    result = preflight.run_preflight(project, ENVIRONMENT)
    assert failed(result) == {"state bucket": f"state bucket {project.state.bucket} does not exist: "
                                              f"{preflight.BOOTSTRAP_HINT}"}


def test_suspended_versioning_fails(backend, project):
    backend.s3.put_bucket_versioning(Bucket=project.state.bucket, VersioningConfiguration={"Status": "Suspended"})
    result = preflight.run_preflight(project, ENVIRONMENT)
    assert list(failed(result)) == ["state bucket versioning"]
    assert "versioning Suspended; it must be Enabled" in failed(result)["state bucket versioning"]


def test_sse_s3_instead_of_kms_fails(backend, project):
    backend.encrypt_with({"SSEAlgorithm": "AES256"})
    result = preflight.run_preflight(project, ENVIRONMENT)
    assert list(failed(result)) == ["state bucket encryption"]
    assert "default encryption is AES256; it must be aws:kms" in failed(result)["state bucket encryption"]


def test_no_default_encryption_fails(backend, project):
    backend.s3.delete_bucket_encryption(Bucket=project.state.bucket)
    result = preflight.run_preflight(project, ENVIRONMENT)
    assert list(failed(result)) == ["state bucket encryption"]
    assert "it must be aws:kms" in failed(result)["state bucket encryption"]


@pytest.mark.parametrize("setting", PUBLIC_ACCESS_BLOCKS)
def test_each_public_access_block_turned_off_fails(backend, project, setting):
    backend.block_public_access(**{name: name != setting for name in PUBLIC_ACCESS_BLOCKS})
    result = preflight.run_preflight(project, ENVIRONMENT)
    assert failed(result) == {"state bucket public access": f"state bucket {project.state.bucket} public access "
                                                            f"blocks are off: {setting} (all four must be on)"}


def test_missing_public_access_block_configuration_fails(backend, project):
    backend.s3.delete_public_access_block(Bucket=project.state.bucket)
    result = preflight.run_preflight(project, ENVIRONMENT)
    assert "are off: " + ", ".join(PUBLIC_ACCESS_BLOCKS) in failed(result)["state bucket public access"]


def test_missing_lock_table_fails_and_says_to_bootstrap(backend, project):
    backend.dynamodb.delete_table(TableName=project.state.lock_table)
    result = preflight.run_preflight(project, ENVIRONMENT)
    assert failed(result) == {"lock table": f"lock table {project.state.lock_table} does not exist: "
                                            f"{preflight.BOOTSTRAP_HINT}"}


@pytest.mark.parametrize(("hash_key", "key_type", "shown"), [("id", "S", "id HASH (S)"),
                                                             ("LockID", "N", "LockID HASH (N)")])
def test_wrong_lock_table_key_fails(backend, project, hash_key, key_type, shown):
    backend.dynamodb.delete_table(TableName=project.state.lock_table)
    backend.create_table(hash_key, key_type)
    result = preflight.run_preflight(project, ENVIRONMENT)
    assert failed(result) == {"lock table": f"lock table {project.state.lock_table} key schema is {shown}; "
                                            "Terraform needs exactly hash key LockID (S)"}


def test_wrong_project_account_fails(backend, project):
    result = preflight.run_preflight(replace(project, account_id=OTHER_ACCOUNT), ENVIRONMENT)
    assert failed(result) == {"account": f"the credentials are for account {MOTO_ACCOUNT}, but "
                                         f"environments/project.toml sets account_id = {OTHER_ACCOUNT}"}


def test_the_environment_account_wins_over_the_project_account(backend, project):
    """An environment may live in its own account: its account_id is the one that must match."""
    envs = tuple(replace(env, account_id=OTHER_ACCOUNT) if env.name == ENVIRONMENT else env
                 for env in project.environments)
    mismatch = replace(project, account_id=MOTO_ACCOUNT, environments=envs)
    assert failed(preflight.run_preflight(mismatch, ENVIRONMENT)) == {
        "account": f"the credentials are for account {MOTO_ACCOUNT}, but environments/dev.toml sets "
                   f"account_id = {OTHER_ACCOUNT}"}
    match = replace(project, account_id=OTHER_ACCOUNT,
                    environments=tuple(replace(env, account_id=MOTO_ACCOUNT) for env in project.environments))
    assert preflight.run_preflight(match, ENVIRONMENT).ok


def test_unreachable_endpoint_fails_the_credentials_check_only(monkeypatch, project):
    """Nothing listens on port 1: one clear line, and no check runs on top of broken credentials."""
    unreachable = replace(project, emulator=replace(project.emulator, endpoint=f"http://{LOOPBACK}:1"))
    result = preflight.run_preflight(unreachable, ENVIRONMENT)
    assert list(failed(result)) == ["credentials"] and len(result.checks) == 1
    assert "the AWS credentials do not work: Could not connect" in failed(result)["credentials"]


def test_missing_credentials_fail_with_a_hint(endpoint, project, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = preflight.run_preflight(project, ENVIRONMENT)
    assert failed(result) == {"credentials": "no AWS credentials found (set AWS_PROFILE, or log in with aws sso login)"}


# --- held locks ------------------------------------------------------------------------------------

def test_a_lock_held_on_the_environment_is_listed_and_fails(backend, project):
    info = lock_info(backend, ENVIRONMENT, "0d9c2a61-5e0b-4c4e-9a51-2f3b7a1c9e11", "alice@laptop",
                     "OperationTypeApply")
    backend.hold_dynamodb_lock(ENVIRONMENT, info)
    backend.hold_s3_lock(ENVIRONMENT, info)

    result = preflight.run_preflight(project, ENVIRONMENT)

    assert failed(result) == {"state lock": "dev state is locked by alice@laptop since 2026-11-24T03:12:45.123456789Z "
                                            "(OperationTypeApply, ID 0d9c2a61-5e0b-4c4e-9a51-2f3b7a1c9e11)"}
    (lock,) = result.locks  # one lock, recorded in both places: listed once, the -md5 digest item never
    assert (lock.who, lock.operation, lock.lock_id, lock.stack) == (
        "alice@laptop", "OperationTypeApply", "0d9c2a61-5e0b-4c4e-9a51-2f3b7a1c9e11", ENVIRONMENT)
    assert len(lock.sources) == 2
    assert lock.unlock_command == "terraform force-unlock 0d9c2a61-5e0b-4c4e-9a51-2f3b7a1c9e11"


def test_locks_elsewhere_are_listed_but_do_not_block(backend, project):
    """A plan running on staging says nothing about deploying dev, but it is worth seeing."""
    backend.hold_s3_lock("staging", lock_info(backend, "staging", "7f1e-staging", "ci@runner", "OperationTypePlan"))
    backend.hold_dynamodb_lock("production", lock_info(backend, "production", "a1b2-production", "bob@desk",
                                                       "OperationTypeApply"))
    result = preflight.run_preflight(project, ENVIRONMENT)
    assert result.ok, failed(result)
    assert {(lock.stack, lock.lock_id, lock.who) for lock in result.locks} == {
        ("staging", "7f1e-staging", "ci@runner"), ("production", "a1b2-production", "bob@desk")}


def test_a_lock_on_the_bootstrap_state_in_the_bucket_names_the_bootstrap_stack(backend, project):
    info = lock_info(backend, ENVIRONMENT, "b00t-lock", "carol@laptop", "OperationTypeApply")
    backend.s3.put_object(Bucket=project.state.bucket, Key=f"{project.state.bootstrap_key}.tflock",
                          Body=json.dumps(info).encode())
    result = preflight.run_preflight(project, ENVIRONMENT)
    assert result.ok, failed(result)
    (lock,) = result.locks
    assert lock.stack == "bootstrap" and "cdktf.out/stacks/bootstrap: terraform force-unlock b00t-lock" in lock.hint()


def test_a_baseline_gets_the_whole_preflight_and_its_own_lock_blocks_it(backend, project):
    """Any stack by name: a baseline's state lives in the bucket, so it gets every backend check, and a
    lock on its own state key fails it (named as the baseline's) while leaving dev's deploy alone."""
    (baseline,) = project.baselines
    info = {**lock_info(backend, ENVIRONMENT, "base-lock", "dave@desk", "OperationTypeApply"),
            "Path": f"{project.state.bucket}/{baseline.state_key}"}
    backend.s3.put_object(Bucket=project.state.bucket, Key=f"{baseline.state_key}.tflock",
                          Body=json.dumps(info).encode())
    result = preflight.run_preflight(project, baseline.stack_name)
    assert [check.name for check in result.checks] == ALL_BACKEND_CHECKS
    assert list(failed(result)) == ["state lock"]
    assert failed(result)["state lock"].startswith(f"{baseline.stack_name} state is locked by dave@desk")
    (lock,) = result.locks
    assert lock.stack == baseline.stack_name
    assert preflight.run_preflight(project, ENVIRONMENT).ok


def test_unreadable_lock_info_is_still_listed(backend, project):
    backend.s3.put_object(Bucket=project.state.bucket, Key="dev/terraform.tfstate.tflock", Body=b"not json")
    result = preflight.run_preflight(project, ENVIRONMENT)
    (lock,) = result.locks
    assert lock.lock_id == "unknown" and "unreadable lock info" in lock.who
    assert list(failed(result)) == ["state lock"]


# --- the command line --------------------------------------------------------------------------------

def run_main(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["preflight", *argv], Tools(out=out, err=err))
    return code, out.getvalue(), err.getvalue()


def test_cli_passes_on_a_correct_backend_and_warns_about_certificates_nobody_validates(backend):
    """The shipped dev has no hosted zone and no certificate ARNs: a warning, not a failure."""
    code, out, err = run_main(ENVIRONMENT)
    assert (code, err) == (0, "")
    *_, warning, summary = out.splitlines()
    assert summary == f"preflight dev: all {len(ALL_BACKEND_CHECKS)} checks passed"
    assert warning.startswith("warning: environments/dev.toml: neither hosted_zone_id nor a certificate ARN for "
                              "api.dev.example.com (in eu-west-1) and dev.example.com (in us-east-1): the first "
                              "deploy requests DNS-validated ACM certificates and waits until they are issued.")
    assert "CNAME validation record" in warning


ZONE = "Z0123456789ABCDEFGHIJ"
API_CERTIFICATE = "arn:aws:acm:eu-west-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"
EDGE_CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"


@pytest.mark.parametrize(("zone", "api_arn", "edge_arn", "named"), [
    (None, None, None, ["api.dev.example.com (in eu-west-1)", "dev.example.com (in us-east-1)"]),
    (None, API_CERTIFICATE, None, ["dev.example.com (in us-east-1)"]),
    (None, None, EDGE_CERTIFICATE, ["api.dev.example.com (in eu-west-1)"]),
    (None, API_CERTIFICATE, EDGE_CERTIFICATE, []),
    (ZONE, None, None, []),
])
def test_certificate_warning_names_exactly_the_certificates_nobody_validates(zone, api_arn, edge_arn, named):
    env = load_project(ENVIRONMENTS_DIR).environment(ENVIRONMENT)
    assert env.hosted_zone_id is None and env.region == "eu-west-1", "the shipped dev this test starts from"
    env = replace(env, hosted_zone_id=zone, api=replace(env.api, certificate_arn=api_arn),
                  frontend=replace(env.frontend, certificate_arn=edge_arn))
    warnings = preflight.certificate_warnings(env)
    assert len(warnings) == (1 if named else 0)
    if named:
        assert f"certificate ARN for {' and '.join(named)}: the first deploy" in warnings[0]


def test_cli_prints_the_held_lock_and_the_force_unlock_hint(backend):
    info = lock_info(backend, ENVIRONMENT, "0d9c2a61-lock", "alice@laptop", "OperationTypeApply")
    backend.hold_dynamodb_lock(ENVIRONMENT, info)
    backend.hold_s3_lock(ENVIRONMENT, info)

    code, out, err = run_main(ENVIRONMENT)

    assert code == errors.EXIT_REFUSED
    path = backend.lock_path(ENVIRONMENT)
    assert (f"lock held on {path} (DynamoDB table {backend.state.lock_table} and S3 lock file "
            f"s3://{path}.tflock): ID 0d9c2a61-lock, who alice@laptop, created 2026-11-24T03:12:45.123456789Z, "
            "operation OperationTypeApply") in out
    assert ("if its holder is really gone, release it in cdktf.out/stacks/dev: "
            "terraform force-unlock 0d9c2a61-lock") in out
    assert err.splitlines() == [
        "preflight failed: state lock: dev state is locked by alice@laptop since 2026-11-24T03:12:45.123456789Z "
        "(OperationTypeApply, ID 0d9c2a61-lock)",
        f"preflight dev: 1 of {len(ALL_BACKEND_CHECKS)} checks failed",
    ]


def test_cli_reports_each_failed_check_on_one_line(backend, project):
    backend.s3.put_bucket_versioning(Bucket=project.state.bucket, VersioningConfiguration={"Status": "Suspended"})
    backend.dynamodb.delete_table(TableName=project.state.lock_table)
    code, _, err = run_main(ENVIRONMENT)
    assert code == errors.EXIT_REFUSED
    lines = err.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == ["preflight failed"] * 2
    assert lines[0].startswith("preflight failed: state bucket versioning: ")
    assert lines[1].startswith("preflight failed: lock table: lock table webapp-terraform-locks does not exist")
    assert lines[-1] == f"preflight dev: 2 of {len(ALL_BACKEND_CHECKS)} checks failed"


def test_cli_rejects_an_unknown_environment_in_one_line(endpoint):
    code, out, err = run_main("qa")
    assert (code, out) == (errors.EXIT_USAGE, "")
    assert err == ("ops: unknown stack 'qa': the stacks are bootstrap, baseline-eu-west-1, dev, production, "
                   "production-dr, staging, staging-dr\n")


def test_command_runs_as_a_user_types_it(backend):
    """`python -m ops preflight dev` from the repository, without PYTHONPATH."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-m", "ops", "preflight", ENVIRONMENT],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "preflight dev: all" in result.stdout and "Traceback" not in result.stderr


# --- production must name its account (issue 14) ----------------------------------------------------

PRODUCTION_WITHOUT_ACCOUNT = ("ops: configuration error: environments/production.toml: account_id: must be set to "
                              "deploy a production environment (here or in environments/project.toml), so that no "
                              "other account can receive it\n")


def test_cli_refuses_production_without_an_account_id_before_any_aws_call(endpoint):
    """Bad input: one line naming file, field and rule; exit 2. The shipped files set no account_id."""
    code, out, err = run_main("production")
    assert (code, out, err) == (errors.EXIT_USAGE, "", PRODUCTION_WITHOUT_ACCOUNT)


def test_production_without_an_account_id_fails_the_account_check_alone(backend, project):
    """What `python -m ops deploy` sees: the one failed check, and no AWS call made (no credentials check ran)."""
    result = preflight.run_preflight(project, "production")
    assert [(check.name, check.ok) for check in result.checks] == [("account", False)]
    assert "account_id: must be set to deploy a production environment" in failed(result)["account"]


@pytest.mark.parametrize("where", ["environment", "project"])
def test_production_with_an_account_id_proceeds(backend, project, where):
    """The control: either file's account_id satisfies the rule (and then must match the credentials)."""
    if where == "project":
        configured = replace(project, account_id=MOTO_ACCOUNT)
    else:
        configured = replace(project, environments=tuple(
            replace(env, account_id=MOTO_ACCOUNT) if env.production else env for env in project.environments))
    result = preflight.run_preflight(configured, "production")
    assert result.ok, failed(result)
    assert result.check("account").message == f"{MOTO_ACCOUNT} is the configured account_id"


def test_non_production_environments_need_no_account_id(backend, project):
    assert project.environment(ENVIRONMENT).account_id is None and project.account_id is None
    assert preflight.run_preflight(project, ENVIRONMENT).ok


# --- environments in their own accounts (issue 24): roles assumed, the report names them --------------

DEV_ACCOUNT = "222222222222"
DEV_ROLE = f"arn:aws:iam::{DEV_ACCOUNT}:role/deployer-dev"


def isolated(project: ProjectConfig, dev_account: str = DEV_ACCOUNT, role: str = DEV_ROLE) -> ProjectConfig:
    """dev in its own account through a deploy role, the state isolated in moto's default account."""
    state = replace(project.state, account_id=MOTO_ACCOUNT,
                    administrators=(f"arn:aws:iam::{MOTO_ACCOUNT}:role/admin",))
    envs = tuple(replace(env, account_id=dev_account, deploy_role_arn=role) if env.name == ENVIRONMENT else env
                 for env in project.environments)
    return replace(project, state=state, environments=envs)


def test_preflight_assumes_the_deploy_and_state_roles_and_names_them(backend, project):
    result = preflight.run_preflight(isolated(project), ENVIRONMENT)
    assert result.ok, failed(result)
    assert result.account == DEV_ACCOUNT  # the deploy role's account, not the caller's
    assert result.check("deploy role").message == (
        f"assumed {DEV_ROLE} as session webapp-dev (account {DEV_ACCOUNT})")
    assert result.check("state role").message == (
        f"assumed arn:aws:iam::{MOTO_ACCOUNT}:role/terraform-state/webapp-dev-rw as session webapp-dev "
        f"(account {MOTO_ACCOUNT})")
    assert result.check("account").message == f"{DEV_ACCOUNT} is the configured account_id"


def test_preflight_fails_when_the_deploy_role_lands_in_another_account(backend, project):
    wrong = isolated(project, role=f"arn:aws:iam::{OTHER_ACCOUNT}:role/deployer-dev")
    assert failed(preflight.run_preflight(wrong, ENVIRONMENT)) == {
        "account": f"the credentials are for account {OTHER_ACCOUNT}, but environments/dev.toml sets "
                   f"account_id = {DEV_ACCOUNT}"}


def test_an_isolated_preflight_sees_its_own_lock_only(backend, project):
    backend.hold_dynamodb_lock("staging", lock_info(backend, "staging", "other", "ci@runner", "OperationTypeApply"))
    backend.hold_s3_lock(ENVIRONMENT, lock_info(backend, ENVIRONMENT, "mine", "me@laptop", "OperationTypeApply"))
    result = preflight.run_preflight(isolated(project), ENVIRONMENT)
    assert [lock.lock_id for lock in result.locks] == ["mine"]
    assert set(failed(result)) == {"state lock"}


def test_the_database_bootstrap_and_restore_clients_run_as_the_deploy_role(endpoint, project):
    """ops/aws_session.py on the emulator: the session it gives is the deploy role's, in dev's account."""
    from ops import database_bootstrap
    from ops.tools import aws_client

    config = isolated(project)
    env = config.environment(ENVIRONMENT)
    runner = database_bootstrap.aws_bootstrapper(config, env)
    sts = runner.session.client("sts", region_name=env.region, endpoint_url=endpoint)
    assert sts.get_caller_identity()["Arn"] == f"arn:aws:sts::{DEV_ACCOUNT}:assumed-role/deployer-dev/webapp-dev"
    role = preflight.resolve(config, ENVIRONMENT).deploy_role
    assert aws_client(config, "sts", env.region, role=role).get_caller_identity()["Account"] == DEV_ACCOUNT
    assert database_bootstrap.aws_bootstrapper(project, project.environment(ENVIRONMENT)).session is None
