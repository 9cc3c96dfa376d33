# Spool: the two set-up commands are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo up cluster test lint bench clean

$(STAMP): pyproject.toml scripts/install-system.sh
	./scripts/install-system.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

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
test: install
	$(PY) -m ruff check .
	$(PY) -m pytest -q -ra

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: install
	$(PY) bench/blog.py
	$(PY) bench/video.py

clean:
	rm -rf var artifacts .pytest_cache
