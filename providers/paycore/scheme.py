"""PayCore.io (Corefy): the scheme — account model, status mapping, the signature and the
invoice document both the callback and the status API carry.

Scheme (providers/paycore.md): ``X-Signature`` = standard base64 of the raw SHA-1 digest of
``secret + raw_body + secret`` (a plain hash, not an HMAC). The secret is the ``sk_live_`` or
``sk_test_`` key of the mode the invoice was created in. Nothing else is signed (no
timestamp, no nonce): a replay is absorbed by the inbox key and the fold (design §8).

A callback is the invoice's JSON:API document (``data.type`` = ``payment-invoices``), the
same document the private API returns. PayCore reports statuses, not money movements, so
each document is one status observation, keyed by (invoice id, status, ``updated``).

The Commerce private API's ``GET /payment-invoices/{cpi_id}`` (the status API) answers that
same document; :func:`invoice_observations` reads both, so a poll and a callback reporting
one state share a key. The adapter (verification, parsing, the ack) is in
providers/paycore/adapter.py, the status-API client in providers/paycore/status.py.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from paysync.errors import MalformedMessage
from paysync.settings import ProviderAccount, SecretRef
from providers.payload import money, required_text
from schemas.mapping import StatusMapping
from schemas.observation import Kind, Observation, Source
from schemas.status import Status

NAME = "paycore"
HEADER_SIGNATURE = "X-Signature"
PAYMENT_INVOICES = "payment-invoices"

MAPPING = StatusMapping(
    provider=NAME,
    statuses={
        "created": Status.PENDING,
        "processing": Status.PENDING,
        "process_pending": Status.PENDING,
        "process_error": Status.PENDING,
        # A verify-only flow moves no money; "the invoice exists" is all it says.
        "verified": Status.PENDING,
        "processed": Status.PAID,
        # Final: the customer paid less than the invoice amount and that part succeeded.
        "partially_processed": Status.UNDERPAID,
        "process_failed": Status.FAILED,
        "verify_failed": Status.FAILED,
        "expired": Status.EXPIRED,
        "terminated": Status.EXPIRED,
        # PayCore refunds only a successful payment, so every refund-side state says the
        # payment was made; none of them may lower or change a paid payment. A failed or
        # pending refund leaves it paid. (A refund of a partially processed invoice is
        # caught in the parser and stays underpaid: see _canonical.)
        "refunding": Status.PAID,
        "refund_pending": Status.PAID,
        "refund_error": Status.PAID,
        "refund_failed": Status.PAID,
        "partially_refunded": Status.PARTIALLY_REFUNDED,
        "refunded": Status.REFUNDED,
        "charged_back": Status.CHARGED_BACK,
        # There is no canonical partial chargeback: any disputed money is the fact operators
        # must see, and charged_back is the only status above the refunds.
        "partially_charged_back": Status.CHARGED_BACK,
    },
    # process_failed is final per PayCore's status list: set after the last attempt.
    failure_is_final=True,
)

_REFUND_SIDE = frozenset({"refunding", "refund_pending", "refund_error", "refund_failed"})
# datetime cannot represent later instants; a larger `updated` is not Unix seconds.
_MAX_UNIX_SECONDS = 253402300799


class PayCoreAccount(ProviderAccount):
    """``secrets`` are the live secret keys (``sk_live_...``), ``test_secrets`` the sandbox
    ones (``sk_test_...``); several of each may be active while keys rotate."""

    status_api_fields = ("api_account_id", "api_key")

    test_secrets: list[SecretRef] = Field(default_factory=list)
    # The status API's HTTP Basic credentials: the Commerce account id (``coma_...``, the
    # username, so no colon) and its API key. Not the callback secrets.
    api_account_id: str | None = Field(default=None, pattern=r"^[^:\s]+$")
    api_key: SecretRef | None = None


def sign(secret: str, body: bytes) -> str:
    """The ``X-Signature`` PayCore sends with ``body``."""
    key = secret.encode()
    # SHA-1 is PayCore's choice, not ours: the header cannot be checked any other way.
    digest = hashlib.sha1(key + body + key).digest()  # noqa: S324
    return base64.b64encode(digest).decode("ascii")


def invoice_observations(
    doc: Mapping[str, Any], *, account: str, source: Source, received_at: datetime
) -> list[Observation]:
    """The observations in one invoice document (a callback or a ``GET`` of the invoice:
    both have this shape, and the same state yields the same ``dedup_key``).

    Another resource type (``payout-invoices``) is authentic but not a payment: ``[]``.
    No refund or credit observation is made: ``refunded_amount`` and ``processed_amount``
    are running totals that the fold would add up again from every callback; the
    ``refunded`` / ``partially_refunded`` statuses carry the refund.
    """
    data = doc.get("data")
    if not isinstance(data, dict):
        raise MalformedMessage("data is missing or not a JSON:API resource object")
    if required_text(data, "type", "data.type") != PAYMENT_INVOICES:
        return []
    invoice_id = required_text(data, "id", "data.id")
    attributes = data.get("attributes")
    if not isinstance(attributes, dict):
        raise MalformedMessage("data.attributes is missing or not an object")
    status = required_text(attributes, "status", "attributes.status")
    updated = _unix_seconds(attributes.get("updated"))
    stamp = "" if updated is None else str(updated)
    currency = attributes.get("currency")
    return [
        Observation(
            kind=Kind.STATUS,
            source=source,
            provider=NAME,
            account=account,
            merchant_ref=required_text(attributes, "reference_id", "attributes.reference_id"),
            # PayCore resends an invoice's state (retries, batching, manual resends): the
            # same (id, status, updated) is one fact, a later `updated` a new one.
            dedup_key=f"{NAME}:{account}:{invoice_id}:{status}:{stamp}",
            observed_at=received_at if updated is None else datetime.fromtimestamp(updated, UTC),
            provider_ref=invoice_id,
            status=_canonical(status, attributes),
            provider_status=status,
            amount_due=money(attributes, "amount", "attributes.amount"),
            currency=currency if isinstance(currency, str) and currency else None,
        )
    ]


def _canonical(provider_status: str, attributes: Mapping[str, Any]) -> Status | None:
    """The mapped status, except that a refund-side state of an invoice that was only
    partly processed implies ``underpaid``, not ``paid``."""
    if provider_status in _REFUND_SIDE:
        processed = money(attributes, "processed_amount", "attributes.processed_amount")
        due = money(attributes, "payment_amount", "attributes.payment_amount")
        due = money(attributes, "amount", "attributes.amount") if due is None else due
        if processed is not None and due is not None and processed < due:
            return Status.UNDERPAID
    return MAPPING.canonical(provider_status)


def _unix_seconds(raw: object) -> int | None:
    if raw is None:
        return None
    if not isinstance(raw, int) or isinstance(raw, bool) or not 0 <= raw <= _MAX_UNIX_SECONDS:
        raise MalformedMessage("attributes.updated is not Unix seconds")
    return raw
