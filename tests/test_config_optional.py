"""Optional settings: hosted zone, existing certificates, the Content-Security-Policy."""

from __future__ import annotations

import dataclasses
import json
import tomllib

import cdktf
import pytest

from environments.loader import load_project
from stacks.environment import EnvironmentStack
from tests.conftest import resources_of
from tests.strategies import to_toml
from tests.test_config_loader import assert_refused

API_CERT = "arn:aws:acm:eu-west-1:111122223333:certificate/12345678-1234-1234-1234-123456789012"
EDGE_CERT = "arn:aws:acm:us-east-1:111122223333:certificate/12345678-1234-1234-1234-123456789012"


def edit(directory, file: str, change) -> None:
    path = directory / file
    document = tomllib.loads(path.read_text())
    change(document)
    path.write_text(to_toml(document))


def test_optional_settings_load(config_dir):
    def change(doc):
        doc["hosted_zone_id"] = "Z0123456789ABCDEFGHIJ"
        doc["api"]["certificate_arn"] = API_CERT
        doc["frontend"] = {"certificate_arn": EDGE_CERT, "content_security_policy": "default-src 'self'"}
    edit(config_dir, "dev.toml", change)
    env = load_project(config_dir).environment("dev")
    assert env.hosted_zone_id == "Z0123456789ABCDEFGHIJ"
    assert env.api.certificate_arn == API_CERT
    assert env.frontend.certificate_arn == EDGE_CERT
    assert env.frontend.content_security_policy == "default-src 'self'"


def test_shipped_files_leave_them_unset(project):
    env = project.environment("production")
    assert env.hosted_zone_id is None and env.api.certificate_arn is None and env.frontend.certificate_arn is None


@pytest.mark.parametrize(("change", "field", "rule"), [
    (lambda d: d.update(hosted_zone_id="zone-1"), "hosted_zone_id", "must be a Route 53 hosted zone id"),
    (lambda d: d["api"].update(certificate_arn="arn:aws:acm:us-east-1:111122223333:certificate/"
                                               "12345678-1234-1234-1234-123456789012"),
     "api.certificate_arn", "must be a certificate in eu-west-1"),
    (lambda d: d["api"].update(certificate_arn="not-an-arn"), "api.certificate_arn", "must be an ACM certificate"),
    (lambda d: d.update(frontend={"certificate_arn": API_CERT}), "frontend.certificate_arn",
     "must be a certificate in us-east-1"),
    (lambda d: d.update(frontend={"content_security_policy": "script-src 'self'"}),
     "frontend.content_security_policy", "default-src"),
    (lambda d: d.update(frontend={"csp": "default-src 'self'"}), "frontend.csp", "is not a known setting"),
])
def test_bad_optional_settings_are_refused(config_dir, change, field, rule):
    edit(config_dir, "dev.toml", change)
    assert_refused(config_dir, "dev.toml", field, rule)


@pytest.fixture(scope="module")
def with_zone(project) -> dict:
    env = dataclasses.replace(project.environment("dev"), hosted_zone_id="Z0123456789ABCDEFGHIJ")
    return json.loads(cdktf.Testing.synth(EnvironmentStack(cdktf.Testing.app(), project, env)))


def test_a_hosted_zone_validates_both_certificates_and_creates_alias_records(with_zone, project):
    env = project.environment("dev")
    records = list(resources_of(with_zone, "aws_route53_record").values())
    aliases = {(r["name"], r["type"]) for r in records if "alias" in r}
    assert aliases == {(env.domain, "A"), (env.domain, "AAAA"), (f"api.{env.domain}", "A"),
                       (f"api.{env.domain}", "AAAA")}
    validations = resources_of(with_zone, "aws_acm_certificate_validation").values()
    assert len(validations) == 2
    assert {v.get("provider") for v in validations} == {None, "aws.us_east_1"}


def test_configured_certificates_are_used_as_given(project):
    env = project.environment("dev")
    env = dataclasses.replace(env, api=dataclasses.replace(env.api, certificate_arn=API_CERT),
                              frontend=dataclasses.replace(env.frontend, certificate_arn=EDGE_CERT))
    stack = json.loads(cdktf.Testing.synth(EnvironmentStack(cdktf.Testing.app(), project, env)))
    assert not resources_of(stack, "aws_acm_certificate")
    (https,) = [listener for listener in resources_of(stack, "aws_lb_listener").values()
                if listener["protocol"] == "HTTPS"]
    assert https["certificate_arn"] == API_CERT
    (distribution,) = resources_of(stack, "aws_cloudfront_distribution").values()
    assert distribution["viewer_certificate"]["acm_certificate_arn"] == EDGE_CERT
