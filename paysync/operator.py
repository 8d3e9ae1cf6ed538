"""CLI commands for operators and consumers (issue 17), kept apart from ``paysync.cli`` and
``paysync.commands`` so each stays small: their parsers and what they do.

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
from ingest.search import (
    PARAMETERS,
    QUERIES_PATH,
    InvalidSearch,
    Page,
    parse_filters,
    search_payments,
)
from paysync.broker import Broker
from paysync.commands import connected_broker
from paysync.db import create_pool, load_queries
from paysync.errors import ConfigError, DatabaseUnavailable, StartupError
from paysync.logging import get_logger
from paysync.runner import Extra, run_roles
from paysync.settings import Settings
from providers.base import ProviderAdapter
from reconciler.job import parse_duration
from schemas.status import Status
from worker import replay

log = get_logger(__name__)

_SEARCH_FLAGS = [p for p in PARAMETERS if p not in ("status",)]


def add_payment_list(pay_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    listing = pay_sub.add_parser("list", help="search payments (the filters of GET /v1/payments)")
    for name in _SEARCH_FLAGS:
        listing.add_argument(f"--{name.replace('_', '-')}", dest=name, metavar="VALUE")
    listing.add_argument(
        "--status", action="append", metavar="STATUS", help="this status (repeat, or a,b)"
    )
    listing.add_argument("--json", action="store_true", help="print the JSON of the /v1 API")


def add_events_replay(ev_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rep = ev_sub.add_parser(
        "replay", help="publish events again (original event_id, seq order, with confirms)"
    )
    which = rep.add_mutually_exclusive_group(required=True)
    which.add_argument("--payment", metavar="PROVIDER/ACCOUNT/MERCHANT_REF")
    which.add_argument("--since", metavar="TIME", help="a duration (24h) or an RFC 3339 time")
    rep.add_argument("--provider", help="with --since: only this provider")
    rep.add_argument("--account", help="with --since and --provider: only this account")
    rep.add_argument("--status", choices=[s.value for s in Status], metavar="STATUS")
    rep.add_argument("--dry-run", action="store_true", help="list what would be published")
    rep.add_argument(
        "--rate", type=float, default=replay.DEFAULT_RATE, help="events per second at most"
    )
    rep.add_argument("--json", action="store_true", help="print one JSON document")


def add_console(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser("console", help="the operators' web console ([console] host and port)")


def add_console_flag(all_parser: argparse.ArgumentParser) -> None:
    all_parser.add_argument(
        "--console", action="store_true", help="serve the web console too ([console] port)"
    )


async def dispatch(
    args: argparse.Namespace, settings: Settings, registry: Mapping[str, ProviderAdapter]
) -> int | None:
    """Run the command if it is one of these; None when it is not."""
    action = getattr(args, "action", None)
    if args.command == "payment" and action == "list":
        return await list_payments(settings, args)
    if args.command == "events" and action == "replay":
        return await replay_events(settings, args)
    if args.command == "console":
        await run_roles(settings, registry, set(), extra=console_role(settings, registry))
        return 0
    if args.command == "all" and getattr(args, "console", False):
        roles = {"ingest", "worker", "reconciler"}
        await run_roles(settings, registry, roles, extra=console_role(settings, registry))
        return 0
    return None


async def list_payments(settings: Settings, args: argparse.Namespace) -> int:
    params: dict[str, list[str]] = {
        name: [getattr(args, name)] for name in _SEARCH_FLAGS if getattr(args, name) is not None
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


def console_role(settings: Settings, registry: Mapping[str, ProviderAdapter]) -> Extra:
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
