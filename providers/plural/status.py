"""Plural's Get Order API: the reconciler's client (``PluralAdapter.status_api`` is a
:class:`PluralStatusApi`).

An OAuth token from ``POST {base_url}/api/auth/v1/token`` (client credentials), cached per
client and refreshed early (its life read from ``expires_at``, as the official SDK models
the answer, or the docs' ``expires_in``); then Get Order,
``GET {base_url}/api/pay/v1/orders/{order_id}`` or, while paysync has no Plural order id,
``GET {base_url}/api/pay/v1/orders/reference/{merchant_ref}``. Its ``data`` is the same
order object as a webhook's and is read by the webhook's own parser, so a fact seen both
ways has one dedup key.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import orjson

from paysync.errors import ConfigError, MalformedMessage, ProviderRefused
from paysync.settings import Secret
from providers.base import HttpAnswer, HttpCall, PaymentRef, Poll, StatusClient
from providers.payload import load_json_object, required_text
from providers.plural.scheme import NAME, PluralAccount, load_order, order_observations, stated_time
from schemas.observation import Source

DEFAULT_BASE_URL = "https://api.pluralpay.in"
AUTH_PATH = "/api/auth/v1/token"
ORDER_PATH = "/api/pay/v1/orders/"
ORDER_BY_REFERENCE_PATH = "/api/pay/v1/orders/reference/"
# A token is replaced when less than this much of its life is left (or 10 % of its
# lifetime, whichever is smaller), so a call never leaves with a token about to expire.
TOKEN_MARGIN_SECONDS = 60
MAX_TOKEN_SECONDS = 86_400

# A bearer token goes into a header: printable ASCII without spaces (a JWT is far narrower).
_TOKEN_TEXT = re.compile(r"[\x21-\x7e]{1,8192}")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Token:
    value: str
    refresh_at: datetime


class PluralStatusApi:
    """Get Order, with an OAuth client-credentials token."""

    default_base_url = DEFAULT_BASE_URL

    def client(self, account_name: str, account: PluralAccount, base_url: str) -> StatusClient:
        if account.client_id is None or account.client_secret is None:
            raise ConfigError(account.status_api_problems(NAME, account_name))
        return PluralStatusClient(
            account_name,
            client_id=account.client_id,
            client_secret=account.client_secret,
            base_url=base_url,
        )


class PluralStatusClient:
    """One order per call. The token is cached here and shared by concurrent polls."""

    batch_size = 1

    def __init__(
        self, account_name: str, *, client_id: str, client_secret: Secret, base_url: str
    ) -> None:
        self._name = account_name
        self._client_id = client_id
        self._client_secret = client_secret
        self._base = base_url.rstrip("/")
        self._token: _Token | None = None
        # One token request at a time; polls waiting on it then use the token it brought.
        self._token_lock = asyncio.Lock()

    async def poll(self, call: HttpCall, refs: list[PaymentRef], now: datetime) -> list[Poll]:
        if len(refs) > self.batch_size:
            raise ValueError(f"Get Order asks about one order per call, got {len(refs)}")
        return [await self._poll_one(call, ref, now) for ref in refs]

    async def _poll_one(self, call: HttpCall, ref: PaymentRef, now: datetime) -> Poll:
        if ref.provider_ref:
            url = self._base + ORDER_PATH + quote(ref.provider_ref, safe="")
        else:
            url = self._base + ORDER_BY_REFERENCE_PATH + quote(ref.merchant_ref, safe="")
        token = await self._current_token(call, now)
        answer = await call("GET", url, headers=_api_headers(now, token))
        if answer.status == 401:
            # Revoked or expired before its stated time: one new token, one more try.
            token = await self._current_token(call, now, rejected=token)
            answer = await call("GET", url, headers=_api_headers(now, token))
        return self._read_order(ref, answer, now)

    def _read_order(self, ref: PaymentRef, answer: HttpAnswer, now: datetime) -> Poll:
        if answer.status == 404:
            return Poll(ref=ref, found=False)
        if answer.status in (401, 403):
            raise ProviderRefused("unauthorized")
        if answer.status != 200:
            raise ProviderRefused(f"unexpected_status_{answer.status}")
        try:
            order = load_order(answer.body)
            reference = required_text(
                order, "merchant_order_reference", "data.merchant_order_reference"
            )
            order_id = required_text(order, "order_id", "data.order_id")
            # Never apply another order's facts to this payment.
            if reference != ref.merchant_ref or (ref.provider_ref and ref.provider_ref != order_id):
                raise ProviderRefused("order_mismatch")
            observations = order_observations(
                order,
                account=self._name,
                source=Source.RECONCILER,
                observed_at=stated_time(order) or now,
            )
        except MalformedMessage as exc:
            raise ProviderRefused("unreadable_response") from exc
        status = observations[0].provider_status
        return Poll(ref=ref, found=True, provider_status=status, observations=observations)

    async def _current_token(
        self, call: HttpCall, now: datetime, *, rejected: str | None = None
    ) -> str:
        async with self._token_lock:
            token = self._token
            if token is None or token.value == rejected or now >= token.refresh_at:
                token = self._token = await self._fetch_token(call, now)
            return token.value

    async def _fetch_token(self, call: HttpCall, now: datetime) -> _Token:
        body = orjson.dumps(
            {
                "client_id": self._client_id,
                "client_secret": self._client_secret.reveal(),
                "grant_type": "client_credentials",
            }
        )
        headers = _api_headers(now, token=None)
        answer = await call("POST", self._base + AUTH_PATH, headers=headers, body=body)
        if answer.status in (401, 403):
            raise ProviderRefused("unauthorized")
        if answer.status != 200:
            raise ProviderRefused(f"token_unexpected_status_{answer.status}")
        try:
            doc = load_json_object(answer.body)
        except MalformedMessage:
            doc = {}
        value = doc.get("access_token")
        if not (isinstance(value, str) and _TOKEN_TEXT.fullmatch(value)):
            raise ProviderRefused("unreadable_token_response")
        # A longer stated life only means an earlier refresh than needed: harmless.
        lifetime = min(token_lifetime(doc, now), MAX_TOKEN_SECONDS)
        margin = min(TOKEN_MARGIN_SECONDS, lifetime / 10)
        return _Token(value=value, refresh_at=now + timedelta(seconds=lifetime - margin))


def token_lifetime(doc: Mapping[str, Any], now: datetime) -> float:
    """Seconds the token answer says the token lives: ``expires_in`` (seconds, the docs'
    sample) or ``expires_at`` (ISO 8601, the official SDK's model; no zone means UTC, as
    Plural's times are), the earlier when both are given. Raises ``ProviderRefused``."""
    lives: list[float] = []
    seconds = doc.get("expires_in")
    if isinstance(seconds, str) and seconds.isascii() and seconds.isdigit():
        seconds = int(seconds[:12])
    if isinstance(seconds, int) and not isinstance(seconds, bool):
        if seconds <= 0:
            raise ProviderRefused("unreadable_token_response")
        lives.append(seconds)
    elif seconds is not None:
        raise ProviderRefused("unreadable_token_response")
    if "expires_at" in doc:
        lives.append((_expiry(doc["expires_at"]) - now).total_seconds())
    if not lives:
        raise ProviderRefused("unreadable_token_response")
    if min(lives) <= 0:
        raise ProviderRefused("expired_token_response")
    return min(lives)


def _expiry(raw: object) -> datetime:
    try:
        when = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        when = None
    if when is None:
        raise ProviderRefused("unreadable_token_response")
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _api_headers(now: datetime, token: str | None) -> dict[str, str]:
    """Headers of every API call; the token request has no ``Authorization``."""
    when = now.astimezone(UTC)
    headers = {
        "Request-ID": str(uuid.uuid4()),
        "Request-Timestamp": when.strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{when.microsecond // 1000:03d}Z",
        "Content-Type": "application/json",
    }
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers
