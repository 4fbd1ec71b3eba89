"""`python -m ops validate-policies`: every shipped policy extracted, and Access Analyzer's answers reported.

Access Analyzer cannot be reached here, so its real verdict on the shipped policies is NOT proven
by these tests. What is proven offline: every policy-bearing attribute of every synthesized stack
is extracted (checked against an independent walk of the JSON, so a new policy-bearing resource
type without an extractor fails), every one becomes a JSON document AWS can be sent, the requests
have the shape botocore's model of the API requires (Stubber), and the answers, in the response
shapes the API reference documents (written here, not recorded from AWS), decide the exit status
and the report as documented.
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, NoCredentialsError
from botocore.stub import Stubber

from ops import cli, policy_documents, policy_validation
from ops import tools as ops_tools
from ops.policy_documents import PLACEHOLDER_ACCOUNT, extract_policies
from ops.policy_validation import EXIT_NOT_RUN
from tests import network_checks
from tests.terraform_tools import run_terraform

STACK_NAMES = ("bootstrap", "baseline-eu-west-1", "dev", "staging", "production")
LINK = "https://docs.aws.amazon.com/IAM/latest/UserGuide/access-analyzer-reference-policy-checks.html"


# --- an independent walk: which attributes hold a policy? ----------------------------------------

def _holds_policy(value: Any) -> bool:
    """A policy anywhere in the value: a rendered policy document's reference, or JSON with a Statement."""
    if isinstance(value, str):
        return "data.aws_iam_policy_document." in value or '"Statement"' in value
    if isinstance(value, list):
        return any(map(_holds_policy, value))
    if isinstance(value, dict):
        return any(map(_holds_policy, value.values()))
    return False


def policy_bearing(stack: dict) -> set[tuple[str, str]]:
    """(address, attribute) of every resource attribute holding a policy, found without the extractor's table."""
    return {(f"{resource_type}.{logical_id}", attribute)
            for resource_type, resources in stack.get("resource", {}).items()
            for logical_id, config in resources.items()
            for attribute, value in config.items() if attribute != "//" and _holds_policy(value)}


def assert_every_policy_extracted(stack: dict) -> None:
    extracted = {(policy.address, policy.attribute) for policy in extract_policies(stack)}
    walked = policy_bearing(stack)
    missed = sorted(f"{address.split('.')[0]}.{attribute} ({address})" for address, attribute in walked - extracted)
    assert not missed, "policy-bearing attributes without an extractor (POLICY_ATTRIBUTES): " + ", ".join(missed)
    assert extracted == walked, f"extracted but not policy-bearing: {sorted(extracted - walked)}"


@pytest.mark.parametrize("name", STACK_NAMES)
def test_every_policy_of_every_stack_is_extracted(stacks, name):
    assert policy_bearing(stacks[name]), f"{name}: the walk found no policy at all: it would prove nothing"
    assert_every_policy_extracted(stacks[name])


def test_every_policy_bearing_type_of_the_stacks_has_an_extractor(stacks):
    present = {(address.split(".")[0], attribute) for stack in stacks.values() for address, attribute in
               policy_bearing(stack)}
    assert present == set(policy_documents.POLICY_ATTRIBUTES), "types in the table that no stack ships are dead"


def test_dropping_an_extractor_fails_the_completeness_check(stacks, monkeypatch):
    table = dict(policy_documents.POLICY_ATTRIBUTES)
    del table[("aws_kms_key_policy", "policy")]
    monkeypatch.setattr(policy_documents, "POLICY_ATTRIBUTES", table)
    with pytest.raises(AssertionError, match=r"aws_kms_key_policy\.policy \(aws_kms_key_policy\.frontend_key"):
        assert_every_policy_extracted(stacks["dev"])


@pytest.mark.parametrize("name", STACK_NAMES)
def test_every_shipped_policy_becomes_a_document_with_its_placeholders_named(stacks, name):
    for policy in extract_policies(stacks[name]):
        assert policy.document is not None, f"{policy.label}: not validated: {policy.why_not}"
        document = json.loads(policy.document)
        assert document["Version"] == "2012-10-17" and document["Statement"], policy.label
        assert "${" not in policy.document, policy.label
        config = stacks[name]["resource"][policy.address.split(".")[0]][policy.address.split(".")[1]]
        assert bool(policy.placeholders) == ("${" in json.dumps(_rendered_source(stacks[name], config,
                                                                                 policy.attribute))), policy.label


def _rendered_source(stack: dict, config: dict, attribute: str) -> Any:
    """What a policy attribute holds, with a referenced policy document expanded (to look for references)."""
    value = config[attribute]
    if value.startswith("${data.aws_iam_policy_document."):
        return stack["data"]["aws_iam_policy_document"][value.split(".")[2]]
    return value


def _listed(value: Any) -> list:
    """A policy element's values: one is written without a list."""
    return value if isinstance(value, list) else [value]


def test_placeholders_are_well_formed_arns_in_the_resources_region(stacks):
    policies = {policy.address: policy for policy in extract_policies(stacks["production"])}
    replica = next(policy for address, policy in policies.items()
                   if address.startswith("aws_s3_bucket_policy.frontend_replica_policy"))
    document = json.loads(replica.document)
    resources = [arn for statement in document["Statement"] for arn in _listed(statement.get("Resource", []))]
    replica_bucket = stacks["production"]["resource"]["aws_s3_bucket"]
    bucket_name = next(config["bucket"] for logical_id, config in replica_bucket.items()
                       if logical_id.startswith("frontend_replica_bucket"))
    # The bucket's own name, its account reference replaced too.
    bucket_name = bucket_name.replace("${data.aws_caller_identity.caller.account_id}", PLACEHOLDER_ACCOUNT)
    assert f"arn:aws:s3:::{bucket_name}" in resources and f"arn:aws:s3:::{bucket_name}/*" in resources
    topic = next(policy for address, policy in policies.items()
                 if address.startswith("aws_sns_topic_policy.observability_edge-warning"))
    arns = {arn for statement in json.loads(topic.document)["Statement"]
            for arn in _listed(statement.get("Resource", []))}
    assert arns and all(arn.startswith(f"arn:aws:sns:us-east-1:{PLACEHOLDER_ACCOUNT}:") for arn in arns), arns


def test_a_reference_without_a_placeholder_is_not_validated_and_says_why(stacks):
    stack = copy.deepcopy(stacks["dev"])
    role_policy = next(iter(stack["resource"]["aws_iam_role_policy"].values()))
    role_policy["policy"] = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": "${aws_lambda_function.f.arn}"}]})
    unvalidated = [policy for policy in extract_policies(stack) if policy.document is None]
    assert len(unvalidated) == 1
    assert "${aws_lambda_function.f.arn} is unknown before apply and has no placeholder" in unvalidated[0].why_not
    verdict = policy_validation.judge_all(RecordedAccessAnalyzer(), unvalidated)[0]
    assert verdict.failed


# --- values a plan knows --------------------------------------------------------------------------

def _plan_for(stack: dict, known_policy_address: str, known_policy: str, account: str) -> dict:
    """A `terraform show -json` plan: one policy known whole, the account known, a replaced key's old policy."""
    resource_type, name = known_policy_address.split(".")
    key = next(iter(stack["resource"]["aws_kms_key"]))
    return {
        "format_version": "1.2",
        "prior_state": {"values": {"root_module": {"resources": [
            {"address": "data.aws_caller_identity.caller", "mode": "data", "type": "aws_caller_identity",
             "name": "caller", "values": {"account_id": account}},
            # The old key's policy: must not be taken for the planned (unknown) one.
            {"address": f"aws_kms_key.{key}", "mode": "managed", "type": "aws_kms_key", "name": key,
             "values": {"policy": '{"Statement": "the old policy"}'}}]}}},
        "planned_values": {"root_module": {"resources": [
            {"address": known_policy_address, "mode": "managed", "type": resource_type, "name": name,
             "values": {"policy": known_policy}},
            {"address": f"aws_kms_key.{key}", "mode": "managed", "type": "aws_kms_key", "name": key,
             "values": {"description": "policy unknown until the key exists"}}]}},
    }


def test_values_a_plan_knows_replace_placeholders(stacks):
    stack = stacks["dev"]
    bucket_policy = next(f"aws_s3_bucket_policy.{name}" for name in stack["resource"]["aws_s3_bucket_policy"])
    planned = json.dumps({"Version": "2012-10-17", "Statement": [{"Sid": "AsPlanned", "Effect": "Deny",
                          "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::as-planned"}]})
    policies = {p.address: p for p in extract_policies(stack, _plan_for(stack, bucket_policy, planned, "123456789012"))}
    assert policies[bucket_policy].document == planned and policies[bucket_policy].placeholders == ()
    key = policies[f"aws_kms_key.{next(iter(stack['resource']['aws_kms_key']))}"]
    assert "the old policy" not in key.document
    assert "123456789012" in key.document and PLACEHOLDER_ACCOUNT not in key.document
    assert "data.aws_caller_identity.caller.account_id" not in key.placeholders


# --- Access Analyzer's answers --------------------------------------------------------------------

def finding(finding_type: str, issue_code: str, details: str) -> dict:
    """One ValidatePolicy finding in the documented shape (API_ValidatePolicy, ValidatePolicyFinding)."""
    return {"findingType": finding_type, "issueCode": issue_code, "findingDetails": details, "learnMoreLink": LINK,
            "locations": [{"path": [{"value": "Statement"}, {"index": 0}], "span": {
                "start": {"line": 1, "column": 1, "offset": 0}, "end": {"line": 1, "column": 9, "offset": 8}}}]}


@dataclass
class RecordedAccessAnalyzer:
    """Answers by document: findings and public-access results for the documents named, none otherwise."""

    findings: dict[str, list[dict]] = field(default_factory=dict)
    public: dict[str, str] = field(default_factory=dict)
    fail_with: Exception | None = None
    calls: list[tuple[str, dict]] = field(default_factory=list)

    def validate_policy(self, **request: Any) -> dict:
        self.calls.append(("validate_policy", request))
        if self.fail_with:
            raise self.fail_with
        return {"findings": self.findings.get(request["policyDocument"], [])}

    def check_no_public_access(self, **request: Any) -> dict:
        self.calls.append(("check_no_public_access", request))
        result = self.public.get(request["policyDocument"], "PASS")
        return {"result": result, "message": f"The policy {'might grant' if result == 'FAIL' else 'does not grant'} "
                                             "public access", "reasons": []}


@dataclass
class Run:
    code: int
    out: str
    err: str
    summary: str


@pytest.fixture
def run_command(synth_dir, tmp_path) -> Callable[..., Run]:
    """`python -m ops validate-policies ...` with the session's synthesis and `client` as Access Analyzer."""
    def run(client: Any, *args: str, environ: dict[str, str] | None = None) -> Run:
        out, err, summary = io.StringIO(), io.StringIO(), tmp_path / "policies.md"
        tools = ops_tools.Tools(run=lambda command, cwd, env: 0, out=out, err=err, synth_dir=synth_dir,
                                environ=environ or {}, aws=lambda project, service, region, role=None: client)
        code = cli.main(["validate-policies", *args, "--summary", str(summary)], tools)
        return Run(code, out.getvalue(), err.getvalue(), summary.read_text() if summary.exists() else "")
    return run


def policy_of(stacks: dict, stack: str, prefix: str) -> policy_documents.Policy:
    return next(policy for policy in extract_policies(stacks[stack]) if policy.address.startswith(prefix))


def test_an_error_finding_fails_and_names_the_address(stacks, run_command):
    policy = policy_of(stacks, "dev", "aws_iam_role_policy.api_task-role-policy")
    error = finding("ERROR", "INVALID_ARN_RESOURCE", "The ARN is invalid.")
    client = RecordedAccessAnalyzer({policy.document: [error]})
    result = run_command(client, "dev")
    assert result.code == 1
    assert f"ERROR {policy.address} (role policy): INVALID_ARN_RESOURCE: The ARN is invalid." in result.out
    assert f"| :x: | ERROR | `{policy.address}` | role policy | INVALID_ARN_RESOURCE: The ARN is invalid." \
        in result.summary
    assert "1 FAILED" in result.out


def test_a_security_warning_fails(stacks, run_command):
    policy = policy_of(stacks, "dev", "aws_vpc_endpoint.")
    client = RecordedAccessAnalyzer({policy.document: [
        finding("SECURITY_WARNING", "PASS_ROLE_WITH_STAR_IN_RESOURCE", "Using iam:PassRole with *.")]})
    result = run_command(client, "dev")
    assert result.code == 1 and f"SECURITY_WARNING {policy.address} (endpoint policy)" in result.out


def test_a_suggestion_passes_but_is_listed(stacks, run_command):
    policy = policy_of(stacks, "dev", "aws_iam_role.api_task-role")
    client = RecordedAccessAnalyzer({policy.document: [
        finding("SUGGESTION", "EMPTY_ARRAY_CONDITION", "An empty array."), finding("WARNING", "MISSING_VERSION", "x")]})
    result = run_command(client, "dev")
    assert result.code == 0, result.out + result.err
    assert f"SUGGESTION {policy.address} (trust policy): EMPTY_ARRAY_CONDITION" in result.out
    assert f"WARNING {policy.address} (trust policy): MISSING_VERSION" in result.out
    assert f"|  | SUGGESTION | `{policy.address}` |" in result.summary and ":white_check_mark:" in result.summary
    assert "none failed" in result.out


def test_a_public_access_fail_fails(stacks, run_command):
    policy = policy_of(stacks, "dev", "aws_s3_bucket_policy.frontend_site")
    result = run_command(RecordedAccessAnalyzer(public={policy.document: "FAIL"}), "dev")
    assert result.code == 1
    assert f"PUBLIC {policy.address} (bucket policy): CheckNoPublicAccess FAIL: The policy might grant" in result.out


def test_every_policy_is_judged_and_only_bucket_key_topic_and_trust_policies_are_checked_for_public_access(
        stacks, run_command):
    client = RecordedAccessAnalyzer()
    result = run_command(client, "staging")
    assert result.code == 0, result.out + result.err
    documents = {policy.document for policy in extract_policies(stacks["staging"])}
    asked = [request for name, request in client.calls if name == "validate_policy"]
    assert {request["policyDocument"] for request in asked} == documents
    public_types = {request["resourceType"] for name, request in client.calls if name == "check_no_public_access"}
    assert public_types == {"AWS::S3::Bucket", "AWS::KMS::Key", "AWS::SNS::Topic",
                            "AWS::IAM::AssumeRolePolicyDocument"}
    assert f"staging: {len(extract_policies(stacks['staging']))} policies judged" in result.out


def _stubbed_client(stack: dict) -> tuple[Any, Stubber]:
    """A real botocore client whose every request must match, in order, the shapes botocore's model requires."""
    client = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                   region_name="eu-west-1").client("accessanalyzer")
    stubber = Stubber(client)
    seen = set()
    for policy in extract_policies(stack):
        if (policy.document, policy.kind) in seen:
            continue  # identical documents of one kind are asked once
        seen.add((policy.document, policy.kind))
        expected = {"policyDocument": policy.document, "policyType": policy.kind.policy_type}
        if policy.kind.validate_resource_type:
            expected["validatePolicyResourceType"] = policy.kind.validate_resource_type
        stubber.add_response("validate_policy", {"findings": []}, expected)
        if policy.kind.public_access_type:
            stubber.add_response("check_no_public_access", {"result": "PASS", "message": "ok", "reasons": []},
                                 {"policyDocument": policy.document, "resourceType": policy.kind.public_access_type})
    return client, stubber


def test_requests_have_the_shape_of_the_api_with_the_documented_resource_types(stacks, run_command):
    client, stubber = _stubbed_client(stacks["production"])
    with stubber:
        result = run_command(client, "production")
    stubber.assert_no_pending_responses()
    assert result.code == 0, result.out + result.err
    # The ValidatePolicy reference: trust policies and bucket policies have their own resource type;
    # KMS keys (and the types it does not list) take none. Each value is one the API model enumerates.
    assert {attribute: (kind.policy_type, kind.validate_resource_type, kind.public_access_type)
            for attribute, kind in policy_documents.POLICY_ATTRIBUTES.items()} == {
        ("aws_iam_role", "assume_role_policy"): ("RESOURCE_POLICY", "AWS::IAM::AssumeRolePolicyDocument",
                                                 "AWS::IAM::AssumeRolePolicyDocument"),
        ("aws_iam_role_policy", "policy"): ("IDENTITY_POLICY", None, None),
        ("aws_kms_key", "policy"): ("RESOURCE_POLICY", None, "AWS::KMS::Key"),
        ("aws_kms_key_policy", "policy"): ("RESOURCE_POLICY", None, "AWS::KMS::Key"),
        ("aws_s3_bucket_policy", "policy"): ("RESOURCE_POLICY", "AWS::S3::Bucket", "AWS::S3::Bucket"),
        ("aws_sns_topic_policy", "policy"): ("RESOURCE_POLICY", None, "AWS::SNS::Topic"),
        ("aws_vpc_endpoint", "policy"): ("RESOURCE_POLICY", None, None)}
    shapes = client.meta.service_model.shape_for
    for kind in policy_documents.POLICY_ATTRIBUTES.values():
        assert kind.policy_type in shapes("PolicyType").enum
        assert kind.validate_resource_type in (None, *shapes("ValidatePolicyResourceType").enum)
        assert kind.public_access_type in (None, *shapes("AccessCheckResourceType").enum)


def test_findings_on_every_page_are_read(stacks):
    policy = policy_of(stacks, "dev", "aws_iam_role_policy.api_task-role-policy")
    client = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                   region_name="eu-west-1").client("accessanalyzer")
    request = {"policyDocument": policy.document, "policyType": "IDENTITY_POLICY"}
    with Stubber(client) as stubber:
        stubber.add_response("validate_policy", {"findings": [finding("SUGGESTION", "A", "a")], "nextToken": "2"},
                             request)
        stubber.add_response("validate_policy", {"findings": [finding("ERROR", "B", "b")]},
                             {**request, "nextToken": "2"})
        verdict = policy_validation.judge_all(client, [policy])[0]
    assert [item.issue_code for item in verdict.findings] == ["A", "B"] and verdict.failed


def test_a_document_aws_refuses_fails_that_policy_and_the_others_are_still_judged(stacks):
    policies = extract_policies(stacks["dev"])
    refused = ClientError({"Error": {"Code": "ValidationException", "Message": "policy too large"}}, "ValidatePolicy")

    class RefusesOne(RecordedAccessAnalyzer):
        def validate_policy(self, **request: Any) -> dict:
            if request["policyDocument"] == policies[0].document:
                raise refused
            return super().validate_policy(**request)

    verdicts = policy_validation.judge_all(RefusesOne(), policies)
    assert verdicts[0].failed and "policy too large" in verdicts[0].refused
    assert not any(verdict.failed for verdict in verdicts if verdict.policy.document != policies[0].document)


# --- when it cannot run ---------------------------------------------------------------------------

@pytest.mark.parametrize("error, reason", [
    (NoCredentialsError(), "Unable to locate credentials"),
    (ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not authorized to perform "
                            "access-analyzer:ValidatePolicy"}}, "ValidatePolicy"), "AccessDeniedException"),
], ids=["no-credentials", "access-denied"])
def test_without_access_it_says_it_could_not_run_and_never_passes(run_command, error, reason):
    result = run_command(RecordedAccessAnalyzer(fail_with=error), "dev")
    assert result.code == EXIT_NOT_RUN == 3
    assert result.err.startswith("ops: dev: could not run: ") and reason in result.err
    assert result.err.count("\n") == 1 and result.out == ""
    assert "could not run" in result.summary and "not a pass" in result.summary


def test_against_the_emulator_it_does_not_run(run_command):
    client = RecordedAccessAnalyzer()
    result = run_command(client, "dev", environ={"INFRA_AWS_ENDPOINT": "http://127.0.0.1:5000"})
    assert result.code == EXIT_NOT_RUN and "Access Analyzer is not emulated" in result.err
    assert client.calls == []


def test_a_plan_that_is_not_json_is_a_usage_error(run_command, tmp_path):
    bad = tmp_path / "plan.json"
    bad.write_text("Terraform used the selected providers")
    result = run_command(RecordedAccessAnalyzer(), "dev", "--plan", str(bad))
    assert result.code == 2 and "--plan" in result.err


def test_the_plan_file_is_read(stacks, run_command, tmp_path):
    stack = stacks["dev"]
    address = next(f"aws_s3_bucket_policy.{name}" for name in stack["resource"]["aws_s3_bucket_policy"])
    planned = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Principal": "*",
                                                                  "Action": "s3:*", "Resource": "*"}]})
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(_plan_for(stack, address, planned, "123456789012")))
    client = RecordedAccessAnalyzer()
    assert run_command(client, "dev", "--plan", str(plan)).code == 0
    assert planned in {request["policyDocument"] for _, request in client.calls}


def test_a_rendered_policy_document_keeps_every_statement_of_its_block(stacks):
    """The extraction drops nothing: one statement out per `statement` block or inline statement in, Sids in order."""
    stack = stacks["production"]
    for policy in extract_policies(stack):
        config = stack["resource"][policy.address.split(".")[0]][policy.address.split(".")[1]]
        source = _rendered_source(stack, config, policy.attribute)
        sids = [statement.get("Sid") for statement in json.loads(policy.document)["Statement"]]
        if isinstance(source, dict):
            assert sids == [statement["sid"] for statement in source["statement"]], policy.label
        else:
            assert sids == [statement.get("Sid") for statement in json.loads(source)["Statement"]], policy.label



# --- the renderer against the provider's own rendering ----------------------------------------------

def _normalized(value: Any) -> Any:
    """A policy with the provider's shorthand undone: one-element lists as lists, every list sorted."""
    if isinstance(value, dict):
        return {key: _normalized(item) for key, item in value.items()}
    if isinstance(value, list):
        return sorted((_normalized(item) for item in value), key=lambda item: json.dumps(item, sort_keys=True))
    return value


def _as_lists(value: Any, key: str = "") -> Any:
    """Scalars that the provider may shorten from one-element lists, as lists (not Version, Sid, Effect)."""
    if isinstance(value, dict):
        return {name: _as_lists(item, name) for name, item in value.items()}
    if isinstance(value, list):
        return [_as_lists(item, "Version") if isinstance(item, str) else _as_lists(item) for item in value]
    if isinstance(value, str) and key not in ("Version", "Sid", "Effect", "Principal", "NotPrincipal"):
        return [value]
    return value


def test_rendered_policy_documents_match_the_providers_rendering(stacks, terraform_env, tmp_path):
    """Every shipped IAM policy document (core.iam writes them inline, issue 23), references replaced the same
    way, rendered by hashicorp/aws from the equivalent aws_iam_policy_document data source offline (a data
    source needs no AWS call) and compared statement by statement with the inline document and with the
    renderer here (which ops/policy_documents.py applies to data sources); an inline document's text is the
    provider's but for the order within lists of actions and resources."""
    root: dict[str, Any] = {"terraform": {"required_providers": stacks["dev"]["terraform"]["required_providers"]},
                            "provider": {"aws": {"region": "eu-west-1", "access_key": "offline",
                                                 "secret_key": "offline", "skip_credentials_validation": True,
                                                 "skip_requesting_account_id": True,
                                                 "skip_metadata_api_check": True}},
                            "data": {"aws_iam_policy_document": {}}, "output": {}}
    expected, texts = {}, {}
    for stack_name, stack in sorted(stacks.items()):
        substitution = policy_documents.Substitution(stack, {}, PLACEHOLDER_ACCOUNT)
        for name, block in network_checks.iam_documents(stack).items():
            key = f"d{len(expected)}"
            concrete = json.loads(substitution.apply(json.dumps({k: v for k, v in block.items() if k != "//"})))
            root["data"]["aws_iam_policy_document"][key] = concrete
            root["output"][key] = {"value": f"${{data.aws_iam_policy_document.{key}.json}}"}
            inline = [policy_documents.render_policy_document(concrete)]
            if "." in name:  # an inline document: what the stack itself holds, references replaced
                resource_type, logical_id = name.split(".")
                attribute = network_checks.DOCUMENT_ATTRIBUTES[resource_type]
                texts[key] = substitution.apply(stack["resource"][resource_type][logical_id][attribute])
                inline.append(json.loads(texts[key]))
            expected[key] = (f"{stack_name}: {name}", inline)
    assert len(expected) > 50, "too few documents: the comparison would prove little"
    (tmp_path / "main.tf.json").write_text(json.dumps(root))
    run_terraform(["init", "-backend=false", "-input=false", "-no-color"], tmp_path, terraform_env)
    run_terraform(["apply", "-auto-approve", "-input=false", "-no-color"], tmp_path, terraform_env)
    outputs = json.loads(run_terraform(["output", "-json"], tmp_path, terraform_env).stdout)
    for key, (where, renderings) in expected.items():
        theirs = json.loads(outputs[key]["value"])
        for ours in renderings:
            assert _normalized(_as_lists(theirs)) == _normalized(_as_lists(ours)), f"{where}: {theirs} != {ours}"
        if key in texts:  # core/iam.py writes the provider's text: the same shape, only lists in their own order
            assert _normalized(json.loads(texts[key])) == _normalized(theirs), where
            assert texts[key] == json.dumps(json.loads(outputs[key]["value"]) | {"Statement": [
                statement | {element: _in_order_of(statement[element], mine[element])
                             for element in ("Action", "Resource") if isinstance(statement.get(element), list)}
                for statement, mine in zip(theirs["Statement"], json.loads(texts[key])["Statement"], strict=True)]},
                indent=2), where


def _in_order_of(values: list, order: list) -> list:
    """`values` (the provider's sorted list) in the order of `order` (the same values)."""
    assert sorted(values) == sorted(order)
    return list(order)


def test_the_rendering_comparison_ignores_only_the_providers_shorthand():
    ours = {"Version": "2012-10-17", "Statement": [{"Sid": "S", "Effect": "Allow", "Action": ["s3:GetObject"],
                                                    "Principal": {"Service": ["s3.amazonaws.com"]},
                                                    "Condition": {"Bool": {"aws:SecureTransport": ["true"]}}}]}
    shorthand = {"Version": "2012-10-17", "Statement": [{"Sid": "S", "Effect": "Allow", "Action": "s3:GetObject",
                                                         "Principal": {"Service": "s3.amazonaws.com"},
                                                         "Condition": {"Bool": {"aws:SecureTransport": "true"}}}]}
    assert _normalized(_as_lists(shorthand)) == _normalized(_as_lists(ours))
    dropped = copy.deepcopy(ours)
    del dropped["Statement"][0]["Condition"]
    assert _normalized(_as_lists(dropped)) != _normalized(_as_lists(ours))
