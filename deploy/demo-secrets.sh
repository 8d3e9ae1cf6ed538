#!/usr/bin/env bash
# Generates the demo accounts' secrets once each into .run/demo.env (mode 600, never
# committed). paysync.toml names them as env:NAME; `make run` and compose.yaml load the file.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .run
umask 077
touch .run/demo.env
# 32 hex digits suit every kind: plain strings, base64 (Plural webhooks) and hex keys.
for name in CCPAYMENT_DEMO_SHOP_SECRET PAYCORE_DEMO_SHOP_SECRET HDFC_DEMO_SHOP_WEBHOOK_PASSWORD \
  HDFC_DEMO_SHOP_RESPONSE_KEY PLURAL_DEMO_SHOP_WEBHOOK_SECRET PLURAL_DEMO_SHOP_RETURN_KEY \
  PAYCORE_DEMO_SHOP_API_KEY HDFC_DEMO_SHOP_API_KEY PLURAL_DEMO_SHOP_CLIENT_SECRET DEMO_API_TOKEN; do
  if ! grep -q "^$name=" .run/demo.env; then
    printf '%s=%s\n' "$name" "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" >> .run/demo.env
  fi
done
