"""deploy/rabbitmq/definitions.json against paysync's own topology (paysync.amqp.Topology):
the names, what each role's user must be allowed (only `paysync migrate` declares; the
roles check the topology passively, then publish or consume) and what it must not, and the
policies. The same
expectations were checked against a live broker with deploy/rabbitmq/check_permissions.py.
"""

from __future__ import annotations

import json
import re
from typing import Any

from common import DEPLOY, Report

from paysync.amqp import Topology
from paysync.settings import Settings
from schemas.status import Status

DEFINITIONS = DEPLOY / "rabbitmq" / "definitions.json"
VHOST = "paysync"
Access = dict[str, tuple[set[str], set[str]]]  # kind -> (must match, must not match)


def expectations(t: Topology) -> dict[str, Access]:
    """Per user and permission kind: the resource names it needs, and some it must lack.

    Only ``paysync migrate`` declares; the roles check the topology passively (which needs
    no permission), then publish or consume, so each role holds only that."""
    everything = {
        t.inbound_exchange,
        t.inbound_queue,
        t.dead_exchange,
        t.dead_queue,
        t.events_exchange,
    }
    amq = "amq.gen-" + "A" * 22  # the server-named queue of `paysync events watch`
    # queue.declare with x-dead-letter-exchange: read on the queue, write on the DLX;
    # queue.bind: write on the queue, read on the exchange.
    migrate_write = {t.inbound_queue, t.dead_exchange, t.dead_queue}
    migrate_read = {t.inbound_exchange, t.inbound_queue, t.dead_exchange}
    nothing: set[str] = set()
    return {
        "paysync-migrate": {
            "configure": (everything, nothing),
            "write": (migrate_write, {t.events_exchange}),
            "read": (migrate_read, {t.dead_queue}),
        },
        # ingest also replays events for consumers (POST /v1/events/replay).
        "paysync-ingest": {
            "configure": (nothing, everything),
            "write": ({t.inbound_exchange, t.events_exchange}, {t.dead_exchange, t.dead_queue}),
            "read": (nothing, everything),
        },
        "paysync-worker": {
            "configure": (nothing, everything),
            "write": ({t.dead_exchange, t.events_exchange}, {t.inbound_exchange}),
            "read": ({t.inbound_queue}, {t.dead_queue, t.events_exchange}),
        },
        "paysync-reconciler": {
            "configure": (nothing, everything),
            "write": ({t.inbound_exchange}, everything - {t.inbound_exchange}),
            "read": (nothing, everything),
        },
        "paysync-operator": {
            "configure": ({amq}, everything),
            "write": ({t.inbound_exchange, t.events_exchange, amq}, {t.dead_exchange}),
            "read": ({t.dead_queue, t.events_exchange, amq}, {t.inbound_queue}),
        },
        "paysync-keda": {kind: (nothing, everything) for kind in KINDS},
        # Downstream consumers: their own consumer.* queues bound to the events, read only.
        "paysync-consumer": {
            "configure": ({CONSUMER_QUEUE}, everything),
            "write": ({CONSUMER_QUEUE}, everything),
            "read": ({t.events_exchange, CONSUMER_QUEUE}, everything - {t.events_exchange}),
        },
    }


CONSUMER_QUEUE = "consumer.fulfilment"  # examples/fulfilment_consumer.py
# Users that publish events (topic write on every payment.<status>) and those that must not.
EVENT_PUBLISHERS = {"paysync-worker", "paysync-ingest", "paysync-operator"}


KINDS = ("configure", "write", "read")


def _matches(pattern: str, name: str) -> bool:
    return re.search(pattern, name) is not None


def permission_problems(doc: dict[str, Any], topology: Topology) -> list[str]:
    problems = []
    perms = {p["user"]: p for p in doc["permissions"] if p["vhost"] == VHOST}
    for user, access in expectations(topology).items():
        if user not in perms:
            problems.append(f"{user}: no permissions on vhost {VHOST}")
            continue
        for kind, (needed, refused) in access.items():
            pattern = perms[user][kind]
            problems += [
                f"{user} {kind} {pattern!r} misses {n}"
                for n in sorted(needed)
                if not _matches(pattern, n)
            ]
            problems += [
                f"{user} {kind} {pattern!r} grants {n}"
                for n in sorted(refused)
                if _matches(pattern, n)
            ]
    topic = {
        p["user"]: p for p in doc["topic_permissions"] if p["exchange"] == topology.events_exchange
    }
    keys = [f"payment.{s.value}" for s in Status] + ["payment.flagged"]
    for user in sorted(perms):
        p = topic.get(user)
        if p is None:
            if user in EVENT_PUBLISHERS or user == "paysync-consumer":
                problems.append(f"{user}: no topic permissions on {topology.events_exchange}")
            continue
        if user in EVENT_PUBLISHERS:
            problems += [
                f"{user} topic write {p['write']!r} refuses {k}"
                for k in keys
                if not _matches(p["write"], k)
            ]
        elif _matches(p["write"], "payment.paid"):
            problems.append(f"{user} topic write {p['write']!r} would let it publish events")
    consumer = topic.get("paysync-consumer")
    if consumer is not None and not _matches(consumer["read"], "payment.#"):
        problems.append(f"paysync-consumer topic read {consumer['read']!r} refuses payment.#")
    return problems


def policy_problems(doc: dict[str, Any], topology: Topology, delivery_limit: int) -> list[str]:
    problems = []
    by_queue = {}
    for queue in (topology.inbound_queue, topology.dead_queue):
        applying = [
            p
            for p in doc["policies"]
            if p["vhost"] == VHOST
            and p["apply-to"] in ("queues", "all")
            and _matches(p["pattern"], queue)
        ]
        if len(applying) != 1:
            problems.append(f"{queue}: {len(applying)} policies apply, expected exactly one")
            continue
        by_queue[queue] = applying[0]["definition"]
    inbound = by_queue.get(topology.inbound_queue, {})
    want = {k.removeprefix("x-"): v for k, v in topology.inbound_arguments().items()}
    want.pop("queue-type")
    want["delivery-limit"] = delivery_limit
    problems += [
        f"{topology.inbound_queue} policy {k} = {inbound.get(k)!r}, paysync declares {v!r}"
        for k, v in want.items()
        if inbound.get(k) != v
    ]
    dead = by_queue.get(topology.dead_queue, {})
    if "dead-letter-exchange" in dead or "max-length" in dead:
        problems.append(f"{topology.dead_queue} policy must never drop or move dead letters")
    for queue, definition in by_queue.items():
        if definition.get("target-group-size") != 3:
            problems.append(f"{queue}: target-group-size must be 3 (a 3-node cluster)")
    return problems


def check(report: Report, settings: Settings) -> None:
    doc = json.loads(DEFINITIONS.read_text(encoding="utf-8"))
    topology = Topology(
        prefix=settings.broker.name_prefix, delivery_limit=settings.broker.delivery_limit
    )
    problems = []
    if settings.broker.name_prefix:
        problems.append(
            "deploy/k8s paysync.toml sets broker.name_prefix: the definitions "
            "grant and apply policies by the unprefixed names"
        )
    if [v["name"] for v in doc["vhosts"]] != [VHOST]:
        problems.append(f"exactly one vhost, {VHOST}")
    for user in doc["users"]:
        if {"password", "password_hash"} & user.keys():
            problems.append(f"{user['name']}: no password or hash in the committed file")
        if user.get("tags"):
            problems.append(f"{user['name']}: no tags (no management or admin rights)")
    problems += permission_problems(doc, topology)
    problems += policy_problems(doc, topology, settings.broker.delivery_limit)
    report.check(
        f"rabbitmq definitions: vhost {VHOST}, {len(doc['users'])} users with least "
        "privilege for paysync.amqp.Topology, quorum-queue policies",
        problems,
    )
