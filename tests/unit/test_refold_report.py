"""What ``paysync payment refold`` prints: the table of rows that differ, or one JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest

from paysync.cli.render import print_refold
from paysync.state.fold import PaymentState
from schemas.event import EventType
from schemas.status import Status
from worker.refold import RefoldReport, changes
from worker.store import Refolded

STORED = PaymentState(
    status=Status.UNDERPAID,
    amount=Decimal("30.00"),
    amount_paid=Decimal("25.00"),
    expires_at=datetime(2026, 11, 21, 10, 0, tzinfo=UTC),
    late=True,
)
FOUND = Refolded(
    payment_id=7,
    payment="ccpayment/shop/order-1",
    before=STORED,
    after=PaymentState(
        status=Status.PAID,
        amount=Decimal("25.00"),
        amount_paid=Decimal("25.00"),
        expires_at=STORED.expires_at,
        late=False,
        anomaly="amount_due_conflict",
    ),
    event=EventType.STATUS_CHANGED,
)


def test_changes_name_each_differing_column_as_json() -> None:
    assert changes(FOUND) == {
        "status": {"stored": "underpaid", "refolded": "paid"},
        "amount": {"stored": "30.00", "refolded": "25.00"},
        "late": {"stored": True, "refolded": False},
        "anomaly": {"stored": None, "refolded": "amount_due_conflict"},
    }


@pytest.mark.parametrize("dry_run", [True, False])
def test_the_table_shows_each_payment_and_the_totals(
    capsys: pytest.CaptureFixture[str], dry_run: bool
) -> None:
    print_refold(RefoldReport(dry_run=dry_run, checked=3, differing=[FOUND]), as_json=False)
    out = capsys.readouterr().out
    assert "ccpayment/shop/order-1" in out
    assert "status: underpaid -> paid" in out
    assert "late: true -> false" in out
    assert "anomaly: - -> amount_due_conflict" in out
    assert "payment.status_changed" in out
    tail = "would be rewritten (dry run)" if dry_run else "rewritten"
    assert f"checked 3: 1 differed, {tail}" in out


def test_the_json_report(capsys: pytest.CaptureFixture[str]) -> None:
    print_refold(RefoldReport(dry_run=False, checked=3, differing=[FOUND]), as_json=True)
    doc = orjson.loads(capsys.readouterr().out)
    assert doc == {
        "dry_run": False,
        "checked": 3,
        "differing": 1,
        "payments": [
            {
                "id": 7,
                "payment": "ccpayment/shop/order-1",
                "changes": changes(FOUND),
                "event": "payment.status_changed",
            }
        ],
    }
