# Two commands matter: `make run` and `make test`. Everything else is a step they use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp-install
# the proxy's hot-path modules compiled with mypyc (src/nantian/_native.py says which and guards against stale
# builds); a failed compile (no C compiler) leaves pure Python, which works the same, slower
NATIVE := $(VENV)/.stamp-native

.PHONY: run test lint typecheck pytest conformance-split proto native clean

$(STAMP): pyproject.toml Makefile $(wildcard proto/*/*.proto proto/*/*/*/*.proto)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m nantian._protogen
	touch $(STAMP)

$(NATIVE): $(STAMP) $(wildcard src/nantian/proxy/*.py) src/nantian/_native.py src/nantian/_nativebuild.py
	$(BIN)/python -m nantian._nativebuild || echo "nantian: hot path not compiled: pure Python"
	touch $(NATIVE)

native: $(NATIVE)

proto: $(STAMP)
	$(BIN)/python -m nantian._protogen

run: $(NATIVE)
	$(BIN)/python examples/run_quickstart.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(NATIVE)
	$(BIN)/pytest -q

test: lint typecheck pytest

# The live conformance cases again, with `nantian controller` + `nantian proxy` as separate processes.
conformance-split: $(NATIVE)
	NANTIAN_CONFORMANCE_MODE=split $(BIN)/pytest -q tests/conformance

clean:
	-test -x $(BIN)/python && $(BIN)/python -m nantian._nativebuild --clean
	rm -rf $(VENV) build dist src/*.egg-info src/nantian/_proto
