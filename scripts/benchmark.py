"""Synthesis benchmark (SPEC section 7): run it, do not time it inside the test suite.

Each case runs in a fresh Python process, N times; we report the median wall time and the
largest peak resident memory of that process tree (Node/jsii included):

  a) synthesize everything: `python main.py`
  b) a one-resource stack importing the provider bindings the naive way (package __init__)
  c) the same one-resource stack through core.aws, the lazy loader: the floor for any synth

Targets: a/b <= 0.4 and a/c <= 1.5. Usage: python scripts/benchmark.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

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


def measure(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of the largest process in the tree, via wait4."""
    env = dict(os.environ, JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20")
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(command)}")
    return elapsed, usage.ru_maxrss / 1024


def case(runs: int, command: list[str]) -> tuple[float, float]:
    results = [measure(command) for _ in range(runs)]
    return statistics.median(r[0] for r in results), max(r[1] for r in results)


def one_resource_command(imports: str, outdir: str) -> list[str]:
    return [sys.executable, "-c", ONE_RESOURCE.format(root=str(ROOT), imports=imports, outdir=outdir)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per case (median is reported)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        cases = {
            "a) synthesize everything (main.py)": [sys.executable, "main.py"],
            "b) one resource, naive import": one_resource_command(NAIVE, f"{scratch}/naive"),
            "c) one resource, lazy loader": one_resource_command(LAZY, f"{scratch}/lazy"),
        }
        results = {name: case(args.runs, command) for name, command in cases.items()}
    for name, (seconds, rss) in results.items():
        print(f"{name:<40} {seconds:6.2f} s   peak {rss:7.0f} MiB")
    (a, _), (b, _), (c, _) = results.values()
    print(f"a/b = {a / b:.2f}  (target <= 0.40)")
    print(f"a/c = {a / c:.2f}  (target <= 1.50)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
