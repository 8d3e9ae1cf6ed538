"""Return URLs (HDFC, Plural) through ingest and the worker's store, against real RabbitMQ
and Postgres: verified → published + 303 to the account's page; anything else → 303 to the
failure page, nothing published; a hint asks for a poll and never changes a status."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Literal

import aiohttp
import asyncpg
import pytest
from yarl import URL

from paysync.db import create_pool
from providers import MAPPINGS, REGISTRY
from schemas.envelope import Envelope, EnvelopeKind
from simulator import SIMULATORS
from simulator.base import Request, ReturnSimulator
from simulator.sender import send_request
from tests.support.amqp import depth, take
from tests.support.config import ACCOUNT, RETURN_FAILURE, RETURN_SUCCESS, RunConfig
from tests.support.db import one
from tests.support.ingest import serving
from tests.support.services import BrokerNames
from worker.store import Store

pytestmark = pytest.mark.integration

RETURNING = ["hdfc", "plural"]
# A success and a failure status in each provider's own vocabulary.
PAID = {"hdfc": "CHARGED", "plural": "PROCESSED"}
FAILED = {"hdfc": "AUTHORIZATION_FAILED", "plural": "FAILED"}


def _returns(provider: str) -> ReturnSimulator:
    scheme = SIMULATORS[provider].returns
    assert scheme is not None
    return scheme


async def _send(base: str, provider: str, request: Request) -> tuple[int, URL]:
    """Send a redirect as the browser would; the answer's status and Location."""
    async with aiohttp.ClientSession() as session:
        answer = await send_request(session, base, provider, ACCOUNT, request)
    return answer.status, URL(answer.location or "")


def _page(location: URL) -> str:
    return str(location.with_query(None))


@pytest.mark.parametrize("provider", RETURNING)
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_verified_return_is_published_and_sends_the_customer_to_the_right_page(
    config: RunConfig, names: BrokerNames, provider: str, method: Literal["GET", "POST"]
) -> None:
    settings = config.settings
    account = settings.account(provider, ACCOUNT)
    assert account is not None
    scheme = _returns(provider)
    paid = scheme.signed_return(account, order_id="ord-1", status=PAID[provider], method=method)
    failed = scheme.signed_return(account, order_id="ord-2", status=FAILED[provider], method=method)
    async with serving(settings) as (url, broker):
        await broker.wait_connected(10)
        paid_answer = await _send(url, provider, paid)
        failed_answer = await _send(url, provider, failed)

    assert paid_answer[0] == failed_answer[0] == 303
    assert _page(paid_answer[1]) == RETURN_SUCCESS
    assert dict(paid_answer[1].query) == {"status": "paid", "order_id": "ord-1"}
    assert _page(failed_answer[1]) == RETURN_FAILURE
    assert dict(failed_answer[1].query) == {
        "from": "paysync",
        "status": "failed",
        "order_id": "ord-2",
    }
    messages = await take(names.topology.inbound_queue, 2)
    assert [m.headers["x-paysync-kind"] for m in messages] == ["return_url", "return_url"]
    assert messages[0].body == (paid.query.encode() if method == "GET" else paid.body)


@pytest.mark.parametrize("provider", RETURNING)
async def test_a_forged_or_unreadable_return_goes_to_the_failure_page_and_publishes_nothing(
    config: RunConfig, names: BrokerNames, provider: str
) -> None:
    settings = config.settings
    account = settings.account(provider, ACCOUNT)
    assert account is not None
    scheme = _returns(provider)
    good = scheme.signed_return(account, order_id="ord-3", status=FAILED[provider])
    good_get = scheme.signed_return(
        account, order_id="ord-3", status=FAILED[provider], method="GET"
    )
    forged_body = good.body.replace(FAILED[provider].encode(), PAID[provider].encode())
    attempts = {
        "forged_status": Request(route="return", headers=good.headers, body=forged_body),
        "forged_query": Request(
            route="return",
            method="GET",
            query=good_get.query.replace(FAILED[provider], PAID[provider]),
        ),
        "no_signature": Request(
            route="return", method="GET", query=f"order_id=ord-3&status={PAID[provider]}"
        ),
        "wrong_content_type": Request(
            route="return", headers={"Content-Type": "application/json"}, body=good.body
        ),
        "not_utf8": Request(route="return", method="GET", query="order_id=%FF&status=x"),
        "repeated_key": Request(route="return", method="GET", query="status=a&status=b"),
    }
    async with serving(settings) as (url, broker):
        await broker.wait_connected(10)
        answers = {name: await _send(url, provider, req) for name, req in attempts.items()}
        async with aiohttp.ClientSession() as session:
            unknown = await session.get(f"{url}/return/{provider}/elsewhere", allow_redirects=False)
            no_returns = await session.get(
                f"{url}/return/ccpayment/{ACCOUNT}", allow_redirects=False
            )

    for name, (status, location) in answers.items():
        assert (name, status, _page(location)) == (name, 303, RETURN_FAILURE)
        assert dict(location.query) == {"from": "paysync", "status": "unverified"}, name
    assert (unknown.status, no_returns.status) == (404, 404)
    assert await depth(names.topology.inbound_queue) == 0


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    pool = await create_pool(db_url, max_size=2)
    yield Store(pool, MAPPINGS)
    await pool.close()


def _return_envelope(config: RunConfig, provider: str, order_id: str, status: str) -> Envelope:
    account = config.settings.account(provider, ACCOUNT)
    assert account is not None
    request = _returns(provider).signed_return(account, order_id=order_id, status=status)
    return Envelope(
        message_id=str(uuid.uuid4()),
        kind=EnvelopeKind.RETURN_URL,
        provider=provider,
        account=ACCOUNT,
        received_at=datetime.now(UTC),
        body=request.body,
        content_type="application/x-www-form-urlencoded",
    )


async def test_an_hdfc_return_for_an_unknown_order_creates_it_unknown_and_due_for_a_poll(
    config: RunConfig, store: Store, db: asyncpg.Connection
) -> None:
    env = _return_envelope(config, "hdfc", "ord-10", "CHARGED")
    scheme = REGISTRY["hdfc"]
    outcome = await store.apply_hint(env, scheme.parse_return(env))
    assert outcome.outcome == "hint"
    row = await one(
        db, "SELECT merchant_ref, status, seq, next_check_at <= now() AS due FROM payments"
    )
    # Never paid on the redirect's word: the status stays unknown until a poll or callback.
    assert dict(row) == {"merchant_ref": "ord-10", "status": None, "seq": 0, "due": True}
    assert await db.fetchval("SELECT outcome FROM inbox") == "hint"
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0
    # The same redirect delivered again adds nothing.
    assert (await store.apply_hint(env, scheme.parse_return(env))).outcome == "duplicate"


async def test_a_plural_return_finds_its_payment_by_plurals_order_id_and_changes_nothing(
    config: RunConfig, store: Store, db: asyncpg.Connection
) -> None:
    sim, account = SIMULATORS["plural"], config.settings.account("plural", ACCOUNT)
    assert account is not None
    life = sim.lifecycle(account, "shop-77", now=int(time.time()))
    scheme = REGISTRY["plural"]
    early = _return_envelope(config, "plural", life.provider_ref, "PROCESSED")
    # Before any callback paysync cannot know which payment the order id belongs to.
    assert (await store.apply_hint(early, scheme.parse_return(early))).outcome == "unmatched_hint"
    assert await db.fetchval("SELECT count(*) FROM payments") == 0

    first = Envelope(
        message_id=str(uuid.uuid4()),
        kind=EnvelopeKind.CALLBACK,
        provider="plural",
        account=ACCOUNT,
        received_at=datetime.now(UTC),
        body=life.callbacks[0].body,
        http_headers=REGISTRY["plural"]
        .verify_callback(
            account, life.callbacks[0].headers, life.callbacks[0].body, datetime.now(UTC)
        )
        .http_headers,
    )
    await store.apply(first, REGISTRY["plural"].parse_callback(first))
    later = _return_envelope(config, "plural", life.provider_ref, "PROCESSED")
    assert (await store.apply_hint(later, scheme.parse_return(later))).outcome == "hint"
    row = await one(db, "SELECT status, seq, next_check_at <= now() AS due FROM payments")
    assert dict(row) == {"status": "authorized", "seq": 1, "due": True}
