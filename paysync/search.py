"""Payment search: the filters of ``GET /v1/payments`` (also ``paysync payment list`` and the
console), their validation, the keyset cursor and the query.

Every filter is optional. Results are newest first, ordered by ``(created_at, id)``, which
no later write changes, so a cursor (the last row's key, opaque to clients) pages through
a stable order: rows created after the first page never shift the later ones.
Bad input raises ``InvalidSearch`` naming every bad field at once; nothing is queried.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from paysync.db import translated_errors
from paysync.timeline.document import json_value
from schemas.status import Status

QUERIES_PATH = Path(__file__).with_name("search.sql")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_PREFIX = 200
PARAMETERS = (
    "provider",
    "account",
    "status",
    "anomaly",
    "late",
    "created_from",
    "created_to",
    "updated_from",
    "updated_to",
    "merchant_ref_prefix",
    "provider_ref_prefix",
    "limit",
    "cursor",
)
_TIMES = ("created_from", "created_to", "updated_from", "updated_to")
_TEXTS = ("provider", "account", "merchant_ref_prefix", "provider_ref_prefix")


class InvalidSearch(ValueError):
    """Search parameters that cannot be used: ``fields`` maps each to what is wrong."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        super().__init__(", ".join(f"{k}: {v}" for k, v in sorted(fields.items())))
        self.fields = dict(fields)


@dataclass(frozen=True, slots=True, kw_only=True)
class Cursor:
    created_at: datetime
    id: int

    def encode(self) -> str:
        raw = orjson.dumps([self.created_at.isoformat(), self.id])
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            at, ident = orjson.loads(raw)
            moment = datetime.fromisoformat(at)
        except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError):
            raise ValueError("not a cursor this API returned") from None
        if moment.tzinfo is None or not isinstance(ident, int) or isinstance(ident, bool):
            raise ValueError("not a cursor this API returned")
        return cls(created_at=moment, id=ident)


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchFilters:
    provider: str | None = None
    account: str | None = None
    statuses: tuple[Status, ...] = ()
    anomaly: bool | None = None
    late: bool | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    updated_from: datetime | None = None
    updated_to: datetime | None = None
    merchant_ref_prefix: str | None = None
    provider_ref_prefix: str | None = None
    limit: int = DEFAULT_LIMIT
    cursor: Cursor | None = field(default=None)

    def with_cursor(self, cursor: Cursor | None) -> SearchFilters:
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return SearchFilters(**{**values, "cursor": cursor})

    @property
    def query_name(self) -> str:
        """Which form of the search suits these filters (see ``search.sql``)."""
        clustered = (
            self.merchant_ref_prefix,
            self.provider_ref_prefix,
            self.updated_from,
            self.updated_to,
        )
        fenced = any(value is not None for value in clustered)
        return "search_payments_fenced" if fenced else "search_payments"

    def query_args(self) -> tuple[Any, ...]:
        """The ``$1..$14`` of ``search_payments``."""
        return (
            self.provider,
            self.account,
            [s.value for s in self.statuses] or None,
            self.anomaly,
            self.late,
            self.created_from,
            self.created_to,
            self.updated_from,
            self.updated_to,
            _like_prefix(self.merchant_ref_prefix),
            _like_prefix(self.provider_ref_prefix),
            self.cursor.created_at if self.cursor else None,
            self.cursor.id if self.cursor else None,
            self.limit + 1,  # one more: tells whether there is a next page
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Page:
    payments: list[dict[str, Any]]
    next_cursor: str | None

    def to_json(self) -> dict[str, Any]:
        return {"payments": self.payments, "next_cursor": self.next_cursor}


def parse_filters(params: Mapping[str, str | Iterable[str]]) -> SearchFilters:
    """Filters from query parameters (each a string, or repeated: several strings).

    ``status`` is a comma-separated list (or repeated); booleans are ``true``/``false``;
    times are RFC 3339 with a zone. Raises ``InvalidSearch`` naming every bad field.
    """
    problems: dict[str, str] = {}
    values: dict[str, list[str]] = {
        name: [raw] if isinstance(raw, str) else list(raw) for name, raw in params.items()
    }
    for name in values:
        if name not in PARAMETERS:
            problems[name] = "unknown parameter"
    one: dict[str, str] = {}
    for name, given in values.items():
        if name in PARAMETERS and name != "status":
            if len(given) != 1:
                problems[name] = "give it once"
            else:
                one[name] = given[0]
    for name, text in one.items():
        if "\x00" in text:
            problems[name] = "must not contain a NUL character"
    parsed: dict[str, Any] = {}
    for name in _TEXTS:
        if name in one and name not in problems:
            _text(name, one[name], parsed, problems)
    _statuses(values.get("status", []), parsed, problems)
    for name in ("anomaly", "late"):
        if name in one and name not in problems:
            _boolean(name, one[name], parsed, problems)
    for name in _TIMES:
        if name in one and name not in problems:
            _time(name, one[name], parsed, problems)
    if "limit" in one and "limit" not in problems:
        _limit(one["limit"], parsed, problems)
    if "cursor" in one and "cursor" not in problems:
        try:
            parsed["cursor"] = Cursor.decode(one["cursor"])
        except ValueError as exc:
            problems["cursor"] = str(exc)
    if problems:
        raise InvalidSearch(problems)
    return SearchFilters(**parsed)


def _text(name: str, text: str, parsed: dict[str, Any], problems: dict[str, str]) -> None:
    if not text:
        problems[name] = "must not be empty (leave it out to match all)"
    elif len(text) > MAX_PREFIX:
        problems[name] = f"at most {MAX_PREFIX} characters"
    else:
        parsed[name] = text


def _statuses(given: list[str], parsed: dict[str, Any], problems: dict[str, str]) -> None:
    names = [part.strip() for text in given for part in text.split(",") if part.strip()]
    if given and not names:
        problems["status"] = "name at least one status"
        return
    unknown = sorted({n for n in names if n not in Status.__members__.values()})
    if unknown:
        problems["status"] = f"not a status: {', '.join(unknown)}"
        return
    parsed["statuses"] = tuple(dict.fromkeys(Status(n) for n in names))


def _boolean(name: str, text: str, parsed: dict[str, Any], problems: dict[str, str]) -> None:
    if text not in ("true", "false"):
        problems[name] = "true or false"
    else:
        parsed[name] = text == "true"


def _time(name: str, text: str, parsed: dict[str, Any], problems: dict[str, str]) -> None:
    try:
        moment = datetime.fromisoformat(text.upper())
    except ValueError:
        problems[name] = "an RFC 3339 time, e.g. 2026-11-21T10:00:00Z"
        return
    if moment.tzinfo is None:
        problems[name] = "give the time zone (Z or an offset)"
        return
    parsed[name] = moment.astimezone(UTC)


def _limit(text: str, parsed: dict[str, Any], problems: dict[str, str]) -> None:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        problems["limit"] = f"a whole number from 1 to {MAX_LIMIT}"
    else:
        parsed["limit"] = int(text)


def _like_prefix(prefix: str | None) -> str | None:
    """A LIKE pattern matching exactly the strings that start with ``prefix``."""
    if prefix is None:
        return None
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def shape_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A search result: the payment's columns as JSON, anomalies as a sorted list."""
    shaped = {key: json_value(value) for key, value in row.items()}
    anomaly = row.get("anomaly")
    shaped["anomaly"] = anomaly.split(",") if anomaly else []
    return shaped


async def search_payments(
    pool: asyncpg.Pool, queries: Mapping[str, str], filters: SearchFilters
) -> Page:
    """One page of payments. Raises ``DatabaseUnavailable`` when Postgres cannot answer."""
    async with (
        translated_errors(),
        pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        await conn.execute(queries["search_custom_plans"])
        rows = await conn.fetch(queries[filters.query_name], *filters.query_args())
    more = len(rows) > filters.limit
    rows = rows[: filters.limit]
    cursor = None
    if more and rows:
        last = rows[-1]
        cursor = Cursor(created_at=last["created_at"], id=last["id"]).encode()
    return Page(payments=[shape_row(dict(r)) for r in rows], next_cursor=cursor)
