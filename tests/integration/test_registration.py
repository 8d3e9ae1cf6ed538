"""``POST /v1/payments`` against real RabbitMQ and Postgres: a registration is validated,
checked against what paysync holds, published, and written by the worker's store."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from tests.support.amqp import depth
from tests.support.config import (
    ACCOUNT,
    TOKEN_ENV,
    RunConfig,
)
from tests.support.db import one
from tests.support.ingest import apply_published, serving
from tests.support.services import BrokerNames
from worker.store import Store

pytestmark = pytest.mark.integration

VALID: dict[str, Any] = {
    "provider": "hdfc",
    "account": ACCOUNT,
    "merchant_ref": "order-r1",
    "amount": "1499.00",
    "currency": "INR",
    "expires_at": "2026-11-22T10:00:00Z",
    "metadata": {"cart": "c-9"},
}


async def _post(url: str, token: str | None, body: object) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}/v1/payments", data=data, headers=headers) as resp,
    ):
        return resp.status, orjson.loads(await resp.read())


async def test_a_registration_is_published_and_becomes_an_expected_payment(
    api_config: RunConfig, names: BrokerNames, store: Store, db: asyncpg.Connection
) -> None:
    async with serving(api_config.settings) as (url, broker):
        await broker.wait_connected(10)
        status, answer = await _post(url, api_config.env[TOKEN_ENV], VALID)
        assert status == 202, answer
        await apply_published(names.topology.inbound_queue, store)
        # The same registration again is harmless.
        assert (await _post(url, api_config.env[TOKEN_ENV], VALID))[0] == 202
        await apply_published(names.topology.inbound_queue, store)

    row = await one(
        db,
        "SELECT status, amount, currency, metadata, seq, next_check_at IS NOT NULL AS scheduled"
        " FROM payments WHERE merchant_ref = 'order-r1'",
    )
    # Expected, not paid: no status until a provider says something; the reconciler checks it.
    assert dict(row) | {"metadata": orjson.loads(row["metadata"])} == {
        "status": None,
        "amount": Decimal("1499.00"),
        "currency": "INR",
        "metadata": {"cart": "c-9"},
        "seq": 0,
        "scheduled": True,
    }
    outcomes = await db.fetch("SELECT kind, source, outcome FROM inbox ORDER BY id")
    assert [tuple(r) for r in outcomes] == [
        ("terms", "merchant", "applied"),
        ("terms", "merchant", "duplicate"),
    ]
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0


async def test_a_conflicting_registration_is_refused_with_409(
    api_config: RunConfig, names: BrokerNames, store: Store
) -> None:
    async with serving(api_config.settings) as (url, broker):
        await broker.wait_connected(10)
        assert (await _post(url, api_config.env[TOKEN_ENV], VALID))[0] == 202
        await apply_published(names.topology.inbound_queue, store)
        other = VALID | {"amount": "1500.00", "currency": "USD"}
        status, answer = await _post(url, api_config.env[TOKEN_ENV], other)
    assert status == 409
    assert answer["error"] == "conflict"
    assert set(answer["fields"]) == {"amount", "currency"}
    assert await depth(names.topology.inbound_queue) == 0


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (VALID | {"amount": 14.99}, {"amount"}),
        (VALID | {"amount": "0"}, {"amount"}),
        (VALID | {"amount": "1e3"}, {"amount"}),
        (VALID | {"currency": "IN R"}, {"currency"}),
        (VALID | {"expires_at": "2026-11-22T10:00:00"}, {"expires_at"}),
        (VALID | {"account": "elsewhere"}, {"account"}),
        (VALID | {"colour": "red"}, {"colour"}),
        ({k: v for k, v in VALID.items() if k != "merchant_ref"}, {"merchant_ref"}),
        (b"{not json", {"body"}),
    ],
    ids=[
        "float amount",
        "zero amount",
        "exponent amount",
        "bad currency",
        "naive expiry",
        "unknown account",
        "unknown field",
        "missing ref",
        "not json",
    ],
)
async def test_a_bad_registration_gets_400_naming_each_field_and_publishes_nothing(
    api_config: RunConfig, names: BrokerNames, body: object, fields: set[str]
) -> None:
    async with serving(api_config.settings) as (url, broker):
        await broker.wait_connected(10)
        status, answer = await _post(url, api_config.env[TOKEN_ENV], body)
        unauthorized, _ = await _post(url, None, VALID)
    assert (status, answer["error"], set(answer["fields"])) == (400, "invalid_registration", fields)
    assert unauthorized == 401
    assert await depth(names.topology.inbound_queue) == 0
