"""What the ingest routes share: typed app keys, rejections, body reading and checks."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import zlib
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime

import aiohttp
import asyncpg
import orjson
from aiohttp import HttpVersion11, web
from multidict import CIMultiDictProxy

from ingest.replay import ReplayGuard
from paysync.broker import Broker
from paysync.errors import AuthenticationError
from paysync.metrics import Metrics
from paysync.settings import ApiSettings, Settings
from paysync.timeline.store import Timelines
from providers.registry import Provider

Clock = Callable[[], datetime]


class ClockHolder:
    """AppKey needs a class; this wraps the injectable clock."""

    __slots__ = ("now",)

    def __init__(self, now: Clock) -> None:
        self.now = now


SETTINGS = web.AppKey("settings", Settings)
BROKER = web.AppKey("broker", Broker)
REGISTRY = web.AppKey("registry", Mapping[str, Provider])
CLOCK = web.AppKey("clock", ClockHolder)
METRICS = web.AppKey("metrics", Metrics)
REPLAYS = web.AppKey("replays", ReplayGuard)
# The /v1 sub-application's own keys.
API_SETTINGS = web.AppKey("api_settings", ApiSettings)
POOL = web.AppKey("pool", asyncpg.Pool)
QUERIES = web.AppKey("queries", Mapping[str, str])
TIMELINES = web.AppKey("timelines", Timelines)
# The client session of the provider calls ``POST /v1/checkouts`` makes.
SESSION = web.AppKey("session", aiohttp.ClientSession)


# Refusals after which the rest of the body may still be on its way: the connection is
# closed, never reused with unread bytes on it.
_CLOSING = frozenset({408, 413})


def reject(status: int, reason: str) -> web.Response:
    response = web.json_response({"error": reason}, status=status)
    if status in _CLOSING:
        response.force_close()
    return response


class AcceptedLog:
    """Which accepted callbacks get their info line: the first, then every ``every``-th.
    ``debug``: the others are logged at debug (only worth building when it is on)."""

    __slots__ = ("_seen", "debug", "every")

    def __init__(self, every: int, *, debug: bool) -> None:
        self.every = every
        self.debug = debug
        self._seen = 0

    def due(self) -> bool:
        due = self._seen % self.every == 0
        self._seen += 1
        return due


class RequestIds:
    """Request ids for log lines: unique within a process (a counter) and across processes
    and restarts (a random prefix), far cheaper than a UUID per request."""

    __slots__ = ("_next", "_prefix")

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(6)
        self._next = itertools.count(1)

    def new(self) -> str:
        return f"{self._prefix}-{next(self._next):x}"


ACCEPTED_LOG = web.AppKey("accepted_log", AcceptedLog)
REQUEST_IDS = web.AppKey("request_ids", RequestIds)


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
    """The whole body, decoded, within the size limit and ``ingest.body_timeout_seconds``
    (a client trickling its body would otherwise hold a connection and a task for ever).
    A declared ``Content-Length`` over the limit is refused before anything is read."""
    settings = request.config_dict[SETTINGS].ingest
    limit = settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise Rejected(413, "body_too_large")
    try:
        async with asyncio.timeout(settings.body_timeout_seconds):
            raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise Rejected(413, "body_too_large") from None
    except TimeoutError:
        raise Rejected(408, "body_timeout") from None
    except web.RequestPayloadError:
        # aiohttp could not read the body (broken chunked framing).
        raise Rejected(400, "unreadable_body") from None
    return decoded(raw, request.headers.getall("Content-Encoding", []), limit)


def decoded(raw: bytes, encodings: list[str], limit: int) -> bytes:
    """``raw`` decoded from its one ``Content-Encoding`` (gzip or deflate), strictly: the
    stream must end where the body ends (a gzip trailer included), and decode to at most
    ``limit`` bytes. The server's own decoding is off (``ingest/server.py``): it would
    accept a stream without its trailer and pass on a truncated one's prefix."""
    if not encodings or [e.strip().lower() for e in encodings] == ["identity"]:
        return raw
    coding = encodings[0].strip().lower() if len(encodings) == 1 else ""
    if coding in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif coding == "deflate":
        # RFC 9110's deflate is zlib-wrapped; some senders send raw deflate (as aiohttp,
        # curl and browsers accept): told apart by the zlib header's checksum.
        wrapped = len(raw) >= 2 and raw[0] & 0x0F == 8 and (raw[0] << 8 | raw[1]) % 31 == 0
        wbits = zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS
    else:
        raise Rejected(415, "unsupported_content_encoding")
    decoder = zlib.decompressobj(wbits)
    try:
        body = decoder.decompress(raw, limit + 1)
    except zlib.error:
        raise Rejected(400, "unreadable_body") from None
    if len(body) > limit:
        raise Rejected(413, "body_too_large")
    if not decoder.eof or decoder.unused_data:
        raise Rejected(400, "unreadable_body")
    return body


async def expect_continue(request: web.Request) -> None:
    """``Expect: 100-continue``: the go-ahead only for a body that may be accepted. A
    declared length over ``ingest.max_body_bytes`` gets no ``100 Continue``; the handler
    then refuses it with ``413`` at once, before the client sends anything."""
    if request.version != HttpVersion11:
        return
    if request.headers.get("Expect", "").lower() != "100-continue":
        raise web.HTTPExpectationFailed(text="Unknown Expect: only 100-continue")
    limit = request.config_dict[SETTINGS].ingest.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return
    # What aiohttp's default expect handler sends.
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")


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
    # A NUL can only be in a JSON string escaped (a raw control byte is malformed JSON):
    # a body without the escape needs no walk.
    if b"\\u0000" in body and _holds_nul(doc):
        # Postgres can store no NUL (text, jsonb): the worker could never apply it.
        raise Rejected(400, "nul_character")


def _holds_nul(doc: object) -> bool:
    """A NUL in any key or string of a parsed JSON document (iteratively: documents may
    nest as deep as the parser allows)."""
    pending = [doc]
    while pending:
        node = pending.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return True
        elif isinstance(node, dict):
            pending.extend(node.keys())
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return False
