"""The one way through ingest's edge, for callbacks, return URLs and registrations alike:

- :func:`received`, the one envelope constructor (a fresh message id, the request's body
  untouched);
- :func:`publish`, the one publish path (persistent + mandatory onto ``paysync.inbound``,
  confirmed within ``ingest.confirm_timeout_seconds``, timed);
- :func:`refused`, :func:`unconfirmed` and :func:`accepted`, the one place where a
  route's answer becomes its count and its log line (``Route`` names the counter and the
  log events). Accepted callbacks, the hot path, are logged at info one in
  ``ingest.accepted_log_every`` (:class:`AcceptedLog`); every one is counted.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web
from prometheus_client import Counter

from ingest.http import ACCEPTED_LOG, BROKER, METRICS, SETTINGS, Rejected, reject
from paysync.broker import publish_envelope
from paysync.errors import BrokerUnavailable
from paysync.logging import get_logger
from paysync.metrics import UNKNOWN, Metrics
from schemas.envelope import Envelope, EnvelopeKind

log = get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """How one kind of request is counted and logged."""

    rejected: str
    unconfirmed: str
    accepted: str
    duplicate: str = ""
    # Its counter (labels provider, account, outcome, reason); None: the /v1 API counts
    # nothing.
    counter: Callable[[Metrics], Counter] | None = None
    # Accepted requests logged at info only one in ingest.accepted_log_every.
    sampled: bool = False

    def count(
        self, metrics: Metrics, provider: str, account: str, outcome: str, reason: str
    ) -> None:
        if self.counter is not None:
            metrics.child(self.counter(metrics), provider, account, outcome, reason).inc()


CALLBACK = Route(
    rejected="callback_rejected",
    unconfirmed="callback_unconfirmed",
    accepted="callback_accepted",
    duplicate="callback_duplicate_acknowledged",
    counter=lambda metrics: metrics.callbacks,
    sampled=True,
)
RETURN = Route(
    rejected="return_rejected",
    unconfirmed="return_unconfirmed",
    accepted="return_accepted",
    counter=lambda metrics: metrics.returns,
)
REGISTRATION = Route(
    rejected="registration_rejected",
    unconfirmed="registration_unconfirmed",
    accepted="payment_registered",
)


def received(
    kind: EnvelopeKind,
    *,
    provider: str,
    account: str,
    received_at: datetime,
    body: bytes,
    content_type: str,
    verified_by: str,
    http_headers: Mapping[str, str] | None = None,
) -> Envelope:
    """The envelope of one inbound request (the body byte for byte)."""
    return Envelope(
        message_id=str(uuid.uuid4()),
        kind=kind,
        provider=provider,
        account=account,
        received_at=received_at,
        body=body,
        content_type=content_type,
        verified_by=verified_by,
        http_headers=dict(http_headers or {}),
    )


async def publish(request: web.Request, envelope: Envelope) -> None:
    """Publish and wait for the confirm; raises ``BrokerUnavailable``."""
    settings, metrics = request.config_dict[SETTINGS], request.config_dict[METRICS]
    with metrics.publish_confirm_seconds.time():
        await publish_envelope(
            request.config_dict[BROKER], envelope, settings.ingest.confirm_timeout_seconds
        )


def refused(
    request: web.Request,
    route: Route,
    refusal: Rejected,
    *,
    provider: str = UNKNOWN,
    account: str = UNKNOWN,
    answer: web.StreamResponse | None = None,
) -> web.StreamResponse:
    """Count and log a refusal; answer ``answer`` (a return URL's redirect) or the
    refusal's JSON error. Unconfigured names never become label values: pass a provider
    and an account only once they are known to be configured."""
    route.count(request.config_dict[METRICS], provider, account, "rejected", refusal.reason)
    log.info(route.rejected, reason=refusal.reason)
    return answer if answer is not None else reject(refusal.status, refusal.reason)


def unconfirmed(
    request: web.Request,
    route: Route,
    envelope: Envelope,
    error: BrokerUnavailable,
    *,
    answer: web.StreamResponse | None = None,
) -> web.StreamResponse:
    """Count and log an envelope the broker did not confirm; answer ``answer`` or ``503
    broker_unavailable`` (the sender retries)."""
    reason = "broker_unavailable"
    metrics = request.config_dict[METRICS]
    route.count(metrics, envelope.provider, envelope.account, "unconfirmed", reason)
    log.warning(route.unconfirmed, error=str(error), message_id=envelope.message_id)
    return answer if answer is not None else reject(503, reason)


def accepted(
    request: web.Request,
    route: Route,
    *,
    provider: str,
    account: str,
    outcome: str = "accepted",
    reason: str = "",
    **fields: object,
) -> None:
    """Count and log an accepted request (or a duplicate acknowledged); a sampled
    route's accepted requests are logged at info one in ``ingest.accepted_log_every``
    (the line says ``sampled_one_in``), the others at debug."""
    route.count(request.config_dict[METRICS], provider, account, outcome, reason)
    if reason:
        fields["reason"] = reason
    if outcome == "duplicate" or not route.sampled:
        log.info(route.duplicate if outcome == "duplicate" else route.accepted, **fields)
        return
    sample = request.config_dict[ACCEPTED_LOG]
    if sample.due():
        log.info(route.accepted, sampled_one_in=sample.every, **fields)
    elif sample.debug:
        log.debug(route.accepted, **fields)
