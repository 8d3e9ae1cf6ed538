"""The ingest web application: provider callbacks, health and readiness, and ``/v1``.

The callback path never touches Postgres: verify with the provider's scheme, wrap the raw
body in an envelope, publish persistent + mandatory with a confirm, and only then answer
with the provider's own acknowledgement. Every rejection carries a reason code. The ``/v1``
API (``ingest/api.py``) is a sub-application, the only part that is given the pool.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime

import asyncpg
import structlog
from aiohttp import web

from ingest.api import build_api
from ingest.edge import CALLBACK, accepted, publish, received, refused, unconfirmed
from ingest.http import (
    ACCEPTED_LOG,
    BROKER,
    CLOCK,
    METRICS,
    REGISTRY,
    REPLAYS,
    REQUEST_IDS,
    SETTINGS,
    AcceptedLog,
    Clock,
    ClockHolder,
    Rejected,
    RequestIds,
    SingleValued,
    check_json,
    expect_continue,
    media_type,
    read_body,
)
from ingest.replay import ReplayGuard
from ingest.returns import receive_return
from paysync.broker import Broker
from paysync.errors import AuthenticationError, BrokerUnavailable
from paysync.health import Health
from paysync.logging import get_logger
from paysync.metrics import UNKNOWN, Metrics
from paysync.probes import add_probe_routes
from paysync.settings import ProviderAccount, Settings
from providers.base import Verified
from providers.registry import Provider
from schemas.envelope import Envelope, EnvelopeKind

log = get_logger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_app(
    settings: Settings,
    broker: Broker,
    registry: Mapping[str, Provider],
    metrics: Metrics,
    clock: Clock = utc_now,
    *,
    pool: asyncpg.Pool | None = None,
    health: Health | None = None,
) -> web.Application:
    """The ingest app; ``/v1`` is mounted when a ``pool`` is given (every role runner gives
    one; a callback-only app, as in benchmarks, has none). Its probes answer for the
    process's ``health`` (a process of its own when none is given), to which ingest adds
    its own check: publishes are being confirmed."""
    app = web.Application(
        client_max_size=settings.ingest.max_body_bytes, middlewares=[_bind_request_context]
    )
    app[SETTINGS] = settings
    app[BROKER] = broker
    app[REGISTRY] = registry
    app[CLOCK] = ClockHolder(clock)
    app[METRICS] = metrics
    app[REPLAYS] = ReplayGuard(
        settings.ingest.replay_window_seconds, settings.ingest.replay_cache_size
    )
    app[ACCEPTED_LOG] = AcceptedLog(
        settings.ingest.accepted_log_every, debug=settings.log_level == "debug"
    )
    app[REQUEST_IDS] = RequestIds()
    app.router.add_post(
        "/webhooks/{provider}/{account}", receive_callback, expect_handler=expect_continue
    )
    app.router.add_route("GET", "/return/{provider}/{account}", receive_return)
    app.router.add_route(
        "POST", "/return/{provider}/{account}", receive_return, expect_handler=expect_continue
    )
    health = health or Health()
    health.add_check("ingest", broker.confirms_ready)
    add_probe_routes(app, health, metrics)
    if pool is not None:
        app.add_subapp("/v1", build_api(settings, pool, broker, registry=registry, metrics=metrics))
    return app


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _bind_request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    tokens = structlog.contextvars.bind_contextvars(request_id=request.app[REQUEST_IDS].new())
    try:
        return await handler(request)
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


async def receive_callback(request: web.Request) -> web.StreamResponse:
    provider_name, account_name = request.match_info["provider"], request.match_info["account"]
    settings, metrics = request.app[SETTINGS], request.app[METRICS]
    provider = request.app[REGISTRY].get(provider_name)
    account = settings.account(provider_name, account_name)
    if provider is None or account is None:
        reason = "unknown_provider" if provider is None else "unknown_account"
        label = provider_name if provider is not None else UNKNOWN
        return refused(request, CALLBACK, Rejected(404, reason), provider=label)
    structlog.contextvars.bind_contextvars(provider=provider_name, account=account_name)
    received_at = request.app[CLOCK].now()
    ack = provider.callback_ack
    answer = web.Response(status=ack.status, body=ack.body, content_type=ack.content_type)
    try:
        envelope, verified = await _authenticate(request, provider, account, received_at)
    except Rejected as exc:
        return refused(request, CALLBACK, exc, provider=provider_name, account=account_name)
    except Duplicate:
        # The provider's retry of a delivery already on the queue: the ack it asks for
        # (Plural: 2xx for duplicates), and nothing published again.
        accepted(
            request,
            CALLBACK,
            provider=provider_name,
            account=account_name,
            outcome="duplicate",
            reason="replayed_delivery",
        )
        return answer
    try:
        await publish(request, envelope)
    except BrokerUnavailable as exc:
        return unconfirmed(request, CALLBACK, envelope, exc)
    if verified.replay_key is not None:
        request.app[REPLAYS].remember(f"{provider_name}/{account_name}/{verified.replay_key}")
    metrics.child(metrics.verified_by, provider_name, account_name, verified.secret_ref).inc()
    accepted(
        request,
        CALLBACK,
        provider=provider_name,
        account=account_name,
        message_id=envelope.message_id,
        verified_by=verified.secret_ref,
        variant=verified.variant or None,
    )
    return answer


class Duplicate(Exception):
    """A verified delivery whose signed id this ingest already had confirmed."""


async def _authenticate(
    request: web.Request,
    provider: Provider,
    account: ProviderAccount,
    received_at: datetime,
) -> tuple[Envelope, Verified]:
    """Check, in order: media type (415), size (413), the provider's scheme (401), a
    readable body (400). Raise ``Rejected`` on the first miss, ``Duplicate`` for a verified
    copy of a delivery id already confirmed (answered with the ack, published once)."""
    kind = media_type(request)
    if kind is not None and kind not in provider.callback_media_types:
        raise Rejected(415, "unsupported_media_type")
    body = await read_body(request)
    try:
        headers = SingleValued(request.headers)
        verified = provider.verify_callback(account, headers, body, received_at)
    except AuthenticationError as exc:
        raise Rejected(401, exc.reason) from None
    key = verified.replay_key
    if key is not None and request.app[REPLAYS].seen(f"{provider.name}/{_account(request)}/{key}"):
        raise Duplicate
    check_json(body)
    envelope = received(
        EnvelopeKind.CALLBACK,
        provider=provider.name,
        account=_account(request),
        received_at=received_at,
        body=body,
        content_type=request.headers.get("Content-Type", "application/json"),
        verified_by=verified.secret_ref,
        http_headers=verified.http_headers,
    )
    return envelope, verified


def _account(request: web.Request) -> str:
    return request.match_info["account"]
