"""Envelopes as ingest and the reconciler make them, for tests that feed the store."""

from __future__ import annotations

from datetime import UTC, datetime

from ingest.edge import received
from schemas.envelope import Envelope, EnvelopeKind
from schemas.observation import Observation, dump_observations


def callback_envelope(
    provider: str,
    account: str,
    body: bytes,
    received_at: datetime | None = None,
    kind: EnvelopeKind = EnvelopeKind.CALLBACK,
) -> Envelope:
    """A verified callback's body as ingest publishes it (a fresh message id)."""
    return received(
        kind,
        provider=provider,
        account=account,
        received_at=received_at or datetime.now(UTC),
        body=body,
        content_type="application/json",
        verified_by="",
    )


def observations_envelope(
    observations: list[Observation], received_at: datetime | None = None
) -> Envelope:
    """An ``observations`` envelope (a poll, a registration) of one provider account."""
    first = observations[0]
    body = dump_observations(observations)
    kind = EnvelopeKind.OBSERVATIONS
    return callback_envelope(first.provider, first.account, body, received_at, kind)
