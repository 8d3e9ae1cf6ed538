"""The published JSON Schemas of paysync's events, as a consumer validates with them: each
event by its ``type``, the flagged schema's references resolved beside it by ``$id``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "json"
FILES = {
    "payment.status_changed": "payment-status-changed.schema.json",
    "payment.flagged": "payment-flagged.schema.json",
}
SCHEMAS: dict[str, dict[str, Any]] = {
    kind: json.loads((SCHEMA_DIR / name).read_text()) for kind, name in FILES.items()
}
REGISTRY: Registry[Any] = Registry().with_resources(
    (schema["$id"], Resource.from_contents(schema)) for schema in SCHEMAS.values()
)


def validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, registry=REGISTRY, format_checker=cls.FORMAT_CHECKER)


VALIDATORS = {kind: validator(schema) for kind, schema in SCHEMAS.items()}


def validate_event(body: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``body`` is a valid event of its type."""
    kind = body.get("type")
    if kind not in VALIDATORS:
        raise jsonschema.ValidationError(f"unknown event type {kind!r}")
    VALIDATORS[kind].validate(body)
