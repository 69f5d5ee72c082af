# relmon — `make help` lists the targets. Every target installs what it needs when missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
KAFKA_LIB := kafka/lib
KAFKA_STAMP := $(KAFKA_LIB)/.fetched-$(shell sha1sum kafka/pom.xml | cut -c1-12)
BROKER_HOME ?= .broker
BROKER_PORT ?= 9092

.PHONY: help venv jars broker broker-stop run test test-unit test-integration lint fmt schemas bench clean

help: ## show this help
	@echo "relmon — make targets (each installs what it needs on first use):"
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[1m%-17s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (Python >= 3.11)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP) ## create .venv and install relmon with its dev tools

$(KAFKA_STAMP): kafka/pom.xml | $(STAMP)
	$(BIN)/python -m relmon.devbroker jars
	@rm -f $(KAFKA_LIB)/.fetched-* && touch $@

jars: $(KAFKA_STAMP) ## fetch Apache Kafka's jars from Maven Central into kafka/lib

broker: $(KAFKA_STAMP) ## start a local single-node Kafka broker on 127.0.0.1:9092 (idempotent)
	@$(BIN)/python -m relmon.devbroker start --home $(BROKER_HOME) --port $(BROKER_PORT)

broker-stop: ## stop the broker `make broker` started (idempotent)
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m relmon.devbroker stop --home $(BROKER_HOME); \
	 else echo "no Kafka broker was running here"; fi

run: broker ## the main job: broker, topics, worker and a simulated stream (Ctrl-C stops all)
	$(BIN)/relmon topics create
	$(BIN)/python -m relmon.demo

lint: $(STAMP) ## ruff, ruff format --check, mypy --strict
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

fmt: $(STAMP) ## format and autofix what ruff can
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

schemas: $(STAMP) ## regenerate schemas/ from the pydantic models
	$(BIN)/relmon schemas export --dir schemas

test-unit: $(STAMP) ## unit and component tests only (no broker)
	$(BIN)/pytest tests/unit tests/component

test-integration: $(STAMP) $(KAFKA_STAMP) ## integration tests against a real broker (started by the session)
	$(BIN)/pytest tests/integration

test: lint $(KAFKA_STAMP) ## lint plus every test tier (the session starts its own broker unless RELMON_KAFKA_BOOTSTRAP is set)
	$(BIN)/pytest

bench: $(STAMP) $(KAFKA_STAMP) ## benchmarks; results go in BENCHMARKS.md
	$(BIN)/python benchmarks/bench_replay.py

clean: broker-stop ## remove the venv, broker data, jars and caches
	rm -rf $(VENV) $(BROKER_HOME) $(KAFKA_LIB) .pytest_cache .mypy_cache .ruff_cache .relmon-state
