# Wattwise: `make run` serves a seeded demo on http://127.0.0.1:8000; `make test` runs the whole suite.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip install --no-compile --disable-pip-version-check -q
PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 8000
# The suite runs on real PostgreSQL and Redis (started by .ci/services if they are down).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/wattwise
TEST_REDIS_URL ?= redis://127.0.0.1:6379/14
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/wattwise_bench
BENCH_BROKER_URL ?= redis://127.0.0.1:6379/13
# bench-ingest empties its database; the pages' fleet (5 GB, ~10 min to build) lives in its own.
BENCH_PAGES_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/wattwise_pages
# bench-run-page: the page cache's Redis database (flushed by the benchmark).
BENCH_CACHE_URL ?= redis://127.0.0.1:6379/12
# The other Pythons (.ci/other-pythons): the agent alone on each one it supports besides 3.11, and the app on
# 3.13 in its own database and Redis database, so that it could run beside the main suite.
AGENT_PYTHONS ?= 3.9 3.10 3.12 3.13
PY313_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/wattwise_py313
PY313_REDIS_URL ?= redis://127.0.0.1:6379/11
# On 3.13, the app's suite less the browser tests (Playwright; the main run has them), the torch ones (no torch
# there), the fault suite (its own services, ~2 minutes; the main run has it), the tests that start workers,
# agents or servers as processes (what they check is how processes meet, not the Python; on a slow machine they
# were most of this run's 53 minutes, beside the main suite) and tests/agents (run on 3.13 by test-agent-pythons).
PY313_TESTS ?= -m "not torch and not browser and not faults and not processes" --ignore=tests/agents

# `make demo-loop`: issue 12's loop end to end on emulated GPUs (examples/pipeline_parallel/README.md); LOOP_ARGS=--keep DIR keeps
# the throwaway server's database to look at afterwards.
LOOP_ARGS ?=

.PHONY: run install install-dev services test lint demo-loop typecheck pytest bench-ingest bench-group-store bench-import bench-planner bench-pages bench-run-page bench-wire bench-encoding bench-agent bench-broker-message clean \
	other-pythons test-agent-pythons test-server-pythons

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# The agent (agents/, a distribution of its own) first: the app depends on it.
$(VENV)/.installed: pyproject.toml agents/pyproject.toml | $(VENV)/bin/python
	$(PIP) -e ./agents -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml agents/pyproject.toml | $(VENV)/bin/python
	$(PIP) -e './agents[broker]' -e '.[dev]' 2>&1 | grep -v "is ignored: it is neither" || true
	@$(PY) -c "import django, celery, torch, pytest, playwright" || { echo "dev install failed"; exit 1; }
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(PY) manage.py migrate --noinput -v 0
	$(PY) manage.py seed_demo
	@echo "Open http://$(HOST):$(PORT)/ and log in with the demo login above."
	@echo "The run 'live-demo' streams live (simulated) while the server runs: open it to watch it update."
	$(PY) manage.py stream_demo --minutes 0 > stream_demo.log 2>&1 & trap 'kill $$! 2>/dev/null; wait $$! 2>/dev/null' EXIT; \
		$(PY) manage.py runserver $(HOST):$(PORT)

services:
	bash .ci/services

# Needs nothing running: a throwaway server (SQLite, tasks in-process) in a temporary directory, ~2-3 minutes.
demo-loop: install-dev
	$(PY) examples/pipeline_parallel/loop.py $(LOOP_ARGS)

# lint-imports checks the import contracts in pyproject.toml's [tool.importlinter] (see docs/architecture.md).
lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

typecheck: install-dev
	$(VENV)/bin/mypy agents/wattwise_agent planner dashboard benchmarks

pytest: install-dev services
	DATABASE_URL=$(TEST_DATABASE_URL) WATTWISE_TEST_REDIS_URL=$(TEST_REDIS_URL) $(VENV)/bin/pytest -q
	# The embedded default (SQLite, in-process tasks, no services) must keep working too.
	env -u DATABASE_URL -u CELERY_BROKER_URL $(VENV)/bin/pytest -q -m "not services and not browser" \
		tests/dashboard/telemetry/test_ingest_idempotency.py tests/dashboard/telemetry/test_energy_accounting.py tests/dashboard/demo/test_seed_demo.py \
		tests/dashboard/telemetry/test_window_seq_index_sqlite.py tests/dashboard/telemetry/test_compaction.py

# The main suite and the other Pythons at once, each in its own database and Redis database (output kept apart,
# each printed when it ends): each uses about one of two cores, and the agent's tests mostly wait on
# subprocesses and brokers. One after the other they took 60 of CI's 90 minutes on a slow machine.
test: lint typecheck
	$(MAKE) -j3 --output-sync=target pytest test-agent-pythons test-server-pythons

other-pythons:
	$(MAKE) -j2 --output-sync=target test-agent-pythons test-server-pythons

# The agent's tests (tests/agents less the `app` and `torch` ones) in .venv-agent-X.Y, each holding only a wheel of
# agents/ with [broker], pytest and hypothesis: what `pip install ./agents` gives a user on that Python.
test-agent-pythons: services
	.ci/other-pythons agent $(AGENT_PYTHONS)

# The app on Python 3.13 in .venv-3.13 (-e ./agents[broker] -e '.[dev]', without torch): PY313_TESTS above.
test-server-pythons: services
	DATABASE_URL=$(PY313_DATABASE_URL) WATTWISE_TEST_REDIS_URL=$(PY313_REDIS_URL) \
		.ci/other-pythons server 3.13 -q -p no:cacheprovider $(PY313_TESTS)

# BENCH_ARGS=--http: agents send over HTTP through gunicorn; --prefill sets the load generator apart
# (docs/benchmarks.md, which also gives each run's server CPU per million samples).
bench-ingest: install-dev services
	DEBUG=0 SECRET_KEY=bench-only DATABASE_URL=$(BENCH_DATABASE_URL) CELERY_BROKER_URL=$(BENCH_BROKER_URL) \
		$(PY) benchmarks/bench_ingest.py $(BENCH_ARGS)

# The server CPU of storing groups of batches in-process (the coalescing consumer's store path, no broker), per
# million samples, best of 5 rounds: the part of bench-ingest's figure this app's code decides, little moved by
# other work on the machine. Empties the benchmark database, as bench-ingest does.
bench-group-store: install-dev services
	DEBUG=0 SECRET_KEY=bench-only DATABASE_URL=$(BENCH_DATABASE_URL) $(PY) benchmarks/bench_group_store.py $(BENCH_ARGS)

bench-planner: install-dev
	$(PIP) -e '.[bench]' 2>&1 | grep -v "is ignored: it is neither" || true
	$(PY) benchmarks/bench_planner.py

# The wire format's CPU cost per batch (decode, open+decode, seal); no services needed.
# A ~60 MB, ~900,000-row Electricity Maps CSV imported as a background job does: rows, seconds, peak memory growth.
bench-import: install-dev services
	DEBUG=0 SECRET_KEY=bench-only DATABASE_URL=$(BENCH_DATABASE_URL) $(PY) benchmarks/bench_import.py $(BENCH_ARGS)

bench-wire: install
	$(PY) benchmarks/bench_wire.py $(BENCH_ARGS)

# The CPU cost of encoding windows' columns for storage (and of decoding them), per million samples; no services.
bench-encoding: install
	DJANGO_SETTINGS_MODULE=dashboard.settings $(PY) benchmarks/bench_window_encoding.py $(BENCH_ARGS)

# The agent's own CPU while streaming 8 GPUs at 10 Hz in real time, for 60 s (BENCH_ARGS=--duration N).
bench-agent: install
	$(PY) benchmarks/bench_agent_cpu.py $(BENCH_ARGS)

# A worker's peak memory when a 200 MB message arrives on Redis: refused unread, against read then refused
# (BENCH_ARGS=--size-mb N). Empties the benchmark database and broker DB, as bench-ingest does.
bench-broker-message: install-dev services
	DEBUG=0 SECRET_KEY=bench-only DATABASE_URL=$(BENCH_DATABASE_URL) CELERY_BROKER_URL=$(BENCH_BROKER_URL) \
		$(PY) benchmarks/bench_broker_message.py $(BENCH_ARGS)

bench-pages: install-dev services
	DEBUG=0 SECRET_KEY=bench-only DATABASE_URL=$(BENCH_PAGES_DATABASE_URL) $(PY) benchmarks/bench_pages.py $(BENCH_ARGS)

# A finished 8-GPU, 2-hour run's page under 20 concurrent clients through gunicorn, page cache off then on
# (loopback only, 15 s per phase; BENCH_ARGS=--seconds N, --clients N). Its run lives beside bench-pages' fleet.
bench-run-page: install-dev services
	DEBUG=0 SECRET_KEY=bench-only DATABASE_URL=$(BENCH_PAGES_DATABASE_URL) CACHE_URL=$(BENCH_CACHE_URL) \
		$(PY) benchmarks/bench_run_page_load.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .venv-agent-* .venv-3.13 staticfiles .pytest_cache .mypy_cache .ruff_cache
