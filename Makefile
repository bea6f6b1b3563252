# The two commands of the README: `make demo` and `make test`.
# Each creates .venv and installs the pinned requirements the first time.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: demo test lint bench clean-venv

$(STAMP): requirements.txt pyproject.toml setup.py $(wildcard wsovvis/*/csrc/*.c wsovvis/*/csrc/*.h)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade -q "pip>=23"
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-build-isolation --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m wsovvis demo --out runs/demo

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m ruff check .
	HF_HUB_OFFLINE=1 OPENBLAS_NUM_THREADS=1 $(PY) -m pytest -n $(PYTEST_WORKERS) --durations=15 tests

lint: $(STAMP)
	$(PY) -m ruff check .

clean-venv:
	rm -rf $(VENV)
