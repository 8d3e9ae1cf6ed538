"""The shape every provider simulator has: requests exactly as the provider (or the
customer's browser) sends them, signed with the account's configured secrets.

A simulator module builds bytes and headers only; ``simulator/sender.py`` sends them and
tests post them directly. Each module exposes one ``SIMULATOR`` object that satisfies
:class:`ProviderSimulator`; ``simulator/__init__.py`` lists them by provider name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, Protocol

from aiohttp import web

from paysync.settings import ProviderAccount


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """One HTTP request to paysync: a callback (``route="webhooks"``, always POST) or a
    return-URL redirect (``route="return"``, GET with ``query`` or POST with a form body)."""

    route: Literal["webhooks", "return"] = "webhooks"
    method: Literal["GET", "POST"] = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    # The raw (already encoded) query string of a GET redirect, without "?".
    query: str = ""

    @classmethod
    def redirect(cls, encoded: str, method: Literal["GET", "POST"]) -> Request:
        """A browser's return to paysync carrying ``encoded`` form data: in the query string
        (GET) or as an ``application/x-www-form-urlencoded`` body (POST)."""
        if method == "GET":
            return cls(route="return", method="GET", query=encoded)
        return cls(
            route="return",
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=encoded.encode("ascii"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Lifecycle:
    """One order's callbacks in the order the provider sends them, and the statuses paysync
    must emit for them, in ``seq`` order (``payment.<status>`` routing keys)."""

    merchant_ref: str
    provider_ref: str
    amount: Decimal
    currency: str
    callbacks: list[Request]
    statuses: list[str]


class ProviderSimulator(Protocol):
    @property
    def name(self) -> str: ...

    # Does the callback scheme sign a timestamp (so a stale one can be tested)?
    @property
    def signs_timestamp(self) -> bool: ...

    # Headers whose absence must be rejected with ``missing_header``.
    @property
    def required_headers(self) -> tuple[str, ...]: ...

    def lifecycle(self, account: ProviderAccount, merchant_ref: str, *, now: int) -> Lifecycle:
        """A full, successful lifecycle of one order (the issue's per-provider scenario)."""
        ...

    def callback_body(self, merchant_ref: str, *, now: int) -> bytes:
        """One valid callback body about ``merchant_ref`` (a success, unless the provider
        sends only partial facts)."""
        ...

    def sign_callback(self, account: ProviderAccount, body: bytes, *, now: int) -> dict[str, str]:
        """The headers the provider sends with ``body`` at time ``now`` (Unix seconds),
        Content-Type included, signed with the account's first secret."""
        ...

    def add_status_routes(self, app: web.Application) -> None:
        """Add the provider's simulated status API to ``app`` (mounted at ``/<provider>``),
        every path starting ``/{account}/`` (see simulator/status.py)."""
        ...

    @property
    def returns(self) -> ReturnSimulator | None:
        """The customer's signed redirect, for providers that sign it; else ``None``."""
        ...


class ReturnSimulator(Protocol):
    def signed_return(
        self,
        account: ProviderAccount,
        *,
        order_id: str,
        status: str,
        method: Literal["GET", "POST"] = "POST",
    ) -> Request:
        """The redirect the provider sends the browser to after payment, signed with the
        account's first return-URL key; ``order_id`` is the id the provider puts in it."""
        ...
