# `make run`: set up, then the default (offline) benchmark. `make test`: set up, then the tests.
# Set-up is keyed on the pin file: a second call reinstalls nothing.
SHELL := /bin/bash
# The project needs Python 3.11 (pyproject: requires-python >=3.11,<3.12): where `python3` is another version,
# name it, e.g. `make PYTHON=python3.11 test`. It only creates .venv: an existing .venv is kept as it is.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIN_HASH := $(shell sha1sum pyproject.toml | cut -c1-12)
STAMP := $(VENV)/.installed-$(PIN_HASH)
# The test tools (pyproject's `test` extra: pytest, hypothesis, ruff, selenium, grad-cam), for the test and lint targets.
TEST_STAMP := $(VENV)/.installed-test-$(PIN_HASH)
# Debian packages the default configuration needs (the offline audio set is built from these clips).
APT_PACKAGES := sound-theme-freedesktop
CORES ?= all
# GPU jobs (train, explain, score, speed) queue for the machine's GPUs; without one they share the CPU cores.
GPUS ?= $(shell nvidia-smi -L 2>/dev/null | grep -c '^GPU')
GPU_LIMIT := $(if $(filter-out 0,$(GPUS)),--resources gpu=$(GPUS),)
SNAKEMAKE_ARGS ?=
# `make run` ends by writing the HTML report here (another configuration: REPORT=results/NAME/report.html).
REPORT ?= results/default/report.html
# glibc keeps freed memory instead of unmapping every block over 32 MB (the workflow sets the same in
# workflow/rules/common.smk): CPU forward passes on large batches otherwise spend most of their time in page faults.
FAST_MALLOC := MALLOC_MMAP_THRESHOLD_=17179869184 MALLOC_TRIM_THRESHOLD_=17179869184

.PHONY: setup apt run test test-cluster test-report lint speed clean

setup: $(STAMP) apt

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { \
	  echo "$(PYTHON) is Python $$($(PYTHON) -c 'import platform; print(platform.python_version())'); this project" \
	    "needs 3.11: make PYTHON=python3.11 ..."; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps $$($(BIN)/python -c \
	  "import tomllib; extras = tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']; \
	  print(' '.join(extras['cluster'] + extras['attnlrp']))")
	@rm -f $(VENV)/.installed-* && touch $@

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@rm -f $(VENV)/.installed-test-* && touch $@

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing Debian packages:$$missing -- install them (sudo apt-get install$$missing) and rerun"; exit 1; \
	  fi; \
	fi

run: setup
	$(BIN)/snakemake --cores $(CORES) $(GPU_LIMIT) $(SNAKEMAKE_ARGS)
	$(BIN)/snakemake --report $(REPORT) $(SNAKEMAKE_ARGS)
	@echo "The report: $(abspath $(REPORT))"

speed: setup
	$(BIN)/snakemake --cores $(CORES) $(GPU_LIMIT) speed $(SNAKEMAKE_ARGS)

test: setup $(TEST_STAMP)
	$(FAST_MALLOC) HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q --doctest-modules tests wam baselines metrics workflow/lib --ignore=tests/cluster --ignore=tests/report

# The workflow on a one-node SLURM cluster started by the test (root on Debian; skipped otherwise).
test-cluster: setup $(TEST_STAMP)
	$(FAST_MALLOC) HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -rs -s tests/cluster

# The HTML report of a small run with the default configuration's methods, modalities and experiments, in headless
# Chromium at 1366x768 and 1920x1080 (Debian's chromium + chromium-driver, installed here when missing and root;
# otherwise the test is skipped with the reason). Screenshots and measured boxes: results/test-report/.
test-report: setup $(TEST_STAMP)
	-@$(MAKE) --no-print-directory apt APT_PACKAGES="chromium chromium-driver"
	$(FAST_MALLOC) HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -rs tests/report

lint: setup $(TEST_STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf results/default results/ci .snakemake
