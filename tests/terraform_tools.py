"""Helpers and fixtures for the tests that run the real terraform CLI.

Registered as a pytest plugin by `tests/conftest.py` (`pytest_plugins`), so the fixtures below
are available to every test module; the plain helpers are imported directly.

When terraform or the provider mirror is missing, the tests SKIP with the reason, so a laptop
without the tools still runs the rest of the suite. CI sets `INFRA_REQUIRE_TOOLS=1`, which turns
every such skip into a failure: a pipeline must never go green because nothing ran.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tools.terraform_cli_config import MirrorError, mirror_root, write_cli_config

REQUIRE_TOOLS_VARIABLE = "INFRA_REQUIRE_TOOLS"
# `use_lockfile` (S3-native state locking) exists from Terraform 1.10 on; older CLIs reject it.
MINIMUM_TERRAFORM = (1, 10)
# Inherited variables that may be useful when debugging a failure; every other TF_* is dropped.
PASSED_THROUGH_TF_VARIABLES = ("TF_LOG", "TF_LOG_PATH", "TF_LOG_PROVIDER", "TF_LOG_CORE")
DEFAULT_TIMEOUT_SECONDS = 600


def tools_required() -> bool:
    """CI asks for the tools to be present; then a missing tool is a failure, not a skip."""
    return os.environ.get(REQUIRE_TOOLS_VARIABLE) == "1"


def unavailable(reason: str) -> None:
    """Skip with `reason`, or fail with it when `INFRA_REQUIRE_TOOLS=1`. Never returns."""
    if tools_required():
        pytest.fail(f"{reason} ({REQUIRE_TOOLS_VARIABLE}=1 forbids skipping)", pytrace=False)
    pytest.skip(reason)


def terraform_binary() -> str | None:
    """The terraform executable on PATH, if any."""
    return shutil.which("terraform")


class TerraformError(Exception):
    """A terraform command failed or hung; the message carries everything needed to see why."""

    def __init__(self, args: Sequence[str], cwd: Path, outcome: str, stdout: str | None, stderr: str | None):
        self.args_run, self.stdout, self.stderr = list(args), stdout or "", stderr or ""
        super().__init__(
            f"`{' '.join(self.args_run)}` {outcome} in {cwd}\n"
            f"--- stdout ---\n{self.stdout.strip()}\n--- stderr ---\n{self.stderr.strip()}"
        )


def _text(output: str | bytes | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def run_terraform(
    args: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    check: bool = True,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> subprocess.CompletedProcess[str]:
    """Run `terraform ARGS` in `cwd` and return the completed process.

    With `check`, a non-zero exit raises `TerraformError` including stdout and stderr, so a
    failing test shows Terraform's own diagnosis rather than just an exit code. A command that
    outlives `timeout` is killed and always raises, with whatever it printed until then (a
    provider retrying an emulator's HTTP 500 looks exactly like a hang).
    """
    binary = terraform_binary()
    if binary is None:
        raise FileNotFoundError("terraform is not on PATH")
    command = [binary, *args]
    try:
        process = subprocess.run(command, cwd=cwd, env=dict(env), capture_output=True, text=True,
                                 stdin=subprocess.DEVNULL, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as expired:
        raise TerraformError(command, cwd, f"was killed after {timeout:g}s", _text(expired.stdout),
                             _text(expired.stderr)) from None
    if check and process.returncode != 0:
        raise TerraformError(command, cwd, f"failed with exit code {process.returncode}", process.stdout,
                             process.stderr)
    return process


def _version_of(binary: str) -> tuple[int, ...]:
    output = subprocess.run([binary, "version", "-json"], capture_output=True, text=True, check=True,
                            env={**os.environ, "CHECKPOINT_DISABLE": "1"}, timeout=60).stdout
    version = json.loads(output)["terraform_version"]
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


@dataclass(frozen=True)
class TerraformTools:
    binary: str
    version: tuple[int, ...]
    mirror: Path


def require_terraform_tools() -> TerraformTools:
    """terraform (new enough for this project) and the provider mirror, or skip/fail saying which is missing."""
    binary = terraform_binary()
    if binary is None:
        unavailable("terraform is not on PATH")
    version = _version_of(binary)
    if version[:2] < MINIMUM_TERRAFORM:
        wanted = ".".join(map(str, MINIMUM_TERRAFORM))
        unavailable(f"terraform {'.'.join(map(str, version))} is older than {wanted} (needed for use_lockfile)")
    try:
        mirror = mirror_root()
    except MirrorError as error:
        unavailable(f"no provider mirror: {error}")
    return TerraformTools(binary=binary, version=version, mirror=mirror)


def hermetic_environment(overrides: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without inherited TF_* settings, plus `overrides`.

    A developer's TF_CLI_ARGS, TF_WORKSPACE or TF_CLI_CONFIG_FILE would otherwise change what
    the tests run; only logging switches are kept.
    """
    base = {name: value for name, value in os.environ.items()
            if not name.startswith("TF_") or name in PASSED_THROUGH_TF_VARIABLES}
    return {**base, **overrides}


@pytest.fixture(scope="session")
def terraform_tools() -> TerraformTools:
    return require_terraform_tools()


@pytest.fixture(scope="session")
def terraform_env(terraform_tools, tmp_path_factory) -> dict[str, str]:
    """Environment for every terraform process: providers from the mirror, no prompts, no phoning home.

    The CLI config is written by the product script (tools/terraform_cli_config.py), so the
    air-gapped path users follow is the one the tests exercise. The plugin cache matters for a
    packed (.zip) mirror such as CI's: without it every working directory gets its own 675 MB
    copy of the provider. It is per session (per xdist worker) because Terraform's cache is not
    safe for concurrent `init`s.
    """
    folder = tmp_path_factory.mktemp("terraform-cli")
    config = write_cli_config(folder / "terraform.tfrc", terraform_tools.mirror, folder / "plugin-cache")
    return hermetic_environment({
        "TF_CLI_CONFIG_FILE": str(config),
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "CHECKPOINT_DISABLE": "1",  # no version check against checkpoint-api.hashicorp.com
    })


class ValidationBatch:
    """Many synthesized stacks checked by one `terraform validate`, as child modules of one root.

    Measured here with hashicorp/aws 5.100.0 on generated two-environment stacks (2026-12): one
    `terraform init` + `validate` per stack costs 4-5 s, mostly loading the provider and its schema
    once per provider configuration; as modules of one root sharing one set of provider
    configurations, 16, 32 and 64 stacks took 20, 31 and 59 s: ~5 s once plus ~0.9 s per stack.

    Terraform allows provider configurations only in a root module and ignores backends in
    child modules, so each module keeps everything else (resources, data sources, locals,
    outputs) and receives its providers from the root, which holds the first provider block added
    for each alias. Provider and backend blocks of the shipped stacks are validated as roots
    in test_terraform_validate.py.
    """

    ROOT_FILE = "main.tf.json"

    def __init__(self, folder: Path):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.root: dict | None = None
        self.descriptions: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.descriptions)

    def add(self, stack: Mapping, description: str) -> None:
        """Add `stack` as the next module; `description` is what a failure report shows for it."""
        module = dict(stack)
        providers = module.pop("provider")["aws"]
        requirement = module["terraform"]["required_providers"]["aws"]
        if self.root is None:
            self.root = {"terraform": {"required_providers": {"aws": requirement}},
                         "provider": {"aws": []}, "module": {}}
        # The first configuration of each alias serves every module (stacks without [dr] have no "dr").
        known = {block.get("alias") for block in self.root["provider"]["aws"]}
        self.root["provider"]["aws"].extend(block for block in providers if block.get("alias") not in known)
        aliases = sorted(f"aws.{block['alias']}" for block in providers if "alias" in block)
        module["terraform"] = {
            **{key: value for key, value in module["terraform"].items() if key != "backend"},
            "required_providers": {"aws": {**requirement, "configuration_aliases": aliases}},
        }
        name = f"m{len(self.descriptions)}"
        (self.folder / name).mkdir()
        (self.folder / name / "cdk.tf.json").write_text(json.dumps(module))
        self.root["module"][name] = {"source": f"./{name}",
                                     "providers": {"aws": "aws", **{alias: alias for alias in aliases}}}
        self.descriptions[name] = description

    def validate(self, env: Mapping[str, str]) -> list[str]:
        """Run init and validate once; return one readable report per diagnostic (empty when clean).

        Warnings count too: a deprecated argument in what we generate is a defect to fix now.
        """
        assert self.root is not None, "nothing was added to the batch"
        (self.folder / self.ROOT_FILE).write_text(json.dumps(self.root))
        run_terraform(["init", "-backend=false", "-input=false", "-no-color"], self.folder, env)
        result = run_terraform(["validate", "-json", "-no-color"], self.folder, env, check=False)
        report = json.loads(result.stdout)
        problems = [self._explain(diagnostic) for diagnostic in report["diagnostics"]]
        if not report["valid"] and not problems:
            problems.append(f"terraform validate exited {result.returncode}: {result.stderr}")
        return problems

    def _explain(self, diagnostic: Mapping) -> str:
        """Name the module that caused a diagnostic and show the configuration that produced it."""
        filename = diagnostic.get("range", {}).get("filename", "")
        module = Path(filename).parts[0] if filename else ""
        context = self.descriptions.get(module, "(not inside a generated module)")
        return (f"{diagnostic['severity']}: {diagnostic['summary']}: {diagnostic.get('detail', '')}\n"
                f"  at {filename or '?'}: {diagnostic.get('address', '')}\n  produced by:\n{context}")
