"""PayCore.io (Corefy): the status mapping (design §5, providers/paycore.md).

The callback adapter (``X-Signature``) and status-API client come with issue 4 / 5.
"""

from __future__ import annotations

from schemas.mapping import StatusMapping
from schemas.status import Status

NAME = "paycore"

MAPPING = StatusMapping(
    provider=NAME,
    statuses={
        "created": Status.PENDING,
        "processing": Status.PENDING,
        "process_pending": Status.PENDING,
        "process_error": Status.PENDING,
        "processed": Status.PAID,
        # Final: the customer paid less than the invoice amount and that part succeeded.
        "partially_processed": Status.UNDERPAID,
        "process_failed": Status.FAILED,
        "verify_failed": Status.FAILED,
        "expired": Status.EXPIRED,
        "terminated": Status.EXPIRED,
        "partially_refunded": Status.PARTIALLY_REFUNDED,
        "refunded": Status.REFUNDED,
        "charged_back": Status.CHARGED_BACK,
        "partially_charged_back": Status.CHARGED_BACK,
    },
    # process_failed is final per PayCore's status list: set after the last attempt.
    failure_is_final=True,
)
