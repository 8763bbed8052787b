# Two entry points for a bare machine: `make demo` and `make test`.
# torch is installed first and pinned to the CPU wheel; a bare `torch` requirement would pull CUDA.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.fedray-installed

.PHONY: demo test test-slow lint bench clean setup

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet "$(TORCH)"
	DS_BUILD_OPS=0 $(PIP) install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/fedray run scenarios/mini.yaml

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check fedray tests

clean:
	rm -rf $(VENV) runs .pytest_cache
