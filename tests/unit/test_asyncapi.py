"""The AsyncAPI 3.0 document of paysync.events: generated from the event JSON Schemas (the
committed file is what the generator makes), valid against the AsyncAPI 3.0.0 JSON
Schema, and its payloads accept and refuse exactly what the event schemas do."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from schemas.asyncapi import DOCUMENT, render
from tests.support.event_schemas import validate_event

SPEC = Path(__file__).parents[1] / "fixtures" / "asyncapi" / "asyncapi-3.0.0.schema.json"
SPEC_VALIDATOR = jsonschema.Draft7Validator(json.loads(SPEC.read_text()))

PAYMENT = {
    "provider": "ccpayment",
    "account": "shop-eu",
    "merchant_ref": "order-1001",
    "provider_ref": "2024",
    "status": "paid",
    "previous_status": "underpaid",
    "amount": "25.00",
    "amount_paid": "25.00",
    "currency": "USD",
    "late": False,
    "anomaly": [],
    "seq": 3,
    "metadata": {},
}
CHANGED = {
    "event_id": "305bdd1f-1111-4222-8333-444455556666",
    "type": "payment.status_changed",
    "schema_version": 1,
    "occurred_at": "2026-11-21T10:00:00.123Z",
    "source": "callback",
    "payment": PAYMENT,
}
FLAGGED = CHANGED | {
    "type": "payment.flagged",
    "payment": PAYMENT | {"previous_status": "paid", "anomaly": ["currency_conflict"]},
}


def document() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DOCUMENT.read_text())
    return doc


def test_the_committed_document_is_what_the_generator_makes() -> None:
    assert DOCUMENT.read_text() == render(), "run: .venv/bin/python -m schemas.asyncapi"


def test_the_document_is_valid_asyncapi_3() -> None:
    errors = [e.message for e in SPEC_VALIDATOR.iter_errors(document())]
    assert errors == []
    broken = document()
    del broken["channels"]["paymentEvents"]["address"]
    broken["operations"]["publishPaymentEvents"]["action"] = "publish"  # a 2.x word
    assert list(SPEC_VALIDATOR.iter_errors(broken))


def payload_validator(message: str) -> jsonschema.Draft7Validator:
    doc = document()
    ref = doc["components"]["messages"][message]["payload"]["$ref"]
    return jsonschema.Draft7Validator(
        {"$ref": ref, "components": doc["components"]},
        format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER,
    )


def spoiled(event: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for path, value in (
        (("event_id",), None),
        (("payment", "amount"), 25.0),
        (("payment", "status"), "shipped"),
        (("payment", "seq"), "3"),
        (("source",), "carrier-pigeon"),
        (("extra",), 1),
    ):
        bad = copy.deepcopy(event)
        target = bad
        for key in path[:-1]:
            target = target[key]
        if value is None:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        out.append(bad)
    return out


@pytest.mark.parametrize(("message", "event"), [("statusChanged", CHANGED), ("flagged", FLAGGED)])
def test_payloads_agree_with_the_event_schemas(message: str, event: dict[str, Any]) -> None:
    validator = payload_validator(message)
    validate_event(event)
    validator.validate(event)
    for bad in spoiled(event):
        with pytest.raises(jsonschema.ValidationError):
            validate_event(bad)
        assert not validator.is_valid(bad), bad
    if message == "flagged":
        no_anomaly = copy.deepcopy(event)
        no_anomaly["payment"]["anomaly"] = []
        assert not validator.is_valid(no_anomaly)
