"""The customer's return URL: ``GET|POST /return/{provider}/{account}``.

The browser comes back from the provider's hosted page with a signed redirect. paysync
verifies it with the provider's scheme, publishes it as a ``return_url`` envelope (a hint:
the worker schedules an immediate status poll and never changes a status from it), and
answers ``303`` to the account's success or failure page with ``?status=``. Anything that
does not verify — forged, tampered, unreadable — also goes to the failure page with
``status=unverified`` and publishes nothing; a customer never sees a JSON error here.
"""

from __future__ import annotations

from datetime import datetime

import structlog
from aiohttp import web
from yarl import URL

from ingest.edge import RETURN, accepted, publish, received, refused, unconfirmed
from ingest.http import CLOCK, REGISTRY, SETTINGS, Rejected, read_body
from paysync.errors import AuthenticationError, BrokerUnavailable, MalformedMessage
from paysync.logging import get_logger
from paysync.metrics import UNKNOWN
from providers.base import (
    FORM_MEDIA_TYPE,
    ReturnPagesAccount,
    VerifiedReturn,
    parse_form,
)
from providers.registry import Provider
from schemas.envelope import EnvelopeKind
from schemas.status import Status

log = get_logger(__name__)

# Statuses a customer should see as "did not work"; anything else (pending included) goes
# to the success page, which tells the customer the outcome is being confirmed.
_FAILURE = frozenset({Status.FAILED, Status.CANCELLED, Status.EXPIRED})


async def receive_return(request: web.Request) -> web.StreamResponse:
    provider_name, account_name = request.match_info["provider"], request.match_info["account"]
    provider = request.app[REGISTRY].get(provider_name)
    account = request.app[SETTINGS].account(provider_name, account_name)
    if provider is None or not provider.has_returns or account is None:
        # Unconfigured names never become label values.
        if provider is None:
            reason, label = "unknown_provider", UNKNOWN
        else:
            reason = "no_return_url" if not provider.has_returns else "unknown_account"
            label = provider_name
        return refused(request, RETURN, Rejected(404, reason), provider=label)
    if not isinstance(account, ReturnPagesAccount) or not (
        account.return_success_url and account.return_failure_url
    ):
        refusal = Rejected(404, "return_pages_not_configured")
        return refused(request, RETURN, refusal, provider=provider_name, account=account_name)
    structlog.contextvars.bind_contextvars(provider=provider_name, account=account_name)
    received_at = request.app[CLOCK].now()
    try:
        raw, verified = await _verify(request, provider, account, received_at)
    except Rejected as exc:
        failure = _redirect(account.return_failure_url, status="unverified")
        return refused(
            request, RETURN, exc, provider=provider_name, account=account_name, answer=failure
        )
    status = verified.status or Status.PENDING
    page = account.return_failure_url if status in _FAILURE else account.return_success_url
    answer = _redirect(page, status=status.value, order_id=verified.order_id)
    envelope = received(
        EnvelopeKind.RETURN_URL,
        provider=provider_name,
        account=account_name,
        received_at=received_at,
        body=raw,
        content_type=FORM_MEDIA_TYPE,
        verified_by=verified.secret_ref,
    )
    try:
        await publish(request, envelope)
    except BrokerUnavailable as exc:
        # Only a hint is lost: the reconciler's schedule polls the payment anyway, and the
        # customer is not the one to retry.
        return unconfirmed(request, RETURN, envelope, exc, answer=answer)
    accepted(
        request,
        RETURN,
        provider=provider_name,
        account=account_name,
        message_id=envelope.message_id,
        verified_by=verified.secret_ref,
        variant=verified.variant or None,
        provider_status=verified.provider_status,
    )
    return answer


async def _verify(
    request: web.Request,
    provider: Provider,
    account: ReturnPagesAccount,
    now: datetime,
) -> tuple[bytes, VerifiedReturn]:
    if request.method == "GET":
        raw = request.rel_url.raw_query_string.encode("ascii", "replace")
    else:
        media = request.headers.get("Content-Type", "").partition(";")[0].strip().lower()
        if media != FORM_MEDIA_TYPE:
            raise Rejected(415, "unsupported_media_type")
        raw = await read_body(request)
    try:
        params = parse_form(raw)
    except MalformedMessage:
        raise Rejected(400, "malformed_parameters") from None
    try:
        return raw, provider.verify_return(account, params, now)
    except AuthenticationError as exc:
        raise Rejected(401, exc.reason) from None


def _redirect(page: str | None, **query: str) -> web.Response:
    assert page is not None
    location = URL(page).update_query(query)
    return web.Response(
        status=303,
        headers={
            "Location": str(location),
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
        },
    )
