"""The small interface every provider adapter implements, and the values it returns.

An adapter is pure: it verifies a request against its provider's scheme, parses an
authenticated body into observations and says how to acknowledge. It does no I/O, so
ingest, worker, simulator and tests share it without a network.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from paysync.settings import ProviderAccount
from schemas.envelope import Envelope
from schemas.observation import Observation


@dataclass(frozen=True, slots=True, kw_only=True)
class Verified:
    """A request passed verification; ``secret_ref`` names which secret matched."""

    secret_ref: str
    # Request headers the parser needs later; they travel in the envelope.
    http_headers: Mapping[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack:
    status: int
    body: bytes
    content_type: str


class ProviderAdapter(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def account_model(self) -> type[ProviderAccount]: ...

    @property
    def callback_ack(self) -> Ack: ...

    def verify_callback(
        self,
        account: ProviderAccount,
        headers: Mapping[str, str],
        body: bytes,
        now: datetime,
    ) -> Verified:
        """Return who verified the request or raise ``AuthenticationError(reason)``."""
        ...

    def parse_callback(self, envelope: Envelope) -> list[Observation]:
        """Turn an authenticated body into observations or raise ``MalformedMessage``."""
        ...
