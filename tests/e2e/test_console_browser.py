"""The console in headless Chromium, against `paysync all --console` and the simulator:
log in, find a simulated payment and open its timeline, replay a dead letter and see the
worker apply it, see the overview's charts; unauthenticated visitors get the login page
and a POST without the CSRF token is refused. Screenshots go to the test's tmp dir."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import orjson
import pytest

from paysync.connections import broker_of
from tests.integration.test_dead import bury
from tests.integration.test_worker import credit
from tests.support.browser import chromium
from tests.support.config import (
    ACCOUNT,
    API_TABLE,
    TOKEN_ENV,
    RunConfig,
    free_port,
    with_tokens,
    write_config,
)
from tests.support.process import run_command, running
from tests.support.services import BrokerNames
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]


@pytest.fixture
def console_config(tmp_path: Path, db_url: str, names: BrokerNames) -> RunConfig:
    port = free_port()
    table = f'[console]\nhost = "127.0.0.1"\nport = {port}\n'
    return with_tokens(
        write_config(tmp_path, database_url=db_url, prefix=names.prefix, extra=API_TABLE + table)
    )


async def status_of(db: asyncpg.Connection, ref: str) -> str | None:
    status: str | None = await db.fetchval(
        "SELECT status FROM payments WHERE merchant_ref = $1", ref
    )
    return status


async def test_an_operator_uses_the_console_in_chromium(
    console_config: RunConfig, db: asyncpg.Connection, tmp_path: Path
) -> None:
    config = console_config
    base = f"http://127.0.0.1:{config.settings.console.port}"
    shots = tmp_path / "screenshots"
    shots.mkdir()
    async with running(config, "all", "--console"):
        code, out = await run_command(config, "simulate", "ccpayment", "--payments", "1")
        assert code == 0, out
        [ref] = orjson.loads(out)["payments"]
        await eventually(lambda: status_of(db, ref), what="the simulated payment applied")
        # A dead letter: a credit the worker gave up on, to be replayed once "fixed".
        link = broker_of(config.settings, "test")
        link.start()
        await link.wait_connected(10)
        dead = credit("dead-letter-1", "dl-1", "25")
        await bury(link, dead, "MalformedMessage: a parser bug, since fixed")
        await link.close()

        async with chromium() as browser:
            page = await (
                await browser.new_context(viewport={"width": 1280, "height": 900})
            ).new_page()
            await page.goto(f"{base}/dead")
            assert page.url == f"{base}/login"  # unauthenticated: the login page
            await page.screenshot(path=shots / "1-login.png")
            await page.get_by_label("API token").fill("wrong")
            await page.get_by_role("button", name="Log in").click()
            assert (
                await page.get_by_role("alert").inner_text() == "That is not one of the API tokens."
            )
            await page.get_by_label("API token").fill(config.env[TOKEN_ENV])
            await page.get_by_role("button", name="Log in").click()
            await page.wait_for_url(f"{base}/")

            # Overview: its charts are drawn.
            assert await page.locator("svg.bars").count() >= 1
            assert await page.locator("svg.bars rect").count() >= 1
            await page.screenshot(path=shots / "2-overview.png", full_page=True)

            # Search the simulated payment and open its timeline.
            await page.get_by_role("link", name="Payments").click()
            await page.get_by_label("Merchant ref starts with").fill(ref[:12])
            await page.get_by_role("button", name="Search").click()
            await page.get_by_role("link", name=f"ccpayment/{ACCOUNT}/{ref}").click()
            await page.get_by_role("heading", name="Transitions", exact=False).wait_for()
            assert ref in await page.get_by_role("heading", level=1).inner_text()
            await page.locator("summary").first.click()  # the raw body viewer
            assert "pay_status" in await page.locator("pre.raw").first.inner_text()
            await page.screenshot(path=shots / "3-timeline.png", full_page=True)

            # A POST without the CSRF token is refused (the browser's own cookies).
            refused = await page.request.post(f"{base}/dead/replay", form={"id": dead.message_id})
            assert refused.status == 403

            # Replay the dead letter, with its confirm step, and see it applied.
            await page.get_by_role("link", name="Dead letters").click()
            await page.get_by_role("link", name=f"Replay… {dead.message_id}").click()
            await page.get_by_role("heading", name="Replay this dead letter?").wait_for()
            await page.screenshot(path=shots / "4-dead-confirm.png")
            await page.get_by_role("button", name="Replay it").click()
            assert "replayed 1" in await page.get_by_role("status").inner_text()
            await eventually(
                lambda: status_of(db, "dead-letter-1"), what="the replayed dead letter applied"
            )
            await page.goto(f"{base}/payments/ccpayment/{ACCOUNT}/dead-letter-1")
            assert "paid" in await page.locator("p.lead").inner_text()
            await page.screenshot(path=shots / "5-replayed.png", full_page=True)

            # A fresh browser context has no session: the login page again.
            other = await (await browser.new_context()).new_page()
            await other.goto(f"{base}/payments/ccpayment/{ACCOUNT}/{ref}")
            assert other.url == f"{base}/login"
    for name in ("1-login", "2-overview", "3-timeline", "4-dead-confirm", "5-replayed"):
        assert (shots / f"{name}.png").stat().st_size > 5000
    print(f"\nconsole screenshots: {shots}")
