# featurehouse: two commands do everything on a fresh machine.
#   make demo   set-up, then the whole pipeline on the embedded local default
#   make test   set-up, then the test suite
SHELL := /bin/bash
PYTHON ?= python3.11
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: setup demo test lint format docs bench clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# The virtual environment follows the lock file exactly (local Spark + Delta, dev tools).
$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --extra local --python $(PYTHON)
	touch $@

# Delta Lake's Spark jars come from Maven Central and are cached (Ivy, with ~/.m2 as fallback).
$(VENV)/.delta-jars: $(VENV)/.synced scripts/fetch_delta_jars.py
	$(VENV)/bin/python scripts/fetch_delta_jars.py
	touch $@

# Redis, the online store the tests run as a real server on loopback (Debian's package).
# Without root or apt the Redis tests skip and say why.
$(TOOLS)/.redis: | $(UV)
	@command -v redis-server >/dev/null || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
		else echo "redis-server not installed (needs root and apt-get): the Redis tests will skip"; fi; }
	touch $@

# Chromium, the headless browser the monitoring report's test opens it in (Debian's package).
# Without root or apt the report's browser tests skip and say why.
$(TOOLS)/.chromium: | $(UV)
	@command -v chromium >/dev/null || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else echo "chromium not installed (needs root and apt-get): the report's browser tests will skip"; fi; }
	touch $@

# actionlint, the GitHub Actions workflow linter tests/bundle runs, built from source with Go
# through the Go module proxy (its releases are prebuilt binaries). Without Go the workflow
# lint test skips and says why.
ACTIONLINT_VERSION := v1.7.12
$(TOOLS)/.actionlint: | $(UV)
	@if $(TOOLS)/bin/actionlint -version 2>/dev/null | grep -qx '$(ACTIONLINT_VERSION)'; then :; \
	elif command -v go >/dev/null; then \
		GOBIN="$(abspath $(TOOLS))/bin" go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION); \
	else echo "go not installed: actionlint not built, the workflow lint test will skip"; fi
	touch $@

setup: $(VENV)/.delta-jars $(TOOLS)/.redis $(TOOLS)/.chromium $(TOOLS)/.actionlint

demo: setup
	$(VENV)/bin/featurehouse pipeline --env local

# Two workers by default (one per core here): each has its own Spark session, and tests
# that share an expensive run stay on one worker (see tests/conftest.py).
TEST_WORKERS ?= 2
test: setup
	$(VENV)/bin/pytest --numprocesses $(TEST_WORKERS) --dist loadgroup

lint:
	$(VENV)/bin/ruff check src tests benchmarks scripts feature_repo notebooks
	$(VENV)/bin/ruff format --check src tests benchmarks scripts feature_repo notebooks

format:
	$(VENV)/bin/ruff format src tests benchmarks scripts feature_repo notebooks
	$(VENV)/bin/ruff check --fix src tests benchmarks scripts feature_repo notebooks

# The feature catalogue is generated from the declarations (a test checks it is current).
docs: setup
	$(VENV)/bin/python -m featurehouse.features.docs

clean:
	rm -rf .featurehouse dist spark-warehouse
