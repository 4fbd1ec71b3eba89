"""Environments in their own accounts: role-assumed providers and backends, per-stack state isolation, CI roles.

One multi-account configuration (the shipped one with each environment in its own account, the
state in a fourth, `[ci]` on) is synthesized once for deploying and once for planning; the shipped
configuration, which configures no role, must synthesize as if none of this existed.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from core.access import session
from core.deploy_permissions import deploy_policy, services_for
from environments.loader import ConfigError, load_project
from environments.model import Access
from tests.access_checks import check_no_role_reaches_another_stack, covers, reach, state_role_policies
from tests.conftest import ENVIRONMENTS_DIR, ROOT, only, resources_of, synthesize
from tests.strategies import to_toml
from tests.terraform_tools import run_terraform
from tests.test_checkov import CONFIG, checkov_command

# One worker synthesizes the multi-account configuration once for the whole module.
pytestmark = pytest.mark.xdist_group("accounts")

STATE_ACCOUNT = "111111111111"
ACCOUNTS = {"dev": "222222222222", "staging": "333333333333", "production": "444444444444"}
ADMIN = f"arn:aws:iam::{STATE_ACCOUNT}:role/platform-admin"
REPOSITORY = "example-org/webapp"
BASELINE_ROLE = "arn:aws:iam::222222222222:role/webapp-baseline-deploy"
BASELINE_STACK = "baseline-222222222222-eu-west-1"


def edit(directory: Path, file: str, change) -> None:
    path = directory / file
    document = tomllib.loads(path.read_text())
    change(document)
    path.write_text(to_toml(document))


def make_multi_account(directory: Path, ci: bool = True) -> Path:
    """The shipped configuration with every environment in its own account and the state in another."""
    def project(document):
        document["state"].update(account_id=STATE_ACCOUNT, administrators=[ADMIN])
        document["baseline"][0].update(account_id="222222222222", deploy_role_arn=BASELINE_ROLE)
        if ci:
            document["ci"] = {"repository": REPOSITORY}
    edit(directory, "project.toml", project)
    for name, account in ACCOUNTS.items():
        def environment(document, account=account, name=name):
            document["account_id"] = account
            if not ci:
                document["deploy_role_arn"] = f"arn:aws:iam::{account}:role/deployer-{name}"
        edit(directory, f"{name}.toml", environment)
    return directory


def copy_config(tmp: Path) -> Path:
    target = tmp / "environments"
    target.mkdir(parents=True)
    for source in ENVIRONMENTS_DIR.glob("*.toml"):
        (target / source.name).write_text(source.read_text())
    return target


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    directory = make_multi_account(copy_config(tmp_path_factory.mktemp("multi")))
    project = load_project(directory)
    return project, synthesize(project, tmp_path_factory.mktemp("multi-out") / "cdktf.out")


@pytest.fixture(scope="module")
def multi_plan(tmp_path_factory):
    directory = make_multi_account(copy_config(tmp_path_factory.mktemp("plan")))
    project = load_project(directory, access=Access.PLAN)
    return project, synthesize(project, tmp_path_factory.mktemp("plan-out") / "cdktf.out")


def policy_of(resource: dict) -> dict:
    return json.loads(resource["assume_role_policy"] if "assume_role_policy" in resource else resource["policy"])


def role_named(stack: dict, name: str) -> tuple[str, dict]:
    found = [(logical, role) for logical, role in resources_of(stack, "aws_iam_role").items() if role["name"] == name]
    assert len(found) == 1, name
    return found[0]


def policies_of_role(stack: dict, logical: str) -> list[dict]:
    return [json.loads(policy["policy"]) for policy in resources_of(stack, "aws_iam_role_policy").values()
            if policy["role"] == f"${{aws_iam_role.{logical}.id}}"]


# --- bad input: one line naming file, field and rule ------------------------------------------

def refused(directory: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_project(directory)
    assert len(str(caught.value).splitlines()) == 1
    return caught.value


def test_a_deploy_role_must_be_a_role_arn(config_dir):
    edit(config_dir, "dev.toml", lambda d: d.update(account_id="222222222222", deploy_role_arn="arn:aws:iam::x"))
    error = refused(config_dir)
    assert (error.file, error.field) == ("environments/dev.toml", "deploy_role_arn")
    assert "must be an IAM role ARN" in error.rule


def test_a_deploy_role_needs_the_environment_s_account(config_dir):
    edit(config_dir, "dev.toml", lambda d: d.update(deploy_role_arn="arn:aws:iam::222222222222:role/d"))
    error = refused(config_dir)
    assert (error.field, "needs account_id") == ("deploy_role_arn", error.rule[:16])


def test_a_deploy_role_in_another_account_is_refused(config_dir):
    edit(config_dir, "dev.toml", lambda d: d.update(account_id="222222222222",
                                                    deploy_role_arn="arn:aws:iam::333333333333:role/d"))
    error = refused(config_dir)
    assert error.field == "deploy_role_arn" and "must be a role in account_id 222222222222" in error.rule


def test_a_baseline_deploy_role_in_another_account_is_refused(config_dir):
    edit(config_dir, "project.toml", lambda d: d["baseline"][0].update(
        account_id="222222222222", deploy_role_arn="arn:aws:iam::333333333333:role/d"))
    error = refused(config_dir)
    assert (error.file, error.field) == ("environments/project.toml", "baseline[0].deploy_role_arn")


@pytest.mark.parametrize(("state", "field", "rule"), [
    ({"account_id": STATE_ACCOUNT}, "state.administrators", "is required with account_id"),
    ({"administrators": [ADMIN]}, "state.administrators", "needs account_id"),
    ({"account_id": STATE_ACCOUNT, "administrators": ["arn:aws:iam::999999999999:role/a"]},
     "state.administrators[0]", "must be a role in the state account"),
    ({"account_id": STATE_ACCOUNT, "administrators": ["root"]}, "state.administrators[0]", "must be an IAM role ARN"),
])
def test_state_isolation_settings_are_checked(config_dir, state, field, rule):
    edit(config_dir, "project.toml", lambda d: d["state"].update(state))
    error = refused(config_dir)
    assert (error.file, error.field) == ("environments/project.toml", field)
    assert rule in error.rule


def test_role_arns_share_one_partition(config_dir):
    edit(config_dir, "project.toml", lambda d: d["state"].update(account_id=STATE_ACCOUNT, administrators=[ADMIN]))
    edit(config_dir, "dev.toml", lambda d: d.update(account_id="222222222222",
                                                    deploy_role_arn="arn:aws-cn:iam::222222222222:role/d"))
    error = refused(config_dir)
    assert error.field == "deploy_role_arn" and "partition of the other role ARNs (aws)" in error.rule


@pytest.mark.parametrize(("change", "file", "field", "rule"), [
    (lambda d: d["state"].pop("account_id") and d["state"].pop("administrators"), "project.toml", "ci",
     "needs state.account_id"),
    (lambda d: d.pop("account_id"), "dev.toml", "account_id", "is required with [ci]"),
    (lambda d: d.update(deploy_role_arn="arn:aws:iam::222222222222:role/other"), "dev.toml", "deploy_role_arn",
     "must be arn:aws:iam::222222222222:role/webapp-dev-deploy with [ci]"),
    (lambda d: d["ci"].update(repository="not a repository"), "project.toml", "ci.repository",
     "must be a GitHub repository as owner/name"),
])
def test_ci_settings_are_checked(config_dir, change, file, field, rule):
    make_multi_account(config_dir)
    edit(config_dir, file, change)
    error = refused(config_dir)
    assert (error.file, error.field) == (f"environments/{file}", field)
    assert rule in error.rule


def test_a_bad_access_is_one_line_and_exit_2():
    result = subprocess.run([sys.executable, "main.py", "dev"], cwd=ROOT, capture_output=True, text=True,
                            env={"INFRA_ACCESS": "admin", "PATH": "/usr/bin:/bin"}, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == "configuration error: INFRA_ACCESS: must be one of deploy, plan (got 'admin')"


# --- no roles configured: nothing changes ---------------------------------------------------------

ROLE_KEYS = ("assume_role", "allowed_account_ids")


def without_roles(stack: dict) -> dict:
    """The stack minus what configured accounts and roles add: role assumption, account guards, workspace prefix."""
    stack = json.loads(json.dumps(stack))
    for provider in stack["provider"]["aws"]:
        for key in ROLE_KEYS:
            provider.pop(key, None)
    backend = stack["terraform"]["backend"]["s3"]
    backend.pop("assume_role", None)
    backend.pop("workspace_key_prefix", None)
    return stack


def test_roles_only_add_role_assumption_and_account_guards(stacks, multi):
    """Every environment stack with accounts and roles is the shipped stack plus exactly those settings."""
    _, multi_stacks = multi
    for name in ACCOUNTS:
        assert without_roles(multi_stacks[name]) == stacks[name], name


def test_without_roles_no_stack_assumes_a_role_or_creates_state_roles(stacks):
    for name, stack in stacks.items():
        for provider in stack["provider"]["aws"]:
            assert "assume_role" not in provider, name
        backend = stack["terraform"]["backend"]
        assert "assume_role" not in backend.get("s3", {}) and "workspace_key_prefix" not in backend.get("s3", {})
    assert not state_role_policies(stacks["bootstrap"])
    assert not resources_of(stacks["bootstrap"], "aws_iam_openid_connect_provider")


def test_without_roles_plan_and_deploy_synthesize_the_same(tmp_path, stacks):
    plan = synthesize(load_project(ENVIRONMENTS_DIR, access=Access.PLAN), tmp_path / "cdktf.out")
    assert plan == stacks


# --- providers and backends ------------------------------------------------------------------------

def test_every_provider_assumes_the_stack_s_deploy_role_in_its_account(multi):
    project, multi_stacks = multi
    for env in project.environments:
        providers = multi_stacks[env.name]["provider"]["aws"]
        assert len(providers) >= 2  # the home region and us-east-1 (and the DR region where configured)
        for provider in providers:
            assert provider["allowed_account_ids"] == [ACCOUNTS[env.name]]
            assert provider["assume_role"] == [{
                "role_arn": f"arn:aws:iam::{ACCOUNTS[env.name]}:role/webapp-{env.name}-deploy",
                "session_name": f"webapp-{env.name}"}]
    (provider,) = multi_stacks[BASELINE_STACK]["provider"]["aws"]
    assert provider["allowed_account_ids"] == ["222222222222"]
    assert provider["assume_role"] == [{"role_arn": BASELINE_ROLE, "session_name": f"webapp-{BASELINE_STACK}"}]
    for provider in multi_stacks["bootstrap"]["provider"]["aws"]:
        if "alias" not in provider or provider["alias"] == "replica":
            assert provider["allowed_account_ids"] == [STATE_ACCOUNT] and "assume_role" not in provider


def test_the_bootstrap_reaches_environment_accounts_through_their_administrator_role(multi):
    _, multi_stacks = multi
    aliased = {provider["alias"]: provider for provider in multi_stacks["bootstrap"]["provider"]["aws"]
               if provider.get("alias", "").startswith("account_")}
    assert set(aliased) == {f"account_{account}" for account in ACCOUNTS.values()}
    for alias, provider in aliased.items():
        account = alias.removeprefix("account_")
        assert provider["allowed_account_ids"] == [account]
        assert provider["assume_role"][0]["role_arn"] == f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole"


def test_each_backend_assumes_its_own_state_role_and_lists_only_its_prefix(multi, multi_plan):
    project, multi_stacks = multi
    _, plan_stacks = multi_plan
    for stack, key in project.state_keys.items():
        for stacks_, suffix in ((multi_stacks, "rw"), (plan_stacks, "ro")):
            backend = stacks_[stack]["terraform"]["backend"]["s3"]
            assert backend["key"] == key
            assert backend["assume_role"] == {
                "role_arn": f"arn:aws:iam::{STATE_ACCOUNT}:role/terraform-state/webapp-{stack}-{suffix}",
                "session_name": session(project, stack)}
            assert backend["workspace_key_prefix"] == f"{stack}/env:"


def test_plans_assume_the_plan_role_in_the_environment_s_account(multi_plan):
    project, plan_stacks = multi_plan
    for env in project.environments:
        for provider in plan_stacks[env.name]["provider"]["aws"]:
            assert provider["assume_role"][0]["role_arn"] == (
                f"arn:aws:iam::{ACCOUNTS[env.name]}:role/webapp-{env.name}-plan")


# --- the state roles ------------------------------------------------------------------------------

def test_state_roles_reach_exactly_their_own_object_prefix_and_lock_items(multi):
    project, multi_stacks = multi
    policies = state_role_policies(multi_stacks["bootstrap"])
    bucket, table = project.state.bucket, project.state.lock_table
    for stack, key in project.state_keys.items():
        write, read = reach(policies[f"webapp-{stack}-rw"]), reach(policies[f"webapp-{stack}-ro"])
        assert write.objects == {f"arn:aws:s3:::{bucket}/{key}", f"arn:aws:s3:::{bucket}/{key}.tflock"}
        assert read.objects == {f"arn:aws:s3:::{bucket}/{key}"}
        assert write.prefixes == read.prefixes == {f"{stack}/*"}
        assert write.lock_items == {f"{bucket}/{key}", f"{bucket}/{key}-md5"}
        assert read.lock_items == {f"{bucket}/{key}-md5"}
        assert read.object_actions == {"s3:GetObject"} and read.lock_actions == {"dynamodb:GetItem"}
        assert write.lock_actions == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"}
        for name in (f"webapp-{stack}-rw", f"webapp-{stack}-ro"):
            statements = policies[name]["Statement"]
            assert all(statement["Effect"] == "Allow" for statement in statements)
            (kms,) = [statement for statement in statements if statement["Sid"] == "StateKeyThroughS3AndDynamoDB"]
            assert kms["Resource"].startswith("${aws_kms_key.")
            assert kms["Condition"] == {"StringEquals": {"kms:ViaService": [
                "s3.eu-west-1.amazonaws.com", "dynamodb.eu-west-1.amazonaws.com"]}}
            tables = {statement["Resource"] for statement in statements
                      if statement["Sid"].endswith(("Table", "Items"))}
            assert tables == {f"arn:aws:dynamodb:eu-west-1:{STATE_ACCOUNT}:table/{table}"}
        assert set(policies[f"webapp-{stack}-ro"]["Statement"][-1]["Action"]) == {"kms:Decrypt"}


def test_no_state_role_reaches_another_stack_s_state(multi):
    project, multi_stacks = multi
    check_no_role_reaches_another_stack(project, multi_stacks["bootstrap"])


def test_the_pair_check_catches_a_role_that_reaches_too_far(multi):
    project, multi_stacks = multi
    bootstrap = json.loads(json.dumps(multi_stacks["bootstrap"]))
    for policy in resources_of(bootstrap, "aws_iam_role_policy").values():
        if "OwnStateObject" in policy["policy"]:
            policy["policy"] = policy["policy"].replace("/dev/terraform.tfstate\"", "/*\"")
    with pytest.raises(AssertionError, match="reaches"):
        check_no_role_reaches_another_stack(project, bootstrap)


def test_state_roles_trust_exactly_their_callers_and_the_administrators(multi):
    project, multi_stacks = multi
    bootstrap = multi_stacks["bootstrap"]
    dr_stacks = [env.dr_stack_name for env in project.environments if env.dr]
    assert dr_stacks == ["production-dr", "staging-dr"]  # the environment's DR-region stack: the same callers
    for env in project.environments:
        stacks = list(filter(None, (env.name, env.dr_stack_name)))
        for (suffix, entry), stack in itertools.product((("rw", "deploy"), ("ro", "plan")), stacks):
            _, role = role_named(bootstrap, f"webapp-{stack}-{suffix}")
            (statement,) = policy_of(role)["Statement"]
            entry_logical, _ = role_named(bootstrap, f"webapp-{env.name}-ci-{entry}")
            assert statement["Principal"] == {"AWS": [f"${{aws_iam_role.{entry_logical}.arn}}", ADMIN]}
            assert statement["Action"] == "sts:AssumeRole" and "Condition" not in statement
    for suffix in ("rw", "ro"):
        _, role = role_named(bootstrap, f"webapp-{BASELINE_STACK}-{suffix}")
        assert policy_of(role)["Statement"][0]["Principal"] == {"AWS": [BASELINE_ROLE, ADMIN]}


def test_without_ci_state_roles_trust_the_configured_deploy_role(tmp_path):
    project = load_project(make_multi_account(copy_config(tmp_path), ci=False))
    bootstrap = synthesize(project, tmp_path / "cdktf.out")["bootstrap"]
    assert not resources_of(bootstrap, "aws_iam_openid_connect_provider")
    for name, account in ACCOUNTS.items():
        for suffix in ("rw", "ro"):
            _, role = role_named(bootstrap, f"webapp-{name}-{suffix}")
            assert policy_of(role)["Statement"][0]["Principal"] == {
                "AWS": [f"arn:aws:iam::{account}:role/deployer-{name}", ADMIN]}


def test_bucket_replica_and_keys_admit_only_the_state_roles(multi):
    project, multi_stacks = multi
    bootstrap = multi_stacks["bootstrap"]
    roles = {f"arn:aws:iam::{STATE_ACCOUNT}:role/terraform-state/webapp-{stack}-{suffix}"
             for stack in project.state_keys for suffix in ("rw", "ro")}
    replication = f"arn:aws:iam::{STATE_ACCOUNT}:role/webapp-state-replication"
    expected = {"state-bucket": roles | {ADMIN, replication}, "state-replica": {ADMIN, replication}}
    policies = resources_of_type_by_path(bootstrap, "resource", "aws_s3_bucket_policy")
    for bucket, admitted in expected.items():
        (policy,) = [json.loads(p["policy"]) for path, p in policies.items() if path.startswith(f"{bucket}_")]
        (deny,) = [s for s in policy["Statement"] if s.get("Sid") == "OnlyTheStateRolesTouchObjects"]
        assert deny["Effect"] == "Deny" and deny["Principal"] == "*"
        assert set(as_list(deny["Condition"]["ArnNotLike"]["aws:PrincipalArn"])) == admitted
        assert deny["Condition"]["Bool"] == {"aws:PrincipalIsAWSService": "false"}
    for key, admitted in (("state-key", roles | {ADMIN, replication}), ("replica-key", {ADMIN, replication})):
        (resource,) = [r for path, r in resources_of_type_by_path(bootstrap, "resource", "aws_kms_key").items()
                       if path.startswith(f"{key}_")]
        (deny,) = [s for s in json.loads(resource["policy"])["Statement"] if s["Effect"] == "Deny"]
        assert set(deny["Condition"]["ArnNotLike"]["aws:PrincipalArn"]) == admitted


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def resources_of_type_by_path(stack: dict, block: str, kind: str) -> dict[str, dict]:
    return stack.get(block, {}).get(kind, {})


# --- CI identities -------------------------------------------------------------------------------

def test_one_github_oidc_provider_in_the_state_account(multi):
    _, multi_stacks = multi
    provider = only(multi_stacks["bootstrap"], "aws_iam_openid_connect_provider")
    assert provider["url"] == "https://token.actions.githubusercontent.com"
    assert provider["client_id_list"] == ["sts.amazonaws.com"] and "provider" not in provider


@pytest.mark.parametrize(("entry", "subject"), [("deploy", "repo:example-org/webapp:environment:{env}"),
                                                 ("plan", "repo:example-org/webapp:pull_request")])
def test_entry_roles_trust_only_this_repository_s_jobs(multi, entry, subject):
    project, multi_stacks = multi
    bootstrap = multi_stacks["bootstrap"]
    (oidc,) = resources_of(bootstrap, "aws_iam_openid_connect_provider")
    for env in project.environments:
        logical, role = role_named(bootstrap, f"webapp-{env.name}-ci-{entry}")
        (statement,) = policy_of(role)["Statement"]
        assert statement["Principal"] == {"Federated": f"${{aws_iam_openid_connect_provider.{oidc}.arn}}"}
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert statement["Condition"] == {"StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": subject.format(env=env.name)}}
        (policy,) = policies_of_role(bootstrap, logical)
        (allowed,) = policy["Statement"]
        suffix = "rw" if entry == "deploy" else "ro"
        assert allowed["Action"] == "sts:AssumeRole"
        assert allowed["Resource"][1:] == [f"arn:aws:iam::{STATE_ACCOUNT}:role/terraform-state/webapp-{stack}-{suffix}"
                                           for stack in filter(None, (env.name, env.dr_stack_name))]
        environment_logical, _ = role_named(bootstrap, f"webapp-{env.name}-{entry}")
        assert allowed["Resource"][0] == f"${{aws_iam_role.{environment_logical}.arn}}"


def test_environment_roles_live_in_their_account_and_trust_only_their_entry_role(multi):
    project, multi_stacks = multi
    bootstrap = multi_stacks["bootstrap"]
    for env in project.environments:
        for entry in ("deploy", "plan"):
            _, role = role_named(bootstrap, f"webapp-{env.name}-{entry}")
            assert role["provider"] == f"aws.account_{ACCOUNTS[env.name]}"
            entry_logical, _ = role_named(bootstrap, f"webapp-{env.name}-ci-{entry}")
            assert policy_of(role)["Statement"][0]["Principal"] == {
                "AWS": [f"${{aws_iam_role.{entry_logical}.arn}}", ADMIN]}
    attachments = resources_of(bootstrap, "aws_iam_role_policy_attachment")
    assert sorted(a["policy_arn"] for a in attachments.values()) == ["arn:aws:iam::aws:policy/ReadOnlyAccess"] * 3


def test_a_standby_s_plan_role_may_generate_the_throwaway_password_and_nothing_more(multi):
    """Every plan opens the standby primary's ephemeral password (modules/database.py): only that plan role
    gets GetRandomPassword, which touches no resource; other plan roles are ReadOnlyAccess alone."""
    project, multi_stacks = multi
    bootstrap = multi_stacks["bootstrap"]
    for env in project.environments:
        logical, _ = role_named(bootstrap, f"webapp-{env.name}-plan")
        documents = policies_of_role(bootstrap, logical)
        if not env.standby:
            assert documents == [], env.name
            continue
        (document,) = documents
        assert document["Statement"] == [{"Sid": "GenerateThrowawayPasswords", "Effect": "Allow",
                                          "Action": "secretsmanager:GetRandomPassword", "Resource": "*"}]


def test_the_deploy_role_manages_only_its_environment_s_roles_and_never_the_ci_roles():
    policy = deploy_policy("aws", "222222222222", "webapp-dev", ("webapp-dev-deploy", "webapp-dev-plan"))
    statements = {statement["Sid"]: statement for statement in policy["Statement"]}
    assert statements["EnvironmentRolesOnly"]["Resource"] == ["arn:aws:iam::222222222222:role/webapp-dev-*"]
    assert not any(action.startswith(("iam:", "sts:", "organizations:"))
                   for action in statements["EnvironmentServices"]["Action"])
    deny = statements["NeverTheCiRolesThemselves"]
    assert deny["Effect"] == "Deny" and deny["Resource"] == [
        "arn:aws:iam::222222222222:role/webapp-dev-deploy", "arn:aws:iam::222222222222:role/webapp-dev-plan"]
    assert covers(statements["EnvironmentRolesOnly"]["Resource"][0], deny["Resource"][0])
    for action in ("ecs:RunTask", "ecs:DescribeTasks", "cloudfront:AllowVendedLogDeliveryForResource",
                   "kms:CreateGrant", "kms:DescribeKey", "ssm:PutParameter"):
        assert action in statements["OperatorCommands"]["Action"]
    assert "iam:PassRole" in statements["EnvironmentRolesOnly"]["Action"]
    # Property 3 for the CI identity: secretsmanager:* minus reading any master secret, RDS-managed or a
    # standby's primary's own (ops writes that one without reading it).
    masters = statements["NeverTheMasterSecrets"]
    assert masters["Effect"] == "Deny" and masters["Action"] == "secretsmanager:GetSecretValue"
    for arn in ("arn:aws:secretsmanager:eu-central-1:222222222222:secret:rds!cluster-1a-AbCdEf",
                "arn:aws:secretsmanager:eu-west-1:222222222222:secret:webapp-dev-database-master-AbCdEf"):
        assert any(covers(pattern, arn) for pattern in masters["Resource"]), arn
    assert not any(covers(pattern, "arn:aws:secretsmanager:eu-west-1:222222222222:secret:webapp-dev-cache-auth-AbCdEf")
                   for pattern in masters["Resource"])
    assert "secretsmanager:*" in statements["EnvironmentServices"]["Action"]


def test_every_type_an_environment_stack_uses_maps_to_deploy_services(stacks, multi):
    """The deploy role's service list is derived from the types: a new type without an entry fails here."""
    _, multi_stacks = multi
    for name in ACCOUNTS:
        for stack in (stacks[name], multi_stacks[name]):
            for block in ("resource", "data"):
                for kind in stack.get(block, {}):
                    assert services_for(kind) is not None, f"{kind} (in {name}) has no entry in TYPE_SERVICES"


def test_ci_roles_are_outputs_the_workflows_read(multi):
    project, multi_stacks = multi
    output = multi_stacks["bootstrap"]["output"]["ci_roles"]["value"]
    assert set(output) == {env.name for env in project.environments}
    for roles in output.values():
        assert set(roles) == {"deploy", "plan"} and all(value.startswith("${aws_iam_role.") for value in roles.values())
    assert set(multi_stacks["bootstrap"]["output"]["state_roles"]["value"]) == set(project.state_keys)


# --- Terraform and checkov accept it --------------------------------------------------------------

@pytest.mark.terraform
@pytest.mark.parametrize("stack", ["bootstrap", "dev", BASELINE_STACK])
def test_multi_account_stacks_pass_terraform_validate_with_their_provider_and_backend_blocks(
        multi, stack, terraform_env, tmp_path):
    """As roots, so the providers' assume_role blocks and the backend's are validated too."""
    _, multi_stacks = multi
    (tmp_path / "cdk.tf.json").write_text(json.dumps(multi_stacks[stack]))
    run_terraform(["init", "-backend=false", "-input=false", "-no-color"], tmp_path, terraform_env)
    result = run_terraform(["validate", "-json", "-no-color"], tmp_path, terraform_env, check=False)
    report = json.loads(result.stdout)
    assert report["valid"] and not report["diagnostics"], json.dumps(report["diagnostics"], indent=2)


def test_checkov_passes_the_multi_account_bootstrap(multi, tmp_path):
    _, multi_stacks = multi
    folder = tmp_path / "bootstrap"
    folder.mkdir()
    (folder / "cdk.tf.json").write_text(json.dumps(multi_stacks["bootstrap"]))
    result = subprocess.run([*checkov_command(), "-d", str(folder), "--config-file", str(CONFIG), "-o", "json"],
                            capture_output=True, text=True, check=False, timeout=300)
    report = json.loads(result.stdout)
    summary = (report if isinstance(report, dict) else report[0])["summary"]
    assert summary["passed"] > 100 and summary["failed"] == 0, result.stdout[-3000:]
