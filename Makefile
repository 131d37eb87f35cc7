# Quick start: `make demo` and `make test`. Both bootstrap .venv with pip; nothing else is needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test test-fast bench bench-models formal clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rasterflow demo --out-dir demo-output

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --durations=15 $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 -m 'not slow' $(PYTEST_ARGS)

formal: $(STAMP)
	$(BIN)/python -m pytest -n 2 --durations=0 tests/test_formal.py tests/test_formal_uart.py tests/test_formal_requant.py $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/bench_suite.py --out bench/results

bench-models: $(STAMP)
	$(BIN)/python bench/bench_models.py --out bench/results

clean:
	rm -rf $(VENV) demo-output build .pytest_cache
