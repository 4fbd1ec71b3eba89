"""Repository tooling that is not operating the stacks: the benchmark, the architecture diagrams,
the configuration reference, the reachability table and the Terraform CLI config for a provider mirror.
Each runs as `python tools/NAME.py` (the Makefile's `bench` and `docs` targets)."""
