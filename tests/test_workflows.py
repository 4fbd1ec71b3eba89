"""The GitHub Actions workflows: valid, free of zizmor's high-severity findings, pinned, least privilege.

The workflows cannot run here, so what can be proven offline is proven: each file validates
against the GitHub workflow schema (check-jsonschema's vendored copy), zizmor's offline audits
find nothing of high severity, every action is pinned to a full commit SHA, and the structure
that the delivery process relies on (who may write where, what needs approval) is asserted.
Each tool is also shown a deliberately bad workflow, so a tool that silently checks nothing
fails here instead of passing.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from environments.loader import load_project
from tests.conftest import ROOT

WORKFLOWS_DIR = ROOT / ".github" / "workflows"
PULL_REQUEST = WORKFLOWS_DIR / "pull-request.yml"
DEPLOY = WORKFLOWS_DIR / "deploy.yml"
DRIFT = WORKFLOWS_DIR / "drift.yml"
PROPERTIES = WORKFLOWS_DIR / "properties.yml"
WORKFLOWS = (PULL_REQUEST, DEPLOY, DRIFT, PROPERTIES)
USES_RE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>[^\s#]+)\s*(?:#\s*(?P<comment>.*))?$")
PINNED_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(/[^@\s]+)?@[0-9a-f]{40}$")
VERSION_COMMENT_RE = re.compile(r"^v\d+(\.\d+)*$")

# Triggers (pull_request_target), template injection and unpinned actions: zizmor must flag them.
BAD_WORKFLOW = """\
name: bad
on:
  pull_request_target:
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          ref: ${{ github.event.pull_request.head.sha }}
      - run: echo "${{ github.event.pull_request.title }}"
"""


def venv_tool(name: str) -> str:
    """A tool from the same virtualenv as the tests (pinned in Pipfile.lock)."""
    tool = Path(sys.executable).with_name(name)
    if not tool.exists():
        pytest.fail(f"{name} is not installed in {tool.parent}: run `make setup`", pytrace=False)
    return str(tool)


def load_workflow(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    if True in data:  # YAML 1.1 reads the key `on` as the boolean true
        data["on"] = data.pop(True)
    return data


def run_zizmor(folder: Path) -> list[dict]:
    result = subprocess.run([venv_tool("zizmor"), "--offline", "--format", "json", str(folder)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.stdout.strip().startswith("["), f"zizmor gave no JSON (exit {result.returncode}):\n{result.stderr}"
    return json.loads(result.stdout)


def describe(finding: dict) -> str:
    location = finding["locations"][0]
    path = location["symbolic"]["key"]["Local"]["verbatim_path"]
    row = location["concrete"]["location"]["start_point"]["row"] + 1
    severity = finding["determinations"]["severity"]
    return f"{severity} {finding['ident']} at {path}:{row}: {location['symbolic'].get('annotation', '')}"


def by_severity(findings: list[dict], severity: str) -> list[str]:
    return [describe(f) for f in findings if f["determinations"]["severity"] == severity and not f.get("ignored")]


def unpinned_actions(text: str) -> list[str]:
    """Every `uses:` of a third-party action not pinned to a 40-hex commit SHA with a version comment."""
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = USES_RE.match(line)
        if not match or match["ref"].startswith(("./", "docker://")):
            continue
        if not PINNED_RE.fullmatch(match["ref"]):
            problems.append(f"line {number}: {match['ref']} is not pinned to a full commit SHA")
        elif not VERSION_COMMENT_RE.fullmatch((match["comment"] or "").strip()):
            problems.append(f"line {number}: {match['ref']} has no `# vX.Y.Z` comment naming the pinned version")
    return problems


# --- the tools on our workflows ------------------------------------------------------------------------

def test_workflows_exist():
    assert sorted(WORKFLOWS_DIR.glob("*.yml")) == sorted(WORKFLOWS)


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_workflow_matches_the_github_schema(workflow):
    result = subprocess.run([venv_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                             str(workflow)], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


def test_zizmor_finds_nothing_of_high_severity():
    findings = run_zizmor(WORKFLOWS_DIR)
    high, medium = by_severity(findings, "High"), by_severity(findings, "Medium")
    assert high == [], "high-severity findings:\n" + "\n".join(high) + "\nmedium:\n" + "\n".join(medium)


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_every_action_is_pinned_to_a_commit_sha(workflow):
    text = workflow.read_text()
    assert any(USES_RE.match(line) for line in text.splitlines()), "no `uses:` found: the check would be vacuous"
    assert unpinned_actions(text) == []


# --- negative controls: the checks can fail ----------------------------------------------------------

def test_zizmor_flags_a_dangerous_workflow(tmp_path):
    folder = tmp_path / ".github" / "workflows"
    folder.mkdir(parents=True)
    (folder / "bad.yml").write_text(BAD_WORKFLOW)
    idents = {f["ident"] for f in run_zizmor(folder) if f["determinations"]["severity"] == "High"}
    assert {"dangerous-triggers", "template-injection", "unpinned-uses"} <= idents


def test_schema_check_rejects_an_invalid_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("name: bad\non: push\njobs:\n  build:\n    steps: not-a-list\n")
    result = subprocess.run([venv_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(bad)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0, result.stdout


def test_pin_check_rejects_tags_branches_short_shas_and_missing_versions():
    text = "\n".join([
        "      - uses: actions/checkout@v4",
        "        uses: actions/setup-node@main",
        "      - uses: hashicorp/setup-terraform@b9cd54a # v3.1.2",
        "      - uses: actions/upload-artifact@ea165f8d65b6e75b540449e92b4886f43607fa02",
        "      - uses: ./.github/actions/local",
        "      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2",
    ])
    assert [problem.split(":")[0] for problem in unpinned_actions(text)] == ["line 1", "line 2", "line 3", "line 4"]


# --- structure the delivery process relies on --------------------------------------------------------

@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_least_privilege_permissions(workflow):
    data = load_workflow(workflow)
    assert data["permissions"] == {}, "the default token must have no permission"
    for name, job in data["jobs"].items():
        assert "permissions" in job, f"job {name} must declare its own permissions"
        assert set(job["permissions"].values()) <= {"read", "write", "none"}, name


def test_pull_requests_use_the_safe_trigger_and_split_code_from_write_access():
    data = load_workflow(PULL_REQUEST)
    assert list(data["on"]) == ["pull_request"]
    jobs = data["jobs"]
    writers = {name for name, job in jobs.items() if job["permissions"].get("pull-requests") == "write"}
    assert writers == {"comment"}
    assert not any("actions/checkout@" in step.get("uses", "") for step in jobs["comment"]["steps"]), \
        "the job that can write to the pull request must not run the pull request's code"
    oidc = {name for name, job in jobs.items() if job["permissions"].get("id-token") == "write"}
    assert oidc == {"plan"}


def test_pull_request_runs_the_suite_synth_checkov_and_a_plan_per_environment():
    data = load_workflow(PULL_REQUEST)
    test_steps = " ".join(step.get("run", "") for step in data["jobs"]["test"]["steps"])
    assert "make test" in test_steps and "make synth" in test_steps and "checkov" in test_steps
    plan = data["jobs"]["plan"]
    assert plan["strategy"]["matrix"] == RUNNING_STACKS
    assert "-m ops plan" in " ".join(step.get("run", "") for step in plan["steps"])
    plan_run = " ".join(step.get("run", "") for step in plan["steps"])
    assert "--summary summary.md" in plan_run and "--no-lock" in plan_run  # read-only identities, no lock
    credentials = [s for s in plan["steps"] if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")]
    assert [c["with"]["role-to-assume"] for c in credentials] == [PLAN_ROLE], "each environment's read-only role"
    upload = next(step for step in plan["steps"] if step.get("uses", "").startswith("actions/upload-artifact@"))
    assert "summary.md" in upload["with"]["path"].split()
    comment = " ".join(step.get("run", "") for step in data["jobs"]["comment"]["steps"])
    assert 'marker="<!-- infra-plan:${STACK} -->"' in comment and "--method PATCH" in comment
    # The comment starts with the summary table: right after the hidden marker, before the raw plan.
    assert comment.index('echo "$marker"') < comment.index("cat summary.md") < comment.index("plan.txt")


def test_the_plan_job_has_access_analyzer_judge_every_policy_and_the_comment_lists_the_findings():
    data = load_workflow(PULL_REQUEST)
    steps = data["jobs"]["plan"]["steps"]
    runs = [step.get("run", "") for step in steps]
    plan = next(index for index, run in enumerate(runs) if "-m ops plan" in run)
    validate = next(index for index, run in enumerate(runs) if '-m ops validate-policies "$STACK"' in run)
    upload = next(index for index, step in enumerate(steps)
                  if step.get("uses", "").startswith("actions/upload-artifact@"))
    assert plan < validate < upload, "after the plan (whose JSON it reads), before the upload of its report"
    step = steps[validate]
    assert step["if"] == "${{ !cancelled() }}", "also after a failed plan"
    assert "show -json plan.tfplan" in step["run"] and '--plan "$plan_json"' in step["run"]
    assert "--summary policies.md" in step["run"] and 'exit "$status"' in step["run"], "findings fail the job"
    assert {"policies.md", "policies-status.txt"} <= set(steps[upload]["with"]["path"].split())
    comment = " ".join(step.get("run", "") for step in data["jobs"]["comment"]["steps"])
    assert comment.index("cat summary.md") < comment.index("policies.md") < comment.index("plan.txt")


def test_deploy_runs_on_main_and_gates_staging_and_production_behind_environments():
    project = load_project(ROOT / "environments")
    data = load_workflow(DEPLOY)
    assert data["on"] == {"push": {"branches": ["main"]}}
    jobs = data["jobs"]
    assert {name: job.get("environment") for name, job in jobs.items()} == {
        "dev": "dev", "staging": "staging", "production": "production"}
    assert (jobs["staging"]["needs"], jobs["production"]["needs"]) == ("dev", "staging")
    for name, job in jobs.items():
        steps = job["steps"]
        credentials = [s for s in steps if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")]
        assert len(credentials) == 1, f"{name}: expected one OIDC role assumption"
        # Its own deploy role: the bootstrap's `ci_roles` output (AWS_CI_ROLES) with [ci], else one variable each.
        assert credentials[0]["with"]["role-to-assume"] == (
            f"${{{{ vars.AWS_CI_ROLES && fromJSON(vars.AWS_CI_ROLES).{name}.deploy || "
            f"vars.AWS_DEPLOY_ROLE_ARN_{name.upper()} }}}}")
        assert "aws-access-key-id" not in credentials[0]["with"], "no long-lived keys"
        deploys = [step["run"] for step in steps if "ops deploy" in step.get("run", "")]
        # A standby's DR-region stack runs all the time: deployed after the stack owning its global database;
        # a backup strategy's is deployed only when needed (docs/runbooks.md, "Region lost").
        env = project.environment(name)
        assert deploys == [f".venv/bin/python -m ops deploy {stack} --yes" for stack in env.running_stacks], deploys
        assert steps[-len(deploys):] == [step for step in steps if step.get("run") in deploys]


# Pull-request plans and drift checks: one matrix entry per running stack, listed by the `environments` job.
RUNNING_STACKS = {"include": "${{ fromJSON(needs.environments.outputs.stacks) }}"}


@pytest.mark.parametrize("workflow", ["PULL_REQUEST", "DRIFT"])
def test_plans_and_drift_checks_cover_every_running_stack_with_its_environment_s_role(workflow, tmp_path):
    """The `environments` job's list, its step run here as the workflow runs it: each environment's stack and,
    with a standby, its DR-region stack (which runs all the time), each with the environment whose role it uses."""
    job = load_workflow(globals()[workflow])["jobs"]["environments"]
    (step,) = [step for step in job["steps"] if step.get("id") == "list"]
    output = tmp_path / "github_output"
    subprocess.run(["bash", "-e", "-c", step["run"]], cwd=ROOT, check=True, env={
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "GITHUB_OUTPUT": str(output)})
    name, listed = output.read_text().strip().split("=", 1)
    assert name == "stacks"
    assert json.loads(listed) == [
        {"stack": "dev", "environment": "dev"}, {"stack": "production", "environment": "production"},
        {"stack": "production-dr", "environment": "production"}, {"stack": "staging", "environment": "staging"},
    ], "staging-dr (backup) runs only when needed"
    assert job["outputs"] == {"stacks": "${{ steps.list.outputs.stacks }}"}


# Each environment's own read-only plan role (the bootstrap's `ci_roles` output with [ci]), else the one plan role.
PLAN_ROLE = ("${{ vars.AWS_CI_ROLES && fromJSON(vars.AWS_CI_ROLES)[matrix.environment].plan || "
             "vars.AWS_PLAN_ROLE_ARN }}")


def test_drift_runs_daily_per_environment_read_only_and_keeps_one_issue_per_environment():
    data = load_workflow(DRIFT)
    assert set(data["on"]) == {"schedule", "workflow_dispatch"} and len(data["on"]["schedule"]) == 1
    jobs = data["jobs"]
    drift, issue = jobs["drift"], jobs["issue"]
    for job in (drift, issue):
        assert job["strategy"]["matrix"] == RUNNING_STACKS
    credentials = [s for s in drift["steps"] if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")]
    assert [c["with"]["role-to-assume"] for c in credentials] == [PLAN_ROLE], "each environment's read-only role"
    assert '-m ops drift "$STACK"' in " ".join(step.get("run", "") for step in drift["steps"])
    # Only the issue job writes, and it never runs the repository's code.
    assert {name for name, job in jobs.items() if "write" in job["permissions"].values()
            and set(job["permissions"]) != {"contents", "id-token"}} == {"issue"}
    assert issue["permissions"] == {"issues": "write"}
    assert not any("actions/checkout@" in step.get("uses", "") for step in issue["steps"])
    assert {name for name, job in jobs.items() if job["permissions"].get("id-token") == "write"} == {"drift"}
    script = " ".join(step.get("run", "") for step in issue["steps"])
    assert 'marker="<!-- infra-drift:${STACK} -->"' in script
    for action in ('--method PATCH "repos/${REPOSITORY}/issues/${existing}" -F body=@issue.md',  # update
                   '--method POST "repos/${REPOSITORY}/issues" -f title=',  # open
                   "-f state=closed"):  # close when clean
        assert action in script, action


def test_properties_run_nightly_on_a_random_seed_and_keep_one_issue():
    """Issue 22: the property tests explore beyond the fixed per-commit seeds, and a failure is not missed."""
    data = load_workflow(PROPERTIES)
    assert set(data["on"]) == {"schedule", "workflow_dispatch"} and len(data["on"]["schedule"]) == 1
    jobs = data["jobs"]
    run = next(step for step in jobs["properties"]["steps"] if "tests/test_properties.py" in step.get("run", ""))
    assert run["env"]["INFRA_PROPERTY_SEED"] == "random"
    assert int(data["env"]["PROPERTY_EXAMPLES"]) >= 100, "many more examples than the per-commit default"
    # What `make test` leaves to the night (-m "not nightly") runs here, in the same report.
    assert "pytest tests/test_emulated_deploy.py -p no:cacheprovider >> properties.txt" in run["run"]
    assert '-m "not nightly"' in (ROOT / "Makefile").read_text()
    assert jobs["properties"]["permissions"] == {"contents": "read"}
    issue = jobs["issue"]
    assert issue["permissions"] == {"issues": "write"}
    assert not any("actions/checkout@" in step.get("uses", "") for step in issue["steps"])
    script = " ".join(step.get("run", "") for step in issue["steps"])
    assert 'marker="<!-- infra-properties -->"' in script
    for action in ('--method PATCH "repos/${REPOSITORY}/issues/${existing}" -F body=@issue.md',
                   '--method POST "repos/${REPOSITORY}/issues" -f title=', "-f state=closed"):
        assert action in script, action
