"""The body of ``POST /v1/checkouts`` and what paysync makes of it (ingest/checkouts.py).

Validated like a registration (``400`` with every field error at once). The customer
fields are the ones a provider may need (each client sends those its provider takes).
``return_to`` chooses where the provider sends the customer's browser: ``"merchant"``
(``return_url``, or the provider account's default page when absent) or ``"paysync"``
(paysync's own ``/return/{provider}/{account}``, for providers that sign the redirect:
verified, published, then ``303`` to the account's configured page). Callbacks are pointed
at paysync's ``/webhooks/{provider}/{account}`` when ``[api] public_url`` is set (else the
provider account's dashboard setting applies).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from ingest.registration import no_nul
from providers.base import CheckoutOrder

_TEXT = Field(default=None, min_length=1, max_length=200)


class Customer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$", max_length=200)
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9 ()-]{4,20}$")
    name: str | None = _TEXT
    first_name: str | None = _TEXT
    last_name: str | None = _TEXT
    customer_id: str | None = _TEXT


class CheckoutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str = Field(min_length=1, max_length=64)
    account: str = Field(min_length=1, max_length=200)
    merchant_ref: str = Field(min_length=1, max_length=200)
    # A decimal string ("25.00"): money never travels as a float.
    amount: str = Field(pattern=r"^[0-9]{1,18}(\.[0-9]{1,18})?$")
    currency: str = Field(pattern=r"^[A-Za-z0-9]{2,12}$")
    # Shown on the hosted page; the merchant_ref when absent.
    description: str | None = _TEXT
    customer: Customer = Field(default_factory=Customer)
    return_to: Literal["merchant", "paysync"] = "merchant"
    return_url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$", max_length=2000)
    expires_at: AwareDatetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("provider", "account", "merchant_ref", "description", "metadata")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        return no_nul(value)

    def digest(self) -> str:
        """The request's fingerprint: the same key with another body is a conflict."""
        canonical = orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canonical).hexdigest()


def semantic_problems(
    req: CheckoutRequest, *, has_returns: bool, public_url: str | None, now: datetime
) -> dict[str, str]:
    """What the body's schema cannot say: the field errors found against the world."""
    problems = {}
    if Decimal(req.amount) <= 0:
        problems["amount"] = "must be greater than zero"
    if req.expires_at is not None and req.expires_at <= now:
        problems["expires_at"] = "must be in the future"
    if req.return_to == "paysync":
        if not has_returns:
            problems["return_to"] = f"{req.provider} does not sign its return: use merchant"
        elif public_url is None:
            problems["return_to"] = "paysync has no [api] public_url to return to"
        if req.return_url is not None:
            problems["return_url"] = "return_to paysync uses the account's configured pages"
    return problems


def checkout_order(req: CheckoutRequest, key: str, public_url: str | None) -> CheckoutOrder:
    """The order a provider's client is asked to create."""
    base = None if public_url is None else public_url.rstrip("/")
    route = f"{req.provider}/{req.account}"
    return_url = req.return_url
    if req.return_to == "paysync" and base is not None:
        return_url = f"{base}/return/{route}"
    customer = {k: v for k, v in req.customer.model_dump().items() if v is not None}
    return CheckoutOrder(
        merchant_ref=req.merchant_ref,
        amount=Decimal(req.amount),
        currency=req.currency,
        description=req.description or req.merchant_ref,
        customer=customer,
        return_url=return_url,
        notify_url=None if base is None else f"{base}/webhooks/{route}",
        expires_at=req.expires_at,
        idempotency_key=key,
    )
