# scalelab: two commands set everything up on a fresh machine.
#   make demo   install, then run the demo sweep on the embedded synthetic data end to end
#   make test   install (FFCV's Debian packages and the benchmark peers included), start the
#               services, run the tests
# Other targets: make install | services | bench | lint | test-all | clean

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The CPU build of torch, pinned: a bare `torch` would let pip fetch a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
FFCV_DEBS := libopencv-dev libturbojpeg0-dev pkg-config
DEMO_TARGETS := synthetic-cifar10 synthetic-cifar100
# The name in grids/demo.toml: the demo's fits and figures read this sweep only.
DEMO_SWEEP := demo
# The batch-size sub-sweep (grids/demo-batch.toml): its own sweep in the same database.
DEMO_BATCH_SWEEP := demo-batch

.PHONY: install install-ffcv services demo test test-all bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# FFCV compiles against OpenCV and libjpeg-turbo: install Debian's packages when missing.
$(VENV)/.ffcv: $(VENV)/.installed
	@pkg-config --exists opencv4 libturbojpeg 2>/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(FFCV_DEBS); }
	$(BIN)/pip install -q -e '.[ffcv]'
	$(BIN)/python -c "import ffcv"  # the FFCV path is tested, never silently skipped
	touch $@

install-ffcv: $(VENV)/.ffcv

demo: $(VENV)/.installed
	$(BIN)/scalelab enqueue grids/demo.toml
	$(BIN)/scalelab enqueue grids/demo-large-n.toml
	$(BIN)/scalelab enqueue grids/demo-wide-n.toml
	$(BIN)/scalelab enqueue grids/demo-batch.toml
	$(BIN)/scalelab launch --executor local --workers 2 --until-empty
	$(BIN)/scalelab status
	for target in $(DEMO_TARGETS); do \
	  $(BIN)/scalelab fit --target $$target --sweep $(DEMO_SWEEP) --bootstrap 1000 \
	    --json plots/fit-$$target.json || exit 1; \
	done
	$(BIN)/scalelab plot all --target synthetic-cifar100 --sweep $(DEMO_SWEEP) \
	  --targets synthetic-cifar10,synthetic-cifar100 --out plots
	$(BIN)/scalelab plot fig1 --target synthetic-cifar10 --sweep $(DEMO_SWEEP) --out plots
	$(BIN)/scalelab plot batch-size --target synthetic-cifar100 --sweep $(DEMO_BATCH_SWEEP) \
	  --out plots

# PostgreSQL and a one-node SLURM cluster (installed with apt-get when missing), idempotent.
services:
	.ci/services

test: $(VENV)/.bench services
	$(BIN)/python -m pytest -q

test-all: $(VENV)/.bench services
	$(BIN)/python -m pytest -q -m ''

# The peers that benchmarks/bench_peer_*.py compare with (chinchilla, optuna, scikit-learn).
$(VENV)/.bench: $(VENV)/.ffcv
	$(BIN)/pip install -q -e '.[bench]'
	touch $@

bench: $(VENV)/.bench
	$(BIN)/python benchmarks/run_all.py

lint: $(VENV)/.installed
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) work runs.db runs.db-* .pytest_cache
