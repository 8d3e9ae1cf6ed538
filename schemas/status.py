"""Canonical payment statuses and their ranks (design §5). A fold never lowers the rank."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    PENDING = "pending"
    FAILED = "failed"
    EXPIRED = "expired"
    UNDERPAID = "underpaid"
    OVERDUE = "overdue"
    AUTHORIZED = "authorized"
    CANCELLED = "cancelled"
    PAID = "paid"
    CAPTURED = "captured"
    OVERPAID = "overpaid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    CHARGED_BACK = "charged_back"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {status: rank for rank, status in enumerate(Status)}


def higher(a: Status, b: Status) -> Status:
    """The status of higher rank (``a`` on a tie)."""
    return a if a.rank >= b.rank else b
