"""Synthesis benchmark (SPEC section 7, issue 16): run it, do not time it inside the test suite.

Each case runs in a fresh Python process, N times; reported are the median wall time and the
largest peak resident memory of that process tree (Node/jsii included), all in one run so the
ratios compare numbers taken under the same load:

  floor       a one-resource stack through core.aws, the lazy loader: the floor for any synthesis
  naive       the same stack importing the provider bindings the naive way (package __init__)
  one env     `python main.py dev`: one environment stack (what `python -m ops plan dev` synthesizes)
  whole app   `python main.py`: every stack of the shipped configuration
  12 envs     `python main.py` in a temporary copy whose environments/ holds 12 environments
              (the shipped ones plus copies of dev.toml with their own name, CIDR and domain)

Targets: one env <= 1.3 x floor, whole app <= 1.6 x floor, each added environment <= 0.3 s,
whole app <= 0.4 x naive. Usage: python tools/benchmark.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from environments.loader import load_project  # noqa: E402

MANY_ENVIRONMENTS = 12
TARGETS = {"one env / floor": 1.3, "whole app / floor": 1.6, "s per added env": 0.3, "whole app / naive": 0.4}
ONE_RESOURCE = """
import sys
sys.path.insert(0, {root!r})
from cdktf import App, TerraformStack
{imports}
app = App(outdir={outdir!r}, stack_traces=False)
stack = TerraformStack(app, "one")
provider.AwsProvider(stack, "aws", region="eu-west-1")
s3_bucket.S3Bucket(stack, "bucket", bucket="benchmark-bucket")
app.synth()
"""
NAIVE = "import cdktf_cdktf_provider_aws\nfrom cdktf_cdktf_provider_aws import provider, s3_bucket"
LAZY = "from core.aws import aws\nprovider, s3_bucket = aws.provider, aws.s3_bucket"


def measure(command: list[str], cwd: Path, outdir: Path) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system, the waited-for process tree) and peak RSS (MiB), via wait4.

    CPU time barely moves with other load on the machine, so its ratios stay comparable when
    wall time does not (a shared machine).
    """
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", "CDKTF_OUTDIR": str(outdir)}
    env.pop("INFRA_STACKS", None)
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(command)}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def case(runs: int, command: list[str], cwd: Path, outdir: Path) -> tuple[float, float, float]:
    results = [measure(command, cwd, outdir) for _ in range(runs)]
    return (statistics.median(r[0] for r in results), statistics.median(r[1] for r in results),
            max(r[2] for r in results))


def one_resource_command(imports: str, outdir: Path) -> list[str]:
    return [sys.executable, "-c", ONE_RESOURCE.format(root=str(ROOT), imports=imports, outdir=str(outdir))]


def copy_with_environments(target: Path, count: int) -> int:
    """A copy of the product whose environments/ holds `count` environments; returns how many were added.

    Each added environment is dev.toml with its own name, a /16 of its own and its own domain.
    """
    ignore = shutil.ignore_patterns("__pycache__", "cdktf.out", ".venv", "node_modules", ".git", "tests", "docs",
                                    ".local", "*.tfstate")
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
        (target / "environments" / f"{name}.toml").write_text(text)
        added += 1
    load_project(target / "environments")  # the generated configuration must be valid
    return added


def ratios(results: dict[str, tuple[float, float, float]], added: int, column: int) -> dict[str, float]:
    """The targets' ratios from wall time (column 0) or CPU time (column 1)."""
    floor, naive = results["floor"][column], results["naive"][column]
    one, whole, many = results["one env"][column], results["whole app"][column], results["12 envs"][column]
    return {"one env / floor": one / floor, "whole app / floor": whole / floor,
            "s per added env": (many - whole) / added, "whole app / naive": whole / naive}


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
            "floor": (one_resource_command(LAZY, scratch / "lazy"), ROOT),
            "naive": (one_resource_command(NAIVE, scratch / "naive"), ROOT),
            "one env": ([*python_main, "dev"], ROOT),
            "whole app": (python_main, ROOT),
            "12 envs": (python_main, many),
        }
        results = {name: case(args.runs, command, cwd, scratch / f"out-{index}")
                   for index, (name, (command, cwd)) in enumerate(cases.items())}
    print(f"median of {args.runs}; {added} environments added for '12 envs'; load average {os.getloadavg()[0]:.1f}")
    for name, (seconds, cpu, rss) in results.items():
        print(f"{name:<12} {seconds:6.2f} s wall  {cpu:6.2f} s cpu   peak {rss:7.0f} MiB")
    wall, cpu = ratios(results, added, 0), ratios(results, added, 1)
    for name, value in wall.items():
        verdict = "ok" if value <= TARGETS[name] else "ABOVE TARGET"
        print(f"{name:<18} {value:5.2f} wall  {cpu[name]:5.2f} cpu  (target <= {TARGETS[name]:.2f}) {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
