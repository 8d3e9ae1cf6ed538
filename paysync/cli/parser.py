"""The ``paysync`` command line: every command, its arguments, their choices and defaults.

Every ``--help`` says what the command does, lists the choices an argument takes and the
default of each option; ``--config FILE`` is accepted before or after the command.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, TypeAlias

from paysync import replay
from paysync.cli.operator import SEARCH_FLAGS
from paysync.dead import MAX_SCAN
from providers import REGISTRY
from providers.registry import Provider
from schemas.status import Status
from simulator import SIMULATORS
from simulator.base import ProviderSimulator

DESCRIPTION = "Keeps payment records true to what the payment providers know."
CONFIG_HELP = "the TOML configuration (default: $PAYSYNC_CONFIG, else ./paysync.toml)"

if TYPE_CHECKING:
    # What add_subparsers returns (generic for type checkers only).
    Sub: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


def paysync_version() -> str:
    try:
        return version("paysync")
    except PackageNotFoundError:  # run from a tree that was never installed
        return "unknown (not installed)"


class _Help(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written; each option's choices and default added to its help."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.choices is not None and action.metavar is not None:
            text += " (one of: " + ", ".join(str(c) for c in action.choices) + ")"
        if _has_default(action) and action.option_strings and "default" not in text:
            text += " (default: %(default)s)"
        return text


def _has_default(action: argparse.Action) -> bool:
    """A default worth showing (a flag's False, an empty list or None are not)."""
    default = action.default
    return not (default is None or default is False or default is argparse.SUPPRESS) and (
        default != []
    )


def build_parser(
    registry: Mapping[str, Provider] = REGISTRY,
    simulators: Mapping[str, ProviderSimulator] = SIMULATORS,
) -> argparse.ArgumentParser:
    """The parser; the providers a command offers come from ``registry`` (reconcile: those
    with a status API) and ``simulators`` (simulate)."""
    parser = argparse.ArgumentParser(prog="paysync", description=DESCRIPTION, formatter_class=_Help)
    parser.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    parser.add_argument("--version", action="version", version=f"paysync {paysync_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_roles(sub)
    polled = sorted(name for name, p in registry.items() if p.status_base_url is not None)
    _add_reconcile(sub, polled)
    _add_demo(sub)
    _add_simulate(sub, sorted(simulators))
    _add_events(sub)
    _add_payment(sub)
    _add_checkout(sub, sorted(name for name, p in registry.items() if p.has_checkout))
    _add_dead(sub)
    config = _command(sub, "config", "configuration")
    cfg_sub = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    _command(
        cfg_sub,
        "check",
        "validate and print the configuration",
        "Loads the configuration as every process does, reporting every problem at once\n"
        "by key (exit 2), then prints it as JSON: each account with all its provider's\n"
        "fields, secrets by reference (env:NAME, file:PATH), never by value.",
    )
    return parser


def _command(sub: Sub, name: str, summary: str, description: str = "") -> argparse.ArgumentParser:
    command = sub.add_parser(
        name,
        help=summary,
        description=description or summary[0].upper() + summary[1:] + ".",
        formatter_class=_Help,
    )
    # After the command too (the top-level one stays in force when this is absent).
    command.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=CONFIG_HELP)
    return command


def _add_roles(sub: Sub) -> None:
    mig = _command(
        sub,
        "migrate",
        "create the database, apply migrations, declare the topology",
        "Creates the database if it is missing, applies the SQL migrations (forward-only)\n"
        "and declares the RabbitMQ topology; the long-running roles only check it. An\n"
        "unreachable service is one line and exit 1.",
    )
    mig.add_argument(
        "--wait",
        type=_non_negative,
        default=0.0,
        metavar="SECONDS",
        help="retry unreachable Postgres/RabbitMQ for this long (0: one attempt)",
    )
    probes = "/healthz, /readyz and /metrics on [metrics] host and port"
    for name, summary, what in (
        (
            "ingest",
            "run the HTTP receiver",
            "Serves provider callbacks (POST /webhooks/{provider}/{account}), return URLs\n"
            "and the /v1 API on [ingest] host and port, with /healthz, /readyz, /metrics.",
        ),
        (
            "worker",
            "run the consumer and the outbox relay",
            f"Applies paysync.inbound to Postgres and relays the outbox to paysync.events;\n"
            f"{probes}.",
        ),
        (
            "reconciler",
            "run scheduled reconciliation rounds",
            f"Asks the providers' status APIs about due payments and publishes what they\n"
            f"say for the worker; any number of replicas. {probes}.",
        ),
        (
            "all",
            "run ingest, worker and reconciler in one process",
            "Every role in one process (small deployments); probes as ingest's.",
        ),
    ):
        stops = "Run `paysync migrate` first. SIGTERM or Ctrl-C drains in-flight work, exit 0."
        role = _command(sub, name, summary, f"{what}\n\n{stops}")
        if name == "all":
            role.add_argument(
                "--console", action="store_true", help="serve the web console too ([console])"
            )
    _command(
        sub,
        "console",
        "run the operators' web console",
        "Server-rendered pages on [console] host and port: the overview's charts, payment\n"
        "search, timelines, dead letters and event replay, reconcile runs. Log in with one\n"
        "of the [api] tokens. SIGTERM or Ctrl-C stops it, exit 0.",
    )


def _add_reconcile(sub: Sub, providers: list[str]) -> None:
    rec = _command(
        sub,
        "reconcile",
        "check a provider's payments against its status API now (operator job)",
        "Checks every matching payment now, settled or not: a progress bar on a terminal,\n"
        "then the drift table (or --json). Repairs are published for the worker to apply;\n"
        "--dry-run only reports. Exit 1 when a check failed, 2 for an unknown --account.",
    )
    rec.add_argument(
        "--provider", required=True, choices=providers, metavar="PROVIDER", help="whose payments"
    )
    rec.add_argument("--account", metavar="ACCOUNT", help="only this account (default: all)")
    rec.add_argument(
        "--since", default="24h", metavar="DURATION", help="payments created within (30m, 7d)"
    )
    rec.add_argument(
        "--ref", action="append", default=[], metavar="MERCHANT_REF", help="only this one (repeat)"
    )
    rec.add_argument("--dry-run", action="store_true", help="report only: publish nothing")
    _add_output(rec)


def _add_output(command: argparse.ArgumentParser, *, table: bool = True) -> None:
    command.add_argument("--json", action="store_true", help="print one JSON document")
    if table:
        command.add_argument(
            "--wide",
            action="store_true",
            help="one line per table row (default: fit the terminal; long cells fold)",
        )


def _add_demo(sub: Sub) -> None:
    demo = _command(
        sub,
        "demo",
        "all roles plus simulated providers paying orders and an event watcher",
        "What `make run` runs: every role in one process, and each configured account's\n"
        "simulated provider taking an order through its lifecycle in turn, losing some\n"
        "callbacks, with its status API on 127.0.0.1 so the reconciler repairs them.",
    )
    demo.add_argument(
        "--every", type=_positive_float, default=5.0, metavar="SECONDS", help="between payments"
    )
    demo.add_argument(
        "--status-port", type=int, default=8090, metavar="PORT", help="of the simulated APIs"
    )
    demo.add_argument(
        "--drop", type=_share, default=0.3, metavar="SHARE", help="of callbacks lost (0 to 1)"
    )


def _add_simulate(sub: Sub, providers: list[str]) -> None:
    simulate = _command(
        sub,
        "simulate",
        "take orders through a provider's lifecycle with signed callbacks",
        "Signs each callback as the provider does, with the account's configured secret,\n"
        "and sends it to a running ingest. Prints one JSON line; exit 1 unless every\n"
        "answer was 200.",
    )
    simulate.add_argument(
        "provider", choices=providers, metavar="PROVIDER", help="whose callbacks to send"
    )
    simulate.add_argument(
        "--url", metavar="URL", help="ingest base URL (default: from [ingest] host and port)"
    )
    simulate.add_argument(
        "--account", metavar="ACCOUNT", help="account name (default: the first configured)"
    )
    simulate.add_argument(
        "--payments", type=_positive, default=1, metavar="N", help="how many orders to pay"
    )
    simulate.add_argument(
        "--repeat", type=_positive, default=1, metavar="K", help="send each callback K times"
    )


def _add_events(sub: Sub) -> None:
    events = _command(sub, "events", "inspect paysync.events")
    ev_sub = events.add_subparsers(dest="action", required=True, metavar="ACTION")
    watch = _command(
        ev_sub,
        "watch",
        "print events as they arrive (a temporary queue)",
        "Binds a temporary queue of its own to paysync.events and prints each event body\n"
        "on a line of its own.",
    )
    watch.add_argument("--binding", default="payment.#", metavar="PATTERN", help="routing key")
    watch.add_argument(
        "--count", type=_non_negative_int, default=0, metavar="N", help="stop after N (0: never)"
    )
    watch.add_argument(
        "--timeout", type=_non_negative, default=0, metavar="SECONDS", help="stop after (0: never)"
    )
    rep = _command(
        ev_sub,
        "replay",
        "publish events again (original event_id, seq order, with confirms)",
        "Re-publishes published outbox events to paysync.events with their original\n"
        "event_id and body, in seq order per payment, one confirm each, rate-limited.\n"
        "Exit 1 when a publish was not confirmed, 2 for a selection that cannot be used.",
    )
    which = rep.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--payment", metavar="PROVIDER/ACCOUNT/MERCHANT_REF", help="every event of this payment"
    )
    which.add_argument("--since", metavar="TIME", help="a duration (24h) or an RFC 3339 time")
    rep.add_argument("--provider", metavar="PROVIDER", help="with --since: only this provider")
    rep.add_argument(
        "--account", metavar="ACCOUNT", help="with --since and --provider: only this account"
    )
    rep.add_argument(
        "--status", choices=[s.value for s in Status], metavar="STATUS", help="only this status"
    )
    rep.add_argument("--dry-run", action="store_true", help="list what would be published")
    rep.add_argument(
        "--rate",
        type=_positive_float,
        default=replay.DEFAULT_RATE,
        metavar="N",
        help="events per second at most",
    )
    _add_output(rep, table=False)


def _add_payment(sub: Sub) -> None:
    payment = _command(sub, "payment", "inspect payments")
    pay_sub = payment.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = _command(
        pay_sub,
        "show",
        "a payment's state and timeline, from Postgres",
        "The payment row, then every receipt, transition and event by time (--json: the\n"
        "document of GET /v1/payments/...). Exit 1 when there is no such payment.",
    )
    show.add_argument("provider", metavar="PROVIDER", help="e.g. ccpayment")
    show.add_argument("account", metavar="ACCOUNT", help="the account's name in the config")
    show.add_argument("merchant_ref", metavar="MERCHANT_REF", help="the merchant's reference")
    _add_output(show, table=False)
    refold = _command(
        pay_sub,
        "refold",
        "rewrite stored rows that differ from the fold of their receipts",
        "Visits every payment in its own transaction (it runs beside live workers); a row\n"
        "that differs is rewritten as any receipt would write it. --dry-run only reports.",
    )
    refold.add_argument("--dry-run", action="store_true", help="report only: write nothing")
    _add_output(refold)
    listing = _command(
        pay_sub,
        "list",
        "search payments (the filters of GET /v1/payments)",
        "Newest first, a page at a time (--cursor for the next); a table or --json (the\n"
        "API's document). Exit 2 naming every filter that cannot be used.",
    )
    for name in SEARCH_FLAGS:
        listing.add_argument(
            f"--{name.replace('_', '-')}", dest=name, metavar="VALUE", help=f"as ?{name}="
        )
    listing.add_argument(
        "--status", action="append", metavar="STATUS", help="this status (repeat, or a,b)"
    )
    _add_output(listing, table=False)


def _add_checkout(sub: Sub, providers: list[str]) -> None:
    checkout = _command(sub, "checkout", "hosted checkouts (POST /v1/checkouts)")
    co_sub = checkout.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = _command(
        co_sub,
        "create",
        "create a provider's hosted checkout and register its payment",
        "Asks the running ingest (POST /v1/checkouts, with the first [api] token): the\n"
        "provider creates its order, paysync registers the payment and prints where to\n"
        "send the customer. Exit 1 with the API's reason when refused. --key: the\n"
        "Idempotency-Key (the same key answers the same checkout; default: a new one).",
    )
    create.add_argument(
        "provider", metavar="PROVIDER", choices=providers, help=", ".join(providers)
    )
    create.add_argument("account", metavar="ACCOUNT", help="the account's name in the config")
    create.add_argument("merchant_ref", metavar="MERCHANT_REF", help="your order's reference")
    create.add_argument("amount", metavar="AMOUNT", help='a decimal, e.g. "25.00"')
    create.add_argument("currency", metavar="CURRENCY", help="e.g. USD")
    create.add_argument("--description", metavar="TEXT", help="shown on the hosted page")
    for flag in ("email", "phone", "name", "first-name", "last-name", "customer-id"):
        create.add_argument(f"--{flag}", metavar="VALUE", help=f"the customer's {flag}")
    create.add_argument("--return-url", metavar="URL", help="where the customer returns")
    create.add_argument(
        "--return-to",
        choices=("merchant", "paysync"),
        default="merchant",
        help="paysync: its signed-return route (providers that sign the return)",
    )
    create.add_argument(
        "--expires-at",
        type=_aware_time,
        metavar="TIME",
        help="order expiry, RFC 3339 with an offset (a fixed time: a rerun is the same body)",
    )
    create.add_argument("--key", type=_nonempty, metavar="KEY", help="the Idempotency-Key")
    create.add_argument("--url", metavar="URL", help="ingest's base URL (default: local)")
    create.add_argument(
        "--timeout", type=_positive_float, default=60.0, metavar="SECONDS", help="HTTP timeout"
    )
    create.add_argument("--json", action="store_true", help="print the API's answer as JSON")


def _add_dead(sub: Sub) -> None:
    dead = _command(sub, "dead", "inspect paysync.dead and replay dead letters")
    dead_sub = dead.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = _command(
        dead_sub,
        "list",
        "every dead letter; all stay on the queue",
        "Takes every dead letter unacked, prints them and gives them all back, in order.",
    )
    listing.add_argument(
        "--limit", type=_positive, default=MAX_SCAN, metavar="N", help="show at most N"
    )
    _add_output(listing)
    replay = _command(
        dead_sub,
        "replay",
        "republish dead letters to paysync.inbound, then remove them",
        "Republishes each selected dead letter as ingest first published it, removing it\n"
        "once RabbitMQ confirmed the copy. Exit 1 when an id is not on the queue (nothing\n"
        "is replayed then) or a copy was not confirmed (it stays).",
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
    replay.add_argument("--wide", action="store_true", help="one line per table row")


def _number(parse: Any, text: str, check: Any, need: str) -> Any:
    try:
        value = parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not check(value):
        raise argparse.ArgumentTypeError(f"must be {need}")
    return value


def _positive(text: str) -> int:
    return int(_number(int, text, lambda v: v >= 1, "at least 1"))


def _non_negative_int(text: str) -> int:
    return int(_number(int, text, lambda v: v >= 0, "0 or more"))


def _non_negative(text: str) -> float:
    return float(_number(float, text, lambda v: v >= 0, "0 or more"))


def _positive_float(text: str) -> float:
    return float(_number(float, text, lambda v: v > 0, "more than 0"))


def _share(text: str) -> float:
    return float(_number(float, text, lambda v: 0 <= v <= 1, "between 0 and 1"))


def _aware_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an RFC 3339 time") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs an offset (e.g. Z or +05:30)")
    return value


def _nonempty(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("must not be empty (use --all for every one)")
    return text
