"""The ``/v1`` API: a sub-application of ingest for merchants' backends and operators.

Every request carries ``Authorization: Bearer <token>``, compared in constant time with
each configured ``[api] tokens`` entry (several, for rotation); with none configured the
API is disabled. ``GET /v1/payments/{provider}/{account}/{merchant_ref}`` answers the
payment's state and timeline, read from Postgres in one read-only snapshot
(``paysync.timeline.store``). Only this
sub-application holds the pool: the callback path of ingest never touches Postgres.
``POST /v1/payments`` registers an expected payment (``ingest/registration.py``);
``POST /v1/checkouts`` creates a provider's hosted checkout and registers its payment
(``ingest/checkouts.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path

import aiohttp
import asyncpg
import orjson
import structlog
from aiohttp import web

from ingest.checkouts import QUERIES_PATH as CHECKOUT_QUERIES_PATH
from ingest.checkouts import create_checkout
from ingest.http import (
    API_SETTINGS,
    BROKER,
    METRICS,
    POOL,
    QUERIES,
    REGISTRY,
    SESSION,
    SETTINGS,
    TIMELINES,
    expect_continue,
)
from ingest.listing import add_search_routes
from ingest.openapi import PUBLIC_ROUTES, add_openapi_route
from ingest.registration import register_payment
from ingest.replays import add_replay_routes
from paysync.broker import Broker
from paysync.db import load_queries
from paysync.errors import DatabaseUnavailable
from paysync.logging import get_logger
from paysync.metrics import Metrics
from paysync.settings import Settings
from paysync.timeline.store import Timelines
from paysync.tokens import token_problem
from providers import REGISTRY as REGISTRY_OF_PROVIDERS
from providers.registry import Provider

QUERIES_PATH = Path(__file__).with_name("queries.sql")

log = get_logger(__name__)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_api(
    settings: Settings,
    pool: asyncpg.Pool,
    broker: Broker,
    *,
    registry: Mapping[str, Provider] = REGISTRY_OF_PROVIDERS,
    metrics: Metrics | None = None,
) -> web.Application:
    api = web.Application(middlewares=[_authenticate])
    api[API_SETTINGS] = settings.api
    api[SETTINGS] = settings
    api[BROKER] = broker
    api[POOL] = pool
    api[QUERIES] = {**load_queries(QUERIES_PATH), **load_queries(CHECKOUT_QUERIES_PATH)}
    api[REGISTRY] = registry
    api[METRICS] = metrics or Metrics()
    api.cleanup_ctx.append(_client_session)
    api[TIMELINES] = Timelines(pool)
    # Any character but "/" (which arrives as %2F) may be in a merchant ref: the default
    # segment pattern also refuses "{" and "}", which a registration accepts.
    api.router.add_get("/payments/{provider}/{account}/{merchant_ref:[^/]+}", show_payment)
    api.router.add_post("/payments", register_payment, expect_handler=expect_continue)
    api.router.add_post("/checkouts", create_checkout, expect_handler=expect_continue)
    # Issue 17: search, event replay and the OpenAPI document (their own modules).
    add_search_routes(api)
    add_replay_routes(api)
    add_openapi_route(api)
    return api


async def _client_session(api: web.Application) -> AsyncIterator[None]:
    """The session of the providers' create calls (each call has its own timeout)."""
    async with aiohttp.ClientSession() as session:
        api[SESSION] = session
        yield


def _error(status: int, reason: str) -> web.Response:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return web.json_response({"error": reason}, status=status, headers=headers)


@web.middleware
async def _authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.match_info.route.name in PUBLIC_ROUTES:
        return await handler(request)
    tokens = request.app[API_SETTINGS].tokens
    reason = token_problem(request.headers.get("Authorization"), tokens)
    if reason is not None:
        log.info("api_request_rejected", reason=reason, path=request.path)
        return _error(401, reason)
    return await handler(request)


async def show_payment(request: web.Request) -> web.Response:
    provider = request.match_info["provider"]
    account = request.match_info["account"]
    merchant_ref = request.match_info["merchant_ref"]
    # Postgres text cannot hold NUL: no payment has one, and asking would be a 500.
    bad = {
        name: "must not contain a NUL character"
        for name in ("provider", "account", "merchant_ref")
        if "\x00" in request.match_info[name]
    }
    if bad:
        log.info("api_request_rejected", reason="invalid_path", fields=sorted(bad))
        return web.json_response({"error": "invalid_path", "fields": bad}, status=400)
    structlog.contextvars.bind_contextvars(
        provider=provider, account=account, merchant_ref=merchant_ref
    )
    try:
        timeline = await request.app[TIMELINES].read(provider, account, merchant_ref)
    except DatabaseUnavailable as exc:
        log.warning("timeline_unavailable", error=str(exc))
        return _error(503, "database_unavailable")
    if timeline is None:
        log.info("payment_not_found")
        return _error(404, "payment_not_found")
    log.info("timeline_served", observations=len(timeline["observations"]))
    return web.Response(body=orjson.dumps(timeline), content_type="application/json")
