"""``GET /v1/payments``: the payment search of the ``/v1`` API (``paysync/search.py``)."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from aiohttp import web

from ingest.http import POOL
from paysync.db import load_queries
from paysync.errors import DatabaseUnavailable
from paysync.logging import get_logger
from paysync.search import QUERIES_PATH, InvalidSearch, parse_filters, search_payments

log = get_logger(__name__)

SEARCH_QUERIES = web.AppKey("search_queries", Mapping[str, str])


def add_search_routes(api: web.Application) -> None:
    api[SEARCH_QUERIES] = load_queries(QUERIES_PATH)
    api.router.add_get("/payments", list_payments)


async def list_payments(request: web.Request) -> web.Response:
    query = request.query
    try:
        filters = parse_filters({name: query.getall(name) for name in query})
    except InvalidSearch as exc:
        log.info("api_request_rejected", reason="invalid_search", fields=sorted(exc.fields))
        return web.json_response({"error": "invalid_search", "fields": exc.fields}, status=400)
    try:
        page = await search_payments(request.app[POOL], request.app[SEARCH_QUERIES], filters)
    except DatabaseUnavailable as exc:
        log.warning("search_unavailable", error=str(exc))
        return web.json_response({"error": "database_unavailable"}, status=503)
    log.info("payments_searched", found=len(page.payments), more=page.next_cursor is not None)
    return web.Response(body=orjson.dumps(page.to_json()), content_type="application/json")
