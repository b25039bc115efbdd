# Everything a fresh machine needs: `make demo` (animate a bundled portrait with the bundled model) and
# `make test` (the test suite). Both create the virtualenv in .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORE_STAMP := $(VENV)/.core-installed
TEST_STAMP := $(VENV)/.test-installed
DEMO_OUT ?= demo_out

.PHONY: setup demo test test-all bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==24.3.1"

# torch is installed first and exactly as 2.13.0: that version is the local CPU wheel.
$(CORE_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install "torch==2.13.0"
	$(BIN)/python -m pip install -e .
	touch $@

# The dlib68 backend uses the prebuilt dlib-bin wheel (no compile); the app extra lets the
# browser tests run (they also need a system Chromium, see .ci/run, and skip without one).
$(TEST_STAMP): $(CORE_STAMP)
	$(BIN)/python -m pip install -e ".[dev,dlib,app]"
	touch $@

setup: $(TEST_STAMP)

demo: $(CORE_STAMP)
	$(BIN)/talkinghead demo --output $(DEMO_OUT)

test: $(TEST_STAMP)
	$(BIN)/python -m pytest

test-all: $(TEST_STAMP)
	$(BIN)/python -m pytest -m ""

bench: $(CORE_STAMP)
	$(BIN)/python benchmarks/prepare.py
	$(BIN)/python benchmarks/rasterize.py
	$(BIN)/python benchmarks/train_step.py
	$(BIN)/python benchmarks/animate.py
	$(BIN)/python benchmarks/identity_network.py

clean:
	rm -rf $(DEMO_OUT) .pytest_cache
