# One entry point for humans and CI. `make` installs everything and synthesizes; `make test`
# runs the whole suite. Terraform tiers use $TF_PROVIDER_MIRROR when set (air-gapped installs).
SHELL := /bin/bash
space := $(subst ,, )
comma := ,
PYTHON ?= python3
PIPENV := PIPENV_VENV_IN_PROJECT=1 PIPENV_VERBOSITY=-1 $(PYTHON) -m pipenv
PIPENV_VERSION := 2026.10.3
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
# No telemetry or version checks: they fail (slowly) on air-gapped machines.
export CHECKPOINT_DISABLE := 1

.PHONY: all node-check setup synth test test-deps lint bench clean docs docs-deps plan drift deploy-bootstrap deploy destroy preflight local-up local-down

all: synth

# Node.js majors everything works on: make, make test, python -m ops. On 20 and 22 `npx cdktf` works
# too; on 24 the cdktf CLI's terminal library has no binary, so tools/node-pty-guard stops every
# `npx cdktf ...` with one line pointing at python -m ops (README "Prerequisites" has the table).
SUPPORTED_NODE := 20 22 24
CDKTF_CLI_NODE := 20 22
node-check:
	@version=$$(node --version 2>/dev/null) || { echo "make: Node.js not found: install Node.js 24 (or 20, 22) (see README, Prerequisites)" >&2; exit 1; }; \
	major=$${version#v}; major=$${major%%.*}; \
	case " $(SUPPORTED_NODE) " in *" $$major "*) ;; *) \
	  echo "make: Node.js $$version is not supported: use Node.js $(subst $(space),$(comma) ,$(SUPPORTED_NODE)) (see README, Prerequisites)" >&2; exit 1;; esac; \
	case " $(CDKTF_CLI_NODE) " in *" $$major "*) ;; *) \
	  echo "note: Node.js $$version: npx cdktf is unavailable (its terminal library has no binary); everything else works, deploy with python -m ops";; esac

.make/pipenv:
	@mkdir -p .make
	$(PYTHON) -m pipenv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "pipenv==$(PIPENV_VERSION)"
	@touch $@

.make/python: Pipfile.lock .make/pipenv
	$(PIPENV) sync --dev
	@touch $@

.make/node: package-lock.json | node-check
	npm ci --no-audit --no-fund --loglevel=error
	@node -e "require('@cdktf/node-pty-prebuilt-multiarch')" 2>/dev/null || echo "note: npx cdktf is unavailable with Node.js $$(node --version) on $$(uname -sm) (no terminal-library binary); make, make test and python -m ops work (see README, Prerequisites)"
	@touch $@

# The lazy-index copy of the AWS provider's jsii bundle (core/provider_bundle.py; README "Performance"):
# synthesis loads it instead of the stock bundle. Fails with one line if the pinned bundle changed.
LAZY_PROVIDER := .gen/provider-aws/manifest.json
$(LAZY_PROVIDER): .make/python core/provider_bundle.py
	$(PIPENV) run python -m core.provider_bundle
	@touch $@

setup: node-check .make/python .make/node $(LAZY_PROVIDER)

# main.py directly (what `npx cdktf synth` runs too), so synthesis works on every supported Node.js.
synth: setup
	$(PIPENV) run python -m ops synth

# Two workers (the machines have two cores); `loadgroup` keeps module-wide scenarios on one worker.
# Tests marked `nightly` (pyproject.toml) run in the scheduled workflow, not per commit.
test: setup test-deps
	$(PIPENV) run pytest -n 2 --dist loadgroup -m "not nightly"

# The database bootstrap SQL is tested against a real PostgreSQL server (Debian's `postgresql`,
# binaries under /usr/lib/postgresql/*/bin). Without it those tests skip, or fail in CI
# (INFRA_REQUIRE_TOOLS=1).
test-deps:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || \
	  { command -v apt-get >/dev/null 2>&1 && \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo -n ) apt-get update -qq && \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo -n ) apt-get install -y -qq --no-install-recommends postgresql; } || \
	  echo "note: PostgreSQL server not installed; the database bootstrap SQL tests cannot run"

lint: setup
	$(PIPENV) run ruff check .

bench: setup
	$(PIPENV) run python tools/benchmark.py

# Graphviz's `dot` renders the diagrams to SVG; without it only .dot is written (tests compare .dot).
docs-deps:
	@command -v dot >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo -n ) apt-get update -qq && \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo -n ) apt-get install -y -qq graphviz; } || \
	  echo "note: Graphviz not installed; writing .dot only"

# Regenerates docs/architecture-<env>.dot/.svg, docs/reachability.md and docs/configuration.md
# (tests fail when stale).
docs: synth docs-deps
	$(PIPENV) run python tools/diagram.py
	$(PIPENV) run python tools/reachability.py
	$(PIPENV) run python tools/config_reference.py

# Operating the stacks: one entry point, `python -m ops` (see README "Deploying"). ENV names any
# stack (an environment, bootstrap, baseline-<region>); ALLOW_REPLACE lists the stateful addresses
# a deploy may replace or destroy (space-separated).
INFRA := $(PIPENV) run python -m ops
require-env = $(if $(ENV),,$(error set ENV, e.g. make $@ ENV=dev))

plan: setup
	$(require-env)$(INFRA) plan $(ENV)

drift: setup
	$(require-env)$(INFRA) drift $(ENV)

deploy-bootstrap: setup
	$(INFRA) deploy-bootstrap

deploy: setup
	$(require-env)$(INFRA) deploy $(ENV) $(foreach address,$(ALLOW_REPLACE),--allow-replace $(address))

destroy: setup
	$(require-env)$(INFRA) destroy $(ENV)

preflight: setup
	$(require-env)$(INFRA) preflight $(ENV)

local-up: setup
	$(INFRA) local-up $(if $(VERBOSE),--verbose)

local-down:
	$(INFRA) local-down

clean:
	rm -rf cdktf.out .make .gen/provider-aws
