"""What the ingest routes share: typed app keys, rejections, body reading, publishing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime

import asyncpg
import orjson
from aiohttp import web
from multidict import CIMultiDictProxy

from ingest.replay import ReplayGuard
from paysync.broker import Broker
from paysync.broker import publish_envelope as publish
from paysync.errors import AuthenticationError
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
    """The whole body, within the size limit and ``ingest.body_timeout_seconds`` (a client
    trickling its body would otherwise hold a connection and a task for ever)."""
    timeout = request.config_dict[SETTINGS].ingest.body_timeout_seconds
    try:
        async with asyncio.timeout(timeout):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise Rejected(413, "body_too_large") from None
    except TimeoutError:
        raise Rejected(408, "body_timeout") from None
    except web.RequestPayloadError:
        # aiohttp could not decode the body (a broken Content-Encoding or chunked framing).
        raise Rejected(400, "unreadable_body") from None


class SingleValued(Mapping[str, str]):
    """Request headers as a provider's scheme reads them. A header sent more than once is
    ambiguous (HTTP stacks disagree on which copy counts; a proxy may check another copy
    than ours), so reading one refuses the request: ``401 duplicate_header``. Headers the
    scheme does not read may repeat."""

    __slots__ = ("_headers",)

    def __init__(self, headers: CIMultiDictProxy[str]) -> None:
        self._headers = headers

    def __getitem__(self, name: str) -> str:
        values = self._headers.getall(name, [])
        if len(values) > 1:
            raise AuthenticationError("duplicate_header", name)
        if not values:
            raise KeyError(name)
        return values[0]

    def __iter__(self) -> Iterator[str]:
        return iter({name.lower(): None for name in self._headers})

    def __len__(self) -> int:
        return len({name.lower() for name in self._headers})


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
