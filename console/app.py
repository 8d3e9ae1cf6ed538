"""The console's aiohttp application: templates, the session and CSRF guard, routes.

Every page but the login form and the stylesheet needs a logged-in session: a GET without
one is sent to the login page (``303``), anything else is refused (``401``). Every POST
must carry the session's CSRF token (``403`` otherwise). Responses carry a strict
Content-Security-Policy: the pages need no script, and work as plain HTML forms.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp_jinja2
import asyncpg
import jinja2
from aiohttp import web

from console import actions, views
from console.context import DEPS, SESSION, Deps, payment_path, set_session
from console.session import COOKIE, Sessions
from paysync.broker import Broker
from paysync.db import load_queries
from paysync.logging import get_logger
from paysync.replay import QUERIES_PATH as REPLAY_QUERIES_PATH
from paysync.search import QUERIES_PATH as SEARCH_QUERIES_PATH
from paysync.settings import Settings
from paysync.timeline.store import Timelines

log = get_logger(__name__)

HERE = Path(__file__).parent
PUBLIC = frozenset({"login", "login_submit", "static"})


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_console(settings: Settings, pool: asyncpg.Pool, broker: Broker) -> web.Application:
    config = settings.console
    key = (
        config.session_key.reveal().encode()
        if config.session_key is not None
        else secrets.token_bytes(32)
    )
    app = web.Application(middlewares=[_headers, _guard], client_max_size=64 * 1024)
    app[DEPS] = Deps(
        settings=settings,
        pool=pool,
        broker=broker,
        sessions=Sessions(key, config.session_max_age_seconds, settings.api.tokens),
        queries=load_queries(HERE / "queries.sql"),
        timelines=Timelines(pool),
        search_queries=load_queries(SEARCH_QUERIES_PATH),
        replay_queries=load_queries(REPLAY_QUERIES_PATH),
    )
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
    )
    env.globals["chart"] = {"label_width": 170, "value_width": 60}
    env.globals["payment_path"] = payment_path
    r = app.router
    r.add_get("/login", views.login_page, name="login")
    r.add_post("/login", views.login_submit, name="login_submit")
    r.add_post("/logout", views.logout, name="logout")
    r.add_get("/", views.overview, name="overview")
    r.add_get("/payments", views.payments, name="payments")
    r.add_get("/payments/{provider}/{account}/{merchant_ref:[^/]+}", views.payment, name="payment")
    r.add_get("/dead", views.dead_letters, name="dead")
    r.add_get("/dead/replay", actions.dead_replay_confirm, name="dead_replay_confirm")
    r.add_post("/dead/replay", actions.dead_replay, name="dead_replay")
    r.add_get("/events/replay", actions.events_replay_confirm, name="events_replay_confirm")
    r.add_post("/events/replay", actions.events_replay, name="events_replay")
    r.add_get("/reconcile", views.reconcile_runs, name="reconcile")
    r.add_get("/reconcile/{run_id:[0-9]{1,18}}", views.reconcile_run, name="reconcile_run")
    r.add_static("/static", HERE / "static", name="static")
    return app


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    deps = request.app[DEPS]
    session = deps.sessions.load(request.cookies.get(COOKIE))
    fresh = session is None
    if session is None:
        session = deps.sessions.fresh()
    request[SESSION] = session
    name = request.match_info.route.name
    if request.method == "POST":
        form = await request.post()
        given = form.get("csrf")
        if not deps.sessions.csrf_ok(session, given if isinstance(given, str) else None):
            log.info("console_request_refused", reason="csrf", route=name)
            return web.Response(status=403, text="403: the form's CSRF token is missing or wrong")
    if name not in PUBLIC and not deps.sessions.authenticated(session):
        if request.method in ("GET", "HEAD"):
            response: web.StreamResponse = web.Response(status=303, headers={"Location": "/login"})
        else:
            response = web.Response(status=401, text="401: log in first")
        if fresh:
            set_session(response, request, session)
        return response
    response = await handler(request)
    if fresh and COOKIE not in response.cookies:
        set_session(response, request, session)
    return response


_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.match_info.route.name != "static":
        response.headers["Cache-Control"] = "no-store"
    return response
