# Quick start: `make repro` (set up, then the offline default pipeline) and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
export DVC_NO_ANALYTICS := 1
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup repro test study bench plots-offline

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements.txt -e .
	touch $@

repro: setup
	dvc repro

test: setup
	HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 python -m pytest -q -n 2 --dist loadgroup   # one thread per worker: no oversubscription

study: setup   # the replicated study (params.study.yaml) into reports/study/, then the default restored
	python -m hybrid_ir.study $(STUDY_ARGS)

bench: setup   # BENCH_ARGS="--quick" or "--repro-log repro.log"; writes reports/bench.json
	HF_HUB_OFFLINE=1 python bench/benchmark.py $(BENCH_ARGS)

# Vega for `dvc plots show` without network: the bundles of the versions dvc-render's page loads, from
# the npm registry into .vega/, where hybrid_ir/plot_templates/page.html looks before the CDN
VEGA := vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2
plots-offline:
	rm -rf .vega.tmp && mkdir .vega.tmp
	cd .vega.tmp && npm pack --silent $(VEGA) >/dev/null && for t in *.tgz; do \
	  tar -xzf $$t --strip-components=2 package/build/$${t%-*}.min.js && rm $$t; done
	rm -rf .vega && mv .vega.tmp .vega
