"""The console's actions, each a confirm page (GET, changes nothing) and a POST that does
it: replaying dead letters onto paysync.inbound, and events onto paysync.events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web

from console.context import DEPS, payment_path
from console.views import render
from paysync import dead, replay
from paysync.errors import BrokerUnavailable, DatabaseUnavailable
from paysync.logging import get_logger

log = get_logger(__name__)

_SINCE = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7)}


async def dead_replay_confirm(request: web.Request) -> web.Response:
    message_id = request.query.get("id", "")
    if not message_id:
        raise web.HTTPBadRequest(text="400: name the dead letter (?id=MESSAGE_ID)")
    deps = request.app[DEPS]
    try:
        listing = await dead.list_dead(deps.broker)
    except BrokerUnavailable:
        return render(request, "missing.html", {"what": None, "unavailable": True}, status=503)
    letter = next((x for x in listing.letters if x.message_id == message_id), None)
    if letter is None:
        return render(request, "missing.html", {"what": f"dead letter {message_id}"}, status=404)
    return render(request, "dead_confirm.html", {"letter": letter})


async def dead_replay(request: web.Request) -> web.Response:
    form = await request.post()
    message_id = form.get("id")
    if not isinstance(message_id, str) or not message_id:
        raise web.HTTPBadRequest(text="400: name the dead letter")
    deps = request.app[DEPS]
    try:
        report = await dead.replay(
            deps.broker,
            dead.Selection(ids=frozenset({message_id})),
            confirm_timeout=deps.settings.worker.publish_timeout_seconds,
        )
    except BrokerUnavailable:
        return render(request, "missing.html", {"what": None, "unavailable": True}, status=503)
    log.info("console_dead_letter_replayed", message_id=message_id, ok=report.ok)
    lines = [f"replayed {len(report.replayed)}, kept {report.kept}"]
    lines += [f"not found on paysync.dead: {m}" for m in report.missing]
    lines += [f"not replayed: {letter.message_id}: {error}" for letter, error in report.failed]
    return render(
        request,
        "result.html",
        {"title": "Dead letter replay", "ok": report.ok, "lines": lines, "back": "/dead"},
        status=200 if report.ok else 409,
    )


def _selection(values: dict[str, str]) -> replay.ReplaySelection:
    if values.get("payment"):
        return replay.payment_selection(values["payment"])
    since = values.get("since", "")
    if since not in _SINCE:
        raise ValueError("choose a payment, or since 1h, 24h or 7d")
    return replay.ReplaySelection(
        provider=values.get("provider") or None, since=datetime.now(UTC) - _SINCE[since]
    )


async def events_replay_confirm(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    values = {k: v for k, v in request.query.items() if k in ("payment", "since", "provider")}
    try:
        selection = _selection(values)
        report = await replay.replay_events(
            deps.pool, deps.replay_queries, None, selection, dry_run=True, max_events=10_000
        )
    except (ValueError, replay.TooManyEvents) as exc:
        raise web.HTTPBadRequest(text=f"400: {exc}") from None
    except DatabaseUnavailable:
        return render(request, "missing.html", {"what": None, "unavailable": True}, status=503)
    return render(request, "replay_confirm.html", {"values": values, "report": report})


async def events_replay(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    form = await request.post()
    values = {
        k: v
        for k, v in form.items()
        if k in ("payment", "since", "provider") and isinstance(v, str)
    }
    try:
        selection = _selection(values)
        report = await replay.replay_events(
            deps.pool,
            deps.replay_queries,
            deps.broker,
            selection,
            rate=deps.settings.console.replay_rate_per_second,
            confirm_timeout=deps.settings.worker.publish_timeout_seconds,
            max_events=10_000,
        )
    except (ValueError, replay.TooManyEvents) as exc:
        raise web.HTTPBadRequest(text=f"400: {exc}") from None
    except DatabaseUnavailable:
        return render(request, "missing.html", {"what": None, "unavailable": True}, status=503)
    lines = [f"replayed {report.replayed} of {len(report.selected)} events"]
    if report.unroutable:
        lines.append(f"{report.unroutable} reached no queue (nothing bound to their key)")
    if report.error:
        lines.append(report.error)
    back = "/"
    if selection.merchant_ref is not None:
        assert selection.provider is not None
        assert selection.account is not None
        back = payment_path(selection.provider, selection.account, selection.merchant_ref)
    return render(
        request,
        "result.html",
        {"title": "Event replay", "ok": report.ok, "lines": lines, "back": back},
        status=200 if report.ok else 503,
    )
