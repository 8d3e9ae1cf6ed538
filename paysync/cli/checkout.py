"""``paysync checkout create``: an operator's (or a script's) hosted checkout, made through
the running ingest's ``POST /v1/checkouts`` so it takes the one path a merchant's backend
takes (idempotency, the provider's create, the registration).

The request carries one of the configured ``[api] tokens`` and an ``Idempotency-Key``
(``--key``; a new one otherwise, printed, so the same command can be run again after an
answer was lost and cannot make a second order).
"""

from __future__ import annotations

import argparse
import sys
import uuid
from typing import Any

import aiohttp
import orjson

from paysync.cli.failures import UsageError
from paysync.settings import Settings

CUSTOMER_FLAGS = ("email", "phone", "name", "first_name", "last_name", "customer_id")


def checkout_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {
        "provider": args.provider,
        "account": args.account,
        "merchant_ref": args.merchant_ref,
        "amount": args.amount,
        "currency": args.currency,
        "return_to": args.return_to,
    }
    customer = {k: getattr(args, k) for k in CUSTOMER_FLAGS if getattr(args, k) is not None}
    if customer:
        body["customer"] = customer
    if args.description is not None:
        body["description"] = args.description
    if args.return_url is not None:
        body["return_url"] = args.return_url
    if args.expires_at is not None:
        body["expires_at"] = args.expires_at.isoformat()
    return body


async def create_checkout(settings: Settings, args: argparse.Namespace) -> int:
    """Exit 0 on ``201``; 1 with the API's reason otherwise."""
    if not settings.api.tokens:
        raise UsageError("no [api] tokens in the configuration: the /v1 API is disabled")
    key = args.key or str(uuid.uuid4())
    url = (args.url or settings.ingest.local_url()).rstrip("/") + "/v1/checkouts"
    headers = {
        "Authorization": f"Bearer {settings.api.tokens[0].reveal()}",
        "Idempotency-Key": key,
        "Content-Type": "application/json",
    }
    body = orjson.dumps(checkout_body(args))
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(url, data=body, headers=headers) as resp,
    ):
        status, raw = resp.status, await resp.read()
    try:
        answer = orjson.loads(raw)
    except orjson.JSONDecodeError:
        answer = {"error": f"HTTP {status}", "detail": raw[:200].decode(errors="replace")}
    if args.json:
        print(orjson.dumps({"status": status, "idempotency_key": key, **answer}).decode())
    else:
        _print(status, key, answer)
    return 0 if status == 201 else 1


def _print(status: int, key: str, answer: dict[str, Any]) -> None:
    if status == 201:
        checkout = answer["checkout"]
        for label, value in (
            ("redirect_url", checkout["redirect_url"]),
            ("provider_ref", checkout["provider_ref"] or "-"),
            ("expires_at", checkout["expires_at"] or "-"),
            ("idempotency_key", key),
        ):
            print(f"{label:<16} {value}")
        return
    details = ", ".join(
        f"{k}={v}" for k, v in answer.items() if k != "error" and not isinstance(v, dict)
    )
    fields = answer.get("fields") or {}
    problems = "; ".join(f"{k}: {v}" for k, v in fields.items())
    line = f"paysync: checkout refused ({status} {answer.get('error')})"
    print(" ".join(p for p in (line, details, problems) if p), file=sys.stderr)
    print(f"idempotency_key  {key}  (run again with --key {key})", file=sys.stderr)
