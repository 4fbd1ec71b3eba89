"""The feature toggles the shipped environments must keep, pinned on the synthesized stacks.

The other tier tests check that each toggle is obeyed (`bool(resources) is env.features.x`), which
stays true whatever the TOML says; these pin what is promised, so switching a protection off in a
shipped environment fails here. SPEC 2 names the toggles but leaves their values to configuration,
so each expectation below cites the promise that depends on it; none is read from environments/.
"""

from __future__ import annotations

import pytest

from tests import api_checks
from tests.conftest import resources_of

# SPEC 4.1: the interface endpoints, by service.
INTERFACE_ENDPOINTS = ("ecr.api", "ecr.dkr", "logs", "secretsmanager", "kms")


def check_waf(stack: dict) -> None:
    """.checkov.yaml skips CKV2_AWS_28, CKV_AWS_68 and CKV2_AWS_47 because "production enables it"."""
    api_checks.check_waf_protects_the_load_balancer(stack)
    api_checks.check_waf_protects_the_distribution(stack)


def check_cloudtrail(baselines: list[dict]) -> None:
    """SPEC 4.5: secret access is audited through CloudTrail (seed 000, requirement 5: "SHALL audit
    secret access through CloudTrail"); .checkov.yaml's CKV2_AWS_62 reason relies on it too. Since
    issue 17 the one trail of an account lives in that account's baseline stack."""
    trails = [trail for stack in baselines for trail in resources_of(stack, "aws_cloudtrail").values()]
    assert [trail["is_multi_region_trail"] for trail in trails] == [True], "production's account must keep its trail"


def account_baselines(stacks: dict[str, dict], project, name: str) -> list[dict]:
    """The baseline stacks of the account an environment is deployed to."""
    account = project.environment(name).account_id
    return [stacks[baseline.stack_name] for baseline in project.baselines if baseline.account_id == account]


def check_interface_endpoints(stack: dict) -> None:
    """Seed 001 FR-4.5 asks for VPC endpoints; production's tasks reach ECR, Logs, Secrets Manager
    and KMS through them (the path issue 13 found broken by the NACL), not through the NAT."""
    region = next(p["region"] for p in stack["provider"]["aws"] if "alias" not in p)
    services = sorted(endpoint["service_name"].removeprefix(f"com.amazonaws.{region}.")
                      for endpoint in resources_of(stack, "aws_vpc_endpoint").values()
                      if endpoint["vpc_endpoint_type"] == "Interface")
    assert services == sorted(INTERFACE_ENDPOINTS), services


PROMISED = {
    "production": (check_waf, check_interface_endpoints),
}


@pytest.mark.parametrize(("name", "check"), [(name, check) for name, checks in PROMISED.items() for check in checks],
                         ids=lambda value: getattr(value, "__name__", value))
def test_shipped_environment_keeps_its_promised_protections(stacks, name, check):
    check(stacks[name])


def test_production_account_keeps_its_trail(stacks, project):
    check_cloudtrail(account_baselines(stacks, project, "production"))
