"""SPEC section 2 end to end: `python main.py` as a user runs it, in a throwaway copy of the repository.

A good configuration exits 0, writes cdktf.out and prints one summary line per stack. A bad one
exits 2 with exactly one line on stderr naming file, field and rule, no traceback, and writes
nothing. Each good run costs several seconds (one synthesis), so there is exactly one; bad runs
exit before cdktf is imported and cost a fraction of a second.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from environments.loader import load_project
from tests.conftest import ENVIRONMENTS_DIR, ROOT

OUTDIR = "cdktf.out"
# Stacks SPEC requires: the bootstrap stack plus one per shipped environment.
SPEC_STACKS = {"bootstrap", "dev", "staging", "production"}
# What the shipped configuration synthesizes: those, plus one account baseline per [[baseline]].
SHIPPED_STACKS = load_project(ENVIRONMENTS_DIR).stack_names
SUMMARY_LINE = re.compile(r"(?P<name>\S+)\s+(?P<resources>\d+) resources\s+(?P<path>\S+)")
# Never copied: toolchains, output, caches and the tests themselves.
NOT_PRODUCT = {".venv", "node_modules", OUTDIR, "tests", ".git", "__pycache__"}


def copy_product(target: Path) -> Path:
    """main.py, cdktf.json, environments/ and every top-level Python package (core, stacks, ...), and the lazy
    provider bundle `make setup` built (a link: it is a build product, not code)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("main.py", "cdktf.json"):
        shutil.copy(ROOT / name, target / name)
    packages = [path for path in ROOT.iterdir()
                if path.is_dir() and path.name not in NOT_PRODUCT and (path / "__init__.py").exists()]
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for source in [ROOT / "environments", *packages]:
        shutil.copytree(source, target / source.name, ignore=ignore)
    # What `make setup` builds beside the code: the lazy provider bundle (core/provider_bundle.py), shared.
    built = ROOT / ".gen" / "provider-aws"
    if built.is_dir():
        (target / ".gen").mkdir()
        (target / ".gen" / "provider-aws").symlink_to(built)
    return target


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str


def run_main(repo: Path, *stacks: str, **environment: str) -> Run:
    """Run the copy's main.py with the project's interpreter from the copy's root, as `cdktf synth` does."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("INFRA_AWS_ENDPOINT", "CDKTF_OUTDIR", "PYTHONPATH", "INFRA_STACKS")}
    env.update(JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20", PYTHONDONTWRITEBYTECODE="1", **environment)
    result = subprocess.run([sys.executable, str(repo / "main.py"), *stacks], cwd=repo, env=env,
                            capture_output=True, text=True, timeout=300)
    return Run(result.returncode, result.stdout, result.stderr)


def resource_count(stack_json: Path) -> int:
    body = json.loads(stack_json.read_text())
    return sum(len(instances) for instances in body.get("resource", {}).values())


@pytest.mark.slow
def test_a_good_configuration_synthesizes_and_prints_one_line_per_stack(tmp_path, synth_dir):
    """The only good run (one synthesis); it also checks that a later bad run leaves its output alone,
    and that the output is byte-for-byte what the test session synthesized from another directory
    (plan reviews must never show machine or checkout noise)."""
    repo = copy_product(tmp_path / "repo")
    run = run_main(repo)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert (repo / OUTDIR / "manifest.json").is_file()
    lines = run.stdout.splitlines()
    summaries = [SUMMARY_LINE.fullmatch(line) for line in lines]
    assert all(summaries), f"every line is '<stack> <n> resources <dir>':\n{run.stdout}"
    columns = {line.index(" resources") for line in lines}
    assert len(columns) == 1, f"the counts line up whatever the longest stack name:\n{run.stdout}"
    assert min(len(line) - len(line.lstrip()) for line in lines) == 0
    assert set(SHIPPED_STACKS) >= SPEC_STACKS
    assert sorted(match["name"] for match in summaries) == sorted(SHIPPED_STACKS), "exactly one line per stack"
    for match in summaries:
        assert match["path"] == f"{OUTDIR}/stacks/{match['name']}"
        written = repo / match["path"] / "cdk.tf.json"
        assert written.is_file(), f"{match['name']}: the printed directory holds the stack"
        assert int(match["resources"]) == resource_count(written) > 0, match.group(0)
        elsewhere = synth_dir / "stacks" / match["name"] / "cdk.tf.json"
        assert written.read_bytes() == elsewhere.read_bytes(), f"{match['name']} differs between checkouts"
        assert str(repo) not in written.read_text() and str(ROOT) not in written.read_text()

    # A bad configuration must not touch output that already exists either.
    before = {path: path.stat().st_mtime_ns for path in (repo / OUTDIR).rglob("*")}
    dev = repo / "environments" / "dev.toml"
    dev.write_text(dev.read_text().replace("max_tasks = 3", "max_tasks = 0"))
    again = run_main(repo)
    assert again.returncode == 2, again.stderr
    assert again.stderr.startswith("configuration error: environments/dev.toml: api.max_tasks: must be between")
    assert {path: path.stat().st_mtime_ns for path in (repo / OUTDIR).rglob("*")} == before


# case -> (file, text to replace, replacement, pattern the stderr line must match after "configuration error: ")
BAD_CONFIGURATIONS = {
    "wrong type": ("dev.toml", "az_count = 2", 'az_count = "2"',
                   r"environments/dev\.toml: network\.az_count: must be an integer, got str '2'"),
    "overlapping CIDR": ("staging.toml", 'cidr = "10.1.0.0/16"', 'cidr = "10.0.128.0/17"',
                         r"environments/staging\.toml: network\.cidr: must not overlap other environments "
                         r"\(10\.0\.128\.0/17 overlaps 10\.0\.0\.0/16 in environments/dev\.toml\)"),
    "malformed TOML": ("production.toml", 'domain = "example.com"', 'domain = "example.com',
                       r"environments/production\.toml: is not valid TOML: .*\(at line 8, column \d+\)"),
    "production on Spot": ("production.toml", "fargate_spot = false", "fargate_spot = true",
                           r"environments/production\.toml: api\.fargate_spot: must be false when production = true"),
    "production image by tag": ("production.toml", "hello-app:1.0@sha256:c62ead5b8c15c231f9e786250b07909daf6c266d0f"
                                                   "cddd93fea882eb722c3be4", "hello-app:1.0",
                                "environments/production\\.toml: api\\.container_image: must be pinned by digest "
                                "\\(<repository>@sha256:<64 hex digits>\\) when production = true "
                                "\\(got 'us-docker\\.pkg\\.dev/google-samples/containers/gke/hello-app:1\\.0'\\)"),
    "production without vault lock": ("production.toml", "vault_lock = true", "vault_lock = false",
                                      r"environments/production\.toml: dr\.vault_lock: must be true when "
                                      r"production = true"),
    "rate backup schedule": ("production.toml", 'backup_schedule = "cron(0 */4 ? * * *)"',
                             'backup_schedule = "rate(4 hours)"',
                             r"environments/production\.toml: dr\.backup_schedule: must be a cron\(\.\.\.\) "
                             r"expression: AWS Backup refuses rate\(\.\.\.\) schedules \(got 'rate\(4 hours\)'\)"),
    "backup schedule without ?": ("production.toml", 'backup_schedule = "cron(0 */4 ? * * *)"',
                                  'backup_schedule = "cron(0 */4 * * * *)"',
                                  r"environments/production\.toml: dr\.backup_schedule: must be cron\(minute hour "
                                  r"day-of-month month day-of-week year\) .* \(got 'cron\(0 \*/4 \* \* \* \*\)'\)"),
    "standby CIDR overlapping an environment": (
        "production.toml", 'standby_cidr = "10.12.0.0/16"', 'standby_cidr = "10.1.0.0/16"',
        r"environments/production\.toml: dr\.standby_cidr: must not overlap any environment's or standby's network "
        r"\(10\.1\.0\.0/16 overlaps network\.cidr 10\.1\.0\.0/16 in environments/staging\.toml\)"),
    "unknown key": ("project.toml", "[state]", "[state]\nencrypt = true",
                    r"environments/project\.toml: state\.encrypt: is not a known setting"),
}


def assert_refused_cleanly(repo: Path, run: Run, pattern: str) -> None:
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and run.stderr.endswith("\n"), f"exactly one line on stderr:\n{run.stderr}"
    assert re.fullmatch(f"configuration error: {pattern}", lines[0]), lines[0]
    assert run.stdout == ""
    assert not (repo / OUTDIR).exists(), "nothing may be written for a bad configuration"


@pytest.mark.parametrize("case", sorted(BAD_CONFIGURATIONS))
def test_a_bad_configuration_exits_2_with_one_line_and_writes_nothing(tmp_path, case):
    file, old, new, pattern = BAD_CONFIGURATIONS[case]
    repo = copy_product(tmp_path / "repo")
    path = repo / "environments" / file
    text = path.read_text()
    assert text.count(old) == 1, f"{file} no longer contains {old!r}: update this case"
    path.write_text(text.replace(old, new))
    assert_refused_cleanly(repo, run_main(repo), pattern)


def test_an_invalid_emulator_endpoint_exits_2_with_one_line_and_writes_nothing(tmp_path):
    repo = copy_product(tmp_path / "repo")
    run = run_main(repo, INFRA_AWS_ENDPOINT="localhost:5000")
    assert_refused_cleanly(repo, run, r"INFRA_AWS_ENDPOINT: must be an http\(s\) URL .* \(got 'localhost:5000'\)")


# --- synthesizing only the named stacks ---------------------------------------------------------------

def written_stacks(repo: Path) -> set[str]:
    """The stacks in cdktf's manifest and the stack folders on disk (both must agree)."""
    manifest = json.loads((repo / OUTDIR / "manifest.json").read_text())
    folders = {path.name for path in (repo / OUTDIR / "stacks").iterdir()}
    assert set(manifest["stacks"]) == folders, "the manifest names exactly the folders written"
    return folders


@pytest.mark.slow
@pytest.mark.parametrize(("args", "environment", "expected"), [
    (("dev",), {"INFRA_STACKS": "bootstrap"}, "dev"),  # arguments win over the variable
    ((), {"INFRA_STACKS": " bootstrap, "}, "bootstrap"),  # how users of the cdktf CLI select stacks
], ids=["argument", "INFRA_STACKS"])
def test_only_the_named_stack_is_synthesized_and_the_summary_says_so(tmp_path, synth_dir, args, environment,
                                                                     expected):
    repo = copy_product(tmp_path / "repo")
    run = run_main(repo, *args, **environment)
    assert run.returncode == 0, run.stderr
    assert written_stacks(repo) == {expected}
    others = [name for name in SHIPPED_STACKS if name != expected]
    *summaries, last = run.stdout.splitlines()
    assert [SUMMARY_LINE.fullmatch(line)["name"] for line in summaries] == [expected]
    assert last == f"wrote 1 of {len(SHIPPED_STACKS)} stacks; not synthesized: {', '.join(others)}"
    written = repo / OUTDIR / "stacks" / expected / "cdk.tf.json"
    assert written.read_bytes() == (synth_dir / "stacks" / expected / "cdk.tf.json").read_bytes(), \
        "a stack synthesized alone must be exactly what the whole app writes for it"


@pytest.mark.parametrize(("args", "environment", "unknown"), [
    (("dev", "qa"), {}, "qa"),
    ((), {"INFRA_STACKS": "dev,Dev"}, "Dev"),
])
def test_an_unknown_stack_is_a_usage_error_and_writes_nothing(tmp_path, args, environment, unknown):
    repo = copy_product(tmp_path / "repo")
    run = run_main(repo, *args, **environment)
    assert (run.returncode, run.stdout) == (2, "")
    assert run.stderr == (f"usage: python main.py [STACK ...] (or INFRA_STACKS=STACK,... for the cdktf CLI): "
                          f"unknown stack {unknown!r}: the stacks are {', '.join(SHIPPED_STACKS)}\n")
    assert not (repo / OUTDIR).exists()


def test_the_whole_configuration_is_validated_even_for_one_stack(tmp_path):
    repo = copy_product(tmp_path / "repo")
    staging = repo / "environments" / "staging.toml"
    staging.write_text(staging.read_text().replace("az_count = 2", 'az_count = "2"'))
    assert_refused_cleanly(repo, run_main(repo, "dev"),
                           r"environments/staging\.toml: network\.az_count: must be an integer, got str '2'")


@pytest.mark.parametrize("name", ["qa.yaml", "qa.yml", "qa.json", "QA.TOML"])
def test_an_environment_in_another_format_is_a_configuration_error(tmp_path, name):
    repo = copy_product(tmp_path / "repo")
    (repo / "environments" / name).write_text((repo / "environments" / "dev.toml").read_text())
    stem = name.split(".")[0].lower()
    assert_refused_cleanly(repo, run_main(repo), re.escape(
        f"environments/{name}: is not an environment file: environments are TOML files named <name>.toml "
        f"(convert it to {stem}.toml, or move it out of environments/)"))
