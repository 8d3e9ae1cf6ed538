"""The ``paysync`` console script: parses arguments, loads settings, runs one command.

paysync migrate            create the database, apply migrations, declare the topology
paysync ingest | worker    run one role
paysync all                run ingest + worker (+ outbox relay) in one process
paysync demo               all roles, plus a simulated provider and an event watcher
paysync simulate PROVIDER  send a provider's signed callbacks to a running ingest
paysync events watch       print events from paysync.events as they arrive
paysync payment show       print a payment's state and timeline (or its JSON)
paysync payment refold     make stored payment rows the fold of their receipts again
paysync dead list | replay inspect paysync.dead; replay dead letters onto paysync.inbound
paysync config check       validate the configuration and print it (secrets by reference)
paysync payment list | events replay | console   see paysync/operator.py
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from paysync import commands, operator
from paysync.demo import demo as run_demo
from paysync.errors import ConfigError, PaysyncError
from paysync.logging import configure_logging
from paysync.settings import Settings, load_settings
from providers import REGISTRY, account_models
from simulator import SIMULATORS
from worker.dead import MAX_SCAN

_REPORTING = frozenset({"reconcile", "payment", "config", "simulate", "events", "dead"})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paysync", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="TOML file (default: $PAYSYNC_CONFIG or paysync.toml)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    mig = sub.add_parser(
        "migrate", help="create the database, apply migrations, declare the topology"
    )
    mig.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="retry unreachable Postgres/RabbitMQ for this long (default 0: one attempt)",
    )
    sub.add_parser("ingest", help="run the HTTP receiver")
    sub.add_parser("worker", help="run the consumer and the outbox relay")
    sub.add_parser("reconciler", help="run scheduled reconciliation rounds")
    operator.add_console_flag(
        sub.add_parser("all", help="run ingest, worker and reconciler in one process")
    )
    operator.add_console(sub)
    rec = sub.add_parser(
        "reconcile", help="check a provider's payments against its status API now (operator job)"
    )
    rec.add_argument("--provider", required=True, choices=sorted(SIMULATORS), metavar="PROVIDER")
    rec.add_argument("--account", help="only this account")
    rec.add_argument("--since", default="24h", help="payments created within (default 24h)")
    rec.add_argument("--ref", action="append", default=[], help="only this merchant ref (repeat)")
    rec.add_argument("--dry-run", action="store_true", help="report only: publish nothing")
    rec.add_argument("--json", action="store_true", help="print one JSON document")
    demo = sub.add_parser(
        "demo", help="all roles plus simulated providers paying orders and an event watcher"
    )
    demo.add_argument("--every", type=float, default=5.0, help="seconds between payments")
    demo.add_argument(
        "--status-port", type=int, default=8090, help="port of the simulated status APIs"
    )
    demo.add_argument(
        "--drop", type=float, default=0.3, help="share of callbacks the providers lose"
    )

    simulate = sub.add_parser(
        "simulate", help="take orders through a provider's lifecycle with signed callbacks"
    )
    simulate.add_argument("provider", choices=sorted(SIMULATORS), metavar="PROVIDER")
    simulate.add_argument("--url", default=None, help="ingest base URL (default: from [ingest])")
    simulate.add_argument("--account", help="account name (default: the first configured)")
    simulate.add_argument("--payments", type=int, default=1, help="how many orders to pay")
    simulate.add_argument("--repeat", type=int, default=1, help="send each callback N times")

    events = sub.add_parser("events", help="inspect paysync.events")
    ev_sub = events.add_subparsers(dest="action", required=True, metavar="ACTION")
    watch = ev_sub.add_parser("watch", help="print events as they arrive (a temporary queue)")
    watch.add_argument("--binding", default="payment.#", help="routing key pattern")
    watch.add_argument("--count", type=int, default=0, help="stop after N events (0: never)")
    watch.add_argument("--timeout", type=float, default=0, help="stop after S seconds (0: never)")
    operator.add_events_replay(ev_sub)

    payment = sub.add_parser("payment", help="inspect payments")
    pay_sub = payment.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = pay_sub.add_parser("show", help="a payment's state and timeline, from Postgres")
    show.add_argument("provider", metavar="PROVIDER")
    show.add_argument("account", metavar="ACCOUNT")
    show.add_argument("merchant_ref", metavar="MERCHANT_REF")
    show.add_argument("--json", action="store_true", help="print the JSON of the /v1 API")
    refold = pay_sub.add_parser(
        "refold", help="rewrite stored rows that differ from the fold of their receipts"
    )
    refold.add_argument("--dry-run", action="store_true", help="report only: write nothing")
    refold.add_argument("--json", action="store_true", help="print one JSON document")
    operator.add_payment_list(pay_sub)

    _add_dead(sub)

    config = sub.add_parser("config", help="configuration")
    cfg_sub = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    cfg_sub.add_parser("check", help="validate and print the configuration")
    return parser


def _add_dead(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dead = sub.add_parser("dead", help="inspect paysync.dead and replay dead letters")
    dead_sub = dead.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = dead_sub.add_parser("list", help="every dead letter; all stay on the queue")
    listing.add_argument("--json", action="store_true", help="print one JSON document")
    listing.add_argument(
        "--limit", type=_positive, default=MAX_SCAN, help=f"at most N (default {MAX_SCAN})"
    )
    replay = dead_sub.add_parser(
        "replay", help="republish dead letters to paysync.inbound, then remove them"
    )
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--id", action="append", dest="ids", metavar="MESSAGE_ID", help="this message (repeat)"
    )
    which.add_argument(
        "--reason", type=_nonempty, metavar="SUBSTRING", help="every one whose reason has it"
    )
    which.add_argument("--all", action="store_true", help="every dead letter")
    replay.add_argument("--dry-run", action="store_true", help="list what would be replayed")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _nonempty(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("must not be empty (use --all for every one)")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(account_models(), path=args.config)
    except ConfigError as exc:
        print(f"paysync: {exc}", file=sys.stderr)
        return 2
    # Commands that print a report keep stdout for it: their log lines go to stderr.
    stream = sys.stderr if args.command in _REPORTING else None
    configure_logging(settings.log_level, secrets=settings.secret_values(), stream=stream)
    try:
        return asyncio.run(_dispatch(args, settings))
    except KeyboardInterrupt:
        return 130
    except PaysyncError as exc:
        # Our own, explained failures (the log has the details): no traceback.
        print(f"paysync: {exc}", file=sys.stderr)
        return 1


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    handled = await operator.dispatch(args, settings, REGISTRY)  # issue 17's commands
    if handled is not None:
        return handled
    match args.command:
        case "migrate":
            return await commands.migrate(settings, wait_seconds=args.wait)
        case "ingest" | "worker" | "reconciler":
            return await commands.serve(settings, REGISTRY, {args.command})
        case "all":
            return await commands.serve(settings, REGISTRY, {"ingest", "worker", "reconciler"})
        case "reconcile":
            return await commands.reconcile(settings, REGISTRY, args)
        case "demo":
            return await run_demo(
                settings, REGISTRY, every=args.every, status_port=args.status_port, drop=args.drop
            )
        case "simulate":
            return await commands.simulate(settings, args)
        case "events":
            return await commands.watch_events(settings, args.binding, args.count, args.timeout)
        case "payment" if args.action == "refold":
            return await commands.refold_payments(settings, dry_run=args.dry_run, as_json=args.json)
        case "payment":
            return await commands.show_payment(
                settings, args.provider, args.account, args.merchant_ref, as_json=args.json
            )
        case "dead" if args.action == "list":
            return await commands.list_dead(settings, limit=args.limit, as_json=args.json)
        case "dead":
            return await commands.replay_dead(
                settings,
                ids=args.ids,
                reason=args.reason,
                everything=args.all,
                dry_run=args.dry_run,
            )
        case "config":
            return commands.show_config(settings)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
