"""``paysync payment show``: the terminal view of a payment's timeline document
(``paysync.timeline.document``): its columns, then one line per observation, transition
and event, by time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

# Equal times (a transition and its event share their transaction's time) keep cause order.
_RANK = {"received": 0, "transition": 1, "event": 2}


def render_text(timeline: Mapping[str, Any]) -> str:
    """The payment's columns, then one line per observation, transition and event, by time."""
    return "\n".join([*_summary(timeline["payment"]), "", "timeline (UTC):", *_entries(timeline)])


def _summary(payment: Mapping[str, Any]) -> list[str]:
    name = f"{payment['provider']}/{payment['account']}/{payment['merchant_ref']}"
    status = payment.get("status") or "(no status yet)"
    lines = [f"payment {name}: {status} (seq {payment.get('seq')})"]
    shown = {"provider", "account", "merchant_ref", "status", "seq"}
    width = max((len(k) for k in payment if k not in shown), default=0)
    for key, value in payment.items():
        if key not in shown:
            lines.append(f"  {key.ljust(width)}  {_text(value)}")
    return lines


def _entries(timeline: Mapping[str, Any]) -> list[str]:
    entries = [
        *(_observation_entry(o) for o in timeline["observations"]),
        *(_transition_entry(t) for t in timeline["transitions"]),
        *(_event_entry(e) for e in timeline["events"]),
    ]
    entries.sort(key=lambda e: (e[0], _RANK[e[1]], e[2]))
    if not entries:
        return ["  (nothing recorded)"]
    return [f"  {at}  {label:<10}  {text}" for at, label, _, text in entries]


Entry = tuple[str, str, int, str]


def _observation_entry(obs: Mapping[str, Any]) -> Entry:
    facts = obs.get("observation") or {}
    details = " ".join(
        f"{key}={facts[key]}"
        for key in ("provider_status", "status", "record_id", "amount", "currency")
        if isinstance(facts, Mapping) and facts.get(key) is not None
    )
    text = (
        f"#{obs['id']} {obs['source']} {obs['kind']} -> {obs['outcome']}"
        f"{'  ' + details if details else ''}  (applied {obs['applied_at']},"
        f" message {obs['message_id']})"
    )
    return obs["received_at"], "received", int(obs["id"]), text


def _transition_entry(tr: Mapping[str, Any]) -> Entry:
    inbox = f", inbox #{tr['inbox_id']}" if tr.get("inbox_id") is not None else ""
    text = (
        f"seq {tr['seq']}: {tr['from_status'] or '(none)'} -> {tr['to_status']}"
        f"  ({tr['source']}{inbox})"
    )
    return tr["at"], "transition", int(tr["seq"]), text


def _event_entry(ev: Mapping[str, Any]) -> Entry:
    published = ev.get("published_at")
    state = f"published {published}" if published else "not yet published"
    text = f"seq {ev['seq']}: {ev['routing_key']}  {state}  (event_id {ev['event_id']})"
    return ev["created_at"], "event", int(ev["seq"]), text


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)
