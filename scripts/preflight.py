"""Check, before a deploy, that the credentials and the state backend are what Terraform expects.

A deploy that fails half-way because the state bucket is missing, or that writes unversioned or
unencrypted state, or that runs against the wrong account, is worse than one that never starts.
This script checks, with read-only calls::

    python scripts/preflight.py dev

0. a `production = true` environment has an `account_id` (its own or project.toml's): without one
   nothing but the operator's care stops production from being applied to the wrong account. This is
   a configuration error (exit 2) for `preflight.py`, and a failed check for `infra.py deploy`;
1. credentials work (STS GetCallerIdentity);
2. the account is the one configured (`account_id` of the environment, else of project.toml);
3. the state bucket exists, has versioning Enabled, default encryption aws:kms and all four
   public-access blocks on;
4. the lock table exists with hash key `LockID` (string);
5. no state lock is held on the environment's state. Every lock held in the bucket or table is
   listed with who took it, when, for which operation, and the `terraform force-unlock <ID>`
   command that releases it (only ever for a holder that is really gone).

Each failed check is one line on stderr and the exit status is 1; configuration or usage errors
exit 2. `INFRA_AWS_ENDPOINT` (a local emulator) is used as the endpoint of every AWS call.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from botocore.config import Config  # noqa: E402
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError  # noqa: E402

from environments.loader import ConfigError, load_project  # noqa: E402
from environments.model import EnvironmentConfig, ProjectConfig  # noqa: E402

ENVIRONMENTS_DIR = ROOT / "environments"
EMULATOR_VARIABLE = "INFRA_AWS_ENDPOINT"
EXIT_FAILED = 1
EXIT_USAGE = 2
LOCK_FILE_SUFFIX = ".tflock"
LOCK_HASH_KEY = "LockID"
PUBLIC_ACCESS_BLOCKS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
BOOTSTRAP_HINT = "deploy the bootstrap first (python scripts/infra.py deploy-bootstrap)"
# Fail fast on an unreachable endpoint instead of botocore's default minutes of retries.
CLIENT_CONFIG = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 2, "mode": "standard"})


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    message: str


@dataclass(frozen=True)
class HeldLock:
    """One Terraform state lock, as recorded in the DynamoDB table and/or an S3 lock file."""

    state: str  # "<bucket>/<key>" of the locked state file
    lock_id: str
    who: str
    created: str
    operation: str
    sources: tuple[str, ...]
    stack: str | None = None

    @property
    def unlock_command(self) -> str:
        return f"terraform force-unlock {self.lock_id}"

    def describe(self) -> str:
        where = " and ".join(self.sources)
        return (f"lock held on {self.state} ({where}): ID {self.lock_id}, who {self.who}, "
                f"created {self.created}, operation {self.operation}")

    def hint(self) -> str:
        folder = f"cdktf.out/stacks/{self.stack}" if self.stack else "the stack's folder"
        return f"if its holder is really gone, release it in {folder}: {self.unlock_command}"


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


@dataclass(frozen=True)
class AwsClients:
    sts: Any
    s3: Any
    dynamodb: Any

    @classmethod
    def for_project(cls, project: ProjectConfig, session: Any = None) -> AwsClients:
        """Clients in the state backend's region, pointed at the emulator when one is configured."""
        import boto3

        session = session or boto3.session.Session()
        endpoint = project.emulator.endpoint if project.emulator else None

        def client(service: str):
            return session.client(service, region_name=project.state.region, endpoint_url=endpoint,
                                  config=CLIENT_CONFIG)

        return cls(sts=client("sts"), s3=client("s3"), dynamodb=client("dynamodb"))


# Every error an AWS call can raise that is the environment's fault, not a bug: shown as one line.
AWS_ERRORS = (ClientError, BotoCoreError)


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


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


def _lock_info(text: str) -> dict[str, Any]:
    try:
        info = json.loads(text)
    except ValueError:
        return {"ID": "unknown", "Who": f"unreadable lock info {text[:60]!r}"}
    return info if isinstance(info, dict) else {"ID": "unknown", "Who": f"unreadable lock info {text[:60]!r}"}


def _lock_from(info: dict[str, Any], state: str, source: str) -> HeldLock:
    return HeldLock(
        state=state, lock_id=str(info.get("ID") or "unknown"), who=str(info.get("Who") or "unknown"),
        created=str(info.get("Created") or "unknown"), operation=str(info.get("Operation") or "unknown"),
        sources=(source,),
    )


def dynamodb_locks(dynamodb, table: str) -> list[HeldLock]:
    """Lock items: Terraform writes `Info` while it holds a lock (the `-md5` digest items have none)."""
    locks = []
    pages = dynamodb.get_paginator("scan").paginate(
        TableName=table, ConsistentRead=True, FilterExpression="attribute_exists(#info)",
        ExpressionAttributeNames={"#info": "Info"},
    )
    for page in pages:
        for item in page.get("Items", []):
            state = item.get(LOCK_HASH_KEY, {}).get("S", "?")
            locks.append(_lock_from(_lock_info(item["Info"].get("S", "")), state, f"DynamoDB table {table}"))
    return locks


def s3_lock_files(s3, bucket: str) -> list[HeldLock]:
    """S3-native locks (`use_lockfile`): `<state key>.tflock` objects whose body is the lock info."""
    locks = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for entry in page.get("Contents", []):
            key = entry["Key"]
            if not key.endswith(LOCK_FILE_SUFFIX):
                continue
            try:
                body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8", "replace")
            except ClientError as error:
                if _error_code(error) == "NoSuchKey":  # released between listing and reading
                    continue
                raise
            state = f"{bucket}/{key.removesuffix(LOCK_FILE_SUFFIX)}"
            locks.append(_lock_from(_lock_info(body), state, f"S3 lock file s3://{bucket}/{key}"))
    return locks


def merge_locks(locks: Sequence[HeldLock], project: ProjectConfig) -> tuple[HeldLock, ...]:
    """One entry per lock: Terraform writes the same lock ID to the table and the lock file."""
    stacks = {f"{project.state.bucket}/{env.state_key}": env.name for env in project.environments}
    stacks[f"{project.state.bucket}/{project.state.bootstrap_key}"] = "bootstrap"  # bootstrap_state_in_bucket
    merged: dict[tuple[str, str], HeldLock] = {}
    for lock in locks:
        key = (lock.state, lock.lock_id)
        if key in merged:
            lock = replace(merged[key], sources=merged[key].sources + lock.sources)
        merged[key] = replace(lock, stack=stacks.get(lock.state))
    return tuple(sorted(merged.values(), key=lambda lock: (lock.state, lock.lock_id)))


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


def _check_environment_unlocked(env: EnvironmentConfig, project: ProjectConfig, locks: Sequence[HeldLock],
                                checks: _Checks) -> None:
    state = f"{project.state.bucket}/{env.state_key}"
    mine = [lock for lock in locks if lock.state == state]
    if mine:
        lock = mine[0]
        checks.failed("state lock", f"{env.name} state is locked by {lock.who} since {lock.created} "
                                    f"({lock.operation}, ID {lock.lock_id})")
    else:
        checks.passed("state lock", f"no lock held on {state}")


def run_preflight(project: ProjectConfig, environment: str | None, clients: AwsClients | None = None
                  ) -> PreflightResult:
    """Every check for deploying `environment` (None: the bootstrap, which only needs the account checks)."""
    env = project.environment(environment) if environment else None
    checks = _Checks()
    name = environment or "bootstrap"
    unpinned = missing_production_account(project, env)
    if unpinned:
        checks.failed("account", str(unpinned))
        return PreflightResult(name, None, tuple(checks.results))
    clients = clients or AwsClients.for_project(project)
    account = check_identity(clients, checks)
    if account is None:
        return PreflightResult(name, None, tuple(checks.results))
    source = env.source if env and env.account_id else project.source
    check_account(account, expected_account(project, env), source, checks)
    if env is None:
        return PreflightResult(name, account, tuple(checks.results))

    state = project.state
    s3 = clients.s3
    bucket_ok = checks.run("state bucket", lambda: _bucket_exists(s3, state.bucket))
    if bucket_ok:
        checks.run("state bucket versioning", lambda: _versioning(s3, state.bucket))
        checks.run("state bucket encryption", lambda: _kms_encryption(s3, state.bucket))
        checks.run("state bucket public access", lambda: _public_access_blocked(s3, state.bucket))
    table_ok = checks.run("lock table", lambda: _lock_table(clients.dynamodb, state.lock_table))
    locks = _held_locks(clients, project, checks, bucket_ok, table_ok)
    _check_environment_unlocked(env, project, locks, checks)
    return PreflightResult(name, account, tuple(checks.results), locks, certificate_warnings(env))


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


def load(environments_dir: Path, environment: str | None) -> ProjectConfig:
    """The validated project, checked to contain `environment`; raises ConfigError otherwise."""
    project = load_project(environments_dir, os.environ.get(EMULATOR_VARIABLE) or None)
    if environment is not None and environment not in {env.name for env in project.environments}:
        known = ", ".join(env.name for env in project.environments)
        raise ConfigError(environments_dir.name, "", f"has no environment {environment!r} (known: {known})")
    return project


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Check credentials, account and state backend before a deploy.")
    parser.add_argument("environment", help="the environment to be deployed (a file name in environments/)")
    parser.add_argument("--environments-dir", type=Path, default=ENVIRONMENTS_DIR, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    args = _parser().parse_args(argv)
    try:
        project = load(args.environments_dir, args.environment)
        unpinned = missing_production_account(project, project.environment(args.environment))
        if unpinned:
            raise unpinned
    except ConfigError as error:
        print(f"configuration error: {error}", file=err)
        return EXIT_USAGE
    result = run_preflight(project, args.environment)
    report(result, out, err)
    return 0 if result.ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
