# Two entry points: `make run` (the service on embedded defaults, with the demo replay) and
# `make test` (lint, types, unit and integration tests). Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
VALIDATORS := deploy/validate/node_modules/.installed

.PHONY: install run test lint unit integration train eval bench clean chromium validators

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[ml,dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/relradar run --demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

unit: $(STAMP) $(VALIDATORS)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP) chromium
	$(BIN)/pytest -q tests/integration

# The dashboard test renders the page in Debian's headless Chromium.
chromium:
	@command -v chromium >/dev/null || { apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

# The Strimzi and KEDA manifests are checked against their CRDs' schemas, which come in npm
# packages (deploy/validate/README.md); Debian's nodejs runs them.
$(VALIDATORS): deploy/validate/package-lock.json
	@command -v npm >/dev/null || { apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm; }
	npm ci --prefix deploy/validate --no-audit --no-fund
	touch $(VALIDATORS)

validators: $(VALIDATORS)

test: lint $(STAMP) chromium $(VALIDATORS)
	$(BIN)/pytest -q tests

train: $(STAMP)
	$(BIN)/relradar model train

eval: $(STAMP)
	$(BIN)/relradar model eval

bench: $(STAMP)
	$(BIN)/relradar bench classify

clean:
	rm -rf $(VENV) .relradar .pytest_cache .mypy_cache .ruff_cache
