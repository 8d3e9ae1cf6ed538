"""``python -m bench.search``: GET /v1/payments on a generated table of 1M payments.

Creates a database of its own (migrated, so with the search indexes), fills it with
``--rows`` payments over 90 days (``bench/search.sql``), then runs each case of
``CASES`` ``--runs`` times through the API's own query and settings (custom plans), as
``EXPLAIN (ANALYZE, FORMAT JSON)``: the execution time Postgres reports, and each plan's
top node and the indexes it used. Prints per case p50/p95 and the p95 over every case, writes
``bench/results/search-<time>.json``, and drops the database. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from bench.database import created
from paysync.db import load_queries
from paysync.search import QUERIES_PATH, Cursor, SearchFilters, parse_filters

RESULTS = Path(__file__).with_name("results")
PG_URL = os.environ.get("PAYSYNC_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def _iso(delta: timedelta) -> str:
    return (NOW - delta).isoformat()


CASES: dict[str, dict[str, str]] = {
    "first page, no filter": {},
    "provider": {"provider": "paycore"},
    "provider + account": {"provider": "hdfc", "account": "shop-1"},
    "status paid": {"status": "paid"},
    "status charged_back (rare)": {"status": "charged_back"},
    "two statuses": {"status": "refunded,partially_refunded"},
    "anomaly": {"anomaly": "true"},
    "late": {"late": "true"},
    "created last day": {"created_from": _iso(timedelta(days=1))},
    "created 60-61 days ago": {
        "created_from": _iso(timedelta(days=61)),
        "created_to": _iso(timedelta(days=60)),
    },
    "updated last hour": {"updated_from": _iso(timedelta(hours=1))},
    "updated before 80 days ago": {"updated_to": _iso(timedelta(days=80))},
    "merchant_ref prefix": {"merchant_ref_prefix": "ord-00042"},
    "provider_ref prefix": {"provider_ref_prefix": "prv-ab"},
    "provider + status + created week": {
        "provider": "ccpayment",
        "status": "failed",
        "created_from": _iso(timedelta(days=7)),
    },
    "status paid, no anomaly, on time": {"status": "paid", "anomaly": "false", "late": "false"},
    "charged_back + anomaly (none match)": {"status": "charged_back", "anomaly": "true"},
}


async def fill(conn: asyncpg.Connection, rows: int) -> float:
    queries = load_queries(Path(__file__).with_name("search.sql"))
    started = time.monotonic()
    await conn.execute(queries["generate_payments"], rows, NOW)
    await conn.execute(queries["analyze_payments"])
    return time.monotonic() - started


async def deep_cursor(conn: asyncpg.Connection, rows: int) -> str:
    """A cursor in the middle of the table (page rows/100 of the unfiltered order)."""
    queries = load_queries(Path(__file__).with_name("search.sql"))
    row = await conn.fetchrow(queries["middle_row"], rows // 2)
    assert row is not None
    return Cursor(created_at=row["created_at"], id=row["id"]).encode()


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found += _nodes(child)
    return found


async def explain(
    conn: asyncpg.Connection, queries: dict[str, str], filters: SearchFilters
) -> tuple[float, dict[str, Any]]:
    # EXPLAIN of the API's own statement (static text: no value is ever spliced in).
    sql = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + queries[filters.query_name]
    async with conn.transaction(readonly=True):
        await conn.execute(queries["search_custom_plans"])
        doc = orjson.loads(await conn.fetchval(sql, *filters.query_args()))
    top = doc[0]
    return float(top["Execution Time"]), top["Plan"]


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


async def run(rows: int, runs: int, pg_url: str) -> dict[str, Any]:
    async with created(pg_url) as database:
        conn = await database.connect()
        try:
            fill_seconds = await fill(conn, rows)
            print(f"filled {rows} payments in {fill_seconds:.1f} s", file=sys.stderr)
            deep = {"cursor": await deep_cursor(conn, rows)}
            cases = dict(CASES) | {f"cursor {rows // 2:,} rows deep": deep}
            queries = dict(load_queries(QUERIES_PATH))
            results: dict[str, dict[str, Any]] = {}
            for label, params in cases.items():
                filters = parse_filters(params)
                times: list[float] = []
                plan: dict[str, Any] = {}
                for _ in range(runs):
                    ms, plan = await explain(conn, queries, filters)
                    times.append(ms)
                indexes = sorted({n["Index Name"] for n in _nodes(plan) if "Index Name" in n})
                results[label] = {
                    "params": params,
                    "p50_ms": statistics.median(times),
                    "p95_ms": p95(times),
                    "max_ms": max(times),
                    "rows": int(plan.get("Actual Rows", 0)),
                    "indexes": indexes,
                }
        finally:
            await conn.close()
    every = [float(r["p95_ms"]) for r in results.values()]
    return {
        "rows": rows,
        "runs_per_case": runs,
        "postgres": pg_url.rsplit("@", 1)[-1],
        "at": datetime.now(UTC).isoformat(),
        "fill_seconds": fill_seconds,
        "cases": results,
        "worst_case_p95_ms": max(every),
    }


def print_table(report: dict[str, Any]) -> None:
    print(f"GET /v1/payments on {report['rows']:,} payments, {report['runs_per_case']} runs a case")
    print(f"{'case':40} {'p50 ms':>8} {'p95 ms':>8} {'rows':>5}  indexes")
    for label, r in report["cases"].items():
        print(
            f"{label:40} {r['p50_ms']:8.2f} {r['p95_ms']:8.2f} {r['rows']:5}  "
            f"{', '.join(r['indexes']) or 'seq scan'}"
        )
    print(f"worst case p95: {report['worst_case_p95_ms']:.2f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--pg-url", default=PG_URL, help="a Postgres admin URL")
    args = parser.parse_args()
    report = asyncio.run(run(args.rows, args.runs, args.pg_url))
    print_table(report)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"search-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
