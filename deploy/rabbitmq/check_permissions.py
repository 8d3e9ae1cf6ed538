"""Prove the permissions of deploy/rabbitmq/definitions.json against a real RabbitMQ.

Each role's user must be able to do what the role does (``paysync migrate`` declares the
topology with ``paysync.amqp.declare``; every other role checks it passively with
``paysync.amqp.check``, then publishes or consumes) and must be refused what it has no
business doing. The check runs in a throwaway virtual host with
throwaway users carrying the file's permission patterns, and removes both afterwards::

    sudo .venv/bin/python deploy/rabbitmq/check_permissions.py [--amqp-host 127.0.0.1]

It needs ``rabbitmqctl`` on this machine (root, or the Erlang cookie) and a broker on
``--amqp-host:5672``. It is not part of ``make check``: it changes the broker's users.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from paysync.amqp import INBOUND_ROUTING_KEY, Topology, check, declare

DEFINITIONS = Path(__file__).with_name("definitions.json")
TOPOLOGY = Topology()
Step = Callable[[AbstractConnection], Awaitable[object]]


@dataclass(frozen=True)
class Case:
    user: str
    what: str
    step: Step
    allowed: bool


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True)  # noqa: S603, S607


async def on_channel(
    connection: AbstractConnection, step: Callable[[AbstractChannel], Awaitable[object]]
) -> None:
    channel = await connection.channel(publisher_confirms=True)
    try:
        await step(channel)
    finally:
        if not channel.is_closed:
            await channel.close()


def publish(exchange: str, routing_key: str) -> Step:
    async def step(channel: AbstractChannel) -> None:
        x = await channel.get_exchange(exchange, ensure=False)
        await x.publish(aio_pika.Message(b"{}"), routing_key=routing_key)

    return lambda connection: on_channel(connection, step)


def consume_once(queue: str) -> Step:
    async def step(channel: AbstractChannel) -> None:
        q = await channel.get_queue(queue, ensure=False)
        tag = await q.consume(lambda message: message.nack(requeue=True))
        await q.cancel(tag)

    return lambda connection: on_channel(connection, step)


async def declare_topology(connection: AbstractConnection) -> None:
    await declare(connection, TOPOLOGY)


async def check_topology(connection: AbstractConnection) -> None:
    await check(connection, TOPOLOGY)


async def watch_events(connection: AbstractConnection) -> None:
    """What ``paysync events watch`` does: a server-named queue bound to the events."""

    async def step(channel: AbstractChannel) -> None:
        q = await channel.declare_queue(exclusive=True, auto_delete=True)
        await q.bind(TOPOLOGY.events_exchange, routing_key="payment.#")

    await on_channel(connection, step)


CONSUMER_QUEUE = "consumer.fulfilment"


async def consume_events(connection: AbstractConnection) -> None:
    """What a downstream consumer does (examples/fulfilment_consumer.py): declare its own
    quorum queue, bind it to the events, consume it."""

    async def step(channel: AbstractChannel) -> None:
        q = await channel.declare_queue(
            CONSUMER_QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await q.bind(TOPOLOGY.events_exchange, routing_key="payment.#")
        tag = await q.consume(lambda message: message.nack(requeue=True))
        await q.cancel(tag)
        await q.delete(if_unused=False, if_empty=False)

    await on_channel(connection, step)


def declare_queue(name: str) -> Step:
    async def step(channel: AbstractChannel) -> None:
        await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})

    return lambda connection: on_channel(connection, step)


def bind_to(exchange: str, routing_key: str) -> Step:
    """Bind a queue of the consumer's own (declared first) to ``exchange``."""

    async def step(channel: AbstractChannel) -> None:
        q = await channel.declare_queue(
            CONSUMER_QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await q.bind(exchange, routing_key=routing_key)

    return lambda connection: on_channel(connection, step)


async def passive_inbound(connection: AbstractConnection) -> None:
    async def step(channel: AbstractChannel) -> None:
        await channel.declare_queue(TOPOLOGY.inbound_queue, passive=True)

    await on_channel(connection, step)


def cases() -> list[Case]:
    inbound, events, dlx = (
        TOPOLOGY.inbound_exchange,
        TOPOLOGY.events_exchange,
        TOPOLOGY.dead_exchange,
    )

    pub, sub = publish, consume_once
    out = [
        Case("paysync-migrate", "declare the topology", declare_topology, True),
        Case("paysync-migrate", "publish an event", pub(events, "payment.paid"), False),
    ]
    for role in ("paysync-ingest", "paysync-reconciler"):
        out += [
            Case(role, "check the topology (passive)", check_topology, True),
            Case(role, "declare the topology", declare_topology, False),
            Case(role, "publish to paysync.inbound", pub(inbound, INBOUND_ROUTING_KEY), True),
            # ingest's /v1 replays events a consumer asks for (POST /v1/events/replay).
            Case(role, "replay an event", pub(events, "payment.paid"), role == "paysync-ingest"),
            Case(role, "consume paysync.inbound", sub(TOPOLOGY.inbound_queue), False),
            Case(role, "consume paysync.dead", sub(TOPOLOGY.dead_queue), False),
        ]
    out += [Case("paysync-ingest", "publish an event off payment.*", pub(events, "x.y"), False)]
    out += [
        Case("paysync-worker", "check the topology (passive)", check_topology, True),
        Case("paysync-worker", "declare the topology", declare_topology, False),
        Case("paysync-worker", "consume paysync.inbound", sub(TOPOLOGY.inbound_queue), True),
        Case("paysync-worker", "publish an event", pub(events, "payment.paid"), True),
        Case("paysync-worker", "publish an event off payment.*", pub(events, "x.y"), False),
        Case("paysync-worker", "dead-letter to paysync.dlx", pub(dlx, ""), True),
        Case("paysync-worker", "publish to paysync.inbound", pub(inbound, "inbound"), False),
        Case("paysync-worker", "consume paysync.dead", sub(TOPOLOGY.dead_queue), False),
        Case("paysync-operator", "check the topology (passive)", check_topology, True),
        Case("paysync-operator", "declare the topology", declare_topology, False),
        Case("paysync-operator", "watch events", watch_events, True),
        Case("paysync-operator", "consume paysync.dead", sub(TOPOLOGY.dead_queue), True),
        Case("paysync-operator", "replay onto paysync.inbound", pub(inbound, "inbound"), True),
        Case("paysync-operator", "replay an event", pub(events, "payment.paid"), True),
        Case("paysync-operator", "publish an event off payment.*", pub(events, "x.y"), False),
        Case("paysync-operator", "consume paysync.inbound", sub(TOPOLOGY.inbound_queue), False),
        Case("paysync-keda", "inspect paysync.inbound", passive_inbound, True),
        Case("paysync-keda", "consume paysync.inbound", sub(TOPOLOGY.inbound_queue), False),
        Case("paysync-keda", "publish to paysync.inbound", pub(inbound, "inbound"), False),
        Case("paysync-consumer", "bind its own queue and consume", consume_events, True),
        Case("paysync-consumer", "publish an event", pub(events, "payment.paid"), False),
        Case("paysync-consumer", "publish to paysync.inbound", pub(inbound, "inbound"), False),
        Case("paysync-consumer", "consume paysync.inbound", sub(TOPOLOGY.inbound_queue), False),
        Case("paysync-consumer", "consume paysync.dead", sub(TOPOLOGY.dead_queue), False),
        Case("paysync-consumer", "declare a paysync.* queue", declare_queue("paysync.x"), False),
        Case("paysync-consumer", "bind its queue to paysync.dlx", bind_to(dlx, ""), False),
        Case("paysync-consumer", "check the topology (passive)", check_topology, True),
    ]
    return out


async def attempt(connection: AbstractConnection, case: Case) -> str | None:
    """None when the broker allowed the step (publishes wait for the confirm), else why not."""
    try:
        await asyncio.wait_for(case.step(connection), timeout=10)
    except aiormq.exceptions.ChannelAccessRefused as exc:
        return str(exc)
    return None


async def run(host: str, vhost: str, passwords: dict[str, str], suffix: str) -> int:
    failures = 0
    for case in cases():
        url = f"amqp://{case.user}-{suffix}:{passwords[case.user]}@{host}:5672/{vhost}"
        connection = await aio_pika.connect(url)
        async with connection:
            refusal = await attempt(connection, case)
        ok = (refusal is None) == case.allowed
        failures += not ok
        verdict = "allowed" if refusal is None else "refused"
        print(f"{'ok  ' if ok else 'FAIL'} {case.user:20} {case.what:32} {verdict}")
        if not ok and refusal is not None:
            print(f"     {refusal}")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--amqp-host", default="127.0.0.1")
    args = parser.parse_args()
    definitions = json.loads(DEFINITIONS.read_text(encoding="utf-8"))
    suffix = secrets.token_hex(4)
    vhost = f"paysync-permcheck-{suffix}"
    passwords = {u["name"]: secrets.token_hex(16) for u in definitions["users"]}
    rabbitmqctl("add_vhost", vhost)
    try:
        for user, password in passwords.items():
            rabbitmqctl("add_user", f"{user}-{suffix}", password)
        for p in definitions["permissions"]:
            perms = (p["configure"], p["write"], p["read"])
            rabbitmqctl("set_permissions", "-p", vhost, f"{p['user']}-{suffix}", *perms)
        for t in definitions["topic_permissions"]:
            user = f"{t['user']}-{suffix}"
            rabbitmqctl(
                "set_topic_permissions", "-p", vhost, user, t["exchange"], t["write"], t["read"]
            )
        failures = asyncio.run(run(args.amqp_host, vhost, passwords, suffix))
    finally:
        for user in passwords:
            subprocess.run(["rabbitmqctl", "-q", "delete_user", f"{user}-{suffix}"], check=False)  # noqa: S603, S607
        rabbitmqctl("delete_vhost", vhost)
    print(f"{failures} failed" if failures else "every role can do its work and nothing else")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
