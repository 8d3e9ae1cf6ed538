"""PayCore's Commerce private API: the reconciler's client (``PayCoreAdapter.status_api``
is a :class:`PayCoreStatusApi`).

``GET {base_url}/payment-invoices/{cpi_id}`` with HTTP Basic ``account_id:api_key``
answers the invoice's JSON:API document, the same document a callback carries; it is read
by the callback's own parser, so a poll and a callback reporting one state share a key.
PayCore documents no lookup by ``reference_id``: only payments whose invoice id is known
(``provider_ref``) can be polled.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from paysync.errors import ConfigError, MalformedMessage, ProviderRefused
from paysync.settings import Secret
from providers.base import HttpAnswer, HttpCall, PaymentRef, Poll, StatusClient
from providers.paycore.scheme import NAME, PAYMENT_INVOICES, PayCoreAccount, invoice_observations
from providers.payload import load_json_object
from schemas.observation import Observation, Source

# Legacy docs' host; white-label hosts exist (the account manager names the real one).
DEFAULT_STATUS_BASE_URL = "https://com.paycore.io/api"


def basic_authorization(account_id: str, api_key: str) -> str:
    """The ``Authorization`` header of the Commerce private API."""
    return "Basic " + base64.b64encode(f"{account_id}:{api_key}".encode()).decode("ascii")


class PayCoreStatusApi:
    """The Commerce private API (``StatusApi``); one client per Commerce account."""

    default_base_url = DEFAULT_STATUS_BASE_URL

    def client(self, account_name: str, account: PayCoreAccount, base_url: str) -> StatusClient:
        account_id, api_key = account.api_account_id, account.api_key
        if account_id is None or api_key is None:
            raise ConfigError(account.status_api_problems(NAME, account_name))
        return PayCoreStatusClient(
            account=account_name,
            base_url=base_url.rstrip("/"),
            account_id=account_id,
            api_key=api_key,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PayCoreStatusClient:
    """``GET {base_url}/payment-invoices/{invoice_id}``, one invoice per call.

    Only a payment whose ``provider_ref`` (the ``cpi_`` invoice id) is known can be asked
    about: PayCore documents no lookup by ``reference_id``. A ref without one gets
    ``Poll(found=False, asked=False)`` and no request is made; the reconciler counts it as
    not found and, never having asked, does not conclude that its deadline passed unpaid.
    """

    account: str
    base_url: str
    account_id: str
    # Kept as a Secret (its repr is the reference); the header is built per call.
    api_key: Secret

    @property
    def batch_size(self) -> int:
        return 1

    async def poll(self, call: HttpCall, refs: list[PaymentRef], now: datetime) -> list[Poll]:
        return [await self._poll_one(call, ref, now) for ref in refs]

    async def _poll_one(self, call: HttpCall, ref: PaymentRef, now: datetime) -> Poll:
        if ref.provider_ref is None:
            return Poll(ref=ref, found=False, asked=False)
        url = f"{self.base_url}/{PAYMENT_INVOICES}/{quote(ref.provider_ref, safe='')}"
        authorization = basic_authorization(self.account_id, self.api_key.reveal())
        answer = await call("GET", url, headers={"Authorization": authorization})
        if answer.status == 404:
            return Poll(ref=ref, found=False)
        observation = self._read(answer, ref, now)
        return Poll(
            ref=ref,
            found=True,
            provider_status=observation.provider_status,
            observations=[observation],
        )

    def _read(self, answer: HttpAnswer, ref: PaymentRef, now: datetime) -> Observation:
        _check_status(answer.status)
        try:
            found = invoice_observations(
                load_json_object(answer.body),
                account=self.account,
                source=Source.RECONCILER,
                received_at=now,
            )
        except MalformedMessage as exc:
            raise ProviderRefused(f"unreadable invoice: {exc}") from None
        if not found:
            raise ProviderRefused("the answer is not a payment invoice")
        [observation] = found
        # Observations are filed under the document's reference_id: one about another
        # payment must not be applied to the wrong one.
        about = (observation.provider_ref, observation.merchant_ref)
        if about != (ref.provider_ref, ref.merchant_ref):
            raise ProviderRefused("the answer is about another invoice or reference_id")
        return observation


def _check_status(status: int) -> None:
    """Refuse every answer but 200 (404 is handled before: the invoice is unknown)."""
    if status == 401:
        raise ProviderRefused("unauthorized")
    if status == 403:
        # PayCore recommends an IP allow-list for the private API.
        raise ProviderRefused("forbidden")
    if status != 200:
        raise ProviderRefused(f"unexpected HTTP status {status}")
