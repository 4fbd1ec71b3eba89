"""SPEC section 7: synthesis imports only the provider submodules it uses."""

from __future__ import annotations

import subprocess
import sys

from core.aws import PACKAGE, loaded_submodules
from tests.conftest import ROOT

# The provider package has ~2,150 submodules; the whole app uses a few dozen.
MOST_SUBMODULES_A_SYNTH_MAY_IMPORT = 150

PROBE = """
import sys
sys.path.insert(0, {root!r})
from core.aws import aws, loaded_submodules, PACKAGE
aws.s3_bucket.S3Bucket
print(len(loaded_submodules()), hasattr(sys.modules[PACKAGE], "__jsii_assembly__"))
"""


def test_synthesis_never_runs_the_package_init(stacks):
    """After synthesizing every stack, the heavy package __init__ has still not run."""
    assert stacks, "the session synthesis must have happened"
    package = sys.modules[PACKAGE]
    assert not hasattr(package, "__jsii_assembly__"), "the provider package __init__ was executed"
    loaded = loaded_submodules()
    assert "s3_bucket" in loaded
    assert len(loaded) <= MOST_SUBMODULES_A_SYNTH_MAY_IMPORT, loaded


def test_a_fresh_process_loads_one_submodule_for_one_resource_type():
    result = subprocess.run([sys.executable, "-c", PROBE.format(root=str(ROOT))],
                            capture_output=True, text=True, check=True, timeout=120)
    count, ran_init = result.stdout.split()
    assert count == "1" and ran_init == "False", result.stdout
