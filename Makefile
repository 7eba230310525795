# All set-up on a fresh machine: `make demo` and `make test` create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-fast clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# torch first, pinned: the CPU wheel on machines without CUDA, the CUDA build elsewhere.
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e '.[test]'
	touch $(STAMP)

demo: venv
	$(BIN)/python -m automl.demo

# The whole suite, slow tests included (under 15 minutes on 2 cores); `make test-fast` skips the slow ones.
test: venv
	$(BIN)/python -m pytest -q --durations=15

test-fast: venv
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) build *.egg-info
