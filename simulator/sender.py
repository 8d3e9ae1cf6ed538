"""Sends simulated callbacks to a running ingest over HTTP and reports what it answered."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

import aiohttp

from providers.ccpayment import CCPaymentAccount
from simulator import ccpayment


@dataclass(slots=True)
class SendReport:
    payments: list[str] = field(default_factory=list)
    answers: Counter[int] = field(default_factory=Counter)


async def send_ccpayment(
    session: aiohttp.ClientSession,
    base_url: str,
    account_name: str,
    account: CCPaymentAccount,
    *,
    payments: int,
    partial: bool = False,
    repeat: int = 1,
    amount: Decimal = Decimal("25.00"),
) -> SendReport:
    """Pay ``payments`` orders, each in one or two parts, sending every webhook ``repeat``
    times (as a retrying provider would)."""
    report = SendReport()
    url = f"{base_url.rstrip('/')}/webhooks/ccpayment/{account_name}"
    secret = account.secrets[0].reveal()
    for _ in range(payments):
        merchant_ref = f"sim-{uuid.uuid4().hex[:12]}"
        parts = [Decimal("10.00"), amount - Decimal("10.00")] if partial else [amount]
        callbacks = ccpayment.lifecycle(
            app_id=account.app_id,
            app_secret=secret,
            merchant_ref=merchant_ref,
            amount=amount,
            parts=parts,
            timestamp=int(time.time()),
        )
        for callback in callbacks:
            for _ in range(repeat):
                async with session.post(url, data=callback.body, headers=callback.headers) as resp:
                    await resp.read()
                    report.answers[resp.status] += 1
        report.payments.append(merchant_ref)
    return report
