#!/usr/bin/env bash
# `make run`: migrate, then run every role plus a simulated CCPayment in one process.
# The demo account's secret is generated once into .run/demo.env (never committed).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .run
# The demo's secrets, generated once each into .run/demo.env (mode 600, never committed).
umask 077
touch .run/demo.env
for name in CCPAYMENT_DEMO_SHOP_SECRET DEMO_API_TOKEN; do
  if ! grep -q "^$name=" .run/demo.env; then
    printf '%s=%s\n' "$name" "$(.venv/bin/python -c 'import secrets; print(secrets.token_hex(16))')" >> .run/demo.env
  fi
done
set -a; . .run/demo.env; set +a
.venv/bin/paysync migrate
echo "paysync: ingest on http://127.0.0.1:${PAYSYNC_INGEST__PORT:-8080}; a simulated CCPayment pays an order every 5 s." >&2
echo "paysync: watch the events in another terminal with: make events" >&2
exec .venv/bin/paysync demo "$@"
