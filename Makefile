# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
# Each bootstraps a virtualenv in .venv with pinned versions from constraints.txt.
PYTHON ?= python3
PORT ?= 8000
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all lint bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv
	$(BIN)/uv pip install --python $(BIN)/python -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: venv
	$(BIN)/oms demo --port $(PORT)

test: venv
	$(BIN)/pytest -q

test-all: venv
	$(BIN)/pytest -q -m "slow or not slow"

lint: venv
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info
