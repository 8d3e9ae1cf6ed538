"""Acme's status API: ``GET {base_url}/orders/{merchant_ref}`` with ``Authorization: Bearer
<api_key>`` answers the order document (404: unknown)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from paysync.errors import ConfigError, MalformedMessage, ProviderRefused
from paysync.settings import Secret
from providers.base import HttpCall, PaymentRef, Poll, StatusClient
from providers.payload import load_json_object
from schemas.observation import Source
from tests.fake_provider.scheme import NAME, AcmeAccount, order_observations


class AcmeStatusApi:
    default_base_url = "https://api.acme.example"

    def client(self, account_name: str, account: AcmeAccount, base_url: str) -> StatusClient:
        if account.api_key is None:
            raise ConfigError(account.status_api_problems(NAME, account_name))
        return AcmeStatusClient(account=account_name, base_url=base_url, api_key=account.api_key)


@dataclass(frozen=True, slots=True, kw_only=True)
class AcmeStatusClient:
    account: str
    base_url: str
    api_key: Secret
    batch_size: int = 1

    async def poll(self, call: HttpCall, refs: list[PaymentRef], now: datetime) -> list[Poll]:
        polls = []
        for ref in refs:
            url = f"{self.base_url.rstrip('/')}/orders/{quote(ref.merchant_ref, safe='')}"
            headers = {"Authorization": f"Bearer {self.api_key.reveal()}"}
            answer = await call("GET", url, headers=headers)
            if answer.status == 404:
                polls.append(Poll(ref=ref, found=False))
                continue
            if answer.status != 200:
                raise ProviderRefused(f"HTTP {answer.status}")
            try:
                found = order_observations(
                    load_json_object(answer.body),
                    account=self.account,
                    source=Source.RECONCILER,
                    observed_at=now,
                )
            except MalformedMessage as exc:
                raise ProviderRefused(f"unreadable order: {exc}") from None
            polls.append(
                Poll(
                    ref=ref,
                    found=True,
                    provider_status=found[0].provider_status,
                    observations=found,
                )
            )
        return polls
