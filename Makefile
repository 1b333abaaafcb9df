# CareBeacon: `make demo` runs the whole system, `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install services test check pytest demo soak bench clean down

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	scripts/system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

services: install
	$(BIN)/carebeacon services up

down: install
	$(BIN)/carebeacon services down

check: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

pytest: services
	$(BIN)/pytest -m "not slow"

test: check pytest

soak: services
	$(BIN)/pytest -m slow

demo: services
	$(BIN)/carebeacon demo

bench: services
	$(BIN)/carebeacon bench alerts
	$(BIN)/carebeacon bench ingest
	$(BIN)/carebeacon bench pages
	$(BIN)/carebeacon bench queries

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
