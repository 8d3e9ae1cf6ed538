"""``POST /v1/checkouts`` against real RabbitMQ and Postgres and the simulated providers'
create APIs: one provider order per key, conflicts, refusals and a lost answer."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import orjson
import pytest

from simulator.status import Faults, OrderBook
from tests.support.amqp import depth
from tests.support.checkouts import (
    CHECKOUT_PROVIDERS,
    Simulated,
    checkout_body,
    know_accounts,
    post_checkout,
    simulated_providers,
)
from tests.support.config import ACCOUNT, API_TABLE, RunConfig, with_tokens, write_config
from tests.support.ingest import apply_published, serving
from tests.support.process import run_command, run_paysync
from tests.support.services import BrokerNames
from worker.store import Store

pytestmark = pytest.mark.integration


@asynccontextmanager
async def _ingest(
    tmp_path: Path, db_url: str, names: BrokerNames, book: OrderBook, faults: Faults
) -> AsyncIterator[tuple[Simulated, RunConfig, str]]:
    """The simulated providers (``faults`` on every request), a configuration whose
    accounts ask them, and ingest serving it in this loop with its broker link up."""
    async with simulated_providers(book, faults) as sim:
        config = with_tokens(
            write_config(
                tmp_path,
                database_url=db_url,
                prefix=names.prefix,
                extra=API_TABLE,
                status_url=sim.url,
            )
        )
        know_accounts(config, book)
        async with serving(config.settings) as (url, broker):
            await broker.wait_connected(10)
            yield sim, config, url


@pytest.mark.parametrize("provider", CHECKOUT_PROVIDERS)
async def test_one_key_makes_one_provider_order_and_registers_it_once(
    provider: str,
    tmp_path: Path,
    db_url: str,
    names: BrokerNames,
    store: Store,
    db: asyncpg.Connection,
) -> None:
    book, ref, key = OrderBook(), f"co-{provider}-1", str(uuid.uuid4())
    async with _ingest(tmp_path, db_url, names, book, Faults()) as (sim, config, url):
        first = await post_checkout(url, config, checkout_body(provider, ref), key)
        assert first[0] == 201, first
        again = await post_checkout(url, config, checkout_body(provider, ref), key)
        assert again == first
        # The same key with another body, another key for the same order: refused.
        other = checkout_body(provider, ref, amount="1.00")
        assert (await post_checkout(url, config, other, key))[1]["error"] == (
            "idempotency_key_reused"
        )
        taken = await post_checkout(url, config, checkout_body(provider, ref), "another")
        assert (taken[0], taken[1]["error"]) == (409, "checkout_exists")
        # One registration: the replay answers the checkout without publishing again.
        await apply_published(names.topology.inbound_queue, store)
        assert await depth(names.topology.inbound_queue) == 0
    assert sim.desk.creates[(provider, ACCOUNT)] == 1
    created = sim.desk.find_created(provider, ACCOUNT, ref)
    assert created is not None
    checkout = first[1]["checkout"]
    assert checkout["redirect_url"] == created.redirect_url
    row = await db.fetchrow(
        "SELECT provider_ref, amount, currency, status FROM payments WHERE merchant_ref = $1", ref
    )
    assert row is not None
    expected_ref = None if provider == "ccpayment" else created.provider_ref
    assert (row["provider_ref"], row["status"]) == (expected_ref, None)
    assert checkout["provider_ref"] == expected_ref
    amount, currency = (checkout_body(provider, ref)[k] for k in ("amount", "currency"))
    assert (str(row["amount"]), row["currency"]) == (amount, currency)


async def test_a_lost_paycore_answer_registers_nothing_and_is_never_resent(
    tmp_path: Path, db_url: str, names: BrokerNames, db: asyncpg.Connection
) -> None:
    book, key = OrderBook(), str(uuid.uuid4())
    # Every request is held past the client's 2 s timeout.
    async with _ingest(tmp_path, db_url, names, book, Faults(hanging=1.0, hang_seconds=4.0)) as (
        sim,
        config,
        url,
    ):
        body = checkout_body("paycore", "co-lost-1")
        status, answer = await post_checkout(url, config, body, key)
        assert (status, answer["error"], answer["state"]) == (
            504,
            "provider_unavailable",
            "unknown",
        )
        status, answer = await post_checkout(url, config, body, key)
        assert (status, answer["error"]) == (502, "order_state_unknown")
        assert await depth(names.topology.inbound_queue) == 0
    # One attempt only: PayCore cannot tell a resend from a second invoice.
    assert sim.desk.creates[("paycore", ACCOUNT)] == 1
    assert await db.fetchval("SELECT count(*) FROM payments") == 0
    assert await db.fetchval("SELECT state FROM checkouts") == "unknown"


async def test_a_lost_ccpayment_answer_is_resent_and_makes_one_order(
    tmp_path: Path, db_url: str, names: BrokerNames, store: Store
) -> None:
    book = OrderBook()
    # Seed 3: the first request is held past the timeout, the next ones are answered.
    async with _ingest(
        tmp_path, db_url, names, book, Faults(hanging=0.5, hang_seconds=4.0, seed=3)
    ) as (sim, config, url):
        body = checkout_body("ccpayment", "co-lost-2")
        status, answer = await post_checkout(url, config, body, str(uuid.uuid4()))
        assert status == 201, answer
        await apply_published(names.topology.inbound_queue, store)
    assert sim.desk.creates[("ccpayment", ACCOUNT)] >= 2
    assert sim.desk.created_count("ccpayment", ACCOUNT) == 1


async def test_bad_requests_and_provider_refusals(
    tmp_path: Path, db_url: str, names: BrokerNames, db: asyncpg.Connection
) -> None:
    book = OrderBook()
    async with _ingest(tmp_path, db_url, names, book, Faults()) as (sim, config, url):
        body = checkout_body("paycore", "co-bad-1")
        assert (await post_checkout(url, config, body, None))[1]["error"] == (
            "idempotency_key_required"
        )
        bad = checkout_body("paycore", "co-bad-1", amount="-1", colour="red")
        status, answer = await post_checkout(url, config, bad, "k-bad")
        assert (status, set(answer["fields"])) == (400, {"amount", "colour"})
        # CCPayment prices in USD only: refused before asking, with a code, key freed.
        euro = checkout_body("ccpayment", "co-bad-3", currency="EUR")
        status, answer = await post_checkout(url, config, euro, "k-eur")
        assert (status, answer["provider_code"]) == (422, "invalid_order")
        # PayCore refuses a currency that is not ISO 4217 alpha-3 (its 422, its code).
        odd = checkout_body("paycore", "co-bad-4", currency="EURO")
        status, answer = await post_checkout(url, config, odd, "k-odd")
        assert (status, answer["provider_code"]) == (422, "currency_invalid")
        # A refusal made no order: the key is free for the corrected body.
        fixed = checkout_body("paycore", "co-bad-4")
        assert (await post_checkout(url, config, fixed, "k-odd"))[0] == 201
        assert (await post_checkout(url, config, fixed, "k-fixed"))[0] == 409
    assert sim.desk.created_count("paycore", ACCOUNT) == 1
    assert await db.fetchval("SELECT count(*) FROM checkouts") == 1


async def test_the_operators_command_creates_a_checkout_and_the_same_key_answers_it_again(
    tmp_path: Path, db_url: str, names: BrokerNames, db: asyncpg.Connection
) -> None:
    book = OrderBook()
    async with _ingest(tmp_path, db_url, names, book, Faults()) as (sim, config, url):
        args = ("checkout", "create", "paycore", ACCOUNT, "co-cli-1", "49.90", "EUR")
        expires = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        more = ("--email", "buyer@example.com", "--expires-at", expires, "--url", url)
        code, out = await run_command(config, *args, *more, "--key", "k-cli", "--json")
        assert code == 0, out
        first = orjson.loads(out)
        assert first["status"] == 201
        code, again = await run_command(config, *args, *more, "--key", "k-cli")
        assert code == 0
        # Refused: the same key with another amount, named in the message.
        other = ("checkout", "create", "paycore", ACCOUNT, "co-cli-1", "1.00", "EUR")
        code, _out, err = await run_paysync(config, *other, "--url", url, "--key", "k-cli")
        assert code == 1
        assert "409 idempotency_key_reused" in err
    order = sim.desk.find_created("paycore", ACCOUNT, "co-cli-1")
    assert order is not None
    assert first["checkout"]["redirect_url"] == order.redirect_url
    assert f"redirect_url     {order.redirect_url}" in again
    assert sim.desk.creates[("paycore", ACCOUNT)] == 1
    assert order.expires_at is not None


async def test_an_account_lacking_a_field_the_create_needs_gets_a_clear_501(
    tmp_path: Path, db_url: str, names: BrokerNames, db: asyncpg.Connection
) -> None:
    """HDFC's create needs ``payment_page_client_id``; the status API does not, so such an
    account loads. Its checkouts are refused with the missing field named, nothing is
    created or stored, and ingest keeps serving."""
    book = OrderBook()
    async with simulated_providers(book, Faults()) as sim:
        config = with_tokens(
            write_config(
                tmp_path,
                database_url=db_url,
                prefix=names.prefix,
                extra=API_TABLE,
                status_url=sim.url,
            )
        )
        text = config.path.read_text()
        config.path.write_text(text.replace('payment_page_client_id = "hdfcmaster"\n', ""))
        know_accounts(config, book)
        async with serving(config.settings) as (url, broker):
            await broker.wait_connected(10)
            body = checkout_body("hdfc", "co-unset-1")
            status, answer = await post_checkout(url, config, body, "k-unset")
            assert (status, answer["error"]) == (501, "checkout_not_configured"), answer
            assert answer["problems"] == [
                f"accounts.hdfc.{ACCOUNT}.payment_page_client_id: required to create hosted "
                "checkouts (HDFC issues it; sandbox: hdfcmaster)"
            ]
            paid = checkout_body("paycore", "co-unset-2")
            assert (await post_checkout(url, config, paid, "k-other"))[0] == 201
    assert sim.desk.created_count("hdfc", ACCOUNT) == 0
    assert await db.fetchval("SELECT count(*) FROM checkouts WHERE provider = 'hdfc'") == 0
