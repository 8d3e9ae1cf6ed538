"""What the ingest routes share: typed app keys, rejections, body reading, publishing."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

import asyncpg
import orjson
from aiohttp import web

from ingest.replay import ReplayGuard
from paysync.amqp import Broker
from paysync.amqp import publish_envelope as publish
from paysync.metrics import Metrics
from paysync.settings import ApiSettings, Settings
from providers.base import ProviderAdapter
from schemas.envelope import Envelope

Clock = Callable[[], datetime]


class ClockHolder:
    """AppKey needs a class; this wraps the injectable clock."""

    __slots__ = ("now",)

    def __init__(self, now: Clock) -> None:
        self.now = now


SETTINGS = web.AppKey("settings", Settings)
BROKER = web.AppKey("broker", Broker)
REGISTRY = web.AppKey("registry", Mapping[str, ProviderAdapter])
CLOCK = web.AppKey("clock", ClockHolder)
METRICS = web.AppKey("metrics", Metrics)
REPLAYS = web.AppKey("replays", ReplayGuard)
# The /v1 sub-application's own keys.
API_SETTINGS = web.AppKey("api_settings", ApiSettings)
POOL = web.AppKey("pool", asyncpg.Pool)
QUERIES = web.AppKey("queries", Mapping[str, str])


def reject(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


class Rejected(Exception):
    """A request refused with an HTTP status and a reason code (the body and metric label)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def media_type(request: web.Request) -> str | None:
    """The request's Content-Type without parameters, lowercased; ``None`` when absent."""
    raw = request.headers.get("Content-Type")
    return None if raw is None else raw.partition(";")[0].strip().lower()


async def read_body(request: web.Request) -> bytes:
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise Rejected(413, "body_too_large") from None


def check_json(body: bytes) -> None:
    """Ingest parses nothing it does not need, but never forwards what no parser can read:
    a body must be UTF-8 and one JSON object (a signed but unreadable body is answered
    400, so the provider's own logs show the fault)."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(400, "invalid_utf8") from None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Rejected(400, "malformed_json") from None
    if not isinstance(doc, dict):
        raise Rejected(400, "not_a_json_object")


async def publish_envelope(broker: Broker, envelope: Envelope, settings: Settings) -> None:
    await publish(broker, envelope, settings.ingest.confirm_timeout_seconds)
