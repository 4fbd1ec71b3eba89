"""`python -m ops validate-policies STACK`: IAM Access Analyzer judges every policy a stack ships.

moto evaluates no policy and the synthesis tests pin what the code says, so neither can tell
whether AWS accepts a grant. This command sends every IAM, trust, key, bucket, topic and endpoint
policy of one synthesized stack to Access Analyzer's ValidatePolicy (with the resource type where
the API takes one), and the bucket, key, topic and trust policies also to CheckNoPublicAccess:
https://docs.aws.amazon.com/access-analyzer/latest/APIReference/API_ValidatePolicy.html
https://docs.aws.amazon.com/access-analyzer/latest/APIReference/API_CheckNoPublicAccess.html

Where the policies come from: the synthesized stack (cdk.tf.json) names every policy-bearing
attribute (POLICY_ATTRIBUTES). A policy is either a JSON string or a reference to a
`data.aws_iam_policy_document`, which is rendered here the way the provider renders it. Terraform
references in it (`${aws_s3_bucket.x.arn}`) are replaced by the value a plan knows (`--plan`, the
JSON of `terraform show -json PLANFILE`; a policy the plan knows whole is sent as planned) or else
by a well-formed placeholder of the right shape (PLACEHOLDERS: ARNs in the resource's own region,
account 111122223333, partition `aws`); the report names every placeholder used. A policy that
still cannot be made valid JSON is reported "not validated: why" and fails the check.

AWS's own tf-policy-validator (awslabs/terraform-iam-policy-validator) is not used: it reads only
the plan's known `planned_values`, so every policy that references a resource not yet created (on
a new environment, nearly all of them) is skipped with an INFO log line and exit 0, and it knows
no `aws_kms_key_policy`. See docs/deployment.md, "Policy validation".

Exit status: 0 every policy validated, nothing blocking; 1 a finding of type ERROR or
SECURITY_WARNING, a CheckNoPublicAccess FAIL, or a policy not validated; 2 bad usage;
3 (EXIT_NOT_RUN) the check could not run (no credentials, no network, access denied, emulator):
never a pass.
"""

from __future__ import annotations

import argparse
import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ops import preflight
from ops.errors import EXIT_REFUSED, UsageError
from ops.project import load_target
from ops.terraform import synth

if TYPE_CHECKING:
    from ops.tools import Tools

EXIT_NOT_RUN = 3
IDENTITY_POLICY, RESOURCE_POLICY = "IDENTITY_POLICY", "RESOURCE_POLICY"
# ValidatePolicy finding types that fail the check; WARNING and SUGGESTION are listed only.
BLOCKING = ("ERROR", "SECURITY_WARNING")
# A request AWS refuses for this document (not for the caller): that policy fails, the run goes on.
REFUSED_DOCUMENT = "ValidationException"


@dataclass(frozen=True)
class PolicyKind:
    """What a policy attribute holds, and how Access Analyzer is asked about it."""

    what: str
    policy_type: str
    # ValidatePolicy's validatePolicyResourceType; None where the API has no value for the resource
    # (KMS keys, topics, endpoints: "do not specify a value", per the ValidatePolicy reference).
    validate_resource_type: str | None = None
    # CheckNoPublicAccess's resourceType; None: not a type that check supports.
    public_access_type: str | None = None


TRUST = PolicyKind("trust policy", RESOURCE_POLICY, "AWS::IAM::AssumeRolePolicyDocument",
                   "AWS::IAM::AssumeRolePolicyDocument")
KEY = PolicyKind("key policy", RESOURCE_POLICY, None, "AWS::KMS::Key")
# (resource type, attribute) -> the policy it holds. tests/test_policy_validation.py walks every
# synthesized stack independently and fails when a policy-bearing attribute is missing here.
POLICY_ATTRIBUTES: dict[tuple[str, str], PolicyKind] = {
    ("aws_iam_role", "assume_role_policy"): TRUST,
    ("aws_iam_role_policy", "policy"): PolicyKind("role policy", IDENTITY_POLICY),
    ("aws_kms_key", "policy"): KEY,
    ("aws_kms_key_policy", "policy"): KEY,
    ("aws_s3_bucket_policy", "policy"): PolicyKind("bucket policy", RESOURCE_POLICY, "AWS::S3::Bucket",
                                                   "AWS::S3::Bucket"),
    ("aws_sns_topic_policy", "policy"): PolicyKind("topic policy", RESOURCE_POLICY, None, "AWS::SNS::Topic"),
    ("aws_vpc_endpoint", "policy"): PolicyKind("endpoint policy", RESOURCE_POLICY),
}

# The account id AWS's documentation uses in examples: never a real account of this project.
PLACEHOLDER_ACCOUNT = "111122223333"
PLACEHOLDER_PARTITION = "aws"
# (referenced type, attribute) -> a well-formed value of that attribute's shape, for references a plan
# does not know (or without a plan). Fields: partition, region and account of the stack; name: the
# referenced resource's literal name, else its logical id; uuid and id: derived from the referenced
# address, so two resources never share a placeholder (the provider would merge them in a set).
# ARN forms: each service's "Resource types" table in the Service Authorization Reference.
PLACEHOLDERS: dict[tuple[str, str], str] = {
    ("aws_backup_vault", "arn"): "arn:{partition}:backup:{region}:{account}:backup-vault:{name}",
    ("aws_cloudfront_distribution", "arn"): "arn:{partition}:cloudfront::{account}:distribution/E{id:.13}",
    ("aws_cloudwatch_log_group", "arn"): "arn:{partition}:logs:{region}:{account}:log-group:{name}",
    ("aws_ecr_repository", "arn"): "arn:{partition}:ecr:{region}:{account}:repository/{name}",
    ("aws_kms_key", "arn"): "arn:{partition}:kms:{region}:{account}:key/{uuid}",
    ("aws_rds_cluster", "arn"): "arn:{partition}:rds:{region}:{account}:cluster:{name}",
    ("aws_rds_cluster", "cluster_resource_id"): "cluster-{id:.26}",
    ("aws_rds_cluster", "master_user_secret[0].secret_arn"):
        "arn:{partition}:secretsmanager:{region}:{account}:secret:rds!cluster-{uuid}-AbCdEf",
    ("aws_s3_bucket", "arn"): "arn:{partition}:s3:::{name}",
    ("aws_sns_topic", "arn"): "arn:{partition}:sns:{region}:{account}:{name}",
    ("data.aws_caller_identity", "account_id"): "{account}",
    ("data.aws_partition", "partition"): "{partition}",
    # Elastic Load Balancing's account in the region: another account's root, like the real value.
    ("data.aws_elb_service_account", "arn"): "arn:{partition}:iam::444455556666:root",
}
# The attribute that holds a referenced resource's own name, where it is not `name`.
NAME_ATTRIBUTES = {"aws_s3_bucket": "bucket"}

# `${expr}`, but not Terraform's escape `$${` (a literal `${` in the rendered text).
REFERENCE = re.compile(r"(?<!\$)\$\{([^}]*)\}")
POLICY_DOCUMENT = re.compile(r"\$\{data\.aws_iam_policy_document\.([A-Za-z0-9_-]+)\.json\}")
ADDRESS_AND_PATH = re.compile(r"((?:data\.)?[a-z0-9_]+\.[A-Za-z0-9_-]+)\.([A-Za-z0-9_.\[\]]+)")


class NotValidatable(Exception):
    """This policy cannot be turned into a document to send; the message says why."""


class CouldNotRun(Exception):
    """Access Analyzer could not be asked at all (credentials, network, permissions)."""


# --- known values from a plan --------------------------------------------------------------------

def _modules(module: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield module
    for child in module.get("child_modules", []):
        yield from _modules(child)


def known_values(plan: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Attribute values by address, as `terraform show -json PLANFILE` knows them before apply.

    Managed resources come from `planned_values` only (a value to be recomputed is absent there;
    the prior state would hold the old one). Data sources read at plan time may appear in either.
    """
    values: dict[str, Mapping[str, Any]] = {}
    prior = plan.get("prior_state", {}).get("values", {}).get("root_module", {})
    for module in _modules(prior):
        values.update({r["address"]: r.get("values", {}) for r in module.get("resources", []) if r["mode"] == "data"})
    for module in _modules(plan.get("planned_values", {}).get("root_module", {})):
        values.update({r["address"]: r.get("values", {}) for r in module.get("resources", [])})
    return values


def _lookup(values: Mapping[str, Any], path: str) -> Any:
    """`master_user_secret[0].secret_arn` in a resource's values; None when it is not there."""
    current: Any = values
    for step in re.findall(r"[^.\[\]]+", path):
        if isinstance(current, list) and step.isdigit() and int(step) < len(current):
            current = current[int(step)]
        elif isinstance(current, Mapping):
            current = current.get(step)
        else:
            return None
    return current


# --- rendering aws_iam_policy_document as the provider does --------------------------------------

STATEMENT_ELEMENTS = {"sid": "Sid", "effect": "Effect", "actions": "Action", "not_actions": "NotAction",
                      "resources": "Resource", "not_resources": "NotResource"}
PRINCIPAL_ELEMENTS = {"principals": "Principal", "not_principals": "NotPrincipal"}


def _set(value: Any) -> Any:
    """A list without repeats (the provider's schema holds these as sets); sid and effect as they are."""
    return list(dict.fromkeys(value)) if isinstance(value, list) else value


def _principal(blocks: list[Mapping[str, Any]]) -> Any:
    """`principals` blocks as the Principal element; type and identifiers "*" is `"Principal": "*"`."""
    if len(blocks) == 1 and blocks[0]["type"] == "*" and blocks[0]["identifiers"] == ["*"]:
        return "*"
    merged: dict[str, list[str]] = {}
    for block in blocks:
        merged.setdefault(block["type"], []).extend(block["identifiers"])
    return {kind: _set(identifiers) for kind, identifiers in merged.items()}


def _condition(blocks: list[Mapping[str, Any]]) -> dict[str, dict[str, list[str]]]:
    merged: dict[str, dict[str, list[str]]] = {}
    for block in blocks:
        merged.setdefault(block["test"], {}).setdefault(block["variable"], []).extend(block["values"])
    return {test: {variable: _set(values) for variable, values in variables.items()}
            for test, variables in merged.items()}


def render_statement(statement: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(statement) - set(STATEMENT_ELEMENTS) - set(PRINCIPAL_ELEMENTS) - {"condition"})
    if unknown:
        raise NotValidatable(f"its policy document uses {', '.join(unknown)}, which is not rendered here")
    rendered: dict[str, Any] = {"Effect": "Allow"}
    rendered.update({element: _set(statement[key]) for key, element in STATEMENT_ELEMENTS.items() if key in statement})
    rendered.update({element: _principal(statement[key]) for key, element in PRINCIPAL_ELEMENTS.items()
                     if statement.get(key)})
    if statement.get("condition"):
        rendered["Condition"] = _condition(statement["condition"])
    return rendered


def render_policy_document(block: Mapping[str, Any]) -> dict[str, Any]:
    """A `data.aws_iam_policy_document` block (cdk.tf.json) as the JSON policy it renders."""
    unknown = sorted(set(block) - {"//", "statement", "version"})
    if unknown:
        raise NotValidatable(f"its policy document uses {', '.join(unknown)}, which is not rendered here")
    return {"Version": block.get("version", "2012-10-17"),
            "Statement": [render_statement(statement) for statement in block.get("statement", [])]}


# --- extraction -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Policy:
    """One policy a stack ships: where it is, what it is, and the document sent to AWS."""

    address: str
    attribute: str
    kind: PolicyKind
    document: str | None
    placeholders: tuple[str, ...] = ()
    why_not: str = ""

    @property
    def label(self) -> str:
        return f"{self.address} ({self.kind.what})"


@dataclass
class Substitution:
    """Replaces the references in one stack's policies: known plan values first, then placeholders."""

    stack: Mapping[str, Any]
    known: Mapping[str, Mapping[str, Any]]
    account: str
    used: list[str] = field(default_factory=list)

    def _region(self, address: str) -> str:
        resource_type, name = address.split(".")[-2:]
        section = self.stack.get("data" if address.startswith("data.") else "resource", {})
        alias = section.get(resource_type, {}).get(name, {}).get("provider", "aws").partition(".")[2] or None
        providers = self.stack.get("provider", {}).get("aws", [])
        return next(block["region"] for block in providers if block.get("alias") == alias)

    def _name(self, address: str) -> str:
        resource_type, logical_id = address.split(".")[-2:]
        config = self.stack.get("resource", {}).get(resource_type, {}).get(logical_id, {})
        name = config.get(NAME_ATTRIBUTES.get(resource_type, "name"))
        if isinstance(name, str):
            try:
                return self.apply(name)  # "webapp-dev-${data.aws_caller_identity.caller.account_id}"
            except NotValidatable:
                pass
        return re.sub(r"[^a-z0-9-]", "-", logical_id.lower())

    def value(self, expression: str) -> str:
        match = ADDRESS_AND_PATH.fullmatch(expression)
        if not match:
            raise NotValidatable(f"the expression ${{{expression}}} is not a plain reference")
        address, path = match.groups()
        known = _lookup(self.known.get(address, {}), path)
        if isinstance(known, str):
            return known
        template = PLACEHOLDERS.get((address.rsplit(".", 1)[0], path))
        if template is None:
            raise NotValidatable(f"${{{expression}}} is unknown before apply and has no placeholder "
                                 "(ops/policy_validation.py PLACEHOLDERS)")
        self.used.append(expression)
        unique = uuid.uuid5(uuid.NAMESPACE_URL, address)
        return template.format(partition=self._known_partition(), region=self._region(address),
                               account=self.account, name=self._name(address), uuid=unique,
                               id=unique.hex.upper())

    def _known_partition(self) -> str:
        for address, values in self.known.items():
            if address.startswith("data.aws_partition.") and isinstance(values.get("partition"), str):
                return values["partition"]
        return PLACEHOLDER_PARTITION

    def apply(self, text: str) -> str:
        """`text` with every reference replaced (each value escaped for a JSON string)."""
        substituted = REFERENCE.sub(lambda match: json.dumps(self.value(match[1]))[1:-1], text)
        return substituted.replace("$${", "${")


def _document_text(stack: Mapping[str, Any], value: str) -> str:
    """The policy's JSON text with references still in it: a rendered policy document, or the string."""
    match = POLICY_DOCUMENT.fullmatch(value)
    if not match:
        return value
    block = stack.get("data", {}).get("aws_iam_policy_document", {}).get(match[1])
    if block is None:
        raise NotValidatable(f"data.aws_iam_policy_document.{match[1]} is not in the stack")
    return json.dumps(render_policy_document(block))


def _policy(stack: Mapping[str, Any], known: Mapping[str, Mapping[str, Any]], account: str,
            address: str, attribute: str, kind: PolicyKind) -> Policy:
    planned = known.get(address, {}).get(attribute)
    if isinstance(planned, str) and planned:
        return Policy(address, attribute, kind, planned)  # the plan knows it whole: sent as planned
    resource_type, logical_id = address.split(".")
    value = stack["resource"][resource_type][logical_id][attribute]
    substitution = Substitution(stack, known, account)
    try:
        document = substitution.apply(_document_text(stack, value))
        json.loads(document)
    except NotValidatable as error:
        return Policy(address, attribute, kind, None, why_not=str(error))
    except json.JSONDecodeError as error:
        return Policy(address, attribute, kind, None, why_not=f"not JSON once references are replaced: {error}")
    return Policy(address, attribute, kind, document, tuple(dict.fromkeys(substitution.used)))


def extract_policies(stack: Mapping[str, Any], plan: Mapping[str, Any] | None = None,
                     account: str | None = None) -> list[Policy]:
    """Every policy of a synthesized stack, by address; `plan` (show -json) supplies the values it knows."""
    known = known_values(plan or {})
    policies = []
    for (resource_type, attribute), kind in POLICY_ATTRIBUTES.items():
        for logical_id, config in sorted(stack.get("resource", {}).get(resource_type, {}).items()):
            if config.get(attribute):
                policies.append(_policy(stack, known, account or PLACEHOLDER_ACCOUNT,
                                        f"{resource_type}.{logical_id}", attribute, kind))
    return sorted(policies, key=lambda policy: (policy.address, policy.attribute))


# --- asking Access Analyzer -----------------------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    finding_type: str
    issue_code: str
    details: str
    link: str

    @property
    def blocking(self) -> bool:
        return self.finding_type in BLOCKING


@dataclass(frozen=True)
class Verdict:
    """What Access Analyzer said about one policy."""

    policy: Policy
    findings: tuple[Finding, ...] = ()
    public: str | None = None  # CheckNoPublicAccess: "PASS", "FAIL", or None when not asked
    public_message: str = ""
    refused: str = ""  # AWS refused the request for this document (ValidationException)

    @property
    def failed(self) -> bool:
        return (self.policy.document is None or bool(self.refused) or self.public == "FAIL"
                or any(finding.blocking for finding in self.findings))


def _could_not_run(error: Exception) -> CouldNotRun:
    return CouldNotRun(preflight.describe_error(error))


def _validate(client: Any, policy: Policy) -> tuple[Finding, ...]:
    """Every ValidatePolicy finding for the policy (the operation pages with nextToken)."""
    request: dict[str, Any] = {"policyDocument": policy.document, "policyType": policy.kind.policy_type}
    if policy.kind.validate_resource_type:
        request["validatePolicyResourceType"] = policy.kind.validate_resource_type
    findings: list[Finding] = []
    while True:
        response = client.validate_policy(**request)
        findings += [Finding(item["findingType"], item["issueCode"], item["findingDetails"], item["learnMoreLink"])
                     for item in response["findings"]]
        if not response.get("nextToken"):
            return tuple(findings)
        request["nextToken"] = response["nextToken"]


def judge(client: Any, policy: Policy, cache: dict[tuple[str | None, PolicyKind], Verdict]) -> Verdict:
    """Access Analyzer's verdict on one policy; identical documents of one kind are asked once."""
    if policy.document is None:
        return Verdict(policy)
    earlier = cache.get((policy.document, policy.kind))
    if earlier is not None:
        return Verdict(policy, earlier.findings, earlier.public, earlier.public_message, earlier.refused)
    try:
        findings = _validate(client, policy)
        public, message = None, ""
        if policy.kind.public_access_type:
            answer = client.check_no_public_access(policyDocument=policy.document,
                                                   resourceType=policy.kind.public_access_type)
            public, message = answer["result"], answer.get("message", "")
        verdict = Verdict(policy, findings, public, message)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != REFUSED_DOCUMENT:
            raise _could_not_run(error) from None
        verdict = Verdict(policy, refused=preflight.describe_error(error))
    except BotoCoreError as error:  # no credentials, no network, an endpoint that does not answer
        raise _could_not_run(error) from None
    cache[(policy.document, policy.kind)] = verdict
    return verdict


def judge_all(client: Any, policies: list[Policy]) -> list[Verdict]:
    cache: dict[tuple[str | None, PolicyKind], Verdict] = {}
    return [judge(client, policy, cache) for policy in policies]


# --- reporting ------------------------------------------------------------------------------------

def _problems(verdict: Verdict) -> Iterator[tuple[str, str]]:
    """(severity, text) for everything worth a line: blocking first within the policy."""
    if verdict.policy.document is None:
        yield "NOT VALIDATED", verdict.policy.why_not
    if verdict.refused:
        yield "REFUSED", f"Access Analyzer refused the document: {verdict.refused}"
    if verdict.public == "FAIL":
        yield "PUBLIC", f"CheckNoPublicAccess FAIL: {verdict.public_message}".rstrip(": ")
    for finding in sorted(verdict.findings, key=lambda item: (not item.blocking, item.finding_type)):
        yield finding.finding_type, f"{finding.issue_code}: {finding.details} ({finding.link})"


def counts_line(stack: str, verdicts: list[Verdict]) -> str:
    failed = sum(verdict.failed for verdict in verdicts)
    placeholders = sum(bool(verdict.policy.placeholders) for verdict in verdicts)
    public = sum(verdict.public is not None for verdict in verdicts)
    outcome = f"{failed} FAILED" if failed else "none failed"
    return (f"{stack}: {len(verdicts)} policies judged by IAM Access Analyzer ({public} also checked for "
            f"public access; {placeholders} with placeholders for values unknown before apply): {outcome}")


def report_lines(stack: str, verdicts: list[Verdict]) -> list[str]:
    """The terminal report: one line per finding or problem, named by resource address, then the counts."""
    lines = []
    for verdict in verdicts:
        for severity, text in _problems(verdict):
            lines.append(f"  {severity} {verdict.policy.label}: {text}")
        if verdict.policy.placeholders and any(True for _ in _problems(verdict)):
            lines.append(f"    placeholders in {verdict.policy.address}: {', '.join(verdict.policy.placeholders)}")
    return [*lines, counts_line(stack, verdicts)]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def report_markdown(stack: str, verdicts: list[Verdict]) -> str:
    """The section appended to the pull-request comment: every finding with its resource address."""
    failed = any(verdict.failed for verdict in verdicts)
    mark = ":x:" if failed else ":white_check_mark:"
    lines = [f"#### {mark} IAM Access Analyzer: policies of `{stack}`", "", counts_line(stack, verdicts), ""]
    rows = [(severity, verdict.policy, text) for verdict in verdicts for severity, text in _problems(verdict)]
    if rows:
        lines += ["| | finding | address | policy | details |", "|---|---|---|---|---|"]
        lines += [f"| {':x:' if severity not in ('WARNING', 'SUGGESTION') else ''} | {severity} | "
                  f"`{policy.address}` | {policy.kind.what} | {_cell(text)} |" for severity, policy, text in rows]
        lines.append("")
    substituted = [verdict.policy for verdict in verdicts if verdict.policy.placeholders]
    if substituted:
        lines += ["<details><summary>placeholders used for values unknown before apply</summary>", ""]
        lines += [f"- `{policy.address}`: " + ", ".join(f"`{ref}`" for ref in policy.placeholders)
                  for policy in substituted]
        lines += ["", "</details>", ""]
    return "\n".join(lines)


def not_run_markdown(stack: str, reason: str) -> str:
    return (f"#### :x: IAM Access Analyzer: policies of `{stack}`\n\n"
            f"could not run: {reason}. **No policy was judged**: this is not a pass.\n")


# --- the command ----------------------------------------------------------------------------------

def stack_region(stack: Mapping[str, Any]) -> str:
    """The region of the stack's default provider configuration (the one without an alias)."""
    return next(block["region"] for block in stack["provider"]["aws"] if "alias" not in block)


def read_plan(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise UsageError(f"--plan {path}: not the JSON of `terraform show -json PLANFILE` ({error})") from None


def cmd_validate_policies(tools: Tools, args: argparse.Namespace) -> int:
    """Extract, judge and report every policy of one stack; see the module docstring for exit statuses."""
    project, stack_target = load_target(tools, args.stack)
    plan = read_plan(args.plan) if args.plan else None
    write: Callable[[str], object] = args.summary.write_text if args.summary else (lambda text: None)
    if project.emulator is not None:
        return _not_run(tools, write, stack_target.name,
                        "Access Analyzer is not emulated (INFRA_AWS_ENDPOINT is set); policies are judged by AWS only")
    synth(tools, [stack_target.name])
    stack = json.loads((tools.outdir / "stacks" / stack_target.name / "cdk.tf.json").read_text())
    policies = extract_policies(stack, plan, stack_target.account_id)
    client = tools.aws(project, "accessanalyzer", stack_region(stack))
    try:
        verdicts = judge_all(client, policies)
    except CouldNotRun as error:
        return _not_run(tools, write, stack_target.name, str(error))
    for line in report_lines(stack_target.name, verdicts):
        tools.say(line)
    write(report_markdown(stack_target.name, verdicts))
    return EXIT_REFUSED if any(verdict.failed for verdict in verdicts) else 0


def _not_run(tools: Tools, write: Callable[[str], object], stack: str, reason: str) -> int:
    print(f"ops: {stack}: could not run: {reason}", file=tools.err)
    write(not_run_markdown(stack, reason))
    return EXIT_NOT_RUN
