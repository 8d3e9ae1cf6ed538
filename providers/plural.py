"""Plural (Pine Labs): the status mapping (design §5, providers/plural.md).

The webhook/return-URL adapters and status-API client come with issue 4 / 5.
"""

from __future__ import annotations

from schemas.mapping import StatusMapping
from schemas.status import Status

NAME = "plural"

MAPPING = StatusMapping(
    provider=NAME,
    statuses={
        "CREATED": Status.PENDING,
        "PENDING": Status.PENDING,
        "ATTEMPTED": Status.PENDING,
        "AUTHORIZED": Status.AUTHORIZED,
        # PROCESSED on a pre-auth order is a capture; the fold derives it from AUTHORIZED.
        "PROCESSED": Status.PAID,
        "CANCELLED": Status.CANCELLED,
        "FAILED": Status.FAILED,
        "PARTIALLY_REFUNDED": Status.PARTIALLY_REFUNDED,
        "FULLY_REFUNDED": Status.REFUNDED,
    },
    # FAILED is final per Plural's docs (ATTEMPTED exists for retryable failures).
    failure_is_final=True,
)
