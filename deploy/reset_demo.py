"""``make reset``: drop the demo's database and its RabbitMQ exchanges and queues, so the next
``make run`` starts from nothing. Reads the same configuration as ``make run`` (``CONFIG``,
default ``paysync.toml``, with the demo's secrets from ``.run/demo.env``) and says what it
drops. Postgres or RabbitMQ not running: one line each, nothing else touched. Only
services on this machine are reset: a configuration naming another host is refused.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import asyncpg

from paysync.cli.failures import config_path, demo_environment
from paysync.connections import topology_of
from paysync.errors import ConfigError
from paysync.settings import Settings, load_settings
from providers import account_models


async def drop_database(settings: Settings) -> str:
    parts = urlsplit(settings.database_url)
    name = parts.path.lstrip("/")
    if not name or '"' in name:
        return f"database: no database name in {settings.database_url!r}, nothing dropped"
    admin = urlunsplit(parts._replace(path="/postgres"))
    try:
        conn = await asyncpg.connect(admin, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        return f"database: Postgres not reachable ({exc}), {name} not dropped"
    try:
        # A name from the configuration, quoted; identifiers cannot be parameters.
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
    return f"database: dropped {name}"


async def delete_topology(settings: Settings) -> str:
    topology = topology_of(settings)
    try:
        connection = await aio_pika.connect(settings.amqp_url[0], timeout=10)
    except (OSError, aio_pika.exceptions.AMQPError) as exc:
        return f"rabbitmq: not reachable ({exc}), nothing deleted"
    async with connection:
        channel = await connection.channel()
        for queue in (topology.inbound_queue, topology.dead_queue):
            await channel.queue_delete(queue)
        for exchange in (
            topology.inbound_exchange,
            topology.dead_exchange,
            topology.events_exchange,
        ):
            await channel.exchange_delete(exchange)
    return f"rabbitmq: deleted {topology.inbound_queue}, {topology.dead_queue} and the exchanges"


LOCAL = frozenset({"127.0.0.1", "localhost", "::1"})


def remote_hosts(settings: Settings) -> list[str]:
    urls = (settings.database_url, *settings.amqp_url)
    return sorted({host for url in urls if (host := urlsplit(url).hostname or "") not in LOCAL})


async def reset(settings: Settings) -> None:
    for line in (await drop_database(settings), await delete_topology(settings)):
        print(f"reset: {line}", file=sys.stderr)


def main() -> int:
    path = config_path(None, os.environ)
    try:
        settings = load_settings(
            account_models(), path=path, env=demo_environment(Path(path), os.environ)
        )
    except ConfigError as exc:
        print(f"reset: {exc}", file=sys.stderr)
        return 2
    if remote := remote_hosts(settings):
        hosts = ", ".join(remote)
        print(f"reset: {path} names services elsewhere ({hosts}): refused", file=sys.stderr)
        return 2
    asyncio.run(reset(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
