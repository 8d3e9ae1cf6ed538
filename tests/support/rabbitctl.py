"""RabbitMQ's own view of its client connections (``rabbitmqctl``), so a fault test can close
exactly one process's connections and nobody else's."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import orjson


@dataclass(frozen=True, slots=True)
class ClientConnection:
    pid: str  # the Erlang process of the connection, what close_connection takes
    peer_port: int  # the client's local port
    name: str | None  # the client's connection_name property, if it sent one


async def _run(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "rabbitmqctl",
        "-q",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise AssertionError(f"rabbitmqctl {' '.join(args)}: {err.decode(errors='replace')}")
    return out.decode()


async def connections() -> list[ClientConnection]:
    # The JSON formatter shows pids in a form close_connection does not take; the table
    # shows them as it does, but client properties only as Erlang terms: ask for both.
    table = await _run("list_connections", "--no-table-headers", "pid", "peer_port")
    text = await _run("list_connections", "--formatter", "json", "peer_port", "client_properties")
    names = {}
    for row in orjson.loads(text or "[]"):
        props = {p[0]: p[2] for p in row.get("client_properties") or []}
        names[int(row["peer_port"])] = props.get("connection_name")
    found = []
    for line in table.splitlines():
        pid, _, port = line.partition("\t")
        if pid and port.strip().isdigit():
            found.append(ClientConnection(pid, int(port), names.get(int(port))))
    return found


async def local_ports(os_pid: int, broker_port: int = 5672) -> set[int]:
    """The local ports of the TCP connections process ``os_pid`` holds to ``broker_port``."""
    proc = await asyncio.create_subprocess_exec(
        "ss", "-Htnp", "state", "established", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    ports = set()
    for line in out.decode().splitlines():
        fields = line.split()
        if len(fields) < 5 or f"pid={os_pid}," not in line:
            continue
        local, peer = fields[2], fields[3]
        if peer.rsplit(":", 1)[1] == str(broker_port):
            ports.add(int(local.rsplit(":", 1)[1]))
    return ports


async def close(connection: ClientConnection, reason: str = "paysync fault test") -> None:
    await _run("close_connection", connection.pid, reason)


async def connections_of(os_pid: int) -> list[ClientConnection]:
    """The broker connections of one OS process, found by its sockets' ports."""
    ports = await local_ports(os_pid)
    return [c for c in await connections() if c.peer_port in ports]


async def queue_counts(name: str) -> tuple[int, int]:
    """The broker's own count of a queue's messages: (ready, delivered but unacked)."""
    columns = ("name", "messages_ready", "messages_unacknowledged")
    rows = orjson.loads(await _run("list_queues", *columns, "--formatter", "json"))
    (row,) = [r for r in rows if r["name"] == name]
    return int(row["messages_ready"]), int(row["messages_unacknowledged"])


async def consumer_tags(queue: str) -> list[str]:
    """The consumers the broker has on a queue. A channel the broker closed (an ack of an
    unknown or already acked delivery tag does that) takes its consumer with it."""
    rows = orjson.loads(
        await _run("list_consumers", "queue_name", "consumer_tag", "--formatter", "json")
    )
    return [str(r["consumer_tag"]) for r in rows if r["queue_name"] == queue]
