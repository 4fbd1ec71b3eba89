"""ops/master_password.py: the master password of a standby's primary, set by ops and never by Terraform.

The AWS side is moto in this process (`mock_aws`): the cluster and the empty secret as the production stack
creates them, and the real API sequence on them (a secret's first version becomes AWSCURRENT at once, a
moved AWSCURRENT leaves AWSPREVIOUS behind, as AWS documents). moto does not check a password against
its cluster, so what the cluster accepted is proven by the order of the calls, recorded around the clients.
"""

from __future__ import annotations

import io
import json
import shutil
import string
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from core.access import provider_role
from ops import cli, errors, preflight
from ops import tools as ops_tools
from ops.deploy import deploy
from ops.master_password import APPLY_WAIT_SECONDS, POLL_SECONDS, MasterPassword, keep_master_password
from ops.project import load
from tests.conftest import ENVIRONMENTS_DIR

REGION, ACCOUNT = "eu-west-1", "123456789012"
CLUSTER, SECRET = "webapp-production-db", "webapp-production-database-master"
RECORD = "/webapp/production/database-master-password"


class Recorded:
    """A boto3 client whose calls are appended to the world's log. The world may make one call fail, override
    the cluster's status, and sees the secret's stages at the moment the cluster is given a password."""

    def __init__(self, client, log: list[str], world: World):
        self._client, self._log, self._world = client, log, world

    def __getattr__(self, name):
        attribute = getattr(self._client, name)
        if not callable(attribute) or name == "exceptions":
            return attribute

        def call(**kwargs):
            self._log.append(name)
            if self._world.fail == name:
                raise ClientError({"Error": {"Code": "InvalidDBClusterStateFault",
                                             "Message": "the cluster is not available"}}, name)
            if name == "modify_db_cluster":
                self._world.stages_at_modify.append(secret_versions())
            result = attribute(**kwargs)
            if name == "describe_db_clusters" and self._world.status:
                result["DBClusters"][0]["Status"] = self._world.status
            return result
        return call


class World:
    def __init__(self, root: Path):
        self.root, self.log, self.roles, self.sleeps, self.asked = root, [], set(), [], []
        self.answer: str | None = None
        self.identity_ok = True
        self.status: str | None = None
        self.fail: str | None = None
        self.stages_at_modify: list[dict[str, list[str]]] = []

    def aws(self, project, service: str, region: str, role=None):
        assert region == REGION
        self.roles.add(role)
        return Recorded(boto3.client(service, region_name=region), self.log, self)

    def ask(self, prompt: str) -> str:
        self.asked.append(prompt)
        if self.answer is None:
            raise EOFError
        return self.answer

    def run_preflight(self, project, name: str) -> preflight.PreflightResult:
        check = preflight.CheckResult("account", self.identity_ok, "the configured account" if self.identity_ok
                                      else "credentials are for 999999999999")
        return preflight.PreflightResult(name, ACCOUNT, (check,))

    def tools(self) -> ops_tools.Tools:
        return ops_tools.Tools(out=io.StringIO(), err=io.StringIO(), root=self.root, environ={}, aws=self.aws,
                               ask=self.ask, run_preflight=self.run_preflight, sleep=self.sleeps.append)

    def run(self, *argv: str) -> tuple[int, str, str]:
        tools = self.tools()
        code = cli.main(["rotate-master-password", *argv], tools)
        return code, tools.out.getvalue(), tools.err.getvalue()

    def keep(self) -> str:
        tools = self.tools()
        project = load(tools)
        keep_master_password(tools, project, project.environment("production"))
        return tools.out.getvalue()


@pytest.fixture
def world(tmp_path, monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    shutil.copytree(ENVIRONMENTS_DIR, tmp_path / "environments")
    with mock_aws():
        # What the production stack creates: the cluster with a throwaway password, the secret with no value.
        boto3.client("rds", region_name=REGION).create_db_cluster(
            DBClusterIdentifier=CLUSTER, Engine="aurora-postgresql", MasterUsername="app_admin",
            MasterUserPassword="throwaway-nobody-knows")
        boto3.client("secretsmanager", region_name=REGION).create_secret(Name=SECRET)
        yield World(tmp_path)


def secret_versions() -> dict[str, list[str]]:
    return boto3.client("secretsmanager", region_name=REGION).describe_secret(SecretId=SECRET).get(
        "VersionIdsToStages", {})


def current_credentials() -> dict:
    """What a reader gets (AWSCURRENT, GetSecretValue's default in AWS; moto's default stays on the first
    version after a rotation, so the stage is named)."""
    return json.loads(boto3.client("secretsmanager", region_name=REGION).get_secret_value(
        SecretId=SECRET, VersionStage="AWSCURRENT")["SecretString"])


def resource_id() -> str:
    return boto3.client("rds", region_name=REGION).describe_db_clusters(
        DBClusterIdentifier=CLUSTER)["DBClusters"][0]["DbClusterResourceId"]


def recorded() -> str:
    return boto3.client("ssm", region_name=REGION).get_parameter(Name=RECORD)["Parameter"]["Value"]


# --- after a deploy ------------------------------------------------------------------------------

def test_a_new_cluster_gets_a_generated_password_in_its_secret_and_a_record(world):
    out = world.keep()
    assert "setting the master password of cluster webapp-production-db: it has none from ops yet" in out
    credentials = current_credentials()
    assert credentials["username"] == "app_admin", "the cluster's own user name"
    password = credentials["password"]
    assert len(password) == 41 and set(password) <= set(string.ascii_letters + string.digits)
    (stages,) = secret_versions().values()
    assert stages == ["AWSCURRENT"], "AWSPENDING is taken off once the cluster has it"
    assert recorded() == resource_id()
    assert world.log.index("put_secret_value") < world.log.index("modify_db_cluster") < \
        world.log.index("put_parameter"), "stored first, then set on the cluster, recorded last"
    assert "get_secret_value" not in world.log, "ops never reads the password"


def test_a_cluster_that_has_its_password_is_left_alone(world):
    world.keep()
    before, world.log[:] = secret_versions(), []
    out = world.keep()
    assert "master password already set by ops for cluster webapp-production-db" in out
    assert secret_versions() == before
    assert "modify_db_cluster" not in world.log and "put_secret_value" not in world.log


def test_a_cluster_created_anew_gets_a_new_password(world):
    """A restore or a replacement: the record names another cluster, so the new one gets a password."""
    world.keep()
    first = current_credentials()["password"]
    boto3.client("ssm", region_name=REGION).put_parameter(Name=RECORD, Value="cluster-OLD", Type="String",
                                                         Overwrite=True)
    world.keep()
    assert current_credentials()["password"] != first
    assert sorted(stage for stages in secret_versions().values() for stage in stages) == \
        ["AWSCURRENT", "AWSPREVIOUS"]
    assert recorded() == resource_id()


def test_environments_without_a_standby_are_not_touched(world):
    tools = world.tools()
    project = load(tools)
    for name in ("dev", "staging"):
        keep_master_password(tools, project, project.environment(name))
    assert world.log == [] and world.roles == set()


def test_every_call_runs_as_the_environment_s_deploy_role(world):
    world.keep()
    project = load(world.tools())
    assert world.roles == {provider_role(project, "production", project.environment("production"))}


def test_deploy_sets_the_password_before_the_bootstrap_task_reads_it(world, monkeypatch):
    order = []
    monkeypatch.setattr("ops.deploy.plan_and_apply", lambda *args: order.append("apply"))
    monkeypatch.setattr("ops.deploy.synth", lambda *args, **kwargs: None)
    monkeypatch.setattr("ops.deploy.keep_master_password", lambda *args: order.append("password"))
    monkeypatch.setattr("ops.deploy.bootstrap_database", lambda *args: order.append("bootstrap"))
    deploy(world.tools(), "production", yes=True)
    assert order == ["apply", "password", "bootstrap"]


# --- rotation on demand --------------------------------------------------------------------------

def test_rotation_stages_the_new_password_until_the_cluster_has_it(world):
    world.keep()
    old = current_credentials()["password"]
    world.answer, world.stages_at_modify[:] = "production", []
    code, out, err = world.run("production")
    assert code == 0, err
    assert world.asked and "To continue, type its name (production)" in world.asked[0]
    (at_modify,) = world.stages_at_modify
    (pending,) = [stages for stages in at_modify.values() if "AWSPENDING" in stages]
    assert "AWSCURRENT" not in pending, "readers keep the old password until the cluster has the new one"
    assert current_credentials()["password"] != old
    assert f"master password set on cluster {CLUSTER} and in secret {SECRET}" in out


def test_rotation_waits_for_the_cluster_to_apply_the_password(world):
    world.keep()
    world.answer, world.status = "production", "resetting-master-credentials"
    code, _, err = world.run("production")
    assert code == errors.EXIT_REFUSED
    assert "is still resetting-master-credentials after 15 minutes; the new password waits under AWSPENDING" in err
    assert world.sleeps == [POLL_SECONDS] * (APPLY_WAIT_SECONDS // POLL_SECONDS)
    stages = secret_versions()
    assert sorted(stage for labels in stages.values() for stage in labels) == ["AWSCURRENT", "AWSPENDING"], \
        "the old password stays current"


@pytest.mark.parametrize(("answer", "message"), [
    ("yes", "not rotating the master password of production: the answer 'yes' is not 'production'"),
    (None, "not rotating the master password of production: confirmation needed, but there is no terminal"),
])
def test_production_must_be_named(world, answer, message):
    world.answer = answer
    code, _, err = world.run("production")
    assert code == errors.EXIT_REFUSED and message in err
    assert world.log == []


def test_yes_skips_the_question(world):
    code, _, err = world.run("production", "--yes")
    assert code == 0, err
    assert world.asked == [] and recorded() == resource_id()


@pytest.mark.parametrize(("argv", "code", "message"), [
    (("dev",), errors.EXIT_REFUSED, "dev has no standby: RDS manages its master password and rotates it every"),
    (("production-dr",), errors.EXIT_USAGE, "production-dr is a DR-region stack; this command takes an environment"),
    (("qa",), errors.EXIT_USAGE, "unknown stack 'qa'"),
])
def test_only_an_environment_with_a_standby_is_rotated(world, argv, code, message):
    result, _, err = world.run(*argv)
    assert result == code and message in err
    assert world.log == []


def test_other_credentials_are_refused_before_aws_is_asked(world):
    world.identity_ok = False
    code, _, err = world.run("production", "--yes")
    assert code == errors.EXIT_REFUSED
    assert "not rotating the master password of production: preflight failed (account)" in err
    assert world.log == []


def test_an_aws_error_is_one_line_naming_the_way_on(world):
    world.fail = "modify_db_cluster"
    tools = world.tools()
    project = load(tools)
    with pytest.raises(errors.Refused) as refused:
        keep_master_password(tools, project, project.environment("production"))
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("production: master password: ")
    assert message.endswith("run: python -m ops rotate-master-password production")


def test_the_names_follow_the_configuration(project):
    """The names ops derives from production's configuration (tests/test_database.py pins them against the
    synthesized stack)."""
    where = MasterPassword.of(project.environment("production"))
    assert (where.cluster, where.secret, where.record_name) == (CLUSTER, SECRET, RECORD)
