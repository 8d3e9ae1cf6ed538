"""Sends simulated provider requests to a running ingest over HTTP and reports the answers."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
from yarl import URL

from paysync.settings import ProviderAccount
from simulator import SIMULATORS
from simulator.base import Request


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    # Where a redirect points (return URLs), else None.
    location: str | None = None


@dataclass(slots=True)
class SendReport:
    payments: list[str] = field(default_factory=list)
    answers: Counter[int] = field(default_factory=Counter)


async def send_request(
    session: aiohttp.ClientSession,
    base_url: str,
    provider: str,
    account_name: str,
    request: Request,
) -> Answer:
    """Send one callback or redirect exactly as built (the query string is not re-encoded,
    a redirect is not followed)."""
    path = f"{base_url.rstrip('/')}/{request.route}/{provider}/{account_name}"
    url = URL(f"{path}?{request.query}", encoded=True) if request.query else URL(path)
    async with session.request(
        request.method,
        url,
        data=request.body or None,
        headers=request.headers,
        allow_redirects=False,
    ) as resp:
        await resp.read()
        return Answer(resp.status, resp.headers.get("Location"))


async def send_lifecycles(
    session: aiohttp.ClientSession,
    base_url: str,
    provider: str,
    account_name: str,
    account: ProviderAccount,
    *,
    payments: int,
    repeat: int = 1,
) -> SendReport:
    """Take ``payments`` orders through the provider's full lifecycle, sending every callback
    ``repeat`` times (as a retrying provider would)."""
    simulator = SIMULATORS[provider]
    report = SendReport()
    for _ in range(payments):
        merchant_ref = f"sim-{uuid.uuid4().hex[:12]}"
        life = simulator.lifecycle(account, merchant_ref, now=int(time.time()))
        for callback in life.callbacks:
            for _ in range(repeat):
                answer = await send_request(session, base_url, provider, account_name, callback)
                report.answers[answer.status] += 1
        report.payments.append(merchant_ref)
    return report
