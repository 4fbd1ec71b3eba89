"""The policies a synthesized stack ships, as documents IAM Access Analyzer can judge (ops/policy_validation.py).

Every policy-bearing attribute of cdk.tf.json (POLICY_ATTRIBUTES) is either a JSON string or a
reference to a `data.aws_iam_policy_document`, rendered here the way the provider renders it (a test
compares this rendering with the provider's own). Terraform references are replaced by the value a
plan knows, or by a well-formed placeholder of the right shape (PLACEHOLDERS); every substitution is
recorded so the report can name it, and a document that cannot be made valid raises NotValidatable.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

IDENTITY_POLICY, RESOURCE_POLICY = "IDENTITY_POLICY", "RESOURCE_POLICY"


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
    ("aws_secretsmanager_secret", "arn"): "arn:{partition}:secretsmanager:{region}:{account}:secret:{name}-AbCdEf",
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
