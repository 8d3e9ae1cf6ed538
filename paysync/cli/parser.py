"""The ``paysync`` command line: every command, its arguments, their choices and defaults."""

from __future__ import annotations

import argparse

from simulator import SIMULATORS
from worker.dead import MAX_SCAN

DESCRIPTION = "Keeps payment records true to what the payment providers know."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paysync", description=DESCRIPTION)
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
    sub.add_parser("all", help="run ingest, worker and reconciler in one process")
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
