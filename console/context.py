"""What the console's pages share: their dependencies (an app key), the request's session,
and the helpers every page and action uses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

import asyncpg
from aiohttp import web

from console.session import COOKIE, Session, Sessions
from paysync.broker import Broker
from paysync.settings import Settings
from paysync.timeline.store import Timelines


@dataclass(frozen=True, slots=True, kw_only=True)
class Deps:
    settings: Settings
    pool: asyncpg.Pool
    broker: Broker
    sessions: Sessions
    queries: Mapping[str, str]
    timelines: Timelines
    search_queries: Mapping[str, str]
    replay_queries: Mapping[str, str]


DEPS = web.AppKey("console", Deps)
SESSION = web.RequestKey("console_session", Session)


def payment_path(provider: str, account: str, merchant_ref: str) -> str:
    """The console page of a payment: each part one percent-encoded segment."""
    return "/payments/" + "/".join(
        quote(part, safe="") for part in (provider, account, merchant_ref)
    )


def base_context(request: web.Request) -> dict[str, object]:
    """What every template gets: the form's CSRF token, whether logged in, the path."""
    session: Session | None = request.get(SESSION)
    deps = request.app[DEPS]
    return {
        "csrf": deps.sessions.csrf_token(session) if session else "",
        "logged_in": deps.sessions.authenticated(session),
        "path": request.path,
    }


def set_session(response: web.StreamResponse, request: web.Request, session: Session) -> None:
    deps = request.app[DEPS]
    response.set_cookie(
        COOKIE,
        deps.sessions.dump(session),
        max_age=deps.sessions.max_age,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=deps.settings.console.secure_cookies,
    )
