# padless — the two commands of the README, and the checks behind them.
#   make test   create .venv if missing, install padless with dev extras, lint (ruff, import
#               layers), type-check, run the default suite
#   make demo   the end-to-end demo: corpus, tokenizer, plan, batch sizes, training, evaluation,
#               RTFx -> data/demo/report.md (padless demo; steps already done are kept)
#   make nemo-peer  the NeMo peer's own environment, bench/peers/nemo/.venv (docs/nemo.md)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.padless-installed
DEMO_DIR ?= data/demo
# CPU build of torch, installed before the package so nothing resolves a CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install test test-all lint format typecheck demo bench clean nemo-peer

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH_SPEC)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,tensorboard]'
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

test: $(STAMP) lint typecheck
	$(PY) -m pytest -q -n 2 -m "not slow and not gpu"

test-all: $(STAMP)
	$(PY) -m pytest -q -n 2

demo: $(STAMP)
	$(VENV)/bin/padless demo --out $(DEMO_DIR)

nemo-peer:
	$(MAKE) -C bench/peers/nemo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
