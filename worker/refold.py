"""``paysync payment refold``: make every stored payment row the fold of its receipts.

For data written before the store folded every receipt of a fact (until then a later
report with an earlier observation time, e.g. a CCPayment poll's ``pay_time``, was
recorded but never folded, so ``late`` could depend on arrival order). Payments are
visited in id order, each in its own transaction under its row lock, so it runs beside
live workers. A row that differs is rewritten as any receipt would rewrite it: a status
change appends a transition and a ``payment.status_changed`` event (next ``seq``), a new
anomaly while the status stays a ``payment.flagged`` event; a change of other fields
alone (``late``, terms) writes the row and emits nothing. ``--dry-run`` only reports.
Running it again finds nothing to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any

from paysync.state.fold import PaymentState
from paysync.timeline.document import json_value
from worker.store import Refolded, Store

PAGE = 500


@dataclass(slots=True, kw_only=True)
class RefoldReport:
    dry_run: bool
    checked: int = 0
    differing: list[Refolded] = field(default_factory=list)


async def refold_all(store: Store, *, dry_run: bool, page: int = PAGE) -> RefoldReport:
    """Refold every payment; raises DatabaseUnavailable (rows done so far stay done)."""
    report = RefoldReport(dry_run=dry_run)
    last = 0
    while ids := await store.payment_ids_after(last, page):
        for payment_id in ids:
            found = await store.refold_payment(payment_id, dry_run=dry_run)
            if found is not None:
                report.differing.append(found)
        report.checked += len(ids)
        last = ids[-1]
    return report


def changes(found: Refolded) -> dict[str, dict[str, Any]]:
    """Each column that differs: what is stored and what the fold of the receipts says."""
    return {
        f.name: {"stored": json_value(before), "refolded": json_value(after)}
        for f in fields(PaymentState)
        if (before := _column(found.before, f.name)) != (after := _column(found.after, f.name))
    }


def _column(state: PaymentState, name: str) -> Any:
    value = getattr(state, name)
    return value.value if isinstance(value, Enum) else value


def report_json(report: RefoldReport) -> dict[str, Any]:
    return {
        "dry_run": report.dry_run,
        "checked": report.checked,
        "differing": len(report.differing),
        "payments": [
            {
                "id": found.payment_id,
                "payment": found.payment,
                "changes": changes(found),
                "event": None if found.event is None else found.event.value,
            }
            for found in report.differing
        ],
    }
