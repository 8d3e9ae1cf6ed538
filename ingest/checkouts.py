"""``POST /v1/checkouts``: paysync creates the provider's hosted page and registers the
payment before the customer can pay (design §3, issue 18).

One ``Idempotency-Key`` is one checkout (``checkouts`` table, ingest/checkouts.sql): the
key is claimed in Postgres before the provider is asked, so two requests under one key
never make two provider orders; the same key with another body is ``409``, and so is
another key for a merchant_ref that already has a checkout. The provider's create runs
through the account's ``HttpCall`` (its rate limit, timeout and, only where the client is
``retry_safe``, retries). On the provider's order the payment is registered, with its
``provider_ref`` and terms, through the same queue path as ``POST /v1/payments`` and the
answer is ``201`` with the redirect URL; the same key again answers the same checkout.

A lost answer (timeout, 5xx, 429 after the attempts) leaves the checkout ``unknown`` and
registers nothing: the customer was never sent to a page, so no payment can be made that
paysync does not know of (an order the provider may have made is never paid). The same key
asks the provider again only when its create is retry-safe (CCPayment: everything is keyed
by our merchant_ref); otherwise (PayCore: a resend is refused as a duplicate reference_id
and no lookup by it exists, so the ``cpi_`` id could never be learnt) it answers ``502
order_state_unknown`` and the merchant starts over with a new merchant_ref.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import structlog
from aiohttp import web
from pydantic import ValidationError

from ingest.checkout_request import CheckoutRequest, checkout_order, semantic_problems
from ingest.checkout_store import CheckoutStore, Claim
from ingest.edge import REGISTRATION, publish
from ingest.http import METRICS, POOL, QUERIES, REGISTRY, SESSION, SETTINGS, Rejected, read_body
from ingest.registration import Registration, conflicts, fields_of, terms_envelope
from paysync.errors import (
    BrokerUnavailable,
    CheckoutRejected,
    ConfigError,
    DatabaseUnavailable,
    ProviderRefused,
    ProviderUnavailable,
)
from paysync.logging import get_logger
from providers.base import CheckoutClient, CreatedCheckout
from providers.http_call import AccountHttp

QUERIES_PATH = Path(__file__).with_name("checkouts.sql")
IDEMPOTENCY_HEADER = "Idempotency-Key"
log = get_logger(__name__)


def _answer(status: int, error: str, **more: Any) -> web.Response:
    return web.json_response({"error": error, **more}, status=status)


async def create_checkout(request: web.Request) -> web.StreamResponse:
    key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
    if not key or len(key) > 255 or "\x00" in key:
        return _answer(400, "idempotency_key_required", header=IDEMPOTENCY_HEADER)
    try:
        req = CheckoutRequest.model_validate(orjson.loads(await read_body(request)))
    except Rejected as exc:
        return _answer(exc.status, exc.reason)
    except orjson.JSONDecodeError:
        return _answer(400, "invalid_checkout", fields={"body": "not JSON"})
    except ValidationError as exc:
        return _answer(400, "invalid_checkout", fields=fields_of(exc))
    settings, provider = request.app[SETTINGS], request.app[REGISTRY].get(req.provider)
    account = settings.account(req.provider, req.account)
    if provider is None or account is None:
        return _answer(400, "invalid_checkout", fields={"account": "is not configured"})
    if not provider.has_checkout:
        return _answer(501, "checkout_not_supported", provider=req.provider)
    public_url = settings.api.public_url
    problems = semantic_problems(
        req, has_returns=provider.has_returns, public_url=public_url, now=datetime.now(UTC)
    )
    if problems:
        return _answer(400, "invalid_checkout", fields=problems)
    structlog.contextvars.bind_contextvars(
        provider=req.provider, account=req.account, merchant_ref=req.merchant_ref
    )
    try:
        client = provider.checkout_client(req.account, account, account.status_api.base_url)
    except ConfigError as exc:
        # The account lacks a field only the create needs (HDFC's payment page client id):
        # the configuration's lines name the fields, never a secret.
        log.error("checkout_misconfigured", problems=exc.problems)
        return _answer(501, "checkout_not_configured", problems=exc.problems)
    assert client is not None  # has_checkout
    store = CheckoutStore(request.app[POOL], request.app[QUERIES])
    try:
        return await _checkout(request, store, req, key, client)
    except DatabaseUnavailable as exc:
        log.warning("checkout_unavailable", error=str(exc))
        return _answer(503, "database_unavailable")
    except ConfigError as exc:
        log.error("checkout_misconfigured", error=str(exc))
        return _answer(502, "provider_refused", reason="account_not_configured")


async def _checkout(
    request: web.Request,
    store: CheckoutStore,
    req: CheckoutRequest,
    key: str,
    client: CheckoutClient,
) -> web.Response:
    retry_safe = client.retry_safe
    timeout = _attempts_seconds(request, req)
    claim = await store.claim(key, req, stale_after=timeout)
    if claim.outcome == "conflict":
        return _answer(409, "idempotency_key_reused", detail="another body used this key")
    if claim.outcome == "taken":
        return _answer(409, "checkout_exists", detail="merchant_ref has another checkout")
    if claim.outcome == "busy":
        return _answer(409, "checkout_in_progress", detail="retry shortly")
    if claim.outcome == "unknown" and not (retry_safe and await store.reclaim(claim, timeout)):
        return _unknown(req)
    if claim.outcome != "created":
        contradicted = await conflicts(request, _registration(req), Decimal(req.amount))
        if contradicted:
            await store.forget(claim)
            return _answer(409, "conflict", fields=contradicted)
        outcome = await _ask_provider(request, store, claim, req, key, client)
        if isinstance(outcome, web.Response):
            return outcome
        claim = outcome
    return await _register(request, store, claim, req)


async def _ask_provider(
    request: web.Request,
    store: CheckoutStore,
    claim: Claim,
    req: CheckoutRequest,
    key: str,
    client: CheckoutClient,
) -> Claim | web.Response:
    """The provider's create; the claim as created, or the answer when it made none."""
    settings, retry_safe = request.app[SETTINGS], client.retry_safe
    account = settings.account(req.provider, req.account)
    assert account is not None
    http = AccountHttp(
        request.app[SESSION],
        req.provider,
        req.account,
        account.status_api,
        request.app[METRICS],
        max_attempts=None if retry_safe else 1,
    )
    order = checkout_order(req, key, settings.api.public_url)
    try:
        created: CreatedCheckout = await client.create(http, order, datetime.now(UTC))
    except CheckoutRejected as exc:
        await store.forget(claim)
        log.info("checkout_rejected", provider_code=exc.provider_code, error=str(exc))
        return _answer(422, "provider_rejected", provider_code=exc.provider_code, detail=str(exc))
    except ProviderRefused as exc:
        await store.forget(claim)
        log.warning("checkout_refused", error=str(exc))
        return _answer(502, "provider_refused", reason=str(exc))
    except ProviderUnavailable as exc:
        await store.unknown(claim, str(exc))
        log.warning("checkout_outcome_unknown", error=str(exc), retry_safe=retry_safe)
        return _answer(
            504,
            "provider_unavailable",
            state="unknown",
            retry=retry_safe,
            detail="the provider did not answer; no payment was registered",
        )
    log.info("checkout_created", provider_ref=created.provider_ref)
    return await store.created(claim, created)


async def _register(
    request: web.Request, store: CheckoutStore, claim: Claim, req: CheckoutRequest
) -> web.Response:
    """Register the payment (once) and answer the checkout."""
    if not claim.registered:
        reg = _registration(req, claim.provider_ref, claim.expires_at)
        envelope = terms_envelope(reg, Decimal(req.amount), datetime.now(UTC))
        try:
            await publish(request, envelope)
        except BrokerUnavailable as exc:
            log.warning("checkout_registration_unconfirmed", error=str(exc), kind=REGISTRATION)
            return _answer(503, "broker_unavailable", detail="retry with the same key")
        await store.registered(claim)
    return web.json_response(
        {
            "checkout": {
                "provider": req.provider,
                "account": req.account,
                "merchant_ref": req.merchant_ref,
                "provider_ref": claim.provider_ref,
                "redirect_url": claim.redirect_url,
                "expires_at": None if claim.expires_at is None else claim.expires_at.isoformat(),
                "provider_status": claim.provider_status,
            }
        },
        status=201,
    )


def _unknown(req: CheckoutRequest) -> web.Response:
    return _answer(
        502,
        "order_state_unknown",
        detail=f"{req.provider} cannot tell whether the lost create made an order;"
        " nothing was registered: use a new merchant_ref",
    )


def _registration(
    req: CheckoutRequest, provider_ref: str | None = None, expires_at: datetime | None = None
) -> Registration:
    return Registration(
        provider=req.provider,
        account=req.account,
        merchant_ref=req.merchant_ref,
        provider_ref=provider_ref,
        amount=req.amount,
        currency=req.currency,
        expires_at=expires_at or req.expires_at,
        metadata=req.metadata,
    )


def _attempts_seconds(request: web.Request, req: CheckoutRequest) -> float:
    """How long a create may take at most; a ``creating`` claim older than this was lost
    with its process and counts as unknown."""
    account = request.app[SETTINGS].account(req.provider, req.account)
    assert account is not None
    api = account.status_api
    return api.timeout_seconds * api.max_attempts + 30.0
