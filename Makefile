# Two commands matter: `make run` and `make test`. Everything else is a step they use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp-install

.PHONY: run test lint typecheck pytest conformance-split proto clean

$(STAMP): pyproject.toml Makefile $(wildcard proto/*/*.proto proto/*/*/*/*.proto)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m nantian._protogen
	touch $(STAMP)

proto: $(STAMP)
	$(BIN)/python -m nantian._protogen

run: $(STAMP)
	$(BIN)/python examples/run_quickstart.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck pytest

# The live conformance cases again, with `nantian controller` + `nantian proxy` as separate processes.
conformance-split: $(STAMP)
	NANTIAN_CONFORMANCE_MODE=split $(BIN)/pytest -q tests/conformance

clean:
	rm -rf $(VENV) build dist src/*.egg-info src/nantian/_proto
