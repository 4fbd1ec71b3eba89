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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ops import preflight
from ops.errors import EXIT_REFUSED, UsageError
from ops.policy_documents import Policy, PolicyKind, extract_policies
from ops.project import load_target
from ops.terraform import synth

if TYPE_CHECKING:
    from ops.tools import Tools

EXIT_NOT_RUN = 3
# ValidatePolicy finding types that fail the check; WARNING and SUGGESTION are listed only.
BLOCKING = ("ERROR", "SECURITY_WARNING")
# A request AWS refuses for this document (not for the caller): that policy fails, the run goes on.
REFUSED_DOCUMENT = "ValidationException"


class CouldNotRun(Exception):
    """Access Analyzer could not be asked at all (credentials, network, permissions)."""


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
