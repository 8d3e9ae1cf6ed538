"""Payment search against real Postgres: GET /v1/payments and `paysync payment list`.

Every filter narrows to exactly the rows it names; the cursor pages through a stable order
(rows created meanwhile never shift later pages); bad input is a 400 naming each field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from paysync.db import load_queries
from paysync.search import QUERIES_PATH, Cursor, parse_filters
from tests.support.config import TOKEN_ENV, RunConfig
from tests.support.ingest import serving
from tests.support.process import run_command

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
INSERT = """
INSERT INTO payments (provider, account, merchant_ref, provider_ref, status, amount, currency,
                      late, anomaly, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, 'USD', $7, $8, $9, $10)
"""


async def seed(db: asyncpg.Connection) -> None:
    """12 payments, one a minute from T0: providers, statuses and flags in turn."""
    rows = []
    for i in range(12):
        provider = ("ccpayment", "paycore", "hdfc")[i % 3]
        status = ("paid", "pending", "underpaid", None)[i % 4]
        rows.append(
            (
                provider,
                "shop" if i % 2 == 0 else "other",
                f"order-{i:03d}" if i < 10 else f"ref_%{i}",
                f"prov-{i:03d}" if i % 5 else None,
                status,
                "25.00",
                i % 6 == 0,
                "currency_conflict" if i % 4 == 1 else None,
                T0 + timedelta(minutes=i),
                T0 + timedelta(minutes=i, seconds=30),
            )
        )
    await db.executemany(INSERT, rows)


async def search(url: str, token: str, **params: Any) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/v1/payments", params=params, headers=headers) as resp,
    ):
        return resp.status, orjson.loads(await resp.read())


def refs(doc: dict[str, Any]) -> list[str]:
    return [p["merchant_ref"] for p in doc["payments"]]


async def test_every_filter_narrows_to_what_it_names(api_config: RunConfig, db) -> None:
    await seed(db)
    token = api_config.env[TOKEN_ENV]
    async with serving(api_config.settings) as (url, _):
        cases: list[tuple[dict[str, str], list[int]]] = [
            ({}, list(range(11, -1, -1))),
            ({"provider": "paycore"}, [10, 7, 4, 1]),
            ({"provider": "ccpayment", "account": "shop"}, [6, 0]),
            ({"status": "paid,pending"}, [9, 8, 5, 4, 1, 0]),
            ({"anomaly": "true"}, [9, 5, 1]),
            ({"anomaly": "false", "late": "true"}, [6, 0]),
            (
                {
                    "created_from": (T0 + timedelta(minutes=3)).isoformat(),
                    "created_to": (T0 + timedelta(minutes=5)).isoformat(),
                },
                [4, 3],
            ),
            ({"updated_from": "2026-11-21T10:10:00Z"}, [11, 10]),
            ({"merchant_ref_prefix": "order-00"}, [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]),
            # LIKE's wildcards in a prefix are only characters.
            ({"merchant_ref_prefix": "ref_%"}, [11, 10]),
            ({"merchant_ref_prefix": "order_"}, []),
            ({"provider_ref_prefix": "prov-01"}, [11]),
        ]
        for params, expected in cases:
            status, doc = await search(url, token, **params)
            assert status == 200, (params, doc)
            names = [f"order-{i:03d}" if i < 10 else f"ref_%{i}" for i in expected]
            assert refs(doc) == names, params
        _, doc = await search(url, token, merchant_ref_prefix="order-001")
        [row] = doc["payments"]
        assert row["anomaly"] == ["currency_conflict"]
        assert row["amount"] == "25.00"
        assert row["created_at"] == "2026-11-21T10:01:00.000000Z"


async def test_the_cursor_pages_through_a_stable_order(api_config: RunConfig, db) -> None:
    await seed(db)
    token = api_config.env[TOKEN_ENV]
    async with serving(api_config.settings) as (url, _):
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params = {"limit": "5"} | ({"cursor": cursor} if cursor else {})
            status, doc = await search(url, token, **params)
            assert status == 200
            seen += refs(doc)
            pages += 1
            if pages == 1:
                # A payment created after the first page does not shift the next ones.
                await db.execute(
                    INSERT,
                    "hdfc",
                    "shop",
                    "late-comer",
                    None,
                    "paid",
                    "1",
                    False,
                    None,
                    T0 + timedelta(hours=1),
                    T0 + timedelta(hours=1),
                )
            cursor = doc["next_cursor"]
            if cursor is None:
                break
        assert pages == 3
        assert len(seen) == len(set(seen)) == 12
        assert "late-comer" not in seen


async def test_bad_input_is_a_400_naming_each_field(api_config: RunConfig, db) -> None:
    token = api_config.env[TOKEN_ENV]
    async with serving(api_config.settings) as (url, _):
        status, doc = await search(
            url,
            token,
            status="paid,nope",
            late="yes",
            created_from="yesterday",
            limit="0",
            cursor="garbage",
            colour="red",
            merchant_ref_prefix="a\x00b",
        )
        assert status == 400
        assert doc["error"] == "invalid_search"
        assert set(doc["fields"]) == {
            "status",
            "late",
            "created_from",
            "limit",
            "cursor",
            "colour",
            "merchant_ref_prefix",
        }
        status, doc = await search(url, token, created_to="2026-11-21T10:00:00")
        assert status == 400
        assert "created_to" in doc["fields"]
        async with aiohttp.ClientSession() as session, session.get(f"{url}/v1/payments") as r:
            assert r.status == 401


async def test_payment_list_prints_the_same_search(api_config: RunConfig, db) -> None:
    await seed(db)
    code, out = await run_command(
        api_config, "payment", "list", "--provider", "paycore", "--status", "pending", "--json"
    )
    assert code == 0
    assert refs(orjson.loads(out)) == ["order-001"]
    code, out = await run_command(api_config, "payment", "list", "--limit", "2")
    assert code == 0
    assert "ref_%11" in out
    assert "more: --cursor" in out
    code, _ = await run_command(api_config, "payment", "list", "--late", "maybe")
    assert code == 2


async def test_both_forms_of_the_query_find_the_same_rows(db_url: str, db) -> None:
    """search.sql holds the filters twice (an index walk and a fenced sort): every case of
    the filter test, and each page of a paged one, must find the same rows in both."""
    await seed(db)
    queries = load_queries(QUERIES_PATH)
    cases = [
        {},
        {"provider": "paycore", "status": "pending"},
        {"anomaly": "true", "late": "false"},
        {"updated_from": "2026-11-21T10:03:00Z", "updated_to": "2026-11-21T10:09:00Z"},
        {"merchant_ref_prefix": "order-00", "account": "shop"},
        {"provider_ref_prefix": "prov-", "limit": "3"},
        {"created_from": "2026-11-21T10:02:00Z", "created_to": "2026-11-21T10:11:00Z"},
    ]
    for params in cases:
        filters = parse_filters(params)
        args = filters.query_args()
        walked = await db.fetch(queries["search_payments"], *args)
        fenced = await db.fetch(queries["search_payments_fenced"], *args)
        assert [dict(r) for r in walked] == [dict(r) for r in fenced], params
        if walked:
            last = walked[min(len(walked), filters.limit) - 1]
            page2 = filters.with_cursor(Cursor(created_at=last["created_at"], id=last["id"]))
            walked = await db.fetch(queries["search_payments"], *page2.query_args())
            fenced = await db.fetch(queries["search_payments_fenced"], *page2.query_args())
            assert [dict(r) for r in walked] == [dict(r) for r in fenced], params
