"""Check, before a deploy, that the credentials and the state backend are what Terraform expects.

A deploy that fails half-way because the state bucket is missing, or that writes unversioned or
unencrypted state, or that runs against the wrong account, is worse than one that never starts.
`python -m ops preflight STACK` checks, with read-only calls, for any stack (an environment, a
baseline, the bootstrap); `deploy` and `destroy` run the same checks first:

0. a `production = true` environment has an `account_id` (its own or project.toml's): without one
   nothing but the operator's care stops production from being applied to the wrong account. This is
   a configuration error (exit 2) for `preflight`, and a failed check for `deploy`;
1. credentials work (STS GetCallerIdentity);
1a. with a deploy role (`deploy_role_arn`, or the CI plan role when planning), the credentials can assume
   it, and the role and its account are named in the report: the account check is then the role's;
1b. with per-stack state isolation (`state.account_id`), they can assume the stack's state role, and the
   state checks below run as that role (which sees only its own state and lock items);
2. the account is the one configured (`account_id` of the environment or baseline, else of project.toml);
3. (not for the bootstrap, which creates them) the state bucket exists, has versioning Enabled,
   default encryption aws:kms and all four public-access blocks on;
4. the lock table exists with hash key `LockID` (string);
5. no state lock is held on the stack's state. Every lock held in the bucket or table is listed
   with who took it, when, for which operation, and the `terraform force-unlock <ID>` command that
   releases it (only ever for a holder that is really gone).

Each failed check is one line on stderr and the exit status is 1; configuration or usage errors
exit 2. `INFRA_AWS_ENDPOINT` (a local emulator) is used as the endpoint of every AWS call.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from core.access import AssumedRole
from environments.loader import ConfigError
from environments.model import EnvironmentConfig, ProjectConfig
from ops.aws_session import AwsClients
from ops.errors import EXIT_REFUSED, UsageError
from ops.locks import LOCK_HASH_KEY, HeldLock, dynamodb_locks, merge_locks, own_locks, s3_lock_files
from ops.locks import error_code as _error_code
from ops.targets import Kind, Target, resolve

if TYPE_CHECKING:
    from ops.tools import Tools

PUBLIC_ACCESS_BLOCKS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
BOOTSTRAP_HINT = "deploy the bootstrap first (python -m ops deploy-bootstrap)"


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    message: str


@dataclass(frozen=True)
class PreflightResult:
    environment: str
    account: str | None
    checks: tuple[CheckResult, ...]
    locks: tuple[HeldLock, ...] = ()
    # Worth knowing before deploying, never a reason to stop (shown, exit status unchanged).
    warnings: tuple[str, ...] = ()

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        return tuple(check for check in self.checks if not check.ok)

    @property
    def ok(self) -> bool:
        return not self.failures

    def check(self, name: str) -> CheckResult:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)


# Every error an AWS call can raise that is the environment's fault, not a bug: shown as one line.
AWS_ERRORS = (ClientError, BotoCoreError)


def describe_error(error: Exception) -> str:
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return f"{details.get('Code', 'error')}: {details.get('Message', '')}".rstrip(": ")
    return str(error)


@dataclass
class _Checks:
    """Collects check results in order; every AWS error becomes a failed check, never a traceback."""

    results: list[CheckResult] = field(default_factory=list)

    def passed(self, name: str, message: str) -> None:
        self.results.append(CheckResult(name, True, message))

    def failed(self, name: str, message: str) -> None:
        self.results.append(CheckResult(name, False, message))

    def run(self, name: str, check: Callable[[], str]) -> bool:
        """Run `check`: it returns a success message or raises `_Failure`; AWS errors fail the check."""
        try:
            self.passed(name, check())
            return True
        except _Failure as failure:
            self.failed(name, str(failure))
        except (ClientError, BotoCoreError) as error:
            self.failed(name, describe_error(error))
        return False


class _Failure(Exception):
    """A check found something wrong; the text is the one-line message shown to the user."""


def expected_account(project: ProjectConfig, env: EnvironmentConfig | None) -> str | None:
    """The account the deploy must run in: the environment's `account_id`, else the project's."""
    return (env.account_id if env else None) or project.account_id


def missing_production_account(project: ProjectConfig, env: EnvironmentConfig | None) -> ConfigError | None:
    """The refusal for deploying a production environment that names no account, or None."""
    if env is None or not env.production or expected_account(project, env):
        return None
    return ConfigError(env.source, "account_id", f"must be set to deploy a production environment (here or in "
                                                 f"{project.source}), so that no other account can receive it")


def check_identity(clients: AwsClients, checks: _Checks) -> str | None:
    """The caller's account id, or None (with a failed check) when the credentials do not work."""
    try:
        identity = clients.sts.get_caller_identity()
    except NoCredentialsError:
        checks.failed("credentials", "no AWS credentials found (set AWS_PROFILE, or log in with aws sso login)")
        return None
    except (ClientError, BotoCoreError) as error:
        checks.failed("credentials", f"the AWS credentials do not work: {describe_error(error)}")
        return None
    checks.passed("credentials", f"{identity['Arn']} (account {identity['Account']})")
    return identity["Account"]


def check_account(actual: str, expected: str | None, source: str, checks: _Checks) -> None:
    if expected is None:
        checks.passed("account", f"{actual} (no account_id configured, so any account is accepted)")
    elif actual == expected:
        checks.passed("account", f"{actual} is the configured account_id")
    else:
        checks.failed("account", f"the credentials are for account {actual}, but {source} sets "
                                 f"account_id = {expected}")


def _bucket_exists(s3, bucket: str) -> str:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as error:
        code = _error_code(error)
        if code in ("404", "NoSuchBucket", "NotFound"):
            raise _Failure(f"state bucket {bucket} does not exist: {BOOTSTRAP_HINT}") from None
        if code in ("403", "AccessDenied", "Forbidden"):
            raise _Failure(f"state bucket {bucket} exists but these credentials cannot read it (403)") from None
        raise
    return f"s3://{bucket}"


def state_bucket_status(project: ProjectConfig, clients: AwsClients | None = None) -> str:
    """`missing`, `exists` (these credentials can see it) or `forbidden` (the global name is someone else's)."""
    clients = clients or AwsClients.for_project(project)
    try:
        clients.s3.head_bucket(Bucket=project.state.bucket)
    except ClientError as error:
        code = _error_code(error)
        if code in ("404", "NoSuchBucket", "NotFound"):
            return "missing"
        if code in ("403", "AccessDenied", "Forbidden"):
            return "forbidden"
        raise
    return "exists"


def _versioning(s3, bucket: str) -> str:
    status = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    if status != "Enabled":
        raise _Failure(f"state bucket {bucket} has versioning {status or 'never enabled'}; it must be "
                       "Enabled, because earlier state versions are the only way back from a bad apply")
    return "Enabled"


def _kms_encryption(s3, bucket: str) -> str:
    try:
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    except ClientError as error:
        if _error_code(error) != "ServerSideEncryptionConfigurationNotFoundError":
            raise
        rules = []
    algorithms = [rule.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for rule in rules]
    if "aws:kms" not in algorithms:
        found = ", ".join(a for a in algorithms if a) or "none"
        raise _Failure(f"state bucket {bucket} default encryption is {found}; it must be aws:kms (the state key)")
    return "aws:kms"


def _public_access_blocked(s3, bucket: str) -> str:
    try:
        settings = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    except ClientError as error:
        if _error_code(error) != "NoSuchPublicAccessBlockConfiguration":
            raise
        settings = {}
    off = [name for name in PUBLIC_ACCESS_BLOCKS if not settings.get(name)]
    if off:
        raise _Failure(f"state bucket {bucket} public access blocks are off: {', '.join(off)} (all four must be on)")
    return "all four on"


def _lock_table(dynamodb, table: str) -> str:
    try:
        description = dynamodb.describe_table(TableName=table)["Table"]
    except ClientError as error:
        if _error_code(error) == "ResourceNotFoundException":
            raise _Failure(f"lock table {table} does not exist: {BOOTSTRAP_HINT}") from None
        raise
    types = {a["AttributeName"]: a["AttributeType"] for a in description.get("AttributeDefinitions", [])}
    keys = [(k["AttributeName"], k["KeyType"]) for k in description["KeySchema"]]
    if keys != [(LOCK_HASH_KEY, "HASH")] or types.get(LOCK_HASH_KEY) != "S":
        found = ", ".join(f"{name} {kind} ({types.get(name, '?')})" for name, kind in keys)
        raise _Failure(f"lock table {table} key schema is {found}; Terraform needs exactly hash key LockID (S)")
    return "hash key LockID (S)"


def _held_locks(clients: AwsClients, project: ProjectConfig, checks: _Checks,
                bucket_ok: bool, table_ok: bool) -> tuple[HeldLock, ...]:
    """Every lock in the table and the bucket; a listing that fails is a failed check, not a crash."""
    found: list[HeldLock] = []
    try:
        if table_ok:
            found.extend(dynamodb_locks(clients.dynamodb, project.state.lock_table))
        if bucket_ok:
            found.extend(s3_lock_files(clients.s3, project.state.bucket))
    except (ClientError, BotoCoreError) as error:
        checks.failed("lock listing", f"cannot list the state locks: {describe_error(error)}")
    return merge_locks(found, project)


def _check_unlocked(stack: Target, project: ProjectConfig, locks: Sequence[HeldLock], checks: _Checks) -> None:
    state = f"{project.state.bucket}/{stack.state_key}"
    mine = [lock for lock in locks if lock.state == state]
    if mine:
        lock = mine[0]
        checks.failed("state lock", f"{stack.name} state is locked by {lock.who} since {lock.created} "
                                    f"({lock.operation}, ID {lock.lock_id})")
    else:
        checks.passed("state lock", f"no lock held on {state}")


def _assumed(project: ProjectConfig, clients: AwsClients, role: AssumedRole, name: str,
             checks: _Checks) -> AwsClients | None:
    """`role`'s clients, with the check named `name` passed (role and account named) or failed."""
    try:
        assumed = clients.assume(project, role)
        identity = assumed.sts.get_caller_identity()
    except (ClientError, BotoCoreError) as error:
        checks.failed(name, f"cannot assume {role.role_arn}: {describe_error(error)}")
        return None
    checks.passed(name, f"assumed {role.role_arn} as session {role.session_name} (account {identity['Account']})")
    return assumed


def run_preflight(project: ProjectConfig, stack_name: str, clients: AwsClients | None = None) -> PreflightResult:
    """Every check for deploying the stack `stack_name` (the bootstrap with local state: the account checks)."""
    stack = resolve(project, stack_name)
    env = stack.environment
    checks = _Checks()
    unpinned = missing_production_account(project, env)
    if unpinned:
        checks.failed("account", str(unpinned))
        return PreflightResult(stack.name, None, tuple(checks.results))
    clients = clients or AwsClients.for_project(project)
    account = check_identity(clients, checks)
    if account is None:
        return PreflightResult(stack.name, None, tuple(checks.results))
    if stack.deploy_role:
        deployer = _assumed(project, clients, stack.deploy_role, "deploy role", checks)
        if deployer is None:
            return PreflightResult(stack.name, None, tuple(checks.results))
        account = deployer.sts.get_caller_identity()["Account"]
    check_account(account, stack.account_id, stack.account_source, checks)
    if stack.state_key is None:
        return PreflightResult(stack.name, account, tuple(checks.results))
    if stack.state_role:
        clients = _assumed(project, clients, stack.state_role, "state role", checks)
        if clients is None:
            return PreflightResult(stack.name, account, tuple(checks.results))

    state = project.state
    s3 = clients.s3
    bucket_ok = checks.run("state bucket", lambda: _bucket_exists(s3, state.bucket))
    if bucket_ok:
        checks.run("state bucket versioning", lambda: _versioning(s3, state.bucket))
        checks.run("state bucket encryption", lambda: _kms_encryption(s3, state.bucket))
        checks.run("state bucket public access", lambda: _public_access_blocked(s3, state.bucket))
    table_ok = checks.run("lock table", lambda: _lock_table(clients.dynamodb, state.lock_table))
    if stack.state_role:  # the state role sees its own lock items only
        locks = merge_locks(own_locks(clients.s3, clients.dynamodb, project, stack.state_key), project)
    else:
        locks = _held_locks(clients, project, checks, bucket_ok, table_ok)
    _check_unlocked(stack, project, locks, checks)
    warnings = certificate_warnings(env) if stack.kind is Kind.ENVIRONMENT else ()
    return PreflightResult(stack.name, account, tuple(checks.results), locks, warnings)


def certificate_warnings(env: EnvironmentConfig) -> tuple[str, ...]:
    """Without a hosted zone, certificates the stack requests are validated by nobody but the operator.

    The load balancer's HTTPS listener and CloudFront accept a certificate only once ACM has
    issued it, and ACM issues it only after its DNS validation record exists; with no hosted
    zone the stack cannot create that record, so the first deploy waits for it, and fails when
    the provider gives up.
    """
    if env.hosted_zone_id:
        return ()
    requested = [f"{domain} (in {region})" for domain, region, arn in (
        (f"api.{env.domain}", env.region, env.api.certificate_arn),
        (env.domain, "us-east-1", env.frontend.certificate_arn)) if not arn]
    if not requested:
        return ()
    return (f"{env.source}: neither hosted_zone_id nor a certificate ARN for {' and '.join(requested)}: "
            "the first deploy requests DNS-validated ACM certificates and waits until they are issued. "
            "While it runs, add the CNAME validation record ACM shows for each (console, or "
            "`aws acm describe-certificate` DomainValidationOptions[].ResourceRecord) to the DNS of "
            f"{env.domain}, and afterwards point {env.domain} and api.{env.domain} at the distribution and "
            "load balancer; or set hosted_zone_id (records created for you) or the certificate ARNs.",)


def report(result: PreflightResult, out: TextIO, err: TextIO) -> None:
    """Passed checks, held locks and warnings on `out`; one line per failed check on `err`."""
    for check in result.checks:
        if check.ok:
            print(f"ok      {check.name}: {check.message}", file=out)
    for lock in result.locks:
        print(lock.describe(), file=out)
        print(f"  {lock.hint()}", file=out)
    for warning in result.warnings:
        print(f"warning: {warning}", file=out)
    for check in result.failures:
        print(f"preflight failed: {check.name}: {check.message}", file=err)
    if result.ok:
        print(f"preflight {result.environment}: all {len(result.checks)} checks passed", file=out)
    else:
        print(f"preflight {result.environment}: {len(result.failures)} of {len(result.checks)} checks failed",
              file=err)


def cmd_preflight(tools: Tools, args: argparse.Namespace) -> int:
    """The checks on their own: exit 0 all passed, 1 one failed, 2 bad configuration."""
    from ops.project import load, target

    project = load(tools)
    stack = target(project, args.stack)
    unpinned = missing_production_account(project, stack.environment)
    if unpinned:
        raise UsageError(f"configuration error: {unpinned}")
    result = tools.run_preflight(project, stack.name)
    report(result, tools.out, tools.err)
    return 0 if result.ok else EXIT_REFUSED
