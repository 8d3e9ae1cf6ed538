"""What each CLI command does, given validated settings. No argument parsing here."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TypeVar

import aio_pika
import aiohttp
import asyncpg
import orjson

from paysync import dead
from paysync.amqp import declare
from paysync.broker import Broker
from paysync.cli.failures import UsageError, configured_account
from paysync.cli.prefork import supervise
from paysync.cli.render import (
    console,
    print_json,
    print_listing,
    print_refold,
    print_replay,
    print_table,
    tracking,
)
from paysync.cli.roles import run_roles
from paysync.cli.timeline_text import render_text
from paysync.connections import broker_of, connection_name, topology_of
from paysync.db import create_pool
from paysync.errors import BrokerUnavailable, DatabaseUnavailable, StartupError
from paysync.logging import get_logger
from paysync.migrate import apply_migrations, discover, ensure_database
from paysync.settings import Secret, Settings
from paysync.timeline.store import Timelines
from providers import MAPPINGS
from providers.registry import Provider
from reconciler.job import Filters, parse_duration, run_job
from simulator.sender import send_lifecycles
from worker.refold import refold_all
from worker.store import Store

log = get_logger(__name__)

T = TypeVar("T")


async def migrate(settings: Settings, *, wait_seconds: float = 0.0) -> int:
    """Create the database if needed, apply migrations, declare the topology.

    Each service gets one attempt, or is retried for up to ``wait_seconds`` (``--wait``)
    while it starts; then one line says which service could not be reached and why.
    """
    try:
        created = await _attempts(wait_seconds, lambda: ensure_database(settings.database_url))
        conn = await _attempts(
            wait_seconds, lambda: asyncpg.connect(settings.database_url, timeout=10)
        )
    except _UNREACHABLE as exc:
        raise StartupError(
            f"Postgres not reachable ({_why(exc)}): check database_url / PAYSYNC_DATABASE_URL"
        ) from None
    try:
        applied = await apply_migrations(conn, discover())
    finally:
        await conn.close()
    log.info("migrations_applied", created_database=created, versions=applied)
    try:
        connection = await _attempts(wait_seconds, lambda: _any_node(settings))
    except _UNREACHABLE as exc:
        raise StartupError(
            f"RabbitMQ not reachable ({_why(exc)}): check amqp_url / PAYSYNC_AMQP_URL"
        ) from None
    async with connection:
        await declare(connection, topology_of(settings))
    log.info("topology_declared", prefix=settings.broker.name_prefix)
    return 0


_UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.CannotConnectNowError,
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidPasswordError,
    aio_pika.exceptions.AMQPError,
)


def _why(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


async def _any_node(settings: Settings) -> aio_pika.abc.AbstractConnection:
    """A connection to the first broker node that answers."""
    failure: BaseException | None = None
    for url in settings.amqp_url:
        try:
            return await asyncio.wait_for(
                aio_pika.connect(
                    url, client_properties={"connection_name": connection_name("migrate")}
                ),
                settings.broker.connect_timeout_seconds,
            )
        except _UNREACHABLE as exc:
            failure = exc
    assert failure is not None
    raise failure


async def _attempts(wait_seconds: float, attempt: Callable[[], Awaitable[T]]) -> T:
    """One attempt, then more every second until ``wait_seconds`` have passed."""
    deadline = asyncio.get_running_loop().time() + wait_seconds
    while True:
        try:
            return await attempt()
        except _UNREACHABLE as exc:
            if asyncio.get_running_loop().time() + 1 > deadline:
                raise
            log.warning("service_unreachable", error=type(exc).__name__)
            await asyncio.sleep(1)


async def serve(
    settings: Settings,
    registry: Mapping[str, Provider],
    roles: set[str],
    argv: Sequence[str] = (),
) -> int:
    """Run the roles in this process; ``paysync ingest`` with ``ingest.processes`` > 1
    supervises that many ingest processes instead (``paysync/cli/prefork.py``), each
    started with ``argv``. ``paysync all`` always serves ingest in its own process."""
    count = settings.ingest.process_count()
    if roles == {"ingest"} and count > 1:
        await supervise(settings.ingest, count, argv)
    else:
        await run_roles(settings, registry, roles)
    return 0


async def simulate(settings: Settings, args: argparse.Namespace) -> int:
    name, account = configured_account(settings, args.provider, args.account, "simulate")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        report = await send_lifecycles(
            session,
            args.url or settings.ingest.local_url(),
            args.provider,
            name,
            account,
            payments=args.payments,
            repeat=args.repeat,
        )
    print(
        orjson.dumps(
            {
                "provider": args.provider,
                "account": name,
                "payments": report.payments,
                "answers": {str(k): v for k, v in report.answers.items()},
            }
        ).decode()
    )
    return 0 if set(report.answers) == {200} else 1


async def watch_events(settings: Settings, binding: str, count: int, timeout: float) -> int:
    """Print each event body on its own line, from a temporary queue bound to the events."""
    try:
        connection = await _any_node(settings)
    except _UNREACHABLE as exc:
        raise BrokerUnavailable(
            f"RabbitMQ not reachable ({_why(exc)}): check amqp_url / PAYSYNC_AMQP_URL"
        ) from None
    async with connection:
        channel = await connection.channel()
        exchange = topology_of(settings).events_exchange
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key=binding)
        print(f"# watching {exchange} for {binding}", file=sys.stderr, flush=True)
        seen = 0
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout or None), queue.iterator() as messages:
                async for message in messages:
                    async with message.process():
                        print(message.body.decode(), flush=True)
                    seen += 1
                    if count and seen >= count:
                        break
    return 0


def show_config(settings: Settings) -> int:
    def default(value: object) -> object:
        if isinstance(value, Secret):
            return value.ref
        raise TypeError

    # serialize_as_any: each account as its provider's model, not only the base fields.
    dumped = settings.model_dump(serialize_as_any=True)
    print(orjson.dumps(dumped, default=default, option=orjson.OPT_INDENT_2).decode())
    return 0


async def show_payment(
    settings: Settings, provider: str, account: str, merchant_ref: str, *, as_json: bool
) -> int:
    """Print a payment's timeline (the /v1 API's JSON with ``as_json``); 1 when absent."""
    pool = await create_pool(settings.database_url, max_size=1)
    try:
        timeline = await Timelines(pool).read(provider, account, merchant_ref)
    except DatabaseUnavailable as exc:
        print(f"paysync: database unavailable: {exc}", file=sys.stderr)
        return 1
    finally:
        await pool.close()
    if timeline is None:
        unknown = "" if settings.account(provider, account) else f" (no {provider} account"
        unknown += f" {account!r} is configured)" if unknown else ""
        print(f"paysync: no payment {provider}/{account}/{merchant_ref}{unknown}", file=sys.stderr)
        return 1
    if as_json:
        print(orjson.dumps(timeline, option=orjson.OPT_INDENT_2).decode())
    else:
        print(render_text(timeline))
    return 0


async def refold_payments(
    settings: Settings, *, dry_run: bool, as_json: bool, wide: bool = False
) -> int:
    """Rewrite (or with ``dry_run`` only report) the stored rows that differ from the
    fold of their receipts; 1 when the database failed (rows done so far stay done)."""
    pool = await create_pool(settings.database_url, max_size=1)
    try:
        report = await refold_all(Store(pool, MAPPINGS), dry_run=dry_run)
    except DatabaseUnavailable as exc:
        print(f"paysync: database unavailable: {exc}", file=sys.stderr)
        return 1
    finally:
        await pool.close()
    print_refold(report, as_json=as_json, out=console(wide=wide))
    return 0


async def reconcile(
    settings: Settings, registry: Mapping[str, Provider], args: argparse.Namespace
) -> int:
    """The operator's job; exit 1 when any check failed, 2 when the filters name no
    configured account (a typo would otherwise check nothing and succeed)."""
    if args.account is not None:
        configured_account(settings, args.provider, args.account, "reconcile")
    try:
        since = parse_duration(args.since)
    except ValueError as exc:
        raise UsageError(f"reconcile: --since {exc}") from None
    filters = Filters(
        provider=args.provider, account=args.account, since=since, refs=tuple(args.ref)
    )
    async with AsyncExitStack() as stack:
        pool = await create_pool(settings.database_url, max_size=4)
        stack.push_async_callback(pool.close)
        broker = None
        if not args.dry_run:
            broker = await stack.enter_async_context(connected_broker(settings))
        with tracking(not args.json) as tracker:
            report = await run_job(
                settings,
                registry,
                pool,
                broker,
                filters,
                dry_run=args.dry_run,
                on_selected=tracker.selected,
                on_checked=tracker.checked,
            )
    if args.json:
        print_json(report, dry_run=args.dry_run)
    else:
        print_table(report, dry_run=args.dry_run, out=console(wide=args.wide))
    return 1 if any(c.outcome == "failed" for c in report.checks) else 0


@asynccontextmanager
async def connected_broker(settings: Settings, wait_seconds: float = 30.0) -> AsyncIterator[Broker]:
    broker = broker_of(settings, "operator")
    broker.start()
    try:
        try:
            await broker.wait_connected(wait_seconds)
        except TimeoutError:
            raise BrokerUnavailable(
                f"RabbitMQ not reachable within {wait_seconds:.0f} s (check amqp_url)"
            ) from None
        yield broker
    finally:
        await broker.close()


async def list_dead(settings: Settings, *, limit: int, as_json: bool, wide: bool = False) -> int:
    """Print the dead letters; every one stays on paysync.dead."""
    async with connected_broker(settings) as broker:
        listing = await dead.list_dead(broker, limit=limit)
    print_listing(listing, as_json=as_json, out=console(wide=wide))
    return 0


async def replay_dead(
    settings: Settings,
    *,
    ids: list[str] | None,
    reason: str | None,
    everything: bool,
    dry_run: bool,
    wide: bool = False,
) -> int:
    """Replay dead letters onto paysync.inbound; 1 when an id was not found or a publish
    was not confirmed (that message stays on paysync.dead)."""
    selection = dead.Selection(ids=frozenset(ids or ()), reason=reason, everything=everything)
    async with connected_broker(settings) as broker:
        report = await dead.replay(
            broker,
            selection,
            confirm_timeout=settings.worker.publish_timeout_seconds,
            dry_run=dry_run,
        )
    print_replay(report, out=console(wide=wide))
    return 0 if report.ok else 1
