# chaosmesh_istio: every target sets up what it needs (virtualenv, pip and Debian packages).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-stamp

.PHONY: install test lint demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml scripts/system-deps.sh
	./scripts/system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: install lint
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check chaosmesh_istio tests benchmarks
	$(BIN)/ruff format --check chaosmesh_istio tests benchmarks
	$(BIN)/mypy

demo: install
	$(BIN)/chaosmesh-istio demo

bench: install
	./scripts/system-deps.sh bench
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find reports -mindepth 1 ! -name .gitkeep -exec rm -rf {} +
