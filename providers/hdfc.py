"""HDFC SmartGateway (Juspay): the status mapping (design §5, providers/hdfc_smartgateway.md).

The webhook/return-URL adapters and status-API client come with issue 4 / 5.
"""

from __future__ import annotations

from schemas.mapping import StatusMapping
from schemas.status import Status

NAME = "hdfc"

MAPPING = StatusMapping(
    provider=NAME,
    statuses={
        "NEW": Status.PENDING,
        "PENDING": Status.PENDING,
        "PENDING_VBV": Status.PENDING,
        "VBV_SUCCESSFUL": Status.PENDING,
        "AUTHORIZING": Status.PENDING,
        "STARTED": Status.PENDING,
        "AUTHORIZED": Status.AUTHORIZED,
        # CHARGED after AUTHORIZED is a capture; the fold derives "captured" from both.
        "CHARGED": Status.PAID,
        "AUTHENTICATION_FAILED": Status.FAILED,
        "AUTHORIZATION_FAILED": Status.FAILED,
        "JUSPAY_DECLINED": Status.FAILED,
        "VOIDED": Status.CANCELLED,
        "AUTO_REFUNDED": Status.REFUNDED,
    },
    # A Juspay order carries several attempts: a customer's retry can still charge it.
    failure_is_final=False,
)
