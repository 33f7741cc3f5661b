# usagemeter: `make up` runs the whole pipeline with demo traffic; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGES := clickhouse instrumentation collector api
# Each distribution editable; the instrumentation with the extras its tests exercise.
EDITABLE := -e ./clickhouse -e './instrumentation[zero-code,fastapi,arq]' -e ./collector -e ./api -e '.[dev]'

.PHONY: install system-deps up test lint format clean

$(STAMP): pyproject.toml $(foreach p,$(PACKAGES),$(p)/pyproject.toml)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(EDITABLE)
	touch $(STAMP)

install: $(STAMP)

up: $(STAMP)
	$(BIN)/usagemeter up --demo

system-deps:
	./scripts/system-deps.sh

test: $(STAMP) system-deps
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy src clickhouse/src collector/src api/src instrumentation/src

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .usagemeter .pytest_cache .mypy_cache .ruff_cache
