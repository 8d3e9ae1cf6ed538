"""The envelope: how one authenticated inbound fact travels from ingest to the worker.

The AMQP message body is the provider's request body, byte for byte, so the worker (or an
operator replaying a dead letter) sees exactly what the provider signed. Everything else
rides in AMQP headers named ``x-paysync-*``; ``schemas/json/envelope-headers.schema.json``
describes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from paysync.errors import MalformedMessage

H_KIND = "x-paysync-kind"
H_PROVIDER = "x-paysync-provider"
H_ACCOUNT = "x-paysync-account"
H_RECEIVED_AT = "x-paysync-received-at"
H_VERIFIED_BY = "x-paysync-verified-by"
H_HTTP = "x-paysync-http"
SCHEMA_VERSION = 1
H_SCHEMA = "x-paysync-schema"
# Set by the worker when it dead-letters a message: why, and when.
H_ERROR = "x-paysync-error"
H_DEAD_AT = "x-paysync-dead-at"


class EnvelopeKind(StrEnum):
    CALLBACK = "callback"
    RETURN_URL = "return_url"
    # Published by paysync itself (the reconciler, operators' tools): the body is a JSON
    # list of observations (Observation.to_json). Trusted: only paysync may publish to
    # paysync.inbound (broker permissions).
    OBSERVATIONS = "observations"


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    message_id: str
    kind: EnvelopeKind
    provider: str
    account: str
    received_at: datetime
    body: bytes
    content_type: str = "application/octet-stream"
    verified_by: str = ""
    # The request headers the provider adapter needs to parse (never credentials).
    http_headers: Mapping[str, str] = field(default_factory=dict)

    def amqp_headers(self) -> dict[str, Any]:
        return {
            H_SCHEMA: SCHEMA_VERSION,
            H_KIND: self.kind.value,
            H_PROVIDER: self.provider,
            H_ACCOUNT: self.account,
            H_RECEIVED_AT: self.received_at.isoformat(),
            H_VERIFIED_BY: self.verified_by,
            H_HTTP: dict(self.http_headers),
        }

    @classmethod
    def from_amqp(
        cls,
        *,
        message_id: str | None,
        headers: Mapping[str, Any],
        body: bytes,
        content_type: str | None,
    ) -> Envelope:
        """Rebuild an envelope; raise :class:`MalformedMessage` naming what is wrong."""
        try:
            http = headers.get(H_HTTP) or {}
            return cls(
                message_id=_text(message_id, "message_id"),
                kind=EnvelopeKind(_text(headers.get(H_KIND), H_KIND)),
                provider=_text(headers.get(H_PROVIDER), H_PROVIDER),
                account=_text(headers.get(H_ACCOUNT), H_ACCOUNT),
                received_at=datetime.fromisoformat(
                    _text(headers.get(H_RECEIVED_AT), H_RECEIVED_AT)
                ),
                body=body,
                content_type=content_type or "application/octet-stream",
                verified_by=_text(headers.get(H_VERIFIED_BY, ""), H_VERIFIED_BY, allow_empty=True),
                http_headers={
                    str(k): _text(v, f"{H_HTTP}.{k}", allow_empty=True)
                    for k, v in dict(http).items()
                },
            )
        except (ValueError, TypeError) as exc:
            raise MalformedMessage(f"invalid envelope: {exc}") from None


def _text(value: object, name: str, *, allow_empty: bool = False) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if not isinstance(value, str) or (not value and not allow_empty):
        raise ValueError(f"{name} is missing")
    return value
