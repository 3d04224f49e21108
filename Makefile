# The two commands a newcomer needs: `make demo` and `make test`. Everything else is plumbing for them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH := torch==2.13.0

.PHONY: setup browser venv demo test test-quick lint bench clean

setup: browser $(STAMP)

# Debian's Chromium and its driver: the scraper drives a real browser. Installed only when missing.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
	  echo "chromium and chromedriver present"; \
	elif [ "$$(id -u)" = "0" ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else \
	  echo "chromium/chromedriver missing; run: sudo apt-get update && sudo apt-get install -y chromium chromium-driver"; \
	fi

# torch is pinned first so pip takes the CPU wheel on disk instead of a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev,distributed]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/colorize demo --out demo-run

# ruff for style; lint-imports for the one-way stage layers in pyproject.toml (a back edge fails CI).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# Everything, as CI runs it: ~15 minutes on 2 cores (412 tests, measured on a machine shared with other work).
test: setup lint
	$(VENV)/bin/pytest -q tests

# The development loop: lint, then every test not marked slow or browser (CI still runs `make test`).
test-quick: setup lint
	$(VENV)/bin/pytest -q -m "not slow and not browser" tests

bench: setup
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf demo-run .pytest_cache .ruff_cache build *.egg-info
