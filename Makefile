# paysync — the targets CI and people run. `make run` and `make test` set everything up.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test check lint typecheck lint-deploy bench faults faults-cluster services venv browser events clean

## run: start Postgres/RabbitMQ if needed, migrate, run all roles + the simulated providers
run: services venv
	deploy/run-demo.sh

## test: start Postgres/RabbitMQ if needed and run the whole test suite
test: services venv browser
	$(BIN)/pytest

## check: lint, type-check, validate deploy/ and test (what a reviewer runs)
check: lint typecheck lint-deploy test

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
	$(BIN)/mypy --strict deploy/checks deploy/rabbitmq
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
	set -a; [ -f .run/demo.env ] && . .run/demo.env; set +a; $(BIN)/paysync events watch

services:
	deploy/bootstrap.sh services

## browser: Debian's chromium for the console's browser tests (installed when missing)
browser:
	deploy/bootstrap.sh browser

venv: $(VENV)/.synced

$(VENV)/.synced: pyproject.toml uv.lock
	deploy/bootstrap.sh venv
	touch $@

clean:
	rm -rf $(VENV) .run .mypy_cache .ruff_cache .pytest_cache .hypothesis
