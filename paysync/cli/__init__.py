"""The ``paysync`` console script and the composition root: parses arguments, loads
settings, builds what one command needs and runs it. Only this package imports the
roles (ingest, worker, reconciler) and the simulator.

paysync migrate            create the database, apply migrations, declare the topology
paysync ingest | worker    run one role
paysync all                run ingest + worker (+ outbox relay) in one process
paysync demo               all roles, plus a simulated provider and an event watcher
paysync simulate PROVIDER  send a provider's signed callbacks to a running ingest
paysync events watch       print events from paysync.events as they arrive
paysync payment show       print a payment's state and timeline (or its JSON)
paysync payment refold     make stored payment rows the fold of their receipts again
paysync checkout create    create a provider's hosted checkout (POST /v1/checkouts)
paysync dead list | replay inspect paysync.dead; replay dead letters onto paysync.inbound
paysync config check       validate the configuration and print it (secrets by reference)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from paysync.cli import commands, operator
from paysync.cli.checkout import create_checkout
from paysync.cli.demo import demo as run_demo
from paysync.cli.failures import UsageError, config_path, demo_environment, demo_hint, explain
from paysync.cli.parser import build_parser
from paysync.cli.roles import ROLES
from paysync.errors import ConfigError, PaysyncError
from paysync.logging import configure_logging
from paysync.runtime import run
from paysync.settings import Settings, load_settings
from providers import REGISTRY, account_models

# Commands that print a report keep stdout for it: their log lines go to stderr.
_REPORTING = frozenset({"reconcile", "payment", "config", "simulate", "events", "dead", "checkout"})


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    path = config_path(args.config, os.environ)
    try:
        settings = load_settings(
            account_models(), path=path, env=demo_environment(path, os.environ)
        )
    except ConfigError as exc:
        print(f"paysync: {demo_hint(path, exc.problems) or exc}", file=sys.stderr)
        return 2
    # Commands that print a report keep stdout for it: their log lines go to stderr.
    stream = sys.stderr if args.command in _REPORTING else None
    configure_logging(settings.log_level, secrets=settings.secret_values(), stream=stream)
    try:
        dispatched = _dispatch(args, settings, sys.argv[1:] if argv is None else argv)
        return run(dispatched, settings.event_loop)
    except KeyboardInterrupt:
        return 130
    except UsageError as exc:
        print(f"paysync: {exc}", file=sys.stderr)
        return 2
    except PaysyncError as exc:
        # Our own, explained failures (the log has the details): no traceback.
        print(f"paysync: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        line = explain(exc)
        if line is None:
            raise  # our bug: the traceback is what we need to see
        print(f"paysync: {line}", file=sys.stderr)
        return 1


async def _dispatch(args: argparse.Namespace, settings: Settings, argv: Sequence[str]) -> int:
    match args.command:
        case "migrate":
            return await commands.migrate(settings, wait_seconds=args.wait)
        case "ingest" | "worker" | "reconciler":
            return await commands.serve(settings, REGISTRY, {args.command}, argv)
        case "all" if args.console:
            return await operator.serve_with_console(settings, REGISTRY, set(ROLES))
        case "all":
            return await commands.serve(settings, REGISTRY, {"ingest", "worker", "reconciler"})
        case "console":
            return await operator.serve_with_console(settings, REGISTRY, set())
        case "events" if args.action == "replay":
            return await operator.replay_events(settings, args)
        case "payment" if args.action == "list":
            return await operator.list_payments(settings, args)
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
            return await commands.refold_payments(
                settings, dry_run=args.dry_run, as_json=args.json, wide=args.wide
            )
        case "payment":
            return await commands.show_payment(
                settings, args.provider, args.account, args.merchant_ref, as_json=args.json
            )
        case "checkout":
            return await create_checkout(settings, args)
        case "dead" if args.action == "list":
            return await commands.list_dead(
                settings, limit=args.limit, as_json=args.json, wide=args.wide
            )
        case "dead":
            return await commands.replay_dead(
                settings,
                ids=args.ids,
                reason=args.reason,
                everything=args.all,
                dry_run=args.dry_run,
                wide=args.wide,
            )
        case "config":
            return commands.show_config(settings)
    raise AssertionError(args.command)
