"""The OpenAPI 3.1 document of /v1 against the API itself: every route has an operation and
every operation a route; the documented objects have exactly the properties served; the
document is valid OpenAPI 3.1 and served without a token; and schemathesis drives the live
API from it (no 5xx, every status, content type and body as documented)."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from openapi_spec_validator import validate

from ingest.api import build_api
from ingest.openapi import openapi_document
from paysync.connections import broker_of
from paysync.db import create_pool, load_queries
from paysync.search import QUERIES_PATH as SEARCH_QUERIES
from paysync.search import parse_filters, search_payments
from paysync.timeline.store import Timelines
from tests.integration.test_worker import apply, credit
from tests.support.config import ACCOUNT, TOKEN_ENV, RunConfig
from tests.support.ingest import serving
from worker.store import Store

pytestmark = pytest.mark.integration

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
# Examples per operation: enough to reach every documented answer, bounded for the suite.
MAX_EXAMPLES = int(os.environ.get("PAYSYNC_SCHEMATHESIS_EXAMPLES", "25"))


def operations(app: web.Application) -> set[tuple[str, str]]:
    """(method, path template) of every route of the app (HEAD comes with GET)."""
    found = set()
    for route in app.router.routes():
        if route.method in ("HEAD", "*"):
            continue
        canonical = route.resource.canonical if route.resource else ""
        found.add((route.method.lower(), re.sub(r"\{(\w+):[^}]*\}", r"{\1}", canonical)))
    return found


def documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for path, item in doc["paths"].items() for method in item}


def undocumented(app: web.Application, doc: dict[str, Any]) -> set[tuple[str, str]]:
    return operations(app) - documented(doc)


@pytest.fixture
async def api(api_config: RunConfig) -> Any:
    pool = await create_pool(api_config.settings.database_url, max_size=1)
    yield build_api(api_config.settings, pool, broker_of(api_config.settings))
    await pool.close()


async def test_every_route_has_an_operation_and_every_operation_a_route(api) -> None:
    doc = openapi_document()
    assert undocumented(api, doc) == set()
    assert documented(doc) - operations(api) == set()


async def test_a_route_added_without_an_operation_is_caught(api) -> None:
    async def handler(_request: web.Request) -> web.Response:
        return web.Response()

    api.router.add_delete("/payments/{provider}", handler)
    assert undocumented(api, openapi_document()) == {("delete", "/payments/{provider}")}


def properties(doc: dict[str, Any], name: str) -> set[str]:
    return set(doc["components"]["schemas"][name]["properties"])


async def test_documented_objects_have_exactly_the_properties_served(
    store: Store, db: asyncpg.Connection, db_url: str
) -> None:
    await apply(store, credit("oa-1", "oa-1-1", "25"))
    doc = openapi_document()
    columns = await db.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'payments'"
    )
    assert properties(doc, "Payment") == {r["column_name"] for r in columns}
    pool = await create_pool(db_url, max_size=1)
    try:
        page = await search_payments(pool, load_queries(SEARCH_QUERIES), parse_filters({}))
        timeline = await Timelines(pool).read(
            "ccpayment",
            ACCOUNT,
            "oa-1",
        )
    finally:
        await pool.close()
    assert timeline is not None
    assert properties(doc, "SearchPage") == set(page.to_json())
    assert properties(doc, "PaymentSummary") == set(page.payments[0])
    assert properties(doc, "Timeline") == set(timeline)
    for part, name in (
        ("observations", "Observation"),
        ("transitions", "Transition"),
        ("events", "EmittedEvent"),
    ):
        assert properties(doc, name) == set(timeline[part][0]), name
    assert properties(doc, "Registration") == {
        "provider",
        "account",
        "merchant_ref",
        "provider_ref",
        "amount",
        "currency",
        "expires_at",
        "metadata",
    }
    assert properties(doc, "CheckoutRequest") == {
        "provider",
        "account",
        "merchant_ref",
        "amount",
        "currency",
        "description",
        "customer",
        "return_to",
        "return_url",
        "expires_at",
        "metadata",
    }


async def test_the_document_is_valid_and_served_without_a_token(api_config: RunConfig) -> None:
    validate(openapi_document())
    async with serving(api_config.settings) as (url, _), aiohttp.ClientSession() as session:
        async with session.get(f"{url}/v1/openapi.json") as resp:
            assert resp.status == 200
            assert await resp.json() == openapi_document()
        async with session.get(f"{url}/v1/payments") as resp:
            assert resp.status == 401


def _counts(junit: Path) -> dict[str, int]:
    suite = ET.parse(junit).getroot()  # noqa: S314 (our own report file)
    suites = [suite] if suite.tag == "testsuite" else list(suite.iter("testsuite"))
    keys = ("tests", "failures", "errors", "skipped")
    return {k: sum(int(s.get(k, "0")) for s in suites) for k in keys}


async def test_schemathesis_finds_nothing_wrong_with_the_live_api(
    api_config: RunConfig, store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for i in range(3):
        await apply(store, credit(f"st-{i}", f"st-{i}-1", "10" if i else "25"))
    token = api_config.env[TOKEN_ENV]
    junit = tmp_path / "schemathesis.xml"
    async with serving(api_config.settings) as (url, link):
        await link.wait_connected(10)
        proc = await asyncio.create_subprocess_exec(
            SCHEMATHESIS,
            "run",
            f"{url}/v1/openapi.json",
            "--url",
            f"{url}/v1",
            "-H",
            f"Authorization: Bearer {token}",
            "--checks",
            "not_a_server_error,status_code_conformance,"
            "content_type_conformance,response_schema_conformance",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            "17",
            "--workers",
            "1",
            "--generation-database",
            "none",
            "--no-color",
            "--report",
            "junit",
            "--report-junit-path",
            str(junit),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
            cwd=tmp_path,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 150)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-6000:]
    counts = _counts(junit)
    with capsys.disabled():
        summary = [line for line in text.splitlines() if "passed" in line or "cases" in line]
        print(f"\nschemathesis: {counts}; {' | '.join(summary[-3:])}")
    assert counts["tests"] >= 5
    assert counts["failures"] == counts["errors"] == 0
