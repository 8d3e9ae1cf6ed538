"""``POST /v1/events/replay``: a consumer that missed events (a ``seq`` gap, a queue that was
deleted) asks for them again; ``paysync/replay.py`` re-publishes them to ``paysync.events``
with their original ``event_id``. The request names one payment, or a time to replay from
(optionally one provider and status); the answer comes once every copy was confirmed."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from ingest.http import BROKER, POOL, SETTINGS
from paysync.db import load_queries
from paysync.errors import DatabaseUnavailable
from paysync.logging import get_logger
from paysync.replay import QUERIES_PATH, ReplaySelection, TooManyEvents, replay_events
from schemas.status import Status

log = get_logger(__name__)

REPLAY_QUERIES = web.AppKey("replay_queries", Mapping[str, str])
# One request replays at most this many events (at API_RATE a second): narrow it for more.
API_MAX_EVENTS = 10_000
API_RATE = 500.0
_FIELDS = ("provider", "account", "merchant_ref", "since", "status")


def add_replay_routes(api: web.Application) -> None:
    api[REPLAY_QUERIES] = load_queries(QUERIES_PATH)
    api.router.add_post("/events/replay", request_replay)


def _refused(reason: str, status: int = 400, **extra: Any) -> web.Response:
    log.info("api_request_rejected", reason=reason)
    return web.json_response({"error": reason, **extra}, status=status)


def parse_selection(doc: object) -> ReplaySelection:
    """The request body as a selection; ``ValueError`` with the fields that are wrong."""
    if not isinstance(doc, dict):
        raise _Invalid({"body": "a JSON object"})
    problems: dict[str, str] = {}
    for name in doc:
        if name not in _FIELDS:
            problems[name] = "unknown field"
    texts: dict[str, str] = {}
    for name in _FIELDS:
        value = doc.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not value or "\x00" in value or len(value) > 200:
            problems[name] = "a non-empty string without NUL, at most 200 characters"
        else:
            texts[name] = value
    since = None
    if "since" in texts:
        try:
            since = datetime.fromisoformat(texts["since"].upper())
        except ValueError:
            problems["since"] = "an RFC 3339 time with a zone, e.g. 2026-11-21T10:00:00Z"
        else:
            if since.tzinfo is None:
                problems["since"] = "give the time zone (Z or an offset)"
            since = since.astimezone(UTC) if since.tzinfo else None
    status = None
    if "status" in texts:
        if texts["status"] not in Status.__members__.values():
            problems["status"] = "not a status"
        else:
            status = Status(texts["status"])
    if problems:
        raise _Invalid(problems)
    try:
        return ReplaySelection(
            provider=texts.get("provider"),
            account=texts.get("account"),
            merchant_ref=texts.get("merchant_ref"),
            since=since,
            status=status,
        )
    except ValueError as exc:
        raise _Invalid({"body": str(exc)}) from None


class _Invalid(ValueError):
    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__(", ".join(sorted(fields)))
        self.fields = fields


async def request_replay(request: web.Request) -> web.Response:
    if request.content_type != "application/json":
        return _refused("unsupported_media_type", 415)
    try:
        doc = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return _refused("malformed_json")
    try:
        selection = parse_selection(doc)
    except _Invalid as exc:
        return _refused("invalid_replay", fields=exc.fields)
    settings = request.app[SETTINGS]
    try:
        report = await replay_events(
            request.app[POOL],
            request.app[REPLAY_QUERIES],
            request.app[BROKER],
            selection,
            rate=API_RATE,
            confirm_timeout=settings.worker.publish_timeout_seconds,
            max_events=API_MAX_EVENTS,
        )
    except TooManyEvents:
        return _refused("too_many_events", max_events=API_MAX_EVENTS)
    except DatabaseUnavailable as exc:
        log.warning("replay_unavailable", error=str(exc))
        return _refused("database_unavailable", 503)
    doc = report.to_json()
    del doc["events"]
    if not report.ok:
        return web.json_response({"error": "broker_unavailable", **doc}, status=503)
    return web.json_response(doc)
