"""The ``/v1`` API at its edges, with real RabbitMQ and Postgres: credentials that are not
text, NUL characters Postgres cannot store, and merchant references with characters that
routes treat specially. Each gets a clear 4xx naming what is wrong, or works; none a 500.
Raw requests (tests/support/hostile.py) carry the bytes exactly as written.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
from yarl import URL

from tests.support.amqp import depth
from tests.support.config import ACCOUNT, TOKEN_ENV, RunConfig
from tests.support.hostile import Answer, Case, Expect, exchange, wire
from tests.support.ingest import apply_published, serving
from tests.support.services import BrokerNames
from worker.store import Store

pytestmark = pytest.mark.integration


def registration(merchant_ref: str, **fields: Any) -> dict[str, Any]:
    return {
        "provider": "hdfc",
        "account": ACCOUNT,
        "merchant_ref": merchant_ref,
        "amount": "1499.00",
        "currency": "INR",
        **fields,
    }


async def raw(url: str, target: bytes, headers: list[tuple[str | bytes, str | bytes]]) -> Answer:
    port = URL(url).port
    assert port is not None
    head = wire(target, headers, method="GET")
    case = Case(provider="api", name="raw", head=head, expect=Expect(None))
    return await exchange(port, case, timeout=10, interval=0)


async def call(
    session: aiohttp.ClientSession, method: str, url: str, token: str, body: object = None
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"}
    data = None if body is None else orjson.dumps(body)
    async with session.request(method, URL(url, encoded=True), data=data, headers=headers) as r:
        return r.status, orjson.loads(await r.read())


async def test_a_bearer_token_that_is_not_utf8_is_a_bad_token(api_config: RunConfig) -> None:
    async with serving(api_config.settings) as (url, broker):
        await broker.wait_connected(10)  # never closed while still connecting
        answers = [
            await raw(url, b"/v1/payments/hdfc/shop/x", [("Authorization", b"Bearer " + value)])
            for value in (b"\xff\xfe", b"\xc3", api_config.env[TOKEN_ENV].encode() + b"\xff")
        ]
    assert [(a.status, a.reason) for a in answers] == [(401, "bad_token")] * 3


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("hdfc/shop/ab%00cd", "merchant_ref"),
        ("hdfc/sh%00op/x", "account"),
        ("hd%00fc/shop/x", "provider"),
    ],
)
async def test_a_nul_in_a_lookup_path_is_400_naming_the_field(
    api_config: RunConfig, path: str, field: str
) -> None:
    async with serving(api_config.settings) as (url, broker), aiohttp.ClientSession() as s:
        await broker.wait_connected(10)
        status, answer = await call(
            s, "GET", f"{url}/v1/payments/{path}", api_config.env[TOKEN_ENV]
        )
    assert (status, answer["error"], list(answer["fields"])) == (400, "invalid_path", [field])


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"merchant_ref": "order\x00-1"}, "merchant_ref"),
        ({"provider_ref": "p\x00"}, "provider_ref"),
        ({"metadata": {"note": "a\x00b"}}, "metadata"),
        ({"metadata": {"k\x00": 1}}, "metadata"),
        ({"metadata": {"deep": [{"x": ["\x00"]}]}}, "metadata"),
    ],
    ids=["merchant_ref", "provider_ref", "metadata_value", "metadata_key", "metadata_deep"],
)
async def test_a_nul_in_a_registration_is_400_naming_the_field(
    api_config: RunConfig, names: BrokerNames, fields: dict[str, Any], bad: str
) -> None:
    body = registration("order-nul") | fields
    async with serving(api_config.settings) as (url, broker), aiohttp.ClientSession() as s:
        await broker.wait_connected(10)
        status, answer = await call(
            s, "POST", f"{url}/v1/payments", api_config.env[TOKEN_ENV], body
        )
    assert (status, answer["error"]) == (400, "invalid_registration")
    assert [key.split(".")[0] for key in answer["fields"]] == [bad]
    assert await depth(names.topology.inbound_queue) == 0


@pytest.mark.parametrize(
    "merchant_ref", ["order-{1}", "{order}", "a}b{c", "order/7", "50%-off", "ордер 1"]
)
async def test_every_registrable_ref_can_be_looked_up(
    api_config: RunConfig,
    names: BrokerNames,
    store: Store,
    db: asyncpg.Connection,
    merchant_ref: str,
) -> None:
    token = api_config.env[TOKEN_ENV]
    async with serving(api_config.settings) as (url, broker), aiohttp.ClientSession() as s:
        await broker.wait_connected(10)
        status, _ = await call(s, "POST", f"{url}/v1/payments", token, registration(merchant_ref))
        assert status == 202
        await apply_published(names.topology.inbound_queue, store)
        # A path segment carries the ref percent-encoded, "/" included.
        encoded = URL.build(path=merchant_ref.replace("/", "%2F"), encoded=False).raw_path
        encoded = encoded.replace("%252F", "%2F")
        status, timeline = await call(
            s, "GET", f"{url}/v1/payments/hdfc/{ACCOUNT}/{encoded}", token
        )
    assert status == 200, timeline
    assert timeline["payment"]["merchant_ref"] == merchant_ref
