"""``POST /v1/payments``: a merchant registers a payment it expects (design §3).

A registered payment is checked by the reconciler even if no callback ever arrives. The
registration is validated here (``400`` with every field error at once), compared with
what paysync already holds (``409`` when it contradicts it: another amount, currency or
provider reference), then published like everything else — a ``terms`` observation in an
``observations`` envelope — and answered ``202``: the worker writes it. Registering the
same payment again with the same terms is harmless (``202``; the inbox absorbs it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import structlog
from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from ingest.edge import REGISTRATION, accepted, publish, received, refused, unconfirmed
from ingest.http import POOL, QUERIES, SETTINGS, Rejected, read_body
from paysync.db import translated_errors
from paysync.errors import BrokerUnavailable, DatabaseUnavailable
from paysync.logging import get_logger
from schemas.envelope import Envelope, EnvelopeKind
from schemas.observation import Kind, Observation, Source, dump_observations

log = get_logger(__name__)


class Registration(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str = Field(min_length=1, max_length=64)
    account: str = Field(min_length=1, max_length=200)
    merchant_ref: str = Field(min_length=1, max_length=200)
    provider_ref: str | None = Field(default=None, min_length=1, max_length=200)
    # A decimal string ("25.00"): money never travels as a float.
    amount: str = Field(pattern=r"^[0-9]{1,18}(\.[0-9]{1,18})?$")
    currency: str = Field(pattern=r"^[A-Za-z0-9]{2,12}$")
    expires_at: AwareDatetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    # Postgres text and jsonb cannot hold NUL: refused here, not a 500 (or a dead letter).
    @field_validator("provider", "account", "merchant_ref", "provider_ref", "metadata")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        return no_nul(value)


def no_nul(value: object) -> object:
    """A field validator's check: Postgres text and jsonb cannot hold NUL."""
    if has_nul(value):
        raise ValueError("must not contain a NUL character")
    return value


def has_nul(value: object) -> bool:
    """A NUL anywhere in a string, or in a key or value of nested JSON."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


def fields_of(exc: ValidationError) -> dict[str, str]:
    return {
        ".".join(str(p) for p in err["loc"]) or "body": err["msg"]
        for err in exc.errors(include_input=False, include_url=False)
    }


def _invalid(fields: dict[str, str]) -> web.Response:
    return web.json_response({"error": "invalid_registration", "fields": fields}, status=400)


async def register_payment(request: web.Request) -> web.StreamResponse:
    try:
        raw = await read_body(request)
    except Rejected as exc:
        return refused(request, REGISTRATION, exc)
    try:
        registration = Registration.model_validate(orjson.loads(raw))
    except orjson.JSONDecodeError:
        return _invalid({"body": "not JSON"})
    except ValidationError as exc:
        return _invalid(fields_of(exc))
    settings = request.app[SETTINGS]
    if settings.account(registration.provider, registration.account) is None:
        return _invalid(
            {"account": f"{registration.provider}/{registration.account} is not configured"}
        )
    amount = Decimal(registration.amount)
    if amount <= 0:
        return _invalid({"amount": "must be greater than zero"})
    structlog.contextvars.bind_contextvars(
        provider=registration.provider,
        account=registration.account,
        merchant_ref=registration.merchant_ref,
    )
    try:
        contradicted = await conflicts(request, registration, amount)
    except DatabaseUnavailable as exc:
        log.warning("registration_unavailable", error=str(exc))
        return web.json_response({"error": "database_unavailable"}, status=503)
    if contradicted:
        log.info("registration_conflict", fields=contradicted)
        return web.json_response({"error": "conflict", "fields": contradicted}, status=409)
    envelope = terms_envelope(registration, amount, datetime.now(UTC))
    try:
        await publish(request, envelope)
    except BrokerUnavailable as exc:
        return unconfirmed(request, REGISTRATION, envelope, exc)
    accepted(
        request,
        REGISTRATION,
        provider=registration.provider,
        account=registration.account,
        message_id=envelope.message_id,
    )
    return web.json_response(
        {
            "status": "accepted",
            "payment": {
                "provider": registration.provider,
                "account": registration.account,
                "merchant_ref": registration.merchant_ref,
            },
        },
        status=202,
    )


async def conflicts(request: web.Request, reg: Registration, amount: Decimal) -> dict[str, str]:
    query = request.app[QUERIES]["registered_terms"]
    async with translated_errors(), request.app[POOL].acquire() as conn:
        row = await conn.fetchrow(query, reg.provider, reg.account, reg.merchant_ref)
    if row is None:
        return {}
    found = {}
    if row["amount"] is not None and row["amount"] != amount:
        found["amount"] = f"registered or reported as {row['amount']}"
    if row["currency"] is not None and row["currency"] != reg.currency:
        found["currency"] = f"registered or reported as {row['currency']}"
    if row["provider_ref"] and reg.provider_ref and row["provider_ref"] != reg.provider_ref:
        found["provider_ref"] = f"registered or reported as {row['provider_ref']}"
    return found


def terms_envelope(reg: Registration, amount: Decimal, now: datetime) -> Envelope:
    """The registration as a ``terms`` observation in an ``observations`` envelope."""
    terms = Observation(
        kind=Kind.TERMS,
        source=Source.MERCHANT,
        provider=reg.provider,
        account=reg.account,
        merchant_ref=reg.merchant_ref,
        dedup_key=f"{reg.provider}:{reg.account}:{reg.merchant_ref}:registration",
        observed_at=now,
        provider_ref=reg.provider_ref,
        amount_due=amount,
        currency=reg.currency,
        expires_at=reg.expires_at,
        metadata=reg.metadata,
    )
    return received(
        EnvelopeKind.OBSERVATIONS,
        provider=reg.provider,
        account=reg.account,
        received_at=now,
        body=dump_observations([terms]),
        content_type="application/json",
        verified_by="api",
    )
