"""The console's guard against real Postgres and RabbitMQ: what an unauthenticated
visitor gets, the session cookie, CSRF on every POST, and the pages it renders."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from console.session import COOKIE
from paysync.db import create_pool, load_queries
from reconciler.checker import Check, Due
from reconciler.rounds import QUERIES_PATH as RECONCILER_QUERIES
from reconciler.rounds import record_run
from schemas.status import Status
from tests.integration.test_dead import bury
from tests.integration.test_worker import apply, credit
from tests.support.amqp import depth
from tests.support.config import ACCOUNT, TOKEN_ENV, RunConfig
from tests.support.console import console_serving, csrf_of, login
from worker.store import Store

pytestmark = pytest.mark.integration


def client() -> aiohttp.ClientSession:
    # The console is on 127.0.0.1: cookies for an IP address need the unsafe jar.
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def test_unauthenticated_visitors_get_the_login_page(api_config: RunConfig) -> None:
    async with console_serving(api_config.settings) as (url, _), client() as session:
        for path in ("/", "/payments", "/dead", "/reconcile", "/payments/a/b/c"):
            async with session.get(f"{url}{path}") as resp:
                assert (resp.status, resp.url.path) == (200, "/login"), path
                html = await resp.text()
                assert 'type="password"' in html
                assert 'name="csrf"' in html
                assert "Content-Security-Policy" in resp.headers
        async with session.post(f"{url}/events/replay", data={"since": "1h"}) as resp:
            assert resp.status == 403


async def test_login_sets_a_signed_httponly_strict_cookie(api_config: RunConfig) -> None:
    token = api_config.env[TOKEN_ENV]
    async with console_serving(api_config.settings) as (url, _), client() as session:
        refused = await login(session, url, "not-a-token")
        assert refused.status == 401
        resp = await login(session, url, token)
        assert resp.status == 303
        assert resp.headers["Location"] == "/"
        cookie = resp.cookies[COOKIE]
        assert cookie["httponly"]
        assert cookie["samesite"] == "Strict"
        assert cookie["path"] == "/"
        assert token not in cookie.value
        async with session.get(f"{url}/") as page:
            assert page.url.path == "/"
            assert "Transitions by source" in await page.text()
        # A tampered cookie is no session.
        session.cookie_jar.clear()
        session.cookie_jar.update_cookies({COOKIE: cookie.value[:-2] + "xx"})
        async with session.get(f"{url}/payments") as page:
            assert page.url.path == "/login"


async def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
    api_config: RunConfig, store: Store, names
) -> None:
    async with console_serving(api_config.settings) as (url, broker), client() as session:
        env = credit("cs-1", "cs-1-1", "25")
        await bury(broker, env, "MalformedMessage: test")
        await login(session, url, api_config.env[TOKEN_ENV])
        async with session.post(f"{url}/dead/replay", data={"id": env.message_id}) as resp:
            assert resp.status == 403
        async with session.post(
            f"{url}/dead/replay", data={"id": env.message_id, "csrf": "0" * 64}
        ) as resp:
            assert resp.status == 403
        assert await depth(names.topology.dead_queue) == 1
        assert await depth(names.topology.inbound_queue) == 0
        async with session.get(f"{url}/dead/replay", params={"id": env.message_id}) as page:
            csrf = csrf_of(await page.text())
        async with session.post(
            f"{url}/dead/replay", data={"id": env.message_id, "csrf": csrf}
        ) as resp:
            assert resp.status == 200
            assert "replayed 1" in await resp.text()
        assert await depth(names.topology.dead_queue) == 0
        assert await depth(names.topology.inbound_queue) == 1


async def test_the_pages_render_a_payment_and_its_timeline(
    api_config: RunConfig, store: Store, tmp_path: Path
) -> None:
    await apply(store, credit("cs-<b>&", "cs-2-1", "10"))
    async with console_serving(api_config.settings) as (url, _), client() as session:
        await login(session, url, api_config.env[TOKEN_ENV])
        async with session.get(f"{url}/payments", params={"merchant_ref_prefix": "cs-"}) as r:
            html = await r.text()
            assert r.status == 200
            assert "cs-&lt;b&gt;&amp;" in html
            assert "<b>&" not in html
            assert "/payments/ccpayment/shop/cs-%3Cb%3E%26" in html
        async with session.get(f"{url}/payments/ccpayment/{ACCOUNT}/cs-%3Cb%3E%26") as r:
            html = await r.text()
            assert r.status == 200
            assert "underpaid" in html
            assert "raw body" in html
        async with session.get(f"{url}/payments", params={"late": "maybe"}) as r:
            assert r.status == 400
            assert "true or false" in await r.text()
        async with session.get(f"{url}/payments/ccpayment/{ACCOUNT}/nope") as r:
            assert r.status == 404
        for path in ("/reconcile", "/dead", "/?window=day", "/events/replay?since=1h"):
            async with session.get(f"{url}{path}") as r:
                assert r.status == 200, path


async def test_a_reconcile_run_shows_its_drift_table(
    api_config: RunConfig, store: Store, db_url: str, db
) -> None:
    """record_run keeps the checks that were not in sync; the console shows them."""
    await apply(store, credit("rc-1", "rc-1-1", "10"))
    await apply(store, credit("rc-2", "rc-2-1", "25"))
    rows = await db.fetch("SELECT * FROM payments ORDER BY merchant_ref")
    dues = [Due.from_row(r) for r in rows]
    checks = [
        Check(
            payment=dues[0],
            outcome="drift",
            provider_status="success",
            their_status=Status.PAID,
            action="repair",
        ),
        Check(
            payment=dues[1], outcome="in_sync", provider_status="success", their_status=Status.PAID
        ),
    ]
    queries = load_queries(RECONCILER_QUERIES)
    pool = await create_pool(db_url, max_size=1)
    try:
        async with pool.acquire() as conn:
            run_id = await conn.fetchval(queries["insert_run"], "operator", {}, False)
        await record_run(pool, queries, run_id, checks)
    finally:
        await pool.close()
    assert await db.fetchval("SELECT count(*) FROM reconcile_checks") == 1
    async with console_serving(api_config.settings) as (url, _), client() as session:
        await login(session, url, api_config.env[TOKEN_ENV])
        async with session.get(f"{url}/reconcile") as r:
            assert f'href="/reconcile/{run_id}"' in await r.text()
        async with session.get(f"{url}/reconcile/{run_id}") as r:
            html = await r.text()
        assert "ccpayment/shop/rc-1" in html
        assert "rc-2" not in html  # in sync: counted, not listed
        assert "repair" in html
        async with session.get(f"{url}/reconcile/999999") as r:
            assert r.status == 404
