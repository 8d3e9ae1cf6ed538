"""What a process connects to, built from its settings: the topology's names, the broker
link (named for RabbitMQ's connection list). Every command and role builds its link here."""

from __future__ import annotations

import os
import socket

from paysync.amqp import Topology
from paysync.broker import Broker
from paysync.settings import Settings


def topology_of(settings: Settings) -> Topology:
    return Topology(
        prefix=settings.broker.name_prefix, delivery_limit=settings.broker.delivery_limit
    )


def connection_name(what: str) -> str:
    """How this process shows in RabbitMQ's connection list (``rabbitmqctl
    list_connections client_properties``), so an operator can tell (and close) it."""
    return f"paysync {what} {socket.gethostname()} pid {os.getpid()}"


def broker_of(settings: Settings, what: str = "client") -> Broker:
    """The broker link a process gets from its settings (not yet started)."""
    config = settings.broker
    return Broker(
        settings.amqp_url,
        topology_of(settings),
        reconnect_seconds=config.reconnect_seconds,
        reconnect_max_seconds=config.reconnect_max_seconds,
        heartbeat_seconds=config.heartbeat_seconds,
        connect_timeout_seconds=config.connect_timeout_seconds,
        name=connection_name(what),
    )
