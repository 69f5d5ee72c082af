# relmon — `make help` lists the targets. Every target installs what it needs when missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
KAFKA_LIB := kafka/lib
KAFKA_STAMP := $(KAFKA_LIB)/.fetched-$(shell sha1sum kafka/pom.xml | cut -c1-12)
# Settable on the command line, e.g. `make run BROKER_PORT=19092 WEB_PORT=16066`:
BROKER_HOME ?= .broker
BROKER_PORT ?= 9092
WEB_PORT ?= 6066
STATE_DIR ?= .relmon-state
SUPPORTERS ?= 1000
SPEED ?= 3600

COMPILED := src/relmon/domain/.compiled.json
# what the compiled engine is built from (relmon.compiled.sources_digest says the same)
ENGINE_SRC := $(wildcard src/relmon/domain/*.py) src/relmon/errors.py

.PHONY: help venv compile jars broker broker-stop run test test-unit test-integration test-deploy lint fmt schemas bench clean dashboards k8s rules debs chaos image

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

# The engine compiled with mypyc (see src/relmon/compiled.py); rebuilt when a source changes.
$(COMPILED): $(ENGINE_SRC) | $(STAMP)
	@command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || { echo "installing gcc (to compile the engine)"; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null; } || true
	@inc=$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])'); \
	test -f "$$inc/Python.h" || { echo "installing python3.11-dev (Python.h, to compile the engine)"; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends python3.11-dev >/dev/null; } || true
	@$(BIN)/python -m relmon.compiled build || { \
	  if [ "$$CI" = true ]; then echo "CI=true: the engine must compile"; exit 1; fi; \
	  echo "relmon: the engine did not compile (above); the pure-Python engine runs (slower, same outputs)"; }

compile: $(COMPILED) ## compile the engine with mypyc (~40 s; RELMON_PURE_PYTHON=1 runs the Python sources)

$(KAFKA_STAMP): kafka/pom.xml | $(STAMP)
	$(BIN)/python -m relmon.devbroker jars
	@rm -f $(KAFKA_LIB)/.fetched-* && touch $@

jars: $(KAFKA_STAMP) ## fetch Apache Kafka's jars from Maven Central into kafka/lib

broker: $(KAFKA_STAMP) ## start a local single-node Kafka broker on 127.0.0.1:9092 (BROKER_PORT=..., idempotent)
	@$(BIN)/python -m relmon.devbroker start --home $(BROKER_HOME) --port $(BROKER_PORT)

broker-stop: ## stop the broker `make broker` started (idempotent)
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m relmon.devbroker stop --home $(BROKER_HOME); \
	 else echo "no Kafka broker was running here"; fi

run: $(KAFKA_STAMP) $(COMPILED) ## the main job: broker, worker, a simulated year caught up, then live events (Ctrl-C stops all)
	@$(BIN)/python -m relmon.demo --broker-home $(BROKER_HOME) --broker-port $(BROKER_PORT) \
	  --web-port $(WEB_PORT) --state-dir $(STATE_DIR) --supporters $(SUPPORTERS) --speed $(SPEED)

DEPLOY_PY := deploy/k8s/build.py deploy/monitoring/dashboards/generate.py

lint: $(STAMP) ## ruff, ruff format --check, mypy --strict
	$(BIN)/ruff check src tests benchmarks $(DEPLOY_PY)
	$(BIN)/ruff format --check src tests benchmarks $(DEPLOY_PY)
	$(BIN)/mypy
	$(BIN)/mypy --strict $(DEPLOY_PY)

fmt: $(STAMP) ## format and autofix what ruff can
	$(BIN)/ruff format src tests benchmarks $(DEPLOY_PY)
	$(BIN)/ruff check --fix src tests benchmarks $(DEPLOY_PY)

schemas: $(STAMP) ## regenerate schemas/ from the pydantic models
	$(BIN)/relmon schemas export --dir schemas

dashboards: $(STAMP) ## regenerate deploy/monitoring/dashboards/relmon.json (committed; CI fails on drift)
	$(BIN)/python deploy/monitoring/dashboards/generate.py

k8s: $(STAMP) ## regenerate the PrometheusRule, KafkaTopics and policy ConfigMap under deploy/k8s
	$(BIN)/python deploy/k8s/build.py

rules: ## check and unit-test the Prometheus alert rules with promtool
	promtool check rules deploy/monitoring/rules/relmon-alerts.yml
	promtool test rules deploy/monitoring/tests/*.yml

test-deploy: $(STAMP) ## promtool rule tests, dashboard drift, manifest validation
	$(BIN)/pytest tests/deploy

test-unit: $(STAMP) $(COMPILED) ## unit and component tests only (no broker)
	$(BIN)/pytest tests/unit tests/component tests/golden

test-integration: $(STAMP) $(KAFKA_STAMP) $(COMPILED) ## integration tests against a real broker (started by the session)
	$(BIN)/pytest tests/integration

# command:Debian package, for what the tests run: kcat (the fault suite's independent client),
# promtool and prometheus (the alert rule tests and the live alerting test), podman, mmdebstrap
# and runc (the image test builds and runs the worker image)
DEBS := kcat:kcat promtool:prometheus prometheus:prometheus podman:podman mmdebstrap:mmdebstrap runc:runc

debs: ## apt-install the Debian packages the tests need when missing (kcat, prometheus, podman, mmdebstrap)
	@missing=""; for cp in $(DEBS); do command -v $${cp%%:*} >/dev/null 2>&1 || case " $$missing " in *" $${cp#*:} "*) ;; *) missing="$$missing $${cp#*:}";; esac; done; \
	if [ -n "$$missing" ]; then echo "installing Debian packages:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && \
	  apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi

test: lint $(KAFKA_STAMP) $(COMPILED) debs ## lint plus every test tier (the session starts its own broker unless RELMON_KAFKA_BOOTSTRAP is set)
	$(BIN)/pytest

chaos: $(STAMP) $(KAFKA_STAMP) $(COMPILED) debs ## the fault suite at full size (kill -9, poison, outages; ~11 min); figures in build/chaos-results.jsonl, see RELIABILITY.md
	RELMON_CHAOS=full RELMON_CHAOS_RESULTS=build/chaos-results.jsonl $(BIN)/pytest tests/chaos

IMAGE ?=

image: ## build the worker image with podman on a Debian base made here, no registry needed (IMAGE=name:tag)
	deploy/image/build.sh $(IMAGE)

BENCH_SIM := build/bench-simulated-1m.jsonl

$(BENCH_SIM): | $(STAMP)
	@mkdir -p build
	$(BIN)/relmon simulate --supporters 23000 --days 365 --seed 7 --out $@

bench: $(STAMP) $(KAFKA_STAMP) $(COMPILED) $(BENCH_SIM) ## benchmarks (replay vs json.loads; worker vs no-op agent vs bare consumer; e-mail burst; API; restart); see BENCHMARKS.md
	$(BIN)/python benchmarks/bench_replay.py
	$(BIN)/python benchmarks/bench_replay.py --input $(BENCH_SIM)
	$(BIN)/python benchmarks/bench_worker.py --events 1000000 --latency-seconds 20
	$(BIN)/python benchmarks/bench_skew.py burst --emails 500000
	$(BIN)/python benchmarks/bench_api.py
	$(BIN)/python benchmarks/bench_restart.py --supporters 1000000

clean: broker-stop ## remove the venv, the compiled engine, broker data, jars and caches
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m relmon.compiled clean; fi
	rm -rf $(VENV) $(BROKER_HOME) $(KAFKA_LIB) .pytest_cache .mypy_cache .ruff_cache $(STATE_DIR)
