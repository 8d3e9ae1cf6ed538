"""The example consumer's decisions: dedup on event_id, stale below the seq it passed, a
gap when seqs are skipped, and the action each status calls for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from examples.fulfilment_consumer import State, Verdict, action_for


def event(seq: int, status: str, ref: str = "o-1", **extra: Any) -> dict[str, Any]:
    payment = {
        "provider": "ccpayment",
        "account": "shop",
        "merchant_ref": ref,
        "seq": seq,
        "status": status,
        "late": False,
        "anomaly": [],
    } | extra
    return {"occurred_at": f"2026-11-21T10:00:0{seq}.000Z", "payment": payment}


def test_dedup_stale_and_gaps(tmp_path: Path) -> None:
    state = State(tmp_path / "s.sqlite3")
    assert state.watermark() is None
    assert state.handle("e1", event(1, "underpaid")) == Verdict("acted")
    assert state.handle("e1", event(1, "underpaid")) == Verdict("duplicate")
    assert state.handle("e3", event(3, "refunded")) == Verdict("acted", gap=(2, 2))
    assert state.handle("e2", event(2, "paid")) == Verdict("stale")
    assert state.handle("e2", event(2, "paid")) == Verdict("duplicate")
    assert state.handle("x1", event(1, "paid", ref="o-2")) == Verdict("acted")
    assert state.watermark() is not None
    state.close()
    again = State(tmp_path / "s.sqlite3")  # what it saw survives a restart
    assert again.handle("e3", event(3, "refunded")) == Verdict("duplicate")


def test_actions_follow_docs_events_md() -> None:
    assert action_for("paid", late=False, anomaly=[]) == "ship"
    assert action_for("paid", late=True, anomaly=[]) == "review"
    assert action_for("captured", late=False, anomaly=["cancelled_and_paid"]) == "review"
    assert action_for("refunded", late=False, anomaly=[]) == "refund"
    assert action_for("pending", late=False, anomaly=[]) == "hold"
