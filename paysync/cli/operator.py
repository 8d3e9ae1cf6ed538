"""What the operators' and consumers' commands do (their arguments are in ``parser.py``),
kept apart from ``commands.py`` so each stays small.

paysync payment list [filters] [--json]     search payments, as GET /v1/payments does
paysync events replay (--payment P | --since T [--provider P] [--status S]) [--dry-run]
                                            publish events again, with their event_id
paysync console                             the operators' web console on its own port
paysync all --console                       the roles, and the console beside them
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping
from datetime import UTC, datetime

import orjson
from aiohttp import web
from rich.console import Console
from rich.table import Table

from console.app import build_console
from paysync import replay
from paysync.broker import Broker
from paysync.cli.commands import connected_broker
from paysync.cli.roles import Extra, run_roles
from paysync.db import create_pool, load_queries
from paysync.errors import ConfigError, DatabaseUnavailable, StartupError
from paysync.logging import get_logger
from paysync.search import (
    PARAMETERS,
    QUERIES_PATH,
    InvalidSearch,
    Page,
    parse_filters,
    search_payments,
)
from paysync.settings import Settings
from providers.registry import Provider
from reconciler.job import parse_duration
from schemas.status import Status

log = get_logger(__name__)

# The search filters as command-line options (status is repeatable, by itself).
SEARCH_FLAGS = [p for p in PARAMETERS if p != "status"]


async def serve_with_console(
    settings: Settings, registry: Mapping[str, Provider], roles: set[str]
) -> int:
    """``roles`` (none: ``paysync console`` alone) with the console beside them."""
    await run_roles(settings, registry, roles, extra=console_role(settings, registry))
    return 0


async def list_payments(settings: Settings, args: argparse.Namespace) -> int:
    params: dict[str, list[str]] = {
        name: [getattr(args, name)] for name in SEARCH_FLAGS if getattr(args, name) is not None
    }
    if args.status:
        params["status"] = list(args.status)
    try:
        filters = parse_filters(params)
    except InvalidSearch as exc:
        print(f"paysync: payment list: {exc}", file=sys.stderr)
        return 2
    pool = await create_pool(settings.database_url, max_size=1)
    try:
        page = await search_payments(pool, load_queries(QUERIES_PATH), filters)
    except DatabaseUnavailable as exc:
        print(f"paysync: database unavailable: {exc}", file=sys.stderr)
        return 1
    finally:
        await pool.close()
    if args.json:
        print(orjson.dumps(page.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        print_page(page)
    return 0


def print_page(page: Page) -> None:
    console = Console() if sys.stdout.isatty() else Console(width=240)
    table = Table(title="payments (newest first)")
    for column in ("payment", "status", "amount", "paid", "late", "anomaly", "seq", "created"):
        table.add_column(column, no_wrap=True)
    for p in page.payments:
        table.add_row(
            f"{p['provider']}/{p['account']}/{p['merchant_ref']}",
            p["status"] or "-",
            f"{p['amount'] or '-'} {p['currency'] or ''}".strip(),
            p["amount_paid"] or "-",
            "late" if p["late"] else "",
            ",".join(p["anomaly"]),
            str(p["seq"]),
            p["created_at"],
        )
    if page.payments:
        console.print(table)
    console.print(f"{len(page.payments)} payments")
    if page.next_cursor:
        console.print(f"more: --cursor {page.next_cursor}")


def _since(text: str) -> datetime:
    try:
        return datetime.now(UTC) - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.upper())
    except ValueError:
        raise ConfigError([f"--since: {text!r} is neither a duration (24h) nor a time"]) from None
    if moment.tzinfo is None:
        raise ConfigError([f"--since: {text!r} has no time zone (add Z or an offset)"])
    return moment


def selection_of(args: argparse.Namespace) -> replay.ReplaySelection:
    status = Status(args.status) if args.status else None
    try:
        if args.payment is not None:
            if args.provider or args.account:
                raise ValueError("--payment names its provider and account already")
            return replay.payment_selection(args.payment, status)
        return replay.ReplaySelection(
            provider=args.provider, account=args.account, since=_since(args.since), status=status
        )
    except ValueError as exc:
        raise ConfigError([f"events replay: {exc}"]) from None


async def replay_events(settings: Settings, args: argparse.Namespace) -> int:
    """Exit 1 when a publish was not confirmed (the events before it were replayed), 2 for
    a selection that cannot be used."""
    try:
        selection = selection_of(args)
    except ConfigError as exc:
        print(f"paysync: {exc}", file=sys.stderr)
        return 2
    queries = load_queries(replay.QUERIES_PATH)
    pool = await create_pool(settings.database_url, max_size=1)
    try:
        if args.dry_run:
            report = await replay.replay_events(pool, queries, None, selection, dry_run=True)
        else:
            async with connected_broker(settings) as broker:
                report = await replay.replay_events(
                    pool,
                    queries,
                    broker,
                    selection,
                    rate=args.rate,
                    confirm_timeout=settings.worker.publish_timeout_seconds,
                )
    except replay.TooManyEvents as exc:
        print(f"paysync: events replay: {exc}", file=sys.stderr)
        return 2
    finally:
        await pool.close()
    if args.json:
        print(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        for event in report.selected:
            print(f"{event.payment}  seq {event.seq}  {event.routing_key}  {event.event_id}")
        verb = "would replay" if report.dry_run else "replayed"
        done = len(report.selected) if report.dry_run else report.replayed
        print(f"{verb} {done} of {len(report.selected)} events", file=sys.stderr)
        if report.error:
            print(f"paysync: {report.error}", file=sys.stderr)
    return 0 if report.ok else 1


def console_role(settings: Settings, registry: Mapping[str, Provider]) -> Extra:
    """The console as an extra task of ``run_roles``: its own pool, the process's broker."""

    async def serve(broker: Broker, stop: asyncio.Event) -> None:
        config = settings.console
        pool = await create_pool(settings.database_url, max_size=4)
        runner = web.AppRunner(build_console(settings, pool, broker), access_log=None)
        await runner.setup()
        try:
            try:
                await web.TCPSite(runner, config.host, config.port).start()
            except OSError as exc:
                raise StartupError(
                    f"console cannot listen on {config.host}:{config.port}: {exc.strerror}"
                ) from None
            log.info("console_listening", host=config.host, port=config.port)
            await stop.wait()
        finally:
            await runner.cleanup()
            await pool.close()

    return serve
