"""Headless Chromium for browser tests: Debian's chromium, driven by Playwright.

Playwright's own browser downloads are never used (``deploy/bootstrap.sh browser``
installs Debian's ``chromium``); it runs as root, so without the sandbox, and with every
background service off (a fresh profile, no network but the test's)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from playwright.async_api import Browser, async_playwright

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium_path() -> str | None:
    return os.environ.get("PAYSYNC_CHROMIUM") or shutil.which("chromium")


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    path = chromium_path()
    assert path, "no chromium on PATH: run deploy/bootstrap.sh browser (make test does)"
    async with async_playwright() as pw:
        # Playwright gives each launch a fresh temporary profile (--user-data-dir).
        browser = await pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()
