# Spool: the two set-up commands are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install lock demo up cluster test test-fast lint typecheck bench clean

# Python packages exactly as requirements-dev.lock pins them (versions and hashes), then
# Spool itself without resolving anything again. `make lock` refreshes the locks.
$(STAMP): pyproject.toml requirements-dev.lock scripts/install-system.sh
	./scripts/install-system.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --require-hashes -r requirements-dev.lock
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

## Re-resolve the dependency locks from pyproject.toml (runtime, then dev within it).
lock:
	test -x $(VENV)/bin/uv || $(PY) -m pip install -q uv
	$(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.11 \
	  --generate-hashes --quiet -o requirements.lock
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
	  --generate-hashes --quiet -c requirements.lock -o requirements-dev.lock

# The web page's browser packages (hls.js), exactly as package-lock.json pins them; again only
# when the lock changes (npm itself comes from install-system.sh, run for the venv first).
NODE_STAMP := node_modules/.installed
$(NODE_STAMP): package-lock.json | $(STAMP)
	npm ci --ignore-scripts --no-audit --no-fund
	touch $(NODE_STAMP)

install: $(STAMP) $(NODE_STAMP)

## Start the embedded stack in the foreground (Temporal dev server + UI, worker, API). Ctrl-C stops it.
up: install
	$(PY) -m devstack.up

## Spool as separate hosts sharing nothing but the network: S3 server, PostgreSQL,
## Elasticsearch, Temporal, API, pipeline/media/captions workers. Ctrl-C stops it.
cluster: install
	$(PY) -m devstack.cluster

## Install, start the stack, publish sample posts and process the sample video, print results, stop.
demo: install
	$(PY) -m devstack.demo

## Install and run the whole suite against real Temporal, Elasticsearch, ffmpeg and Whisper.
## Two pytest processes (pytest-xdist), each with its own servers, a test module at a time
## each: most tests wait on servers, timers and outages, so two share a 2-core machine well.
## TEST_PROCESSES=1 runs the suite in one process; the servers are fetched or built first,
## once (devstack/fetch.py), not by both processes at the same time.
TEST_PROCESSES ?= 2
test: install lint typecheck
	-$(PY) -m devstack.fetch
	$(PY) -m pytest -q -ra -n $(TEST_PROCESSES) --dist loadfile

## The inner loop: the unit tier only (no server, no ffmpeg or Whisper): 568 tests; when it held
## 397 they took 70 s of CPU time, about 70 s on an idle 2-core machine (README "Tests").
test-fast: install
	$(PY) -m pytest -q -ra -m unit

## Lint and format checks (ruff); part of make test.
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

## Type checks (basedpyright: pyright with its engine in the locked wheel); part of make test.
## What it checks and how strictly: [tool.basedpyright] in pyproject.toml.
typecheck: install
	$(VENV)/bin/basedpyright

bench: install
	$(PY) bench/blog.py
	$(PY) bench/video.py

clean:
	rm -rf var artifacts .pytest_cache
