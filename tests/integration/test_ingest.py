"""ingest against real RabbitMQ: CCPayment verification, rejections, confirms, readiness."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from schemas.envelope import Envelope
from tests.support.amqp import depth, take
from tests.support.config import (
    ACCOUNT,
    APP_ID,
    TOKEN_ENV,
    VECTOR_SECRET,
    RunConfig,
    write_config,
)
from tests.support.ingest import post, serving
from tests.support.services import BrokerNames
from tests.support.tcpproxy import TcpProxy
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

# The v1 webhook test vector of ../shared/providers/ccpayment.md, exact bytes.
VECTOR_FIXTURES = Path(__file__).parents[1] / "fixtures" / "ccpayment"
VECTOR_BODY = (VECTOR_FIXTURES / "vector_webhook_body.json").read_bytes()
VECTOR_TS = "1700000000"
VECTOR_SIGN: str = next(
    v["expected"]
    for v in json.loads((VECTOR_FIXTURES / "vectors.json").read_text("utf-8"))
    if v["name"] == "v1_webhook"
)
VECTOR_NOW = datetime.fromtimestamp(1700000000, UTC)


def vector_headers(**changes: str) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Appid": APP_ID,
        "Timestamp": VECTOR_TS,
        "Sign": VECTOR_SIGN,
    }
    return headers | changes


@pytest.fixture
def vector_config(tmp_path, db_url, names) -> RunConfig:
    return write_config(tmp_path, database_url=db_url, prefix=names.prefix, secret=VECTOR_SECRET)


async def get_status(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status


async def readyz_is(url: str, expected: int) -> bool:
    return await get_status(f"{url}/readyz") == expected


async def test_the_documented_vector_is_accepted_and_published_byte_for_byte(
    vector_config: RunConfig, names: BrokerNames
) -> None:
    async with serving(vector_config.settings, lambda: VECTOR_NOW) as (url, broker):
        await broker.wait_connected(10)
        status, body, content_type = await post(
            f"{url}/webhooks/ccpayment/{ACCOUNT}", VECTOR_BODY, vector_headers()
        )
        assert (status, body) == (200, b"success")
        assert content_type.startswith("text/plain")
    [message] = await take(names.topology.inbound_queue, 1)
    assert message.body == VECTOR_BODY
    assert message.delivery_mode == 2
    envelope = Envelope.from_amqp(
        message_id=message.message_id,
        headers=message.headers,
        body=message.body,
        content_type=message.content_type,
    )
    assert (envelope.provider, envelope.account) == ("ccpayment", ACCOUNT)
    assert envelope.verified_by == "env:TEST_CCPAYMENT_SECRET"
    assert VECTOR_SECRET not in repr(message.headers)


@pytest.mark.parametrize(
    ("label", "body", "headers", "reason"),
    [
        ("body byte", VECTOR_BODY.replace(b'"25"', b'"26"', 1), vector_headers(), "bad_signature"),
        ("timestamp", VECTOR_BODY, vector_headers(Timestamp="1700000001"), "bad_signature"),
        ("sign", VECTOR_BODY, vector_headers(Sign="0" + VECTOR_SIGN[1:]), "bad_signature"),
        (
            "other Appid",
            VECTOR_BODY,
            vector_headers(Appid="202401010000000000000000000000009"),
            "foreign_app_id",
        ),
        ("no Sign", VECTOR_BODY, vector_headers(Sign=""), "missing_header"),
        ("stale", VECTOR_BODY, vector_headers(Timestamp="1699990000"), "stale_timestamp"),
    ],
)
async def test_a_changed_byte_gives_401_and_publishes_nothing(
    vector_config: RunConfig,
    names: BrokerNames,
    label: str,
    body: bytes,
    headers: dict[str, str],
    reason: str,
) -> None:
    async with serving(vector_config.settings, lambda: VECTOR_NOW) as (url, broker):
        await broker.wait_connected(10)
        status, answer, _ = await post(f"{url}/webhooks/ccpayment/{ACCOUNT}", body, headers)
    assert (status, answer) == (401, f'{{"error": "{reason}"}}'.encode()), label
    assert await depth(names.topology.inbound_queue) == 0


async def test_unknown_account_and_provider_are_404_and_oversized_bodies_413(
    vector_config: RunConfig, names: BrokerNames
) -> None:
    async with serving(vector_config.settings, lambda: VECTOR_NOW) as (url, broker):
        await broker.wait_connected(10)
        unknown_account = await post(
            f"{url}/webhooks/ccpayment/nope", VECTOR_BODY, vector_headers()
        )
        unknown_provider = await post(
            f"{url}/webhooks/nope/{ACCOUNT}", VECTOR_BODY, vector_headers()
        )
        too_big = await post(
            f"{url}/webhooks/ccpayment/{ACCOUNT}", b"{" + b" " * 5000 + b"}", vector_headers()
        )
    assert unknown_account[:2] == (404, b'{"error": "unknown_account"}')
    assert unknown_provider[:2] == (404, b'{"error": "unknown_provider"}')
    assert too_big[:2] == (413, b'{"error": "body_too_large"}')
    assert await depth(names.topology.inbound_queue) == 0


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    """A TCP proxy in front of RabbitMQ that a test can stall or cut."""
    tcp_proxy = await TcpProxy("127.0.0.1", 5672).start()
    yield tcp_proxy
    await tcp_proxy.close()


@pytest.fixture
def proxied_config(tmp_path, db_url: str, names: BrokerNames, proxy: TcpProxy) -> RunConfig:
    return write_config(
        tmp_path,
        database_url=db_url,
        prefix=names.prefix,
        secret=VECTOR_SECRET,
        amqp_url=f"amqp://guest:guest@127.0.0.1:{proxy.port}/",
    )


async def test_with_rabbitmq_unreachable_ingest_answers_503_and_is_not_ready(
    proxy: TcpProxy, proxied_config: RunConfig
) -> None:
    proxy.cut()  # nothing answers on the proxy's port
    timeout = proxied_config.settings.ingest.confirm_timeout_seconds
    async with serving(proxied_config.settings, lambda: VECTOR_NOW) as (url, _broker):
        assert await get_status(f"{url}/readyz") == 503
        assert await get_status(f"{url}/healthz") == 200
        status, body, _ = await post(
            f"{url}/webhooks/ccpayment/{ACCOUNT}",
            VECTOR_BODY,
            vector_headers(),
            timeout=timeout + 1,
        )
        assert (status, body) == (503, b'{"error": "broker_unavailable"}')


async def test_a_broker_that_stops_confirming_gives_503_within_the_timeout_then_not_ready(
    proxy: TcpProxy, proxied_config: RunConfig
) -> None:
    timeout = proxied_config.settings.ingest.confirm_timeout_seconds
    async with serving(proxied_config.settings, lambda: VECTOR_NOW) as (url, broker):
        await broker.wait_connected(10)
        assert await get_status(f"{url}/readyz") == 200
        proxy.stall()
        # The client gives up one second after the configured timeout: a hang fails here.
        status, body, _ = await post(
            f"{url}/webhooks/ccpayment/{ACCOUNT}",
            VECTOR_BODY,
            vector_headers(),
            timeout=timeout + 1,
        )
        assert (status, body) == (503, b'{"error": "broker_unavailable"}')
        proxy.cut()
        await eventually(lambda: readyz_is(url, 503), what="/readyz 503 after the broker left")


async def test_ingest_recovers_when_the_broker_comes_back(
    proxy: TcpProxy, proxied_config: RunConfig, names: BrokerNames
) -> None:
    async with serving(proxied_config.settings, lambda: VECTOR_NOW) as (url, broker):
        await broker.wait_connected(10)
        proxy.cut()
        await eventually(lambda: readyz_is(url, 503), what="not ready")
        proxy.restore()
        await eventually(lambda: readyz_is(url, 200), what="ready again")
        status, body, _ = await post(
            f"{url}/webhooks/ccpayment/{ACCOUNT}", VECTOR_BODY, vector_headers()
        )
        assert (status, body) == (200, b"success")
    [message] = await take(names.topology.inbound_queue, 1)
    assert message.body == VECTOR_BODY


@pytest.mark.parametrize("path", [f"/webhooks/ccpayment/{ACCOUNT}", "/v1/payments"])
async def test_a_body_over_the_limit_awaiting_100_continue_is_refused_at_once(
    api_config: RunConfig, path: str
) -> None:
    # A client that asks before sending 10 MB must hear 413 at once, not "100 Continue"
    # (it would then send the body) and a 408 after ingest.body_timeout_seconds (10 s).
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {api_config.env[TOKEN_ENV]}\r\n"
        "Expect: 100-continue\r\nContent-Length: 10000000\r\n\r\n"
    ).encode()
    async with serving(api_config.settings) as (url, broker):
        await broker.wait_connected(10)
        port = int(url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(head)
            async with asyncio.timeout(5):  # well inside the 10 s body timeout
                first = await reader.readuntil(b"\r\n")
                head = await reader.readuntil(b"\r\n\r\n")
                body = await reader.readexactly(len(b'{"error": "body_too_large"}'))
        finally:
            writer.close()
    assert first.startswith(b"HTTP/1.1 413 "), first
    # Not to be reused: the body it announced may still come (aiohttp reads and drops it
    # for at most its lingering time, so the client can read this answer, then closes).
    assert b"Connection: close" in head
    assert body == b'{"error": "body_too_large"}'
