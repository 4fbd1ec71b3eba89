"""Synthesis benchmark (SPEC section 7, issues 16 and 23): run it, do not time it inside the test suite.

Each case runs in a fresh Python process, N times; reported are the median wall time, the median
CPU time and the largest resident memory of that process tree at any one moment (Node/jsii included,
and every synthesis worker's pair of processes added up: main.py synthesizes on several cores, see
stacks/synth.py), all in one run so the ratios compare numbers taken under the same load:

  E           the reference: a one-resource stack through the provider exactly as installed (stock jsii
              bundle, type-checked bindings; INFRA_PROVIDER_BUNDLE=stock): what any cdktf Python user
              of the prebuilt provider pays before their first resource
  lazy floor  the same stack the way this project loads the provider (core.aws: lazy bundle, unchecked bindings)
  one env     `python main.py dev`: one environment stack (what `python -m ops plan dev` synthesizes)
  whole app   `python main.py`: every stack of the shipped configuration
  12 envs     `python main.py` in a temporary copy whose environments/ holds 12 environments
              (the shipped ones plus copies of dev.toml with their own name, CIDR and domain, each
              with a [dr] table, so each added environment is two stacks: its own and its DR region's)

and, counted in one more process, the jsii round trips (kernel requests) of each environment stack.
Targets (issue 23): lazy floor <= 0.35 E, one env <= 0.6 E, whole app <= 1.0 E, each added
environment <= 0.12 E, peak memory flat in the number of environments (12 envs <= 1.1 x whole app).
Usage: python tools/benchmark.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.provider_bundle import SELECT_VARIABLE  # noqa: E402
from environments.loader import load_project  # noqa: E402

MANY_ENVIRONMENTS = 12
# The DR table of each added environment: backup copies to a second region, its DR-region stack synthesized.
DR_TABLE = """
[dr]
region = "eu-central-1"
backup_schedule = "cron(0 3 ? * * *)"
copy_retention_days = 14
strategy = "backup"
"""
TARGETS = {"lazy floor / E": 0.35, "one env / E": 0.6, "whole app / E": 1.0, "added env / E": 0.12,
           "peak 12 envs / whole app": 1.1}
ONE_RESOURCE = """
import sys
sys.path.insert(0, {root!r})
from cdktf import App, TerraformStack
from core.aws import aws
app = App(outdir={outdir!r}, stack_traces=False)
stack = TerraformStack(app, "one")
aws.provider.AwsProvider(stack, "aws", region="eu-west-1")
aws.s3_bucket.S3Bucket(stack, "bucket", bucket="benchmark-bucket")
app.synth()
"""
# Counts the requests Python sends to the jsii kernel (each one a round trip to Node) per stack.
ROUND_TRIPS = """
import json, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from jsii._kernel.providers import process
from environments.loader import load_project
from stacks.app import build_app
sent = [0]
send = process._NodeProcess.send
def counting_send(self, request, response_type):
    sent[0] += 1
    return send(self, request, response_type)
process._NodeProcess.send = counting_send
project = load_project(Path({environments!r}))
build_app(project, {outdir!r} + "/warm", [project.environments[0].name]).synth()
counts = {{}}
for env in project.environments:
    before = sent[0]
    build_app(project, {outdir!r} + "/" + env.name, [env.name]).synth()
    counts[env.name] = sent[0] - before
print(json.dumps(counts))
"""


def tree_rss(root: int) -> int:
    """Resident memory (KiB) of `root` and all its descendants now, from /proc (0 for what already exited).

    Walks each process's `task/<tid>/children` (every thread's: Node forks from worker threads too), so a
    sample reads a few files, not all of /proc: the sampler must not take the CPU it measures.
    """
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
        for task in tasks:
            try:
                pending.extend(int(child) for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split())
            except OSError:
                continue
    return total


def sample_peak(pid: int, done: threading.Event, peak: list[int]) -> None:
    """Every 50 ms until `done`: the largest sum of resident memory over the process tree of `pid`."""
    while not done.wait(0.05):
        peak[0] = max(peak[0], tree_rss(pid))


def measure(command: list[str], cwd: Path, outdir: Path, extra_env: dict[str, str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system, the waited-for process tree, via wait4) and peak memory (MiB):
    the larger of wait4's largest single process and the sampled sum over the tree, since workers run at once.

    CPU time barely moves with other load on the machine, so its ratios stay comparable when
    wall time does not (a shared machine).
    """
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", "CDKTF_OUTDIR": str(outdir)}
    for variable in ("INFRA_STACKS", SELECT_VARIABLE):
        env.pop(variable, None)
    env.update(extra_env)
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL)
    done, peak = threading.Event(), [0]
    sampler = threading.Thread(target=sample_peak, args=(process.pid, done, peak), daemon=True)
    sampler.start()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    done.set()
    sampler.join()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(command)}")
    return elapsed, usage.ru_utime + usage.ru_stime, max(usage.ru_maxrss, peak[0]) / 1024


def case(runs: int, command: list[str], cwd: Path, outdir: Path,
         extra_env: dict[str, str]) -> tuple[float, float, float]:
    results = [measure(command, cwd, outdir, extra_env) for _ in range(runs)]
    return (statistics.median(r[0] for r in results), statistics.median(r[1] for r in results),
            max(r[2] for r in results))


def one_resource_command(outdir: Path) -> list[str]:
    return [sys.executable, "-c", ONE_RESOURCE.format(root=str(ROOT), outdir=str(outdir))]


def round_trips(outdir: Path) -> dict[str, int]:
    """jsii round trips of each shipped environment stack, built alone after a warm-up stack."""
    outdir.mkdir(parents=True, exist_ok=True)
    script = ROUND_TRIPS.format(root=str(ROOT), environments=str(ROOT / "environments"), outdir=str(outdir))
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    env.pop(SELECT_VARIABLE, None)
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"counting round trips failed: {result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def copy_with_environments(target: Path, count: int) -> int:
    """A copy of the product whose environments/ holds `count` environments; returns how many were added.

    Each added environment is dev.toml with its own name, a /16 of its own and its own domain, and a
    `[dr]` table (strategy `backup`), so each also adds its DR-region stack (issue 25: the cost per
    added environment must hold with the DR-region stacks).
    """
    ignore = shutil.ignore_patterns("__pycache__", "cdktf.out", ".venv", "node_modules", ".git", "tests", "docs",
                                    ".local", "*.tfstate", "*.part")
    shutil.copytree(ROOT, target, ignore=ignore, symlinks=True)
    shipped = load_project(ROOT / "environments").environments
    dev = (ROOT / "environments" / "dev.toml").read_text()
    used = {env.network.cidr for env in shipped}
    added = 0
    for index in range(1, 250):
        if len(shipped) + added == count:
            break
        cidr = f"10.{index}.0.0/16"
        if cidr in used:
            continue
        name = f"bench{index:02d}"
        text = re.sub(r'^name = ".*"$', f'name = "{name}"', dev, flags=re.M)
        text = re.sub(r'^cidr = ".*"$', f'cidr = "{cidr}"', text, flags=re.M)
        text = re.sub(r'^domain = ".*"$', f'domain = "{name}.example.com"', text, flags=re.M)
        text = re.sub(r"^alarm_emails = .*$", f'alarm_emails = ["alerts-{name}@example.com"]', text, flags=re.M)
        text += DR_TABLE
        (target / "environments" / f"{name}.toml").write_text(text)
        added += 1
    load_project(target / "environments")  # the generated configuration must be valid
    return added


def ratios(results: dict[str, tuple[float, float, float]], added: int, column: int) -> dict[str, float]:
    """The targets' ratios from wall time (column 0) or CPU time (column 1); memory from column 2."""
    reference = results["E"][column]
    whole, many = results["whole app"][column], results["12 envs"][column]
    return {"lazy floor / E": results["lazy floor"][column] / reference,
            "one env / E": results["one env"][column] / reference,
            "whole app / E": whole / reference,
            "added env / E": (many - whole) / added / reference,
            "peak 12 envs / whole app": results["12 envs"][2] / results["whole app"][2]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per case (median is reported)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        many = scratch / "many"
        added = copy_with_environments(many, MANY_ENVIRONMENTS)
        python_main = [sys.executable, "main.py"]
        cases = {
            "E": (one_resource_command(scratch / "stock"), ROOT, {SELECT_VARIABLE: "stock"}),
            "lazy floor": (one_resource_command(scratch / "lazy"), ROOT, {}),
            "one env": ([*python_main, "dev"], ROOT, {}),
            "whole app": (python_main, ROOT, {}),
            "12 envs": (python_main, many, {}),
        }
        load = os.getloadavg()[0]
        results = {name: case(args.runs, command, cwd, scratch / f"out-{index}", extra_env)
                   for index, (name, (command, cwd, extra_env)) in enumerate(cases.items())}
        trips = round_trips(scratch / "trips")
    print(f"median of {args.runs}; {added} environments added for '12 envs'; "
          f"load average {load:.1f} before, {os.getloadavg()[0]:.1f} after")
    for name, (seconds, cpu, rss) in results.items():
        print(f"{name:<12} {seconds:6.2f} s wall  {cpu:6.2f} s cpu   peak {rss:7.0f} MiB")
    print("jsii round trips per environment stack: "
          + ", ".join(f"{name} {count}" for name, count in trips.items())
          + f" (mean {statistics.mean(trips.values()):.0f})")
    wall, cpu = ratios(results, added, 0), ratios(results, added, 1)
    for name, value in wall.items():
        verdict = "ok" if value <= TARGETS[name] else "ABOVE TARGET"
        print(f"{name:<25} {value:5.2f} wall  {cpu[name]:5.2f} cpu  (target <= {TARGETS[name]:.2f}) {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
