"""The console's pages (GET) and its login: each reads, then renders a template."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from console.charts import bar_chart
from console.context import DEPS, SESSION, base_context, set_session
from paysync.db import translated_errors
from paysync.dead import list_dead
from paysync.errors import BrokerUnavailable, DatabaseUnavailable
from paysync.logging import get_logger
from paysync.search import PARAMETERS, InvalidSearch, parse_filters, search_payments
from paysync.timeline.document import json_value
from paysync.tokens import token_problem
from schemas.status import Status

log = get_logger(__name__)

WINDOWS = {"hour": 3600, "day": 86400}


def render(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    return aiohttp_jinja2.render_template(
        template, request, base_context(request) | context, status=status
    )


async def login_page(request: web.Request) -> web.Response:
    return render(request, "login.html", {"error": None})


async def login_submit(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    form = await request.post()
    token = form.get("token")
    token = token.strip() if isinstance(token, str) else ""
    reason = token_problem(f"Bearer {token}", deps.settings.api.tokens)
    if reason is not None:
        log.info("console_login_refused", reason=reason)
        error = (
            "The console is disabled: no API token is configured."
            if reason == "api_disabled"
            else "That is not one of the API tokens."
        )
        return render(request, "login.html", {"error": error}, status=401)
    # A new session id on login: a session id planted before it is worth nothing after.
    session = deps.sessions.fresh(deps.sessions.fingerprint(token))
    log.info("console_login_succeeded")
    response = web.Response(status=303, headers={"Location": "/"})
    set_session(response, request, session)
    return response


async def logout(request: web.Request) -> web.Response:
    response = web.Response(status=303, headers={"Location": "/login"})
    set_session(response, request, request.app[DEPS].sessions.fresh())
    return response


async def overview(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    window = request.query.get("window", "hour")
    if window not in WINDOWS:
        window = "hour"
    seconds = WINDOWS[window]
    q = deps.queries
    try:
        async with translated_errors(), deps.pool.acquire() as conn:
            transitions = await conn.fetch(q["transitions_by_source"], seconds)
            refusals = await conn.fetch(q["refusals_by_outcome"], seconds)
            statuses = await conn.fetch(q["payments_by_status"], seconds)
    except DatabaseUnavailable as exc:
        return _unavailable(request, str(exc))
    charts = [
        bar_chart("Transitions by source", [(r["label"], r["value"]) for r in transitions]),
        bar_chart(
            "Receipts refused by the fold, by outcome", [(r["label"], r["value"]) for r in refusals]
        ),
        bar_chart("Payments updated, by status", [(r["label"], r["value"]) for r in statuses]),
    ]
    return render(
        request, "overview.html", {"window": window, "windows": list(WINDOWS), "charts": charts}
    )


async def payments(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    given = {k: v for k, v in request.query.items() if k in PARAMETERS and v.strip()}
    params = {k: [v.strip()] for k, v in given.items()}
    statuses = [s for s in request.query.getall("status", []) if s]
    if statuses:
        params["status"] = statuses
    context: dict[str, Any] = {
        "form": given,
        "chosen_statuses": set(statuses),
        "statuses": [s.value for s in Status],
        "errors": {},
        "page": None,
        "next_query": None,
    }
    try:
        filters = parse_filters(params)
    except InvalidSearch as exc:
        context["errors"] = exc.fields
        return render(request, "payments.html", context, status=400)
    try:
        page = await search_payments(deps.pool, deps.search_queries, filters)
    except DatabaseUnavailable as exc:
        return _unavailable(request, str(exc))
    context["page"] = page
    if page.next_cursor:
        nxt = [(k, v) for k, v in request.query.items() if k != "cursor" and v]
        context["next_query"] = [*nxt, ("cursor", page.next_cursor)]
    return render(request, "payments.html", context)


async def payment(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    m = request.match_info
    if any("\x00" in m[k] for k in ("provider", "account", "merchant_ref")):
        raise web.HTTPBadRequest(text="400: a NUL character in the path")
    try:
        timeline = await deps.timelines.read(m["provider"], m["account"], m["merchant_ref"])
    except DatabaseUnavailable as exc:
        return _unavailable(request, str(exc))
    if timeline is None:
        return render(
            request,
            "missing.html",
            {"what": f"payment {m['provider']}/{m['account']}/{m['merchant_ref']}"},
            status=404,
        )
    anomalies = (timeline["payment"].get("anomaly") or "").split(",")
    return render(
        request,
        "payment.html",
        {
            "t": timeline,
            "p": timeline["payment"],
            "anomalies": [a for a in anomalies if a],
            "ref": f"{m['provider']}/{m['account']}/{m['merchant_ref']}",
        },
    )


async def dead_letters(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    try:
        listing = await list_dead(deps.broker, limit=500)
    except BrokerUnavailable as exc:
        return _unavailable(request, str(exc))
    return render(request, "dead.html", {"listing": listing})


async def reconcile_runs(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    try:
        async with translated_errors(), deps.pool.acquire() as conn:
            rows = await conn.fetch(deps.queries["reconcile_runs"], 100)
    except DatabaseUnavailable as exc:
        return _unavailable(request, str(exc))
    return render(request, "reconcile.html", {"runs": [json_value(dict(r)) for r in rows]})


async def reconcile_run(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    run_id = int(request.match_info["run_id"])
    try:
        async with translated_errors(), deps.pool.acquire() as conn:
            run = await conn.fetchrow(deps.queries["reconcile_run"], run_id)
            checks = await conn.fetch(deps.queries["reconcile_run_checks"], run_id)
    except DatabaseUnavailable as exc:
        return _unavailable(request, str(exc))
    if run is None:
        return render(request, "missing.html", {"what": f"reconcile run {run_id}"}, status=404)
    return render(
        request,
        "reconcile_run.html",
        {"run": json_value(dict(run)), "checks": [json_value(dict(c)) for c in checks]},
    )


def _unavailable(request: web.Request, error: str) -> web.Response:
    log.warning("console_unavailable", error=error, path=request.path)
    return render(request, "missing.html", {"what": None, "unavailable": True}, status=503)


__all__ = ["SESSION"]
