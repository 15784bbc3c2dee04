# paywire developer entry points. `make dev` runs `paywire dev` (the PayPal emulator, paywire's
# API and the demo shop in one process); `make test` is what CI runs
# (.ci/run calls it with CI=true). Installs are pinned by constraints.txt and skipped when the
# venv's stamp is newer than pyproject.toml and constraints.txt. See DEVELOPERS.md.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check
CONSTRAINTS := constraints.txt
DEV_STAMP := $(VENV)/.paywire-dev.stamp
TEST_STAMP := $(VENV)/.paywire-test.stamp
# checkov (policy-as-code scan of the SAM template) lives in its own venv: it pins boto3 exactly,
# below what paywire runs on, so it cannot share .venv's constraints.txt.
CHECKOV_VENV := .venv-checkov
CHECKOV_CONSTRAINTS := constraints-checkov.txt
CHECKOV_VERSION := 3.3.30
CHECKOV_STAMP := $(CHECKOV_VENV)/.checkov.stamp
LINT_PATHS := $(wildcard src tests bench examples)
# Root runs apt-get and pg_ctlcluster directly; anyone else goes through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

DEV_ARGS ?=
PYTEST_ARGS ?=
# `make bench`: every benchmark of bench/suite.py (its BENCHES list) at this size: small (a few
# minutes on 2 cores), full (docs/benchmarks.md's table) or tiny (proves they run).
BENCH_SIZE ?= small
# Keep each bench's figures (NAME.json) in this directory; `bench/goals.py table DIR/*.json`
# prints them as docs/benchmarks.md's Markdown table.
BENCH_JSON ?=
ifeq ($(CI),true)
# CI: show the slowest tests (budget: 25 minutes on 2 cores); the CI=true skip rule and the
# Hypothesis `ci` profile are applied by tests/conftest.py.
PYTEST_ARGS += --durations=15
endif

.PHONY: help dev example-fastapi example-django test lint pytest bench install install-test install-checkov checkov chromium postgres \
  lock lock-checkov clean distclean

help:
	@echo "make dev      create .venv, install paywire, run emulator + API + demo shop (DEV_ARGS=...)"
	@echo "make example-fastapi  the FastAPI shop example with paywire embedded (examples/)"
	@echo "make example-django   the Django shop example: paywire.contrib.django (examples/django_shop)"
	@echo "make test     install test deps, Chromium, start PostgreSQL, lint, type-check, pytest"
	@echo "make lint     ruff check, mypy (strict), lint-imports, cfn-lint, checkov"
	@echo "make pytest   only the test suite (PYTEST_ARGS=...)"
	@echo "make bench    every benchmark, small, figures beside goals (BENCH_SIZE=full, BENCH_JSON=dir)"
	@echo "make lock     regenerate constraints.txt from a fresh throwaway venv"
	@echo "make clean    remove caches, build output and install stamps (keeps .venv)"

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "python3.11 or python3 is required" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(DEV_STAMP): pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP) install --quiet -c $(CONSTRAINTS) -e .
	touch $@

$(TEST_STAMP): pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP) install --quiet -c $(CONSTRAINTS) -e '.[test]'
	touch $@ $(DEV_STAMP)

$(CHECKOV_STAMP): $(CHECKOV_CONSTRAINTS)
	@test -n "$(PYTHON)" || { echo "python3.11 or python3 is required" >&2; exit 1; }
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip --disable-pip-version-check install --quiet \
	  -c $(CHECKOV_CONSTRAINTS) checkov==$(CHECKOV_VERSION)
	touch $@

install: $(DEV_STAMP)

install-test: $(TEST_STAMP)

install-checkov: $(CHECKOV_STAMP)

# Every finding is fixed or skipped in the template with its reason (deploy/aws/README.md lists
# them); BC_SKIP_MAPPING and --skip-download keep the scan offline (no Prisma Cloud calls).
checkov: install-checkov
	BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov --file deploy/aws/template.yaml \
	  --framework cloudformation --skip-download --compact --quiet

dev: install
	$(BIN)/paywire dev $(DEV_ARGS)

# A FastAPI shop with paywire mounted under /pay, against a local PayPal emulator
# (examples/fastapi_shop; its tests run in `make test`).
example-fastapi: install
	$(BIN)/python -m examples.fastapi_shop $(DEV_ARGS)

# The Django shop (examples/django_shop, `paywire[django]`): the emulator, the database (SQLite
# under examples/django_shop/.data), the products and the shop on http://127.0.0.1:8000/.
example-django: install
	$(PIP) install --quiet -c $(CONSTRAINTS) -e '.[django]'
	$(BIN)/python examples/django_shop/manage.py shop_demo $(DEV_ARGS)

chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  echo "installing Debian chromium (browser tests drive /usr/bin/chromium)"; \
	  apt="$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get"; \
	  $$apt install -y chromium || { $$apt update && $$apt install -y chromium; }; \
	fi

postgres:
	@if ! command -v pg_isready >/dev/null; then \
	  echo "pg_isready not found: PostgreSQL tests need a server on 127.0.0.1:5432" >&2; \
	elif ! pg_isready -q -h 127.0.0.1 -p 5432; then \
	  echo "starting PostgreSQL"; \
	  $(SUDO) pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; \
	  for _ in $$(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; \
	  pg_isready -h 127.0.0.1 -p 5432; \
	fi

lint: install-test checkov
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/cfn-lint deploy/aws/template.yaml

pytest: install-test
	@rc=0; $(BIN)/pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc = 5 ]; then echo "pytest collected no tests (exit 5): that is a failure" >&2; fi; \
	exit $$rc

test: install-test chromium postgres lint pytest

# Missed goals are printed, not failures; the target fails only if a bench itself breaks.
bench: install-test postgres
	$(BIN)/python bench/suite.py --size $(BENCH_SIZE) $(if $(BENCH_JSON),--json-dir $(BENCH_JSON))

# constraints.txt pins every distribution a fresh `pip install -e '.[test]'` resolves to today
# (runtime, test extras, transitive). Run after changing dependencies in pyproject.toml; commit
# both. The build backend (hatchling) cannot be pinned this way.
lock:
	@tmp=$$(mktemp -d /tmp/paywire-lock.XXXXXX); trap 'rm -rf "$$tmp"' EXIT; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/python" -m pip --disable-pip-version-check install -q -e '.[test]'; \
	{ echo "# Pinned by \`make lock\` ($$("$$tmp/venv/bin/python" -V)): fresh venv,"; \
	  echo "# pip install -e '.[test]', pip freeze --exclude-editable. Do not edit by hand."; \
	  "$$tmp/venv/bin/python" -m pip --disable-pip-version-check freeze --exclude-editable \
	    | grep -v -e '^#' -e '^-e ' -e '^paywire=='; } > "$$tmp/constraints.txt"; \
	mv "$$tmp/constraints.txt" $(CONSTRAINTS); \
	echo "wrote $(CONSTRAINTS) ($$(grep -vc '^#' $(CONSTRAINTS)) pins)"

# The same for checkov's own venv (constraints-checkov.txt); bump CHECKOV_VERSION first.
lock-checkov:
	@tmp=$$(mktemp -d /tmp/paywire-lock-checkov.XXXXXX); trap 'rm -rf "$$tmp"' EXIT; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/python" -m pip --disable-pip-version-check install -q checkov==$(CHECKOV_VERSION); \
	{ echo "# Pinned by \`make lock-checkov\` ($$("$$tmp/venv/bin/python" -V)): fresh venv, pip install checkov,"; \
	  echo "# pip freeze. checkov's own tool venv (.venv-checkov), apart from .venv: checkov pins boto3"; \
	  echo "# exactly (3.3.30: boto3==1.35.49), below constraints.txt's. Do not edit by hand."; \
	  "$$tmp/venv/bin/python" -m pip --disable-pip-version-check freeze \
	    | grep -v -e '^#' -e '^-e '; } > "$$tmp/constraints.txt"; \
	mv "$$tmp/constraints.txt" $(CHECKOV_CONSTRAINTS); \
	echo "wrote $(CHECKOV_CONSTRAINTS) ($$(grep -vc '^#' $(CHECKOV_CONSTRAINTS)) pins)"

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis .import_linter_cache \
	  build dist src/*.egg-info test-results $(DEV_STAMP) $(TEST_STAMP) $(CHECKOV_STAMP)
	find src tests $(wildcard bench examples) -name __pycache__ -type d -prune -exec rm -rf {} +

# Also removes the virtual environment; the next make target recreates it.
distclean: clean
	rm -rf $(VENV) $(CHECKOV_VENV)
