"""The AsyncAPI 3.0 document of ``paysync.events``, generated from the events' JSON Schemas.

``python -m schemas.asyncapi`` writes ``schemas/asyncapi.json``; a test fails when the
committed file is not what this generates, validates it against the AsyncAPI 3.0.0 JSON
Schema, and checks example events against the payloads it declares. The event schemas
(``schemas/json/payment-*.schema.json``) stay the source: their ``$defs`` become
``components.schemas`` and their references are rewritten to point there.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from schemas.status import Status

JSON_DIR = Path(__file__).with_name("json")
DOCUMENT = Path(__file__).with_name("asyncapi.json")
STATUS_CHANGED = "payment-status-changed.schema.json"
FLAGGED = "payment-flagged.schema.json"

_DESCRIPTION = (
    "Every status change of a payment, and every anomaly found while its status stays, "
    "published by paysync's outbox relay (at least once, persistent, with publisher "
    "confirms) to the topic exchange paysync.events. Bind a queue of your own (a quorum "
    "queue) with the paysync-consumer user. Deduplicate on event_id (also the AMQP "
    "message_id): a redelivery or a replay carries the same event_id. payment.seq counts a "
    "payment's events of every type 1, 2, 3...: a gap means you missed one (ask for a "
    "replay: POST /v1/events/replay); an event whose seq you already passed is stale. "
    "What each event means for fulfilment: docs/events.md."
)


def _rewrite(node: Any) -> Any:
    """References into the files' ``$defs`` become references into components.schemas."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                name = value.rsplit("/", 1)[1]
                out[key] = f"#/components/schemas/{name}"
            elif key not in ("$schema", "$id", "$defs"):
                out[key] = _rewrite(value)
        return out
    if isinstance(node, list):
        return [_rewrite(v) for v in node]
    return node


def build(status_changed: dict[str, Any], flagged: dict[str, Any]) -> dict[str, Any]:
    schemas = {name: _rewrite(d) for name, d in status_changed.get("$defs", {}).items()}
    schemas["paymentStatusChanged"] = _rewrite(status_changed)
    schemas["paymentFlagged"] = _rewrite(flagged)
    statuses = [s.value for s in Status]
    amqp_message = {"contentEncoding": "utf-8", "bindingVersion": "0.3.0"}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "paysync payment events",
            "version": "1.0.0",
            "description": _DESCRIPTION,
        },
        "defaultContentType": "application/json",
        "servers": {
            "rabbitmq": {
                "host": "rabbitmq:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "pathname": "/paysync",
                "description": "vhost paysync (deploy/rabbitmq); read-only user paysync-consumer",
            }
        },
        "channels": {
            "paymentEvents": {
                "address": "payment.{status}",
                "title": "paysync.events",
                "description": "Routing key payment.<status> (status_changed) or payment.flagged.",
                "parameters": {
                    "status": {
                        "enum": [*statuses, "flagged"],
                        "description": "The payment's new status, or flagged",
                    }
                },
                "messages": {
                    "statusChanged": {"$ref": "#/components/messages/statusChanged"},
                    "flagged": {"$ref": "#/components/messages/flagged"},
                },
                "bindings": {
                    "amqp": {
                        "is": "routingKey",
                        "exchange": {
                            "name": "paysync.events",
                            "type": "topic",
                            "durable": True,
                            "autoDelete": False,
                            "vhost": "/paysync",
                        },
                        "bindingVersion": "0.3.0",
                    }
                },
            }
        },
        "operations": {
            "publishPaymentEvents": {
                "action": "send",
                "channel": {"$ref": "#/channels/paymentEvents"},
                "summary": "paysync publishes; consumers bind their own queues and receive.",
                "messages": [
                    {"$ref": "#/channels/paymentEvents/messages/statusChanged"},
                    {"$ref": "#/channels/paymentEvents/messages/flagged"},
                ],
            }
        },
        "components": {
            "messages": {
                "statusChanged": {
                    "name": "payment.status_changed",
                    "title": "A payment's status changed",
                    "summary": "Routing key payment.<status>; message_id = event_id.",
                    "contentType": "application/json",
                    "payload": {"$ref": "#/components/schemas/paymentStatusChanged"},
                    "bindings": {"amqp": amqp_message},
                },
                "flagged": {
                    "name": "payment.flagged",
                    "title": "A payment gained an anomaly while its status stayed",
                    "summary": "Routing key payment.flagged; message_id = event_id.",
                    "contentType": "application/json",
                    "payload": {"$ref": "#/components/schemas/paymentFlagged"},
                    "bindings": {"amqp": amqp_message},
                },
            },
            "schemas": schemas,
        },
    }


def generate() -> dict[str, Any]:
    def load(name: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads((JSON_DIR / name).read_text(encoding="utf-8"))
        return doc

    return build(load(STATUS_CHANGED), load(FLAGGED))


def render() -> str:
    return json.dumps(generate(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    DOCUMENT.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {DOCUMENT}\n")
