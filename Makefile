# One-line entry points; see README.md.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
TEST_WORKERS ?= 2

.PHONY: setup demo test test-fast lint

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q torch==2.13.0 uv
	$(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY) -c constraints.txt -e '.[dev]'
	touch $@

demo: setup
	$(VENV)/bin/medvl demo

test: setup
	$(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -m "not slow" -q -n $(TEST_WORKERS) $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check medvl benchx governance pipelines app tests benchmarks
