"""The load generator: pre-signed CCPayment callbacks (or their envelopes, for pre-filling
the worker's queue), closed- and open-loop senders.

Bodies and headers are computed before the timed window. The closed loop keeps a fixed
number of requests in flight and finds the maximum throughput; the open loop sends at a
fixed rate regardless of answers and measures latency from each request's *scheduled*
send time, so a stalled server cannot hide its stall (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import secrets
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import aiohttp

from bench.config import ACCOUNT, APP_ID, SECRET_ENV
from bench.cpu import CpuReader
from providers.ccpayment.scheme import CONTENT_TYPE, HEADER_TIMESTAMP, NAME
from schemas.envelope import Envelope, EnvelopeKind
from simulator.ccpayment import signed, webhook_body

REQUEST_TIMEOUT_SECONDS = 10.0
OPEN_LOOP_CONNECTIONS = 256
TRANSPORT_ERROR = 0  # the "status" of a request that got no HTTP answer

clock = time.perf_counter


@dataclass(frozen=True, slots=True)
class Request:
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Sample:
    started: float  # actual send (closed loop) or scheduled send (open loop)
    finished: float
    status: int


@dataclass(slots=True)
class Window:
    """What a measured window produced, before it is summarised."""

    samples: list[Sample] = field(default_factory=list)
    seconds: float = 0.0
    sent: int = 0
    capped: bool = False
    cpu_seconds: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Figures:
    """One run's figures; latencies over successful (200) answers only."""

    requests_per_second: float
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    ok: int
    errors: int
    error_statuses: dict[str, int]
    window_seconds: float
    sent: int
    capped: bool
    cpu_percent: dict[str, float | None]  # server, broker, loadgen; 100 = one core
    server_cpu_us_per_request: float | None  # the server's CPU time per 200 answer


def ccpayment_bodies(count: int) -> list[bytes]:
    """``count`` distinct CCPayment webhooks (distinct record_ids and merchant refs), each
    paying its order in full."""
    run = "".join(secrets.choice("0123456789") for _ in range(21))
    amount = Decimal("25.00")
    bodies = []
    for i in range(count):
        record_id = f"{run}{i:012d}"
        # orjson over-allocates its output; a compact copy keeps 100k bodies small.
        body = webhook_body(
            merchant_ref=f"bench-{run}-{i}",
            record_id=record_id,
            order_id=record_id,
            order_amount=amount,
            paid_amount=amount,
        )
        bodies.append(bytes(bytearray(body)))
    return bodies


def ccpayment_envelopes(count: int) -> list[Envelope]:
    """``count`` distinct webhooks as ingest would have enveloped them after verifying."""
    now = datetime.now(UTC)
    headers = {HEADER_TIMESTAMP: str(int(now.timestamp()))}
    return [
        Envelope(
            message_id=str(uuid.uuid4()),
            kind=EnvelopeKind.CALLBACK,
            provider=NAME,
            account=ACCOUNT,
            received_at=now,
            body=body,
            content_type=CONTENT_TYPE,
            verified_by=f"env:{SECRET_ENV}",
            http_headers=headers,
        )
        for body in ccpayment_bodies(count)
    ]


def ccpayment_requests(count: int, secret: str) -> list[Request]:
    """``count`` distinct signed webhooks (distinct record_ids), stamped now."""
    timestamp = int(time.time())
    return [
        Request(body=body, headers=signed(APP_ID, secret, body, timestamp))
        for body in ccpayment_bodies(count)
    ]


async def post(session: aiohttp.ClientSession, url: str, request: Request) -> int:
    try:
        async with session.post(url, data=request.body, headers=request.headers) as resp:
            await resp.read()
            return resp.status
    except (aiohttp.ClientError, TimeoutError):
        return TRANSPORT_ERROR


def session(connections: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS),
    )


async def closed_loop(
    url: str,
    requests: list[Request],
    *,
    concurrency: int,
    warmup: float,
    duration: float,
    cpu: Mapping[str, CpuReader],
) -> Window:
    """``concurrency`` senders back to back; the window counts answers that arrive in it."""
    pending: Iterator[Request] = iter(requests)
    samples: list[Sample] = []
    async with session(concurrency) as http:
        with frozen_gc():
            t0, t1 = _window_from_now(warmup, duration)
            meter = asyncio.create_task(cpu_between(t0, t1, cpu))

            async def sender() -> None:
                for request in pending:
                    if clock() >= t1:
                        return
                    sent_at = clock()
                    status = await post(http, url, request)
                    samples.append(Sample(sent_at, clock(), status))

            await asyncio.gather(*(sender() for _ in range(concurrency)))
            capped = len(samples) == len(requests)
            window = await _finish_meter(meter, cancel=capped)
    # Out of requests before t1: the window ends with the last answer.
    end = min(t1, max((s.finished for s in samples), default=t0)) if capped else t1
    window.samples = [s for s in samples if t0 <= s.finished <= end]
    window.seconds, window.sent, window.capped = max(end - t0, 0.0), len(samples), capped
    return window


async def open_loop(
    url: str,
    requests: list[Request],
    *,
    rate: float,
    warmup: float,
    duration: float,
    cpu: Mapping[str, CpuReader],
) -> Window:
    """Send at ``rate`` per second; the window holds requests *scheduled* inside it."""
    samples: list[Sample] = []
    in_flight: set[asyncio.Task[None]] = set()
    async with session(OPEN_LOOP_CONNECTIONS) as http:

        async def timed(request: Request, scheduled: float) -> None:
            status = await post(http, url, request)
            samples.append(Sample(scheduled, clock(), status))

        with frozen_gc():
            t0, t1 = _window_from_now(warmup, duration)
            meter = asyncio.create_task(cpu_between(t0, t1, cpu))
            start = t0 - warmup
            for i, request in enumerate(requests):
                scheduled = start + i / rate
                if scheduled >= t1:
                    break
                if (delay := scheduled - clock()) > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(timed(request, scheduled))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            window = await _finish_meter(meter, cancel=False)
            await asyncio.gather(*in_flight)
    window.samples = [s for s in samples if t0 <= s.started < t1]
    window.seconds, window.sent = duration, len(samples)
    window.capped = len(samples) == len(requests)
    return window


def _window_from_now(warmup: float, duration: float) -> tuple[float, float]:
    t0 = clock() + warmup
    return t0, t0 + duration


async def cpu_between(t0: float, t1: float, cpu: Mapping[str, CpuReader]) -> Window:
    """CPU seconds each process used between ``t0`` and ``t1``."""
    await asyncio.sleep(max(t0 - clock(), 0))
    before = {name: read() for name, read in cpu.items()}
    await asyncio.sleep(max(t1 - clock(), 0))
    after = {name: read() for name, read in cpu.items()}
    return Window(cpu_seconds={name: _delta(before[name], after[name]) for name in cpu})


def _delta(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


async def _finish_meter(meter: asyncio.Task[Window], *, cancel: bool) -> Window:
    if cancel:
        meter.cancel()
    try:
        return await meter
    except asyncio.CancelledError:
        return Window()


@contextlib.contextmanager
def frozen_gc() -> Iterator[None]:
    """Keep the pre-computed requests out of the collector's sight during a window."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def summarise(window: Window) -> Figures:
    ok = sorted(s.finished - s.started for s in window.samples if s.status == 200)
    failed = Counter(str(s.status) for s in window.samples if s.status != 200)
    return Figures(
        requests_per_second=len(ok) / window.seconds if window.seconds > 0 else 0.0,
        p50_ms=percentile_ms(ok, 50),
        p99_ms=percentile_ms(ok, 99),
        max_ms=ok[-1] * 1000 if ok else None,
        ok=len(ok),
        errors=sum(failed.values()),
        error_statuses=dict(failed),
        window_seconds=window.seconds,
        sent=window.sent,
        capped=window.capped,
        cpu_percent={k: _percent(v, window.seconds) for k, v in window.cpu_seconds.items()},
        server_cpu_us_per_request=_per_request_us(window.cpu_seconds.get("server"), len(ok)),
    )


def percentile_ms(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted seconds, in milliseconds."""
    if not ordered:
        return None
    rank = max(math.ceil(q / 100 * len(ordered)) - 1, 0)
    return ordered[rank] * 1000


def _per_request_us(cpu_seconds: float | None, requests: int) -> float | None:
    if cpu_seconds is None or requests == 0:
        return None
    return 1e6 * cpu_seconds / requests


def _percent(cpu_seconds: float | None, wall_seconds: float) -> float | None:
    if cpu_seconds is None or wall_seconds <= 0:
        return None
    return 100 * cpu_seconds / wall_seconds


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None
