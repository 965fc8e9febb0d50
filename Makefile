# Quick start: `make repro` (set up, then the offline default pipeline) and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
export DVC_NO_ANALYTICS := 1
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup repro test bench

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements.txt -e .
	touch $@

repro: setup
	dvc repro

test: setup
	HF_HUB_OFFLINE=1 python -m pytest -q

bench: setup   # BENCH_ARGS="--quick" or "--repro-log repro.log"; writes reports/bench.json
	HF_HUB_OFFLINE=1 python bench/benchmark.py $(BENCH_ARGS)
