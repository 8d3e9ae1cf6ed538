"""HDFC SmartGateway's Order Status API (Juspay ``GET /orders/{order_id}``): the reconciler's
client (``HdfcAdapter.status_api`` is a :class:`HdfcStatusApi`).

Request (providers/hdfc_smartgateway.md, "Outbound API auth"): ``Authorization: Basic
base64(API_KEY + ":")``, ``x-merchantid``, a pinned ``version`` date and Juspay's documented
``Content-Type: application/x-www-form-urlencoded`` (there is no body). Juspay's
``order_id`` is the id the merchant chose, so every payment is asked about by its
``merchant_ref``. The answer is the order object a webhook carries in ``content.order``;
it is read by the webhook's own parser, so a fact seen both ways has one dedup key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from paysync.errors import ConfigError, MalformedMessage, ProviderRefused
from paysync.settings import Secret
from providers.base import (
    FORM_MEDIA_TYPE,
    HttpAnswer,
    HttpCall,
    PaymentRef,
    Poll,
    StatusClient,
)
from providers.hdfc.scheme import NAME, HdfcAccount, api_authorization, order_observations
from providers.payload import load_json_object, required_text
from schemas.observation import Source

# HDFC production; the sandbox is https://smartgateway.hdfcuat.bank.in.
DEFAULT_STATUS_BASE_URL = "https://smartgateway.hdfc.bank.in"
# Juspay's answer about an order id it does not know (status_id 40).
NOT_FOUND = "NOT_FOUND"


class HdfcStatusApi:
    """Juspay's Order Status API (``StatusApi``); one client per merchant account."""

    default_base_url = DEFAULT_STATUS_BASE_URL

    def client(self, account_name: str, account: HdfcAccount, base_url: str) -> StatusClient:
        api_key, merchant_id = account.api_key, account.merchant_id
        if api_key is None or merchant_id is None:
            raise ConfigError(account.status_api_problems(NAME, account_name))
        return HdfcStatusClient(
            account=account_name,
            base_url=base_url.rstrip("/"),
            api_key=api_key,
            merchant_id=merchant_id,
            api_version=account.api_version,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class HdfcStatusClient:
    """``GET {base_url}/orders/{merchant_ref}``, one order per call."""

    account: str
    base_url: str
    # Kept as a Secret (its repr is the reference); the header is built per call.
    api_key: Secret
    merchant_id: str
    api_version: str

    @property
    def batch_size(self) -> int:
        return 1

    async def poll(self, call: HttpCall, refs: list[PaymentRef], now: datetime) -> list[Poll]:
        return [await self._poll_one(call, ref, now) for ref in refs]

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": api_authorization(self.api_key.reveal()),
            "x-merchantid": self.merchant_id,
            "version": self.api_version,
            "Content-Type": FORM_MEDIA_TYPE,
        }

    async def _poll_one(self, call: HttpCall, ref: PaymentRef, now: datetime) -> Poll:
        url = f"{self.base_url}/orders/{quote(ref.merchant_ref, safe='')}"
        answer = await call("GET", url, headers=self._headers())
        if answer.status == 404:
            return Poll(ref=ref, found=False)
        order, status = _order(answer)
        if status == NOT_FOUND:
            return Poll(ref=ref, found=False, provider_status=status)
        # Observations are filed under the answer's order_id: one about another order must
        # not be applied to this payment.
        if order.get("order_id") != ref.merchant_ref:
            raise ProviderRefused("the answer is about another order")
        try:
            # The order object states no time for its status: it is what Juspay says now.
            observations = order_observations(
                order, account=self.account, source=Source.RECONCILER, observed_at=now
            )
        except MalformedMessage as exc:
            raise ProviderRefused(f"unreadable order: {exc}") from None
        return Poll(ref=ref, found=True, provider_status=status, observations=observations)


def _order(answer: HttpAnswer) -> tuple[dict[str, Any], str]:
    """The order object of a ``200`` answer and its status; every other answer is refused
    (404 is handled before: the order is unknown)."""
    if answer.status == 401:
        raise ProviderRefused("unauthorized")
    if answer.status == 403:
        raise ProviderRefused("forbidden")
    if answer.status != 200:
        raise ProviderRefused(f"unexpected HTTP status {answer.status}")
    try:
        order = load_json_object(answer.body)
        return order, required_text(order, "status", "order.status")
    except MalformedMessage as exc:
        raise ProviderRefused(f"unreadable order: {exc}") from None
