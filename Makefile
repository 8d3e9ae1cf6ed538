# paysync — the targets CI and people run. `make run` and `make test` set everything up.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
VENV := .venv
BIN := $(VENV)/bin
# The configuration `make run`, `make events` and `make reset` use (the demo's by default).
CONFIG ?= paysync.toml
# `make test` uses Postgres/RabbitMQ on 127.0.0.1 (started or installed if needed), unless
# both PAYSYNC_TEST_PG_URL and PAYSYNC_TEST_AMQP_URL name servers of your own.
TEST_SERVICES := $(if $(and $(PAYSYNC_TEST_PG_URL),$(PAYSYNC_TEST_AMQP_URL)),,services)

.PHONY: run test test-unit test-integration test-e2e check lint typecheck lint-deploy bench \
	faults faults-cluster services venv browser events reset clean

## run: start Postgres/RabbitMQ if needed, migrate, run all roles + the simulated providers
## (CONFIG=path: another configuration; its secrets must be in the environment)
run: services venv
	PAYSYNC_CONFIG=$(CONFIG) deploy/run-demo.sh

## test: lint, mypy --strict and the whole test suite (what CI runs, via .ci/run); installs
## Debian's chromium for the console's browser test when missing
test: lint typecheck $(TEST_SERVICES) venv browser
	$(BIN)/pytest

## test-unit: no services, seconds; test-integration / test-e2e: real Postgres and RabbitMQ
test-unit: venv
	$(BIN)/pytest tests/unit

test-integration: $(TEST_SERVICES) venv
	$(BIN)/pytest tests/integration

test-e2e: $(TEST_SERVICES) venv browser
	$(BIN)/pytest tests/e2e

## check: test, plus validating deploy/ (what a reviewer runs)
check: test lint-deploy

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

## lint-deploy: validate deploy/: Kubernetes manifests (kubernetes-validate, Kubernetes 1.30;
## KEDA CRD models), RabbitMQ definitions, alert rules and their tests (promtool), the
## Grafana dashboard's queries, the Dockerfile (hadolint) and compose.yaml (compose-spec)
lint-deploy: venv
	deploy/bootstrap.sh tools
	$(BIN)/mypy --strict deploy/checks deploy/rabbitmq deploy/reset_demo.py
	$(BIN)/python deploy/checks

## bench: benchmarks against baselines measured in the same run (never part of test)
bench: services venv
	$(BIN)/python -m bench

## faults: the long fault drill (6,000 callbacks; `make test` runs a 700-callback one)
faults: services venv
	FAULT_DRILL_CALLBACKS=$${FAULT_DRILL_CALLBACKS:-6000} $(BIN)/pytest tests/e2e/test_faults.py -k drill -s -p no:randomly

## faults-cluster: paysync on a 3-node RabbitMQ cluster and a Postgres of its own (ports
## 35672-35674, 45672-45674, 35432; never the services on 5672/5432): the queue leader, the
## worker's node and the postmaster killed, ingest's node paused, each mid-stream (~4 min)
faults-cluster: venv
	$(BIN)/pytest tests/cluster -m cluster -s -p no:randomly

## events: print the events paysync publishes (run beside `make run`)
events: venv
	PAYSYNC_CONFIG=$(CONFIG) $(BIN)/paysync events watch

## reset: drop the demo's database and its RabbitMQ exchanges and queues (CONFIG's; only
## services on this machine), so the next `make run` starts from nothing
reset: venv
	PAYSYNC_CONFIG=$(CONFIG) $(BIN)/python deploy/reset_demo.py

services:
	deploy/bootstrap.sh services

## browser: Debian's chromium for the console's browser tests (installed when missing)
browser:
	deploy/bootstrap.sh browser

venv: $(VENV)/.synced

$(VENV)/.synced: pyproject.toml uv.lock
	deploy/bootstrap.sh venv
	touch $@

## clean: remove the virtualenv, the demo's secrets and caches (`make reset` first to drop
## the demo's database and queues too)
clean:
	rm -rf $(VENV) .run .mypy_cache .ruff_cache .pytest_cache .hypothesis
