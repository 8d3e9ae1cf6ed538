#!/usr/bin/env bash
# `make run`: migrate, then run every role plus the simulated providers in one process.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/demo-secrets.sh
set -a; . .run/demo.env; set +a
.venv/bin/paysync migrate
echo "paysync: ingest on http://127.0.0.1:${PAYSYNC_INGEST__PORT:-8080}; simulated PayCore, CCPayment, HDFC and Plural take turns paying an order every 5 s." >&2
echo "paysync: watch the events in another terminal with: make events" >&2
exec .venv/bin/paysync demo "$@"
