"""HTTP to one provider account's API (its status API and its create-checkout API share a
host), within that account's limits; the ``HttpCall`` the reconciler's status clients and
ingest's checkout clients are given (kernel: roles never import each other).

Every call waits for the account's rate limiter (requests are spaced at least
``1 / rate_per_second`` apart, so no one-second window ever holds more than the rate) and
for a concurrency slot, runs under the account's timeout, and is retried with backoff and
jitter on 429, 5xx and timeouts (``Retry-After`` is honoured up to the backoff cap). When
the attempts run out it raises ``ProviderUnavailable``; any other answer is returned to the
provider's client, which decides what it means. ``max_attempts`` overrides the account's
setting (1 for a create call whose provider cannot tell a resend from a new order).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import aiohttp

from paysync.errors import ProviderUnavailable
from paysync.logging import get_logger
from paysync.metrics import Metrics
from paysync.rate import RateLimiter
from paysync.retry import Backoff
from paysync.settings import StatusApiSettings
from providers.base import HttpAnswer

log = get_logger(__name__)


class AccountHttp:
    """The ``HttpCall`` of one provider account (see providers/base.py)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        provider: str,
        account: str,
        settings: StatusApiSettings,
        metrics: Metrics,
        backoff: Backoff | None = None,
        *,
        max_attempts: int | None = None,
    ) -> None:
        self._session = session
        self._provider = provider
        self._account = account
        self._settings = settings
        self._metrics = metrics
        self._limiter = RateLimiter(settings.rate_per_second)
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._backoff = backoff or Backoff(initial=0.2, maximum=5.0)
        self._attempts = max_attempts or settings.max_attempts

    async def __call__(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
    ) -> HttpAnswer:
        problem = ""
        for attempt in range(1, self._attempts + 1):
            answer, problem, retry_after = await self._once(method, url, headers, body)
            if answer is not None:
                return answer
            if attempt < self._attempts:
                delay = self._backoff.delay(attempt)
                if retry_after is not None:
                    delay = max(delay, min(retry_after, self._backoff.maximum))
                log.info(
                    "provider_call_retried",
                    provider=self._provider,
                    account=self._account,
                    problem=problem,
                    attempt=attempt,
                    delay=round(delay, 3),
                )
                await asyncio.sleep(delay)
        raise ProviderUnavailable(
            f"{self._provider}/{self._account}: {problem} after {self._attempts} attempts"
        )

    async def _once(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> tuple[HttpAnswer | None, str, float | None]:
        """One attempt: the answer, or None with what went wrong and any Retry-After."""
        await self._limiter.wait()
        timeout = aiohttp.ClientTimeout(total=self._settings.timeout_seconds)
        started = time.perf_counter()
        async with self._slots:
            try:
                async with self._session.request(
                    method, url, headers=dict(headers), data=body, timeout=timeout
                ) as resp:
                    payload = await resp.read()
                    answer = HttpAnswer(status=resp.status, headers=resp.headers, body=payload)
            except (TimeoutError, aiohttp.ClientError) as exc:
                self._observe("timeout" if isinstance(exc, TimeoutError) else "error", started)
                return None, type(exc).__name__, None
        self._observe(str(answer.status), started)
        if answer.status == 429 or answer.status >= 500:
            return None, f"HTTP {answer.status}", _retry_after(answer.headers)
        return answer, "", None

    def _observe(self, code: str, started: float) -> None:
        self._metrics.provider_api_seconds.labels(self._provider, code).observe(
            time.perf_counter() - started
        )
        self._metrics.provider_api_calls.labels(self._provider, self._account, code).inc()


def _retry_after(headers: Mapping[str, str]) -> float | None:
    raw = headers.get("Retry-After", "")
    try:
        return max(0.0, float(raw)) if raw else None
    except ValueError:
        return None  # an HTTP date: the backoff decides
