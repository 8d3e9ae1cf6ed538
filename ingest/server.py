"""How the ingest app is served: the aiohttp runner every process (and test) uses for it.

aiohttp's own request-body decompression is off: it accepts a gzip stream without its
trailer and hands on what a truncated stream decodes to. ingest decodes
``Content-Encoding`` itself, strictly (``ingest/http.py``), so the runner built here is
the one to serve ``ingest.app.build_app`` with.
"""

from __future__ import annotations

from aiohttp import web

from paysync.settings import IngestSettings


def ingest_runner(app: web.Application, settings: IngestSettings) -> web.AppRunner:
    """The runner for the ingest app (call ``setup()``, then start a site on it)."""
    return web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=settings.shutdown_timeout_seconds,
        auto_decompress=False,
    )
