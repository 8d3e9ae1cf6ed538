"""Small ingest parts without a network: the replay window and form decoding."""

from __future__ import annotations

import pytest

from ingest.replay import ReplayGuard
from paysync.errors import MalformedMessage
from providers.base import parse_form


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_remembered_key_is_seen_until_its_window_ends() -> None:
    clock = Clock()
    guard = ReplayGuard(window_seconds=60, max_entries=10, clock=clock)
    assert not guard.seen("a")
    guard.remember("a")
    clock.now += 59
    assert guard.seen("a")
    clock.now += 2
    assert not guard.seen("a")


def test_expired_keys_are_dropped_and_the_size_is_bounded() -> None:
    clock = Clock()
    guard = ReplayGuard(window_seconds=60, max_entries=3, clock=clock)
    for key in "abc":
        guard.remember(key)
    clock.now += 30
    guard.remember("d")
    # Full: the oldest goes first, even inside its window.
    assert len(guard) == 3
    assert not guard.seen("a")
    assert all(guard.seen(k) for k in "bcd")
    clock.now += 45
    guard.remember("e")
    # b and c expired; d and e remain.
    assert len(guard) == 2


def test_remembering_again_extends_the_window() -> None:
    clock = Clock()
    guard = ReplayGuard(window_seconds=60, max_entries=10, clock=clock)
    guard.remember("a")
    clock.now += 50
    guard.remember("a")
    clock.now += 50
    assert guard.seen("a")


def test_parse_form_decodes_once_and_keeps_blank_values() -> None:
    raw = b"order_id=ord_1&sig=abc%252B%253D&msg=Consumer+Authentication%20required&empty="
    assert parse_form(raw) == {
        "order_id": "ord_1",
        # Double-encoded on the wire: decoded exactly once here; the scheme decodes again.
        "sig": "abc%2B%3D",
        "msg": "Consumer Authentication required",
        "empty": "",
    }


@pytest.mark.parametrize(
    "raw",
    [b"a=1&a=2", b"a=%FF", b"a=\xff"],
    ids=["repeated key", "percent-encoded non-UTF-8", "raw non-UTF-8"],
)
def test_parse_form_refuses_what_cannot_be_verified_unambiguously(raw: bytes) -> None:
    with pytest.raises(MalformedMessage):
        parse_form(raw)
