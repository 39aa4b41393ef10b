# Quick start: `make run` starts the service, `make test` runs every test.
# Each target creates .venv and installs what it needs on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(VENV)/.installed-run $@

run: $(VENV)/.installed-run
	$(BIN)/myafya serve $(ARGS)

test: $(VENV)/.installed-test
	@scripts/ensure-chromium
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/mypy

# Benchmarks print ratios against a baseline measured in the same run; see bench/README.md.
bench: $(VENV)/.installed-test
	$(BIN)/python bench/ussd.py
	$(BIN)/python bench/booking.py
	$(BIN)/python bench/memory.py

clean:
	rm -rf $(VENV) var/*.db var/*.db-*
