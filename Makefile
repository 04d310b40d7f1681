# flare-study: `make help` lists the targets. Variables: PROFILE (smoke|quick|full), DATA (phantom|real|flare24).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
FLARELIB := $(VENV)/bin/flarelib
PROFILE ?= quick
DATA ?= phantom
RUNS ?=
TORCH_PIN := torch==2.13.0

.PHONY: help setup test smoke smoke-real test-slow reproduce report lab bench lint format clean

help: ## list the targets
	@echo "flare-study: make TARGET [PROFILE=smoke|quick|full] [DATA=phantom|real|flare24]"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-10s %s\n", $$1, $$2}'

setup: $(VENV)/.installed ## create .venv: pinned CPU torch first, then flarelib[dev,cpu-runtime], and a Jupyter kernel
	@# headless Chromium for the viewers' browser test (tests/test_browser_widgets.py): Debian's packages, as root
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium and chromium-driver"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "chromium/chromedriver missing (install Debian's chromium chromium-driver as root): the browser test skips (fails in CI)"; fi

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build
	$(PY) -m pip install --disable-pip-version-check -q "$(TORCH_PIN)"
	$(PY) -m pip install --disable-pip-version-check -q -e ".[dev,cpu-runtime]"
	$(PY) -m ipykernel install --sys-prefix --name flare-study --display-name "flare-study"
	$(PY) -c "import torch, flarelib; print('torch', torch.__version__, '| flarelib', flarelib.__version__)"
	touch $@

test: setup ## fast tests (minutes, tiny volumes); real-data tests run when ../shared/data exists
	$(PY) -m pytest -q -m "not slow"

smoke: setup ## every notebook of every phantom run on the smoke profile through papermill, the report, then the viewers in a real browser
	$(FLARELIB) reproduce --profile smoke --data phantom
	$(PY) -m pytest -q -m browser

smoke-real: setup ## the real track's runs on the smoke profile (needs ../shared/data or FLARE_DATA)
	@if [ -d "$${FLARE_DATA:-../shared/data}" ]; then $(FLARELIB) reproduce --profile smoke --data real; \
	else echo "real data not found (../shared/data or FLARE_DATA): real-data smoke skipped"; fi

test-slow: setup ## the slow end-to-end tests besides the browser's (kill -9 and resume, stage tests, predict on real MR)
	$(PY) -m pytest -q -m "slow and not browser"

reproduce: setup ## the study: every stage of every run (RUNS=table5|table6|fig6|phantom|names), shared stages once, resumable
	$(FLARELIB) reproduce --profile $(PROFILE) --data $(DATA) $(if $(RUNS),--runs $(RUNS),)

report: setup ## render every executed notebook of PROFILE to HTML (with code, and results only) + outputs/PROFILE/index.html
	$(FLARELIB) report --profile $(PROFILE)

lab: setup ## open the notebooks in JupyterLab (jupytext opens the .py files as notebooks)
	$(VENV)/bin/jupyter lab notebooks/

bench: setup ## run the benchmarks in benchmarks/ one at a time; results in benchmarks/RESULTS.md
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lint: setup ## ruff check
	$(VENV)/bin/ruff check .

format: setup ## ruff format
	$(VENV)/bin/ruff format .

clean: ## remove products (outputs/, generated data/); keeps .venv
	rm -rf outputs/*/ data/phantom .pytest_cache .ruff_cache
