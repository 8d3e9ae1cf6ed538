"""Pure parts of search, replay and the console: filter parsing, the cursor, LIKE escaping,
replay selections, console sessions and CSRF tokens, and the charts' geometry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from console.charts import bar_chart
from console.session import Sessions
from paysync.replay import ReplaySelection, payment_selection
from paysync.search import Cursor, InvalidSearch, parse_filters
from paysync.settings import Secret
from schemas.status import Status


def test_filters_parse_every_parameter() -> None:
    f = parse_filters(
        {
            "provider": "hdfc",
            "status": ["paid,captured", "paid"],
            "anomaly": "false",
            "late": "true",
            "created_from": "2026-11-21t10:00:00+02:00",
            "limit": "7",
            "merchant_ref_prefix": "a%_\\",
        }
    )
    assert f.statuses == (Status.PAID, Status.CAPTURED)
    assert (f.anomaly, f.late, f.limit) == (False, True, 7)
    assert f.created_from == datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    args = f.query_args()
    assert args[9] == "a\\%\\_\\\\%"  # a prefix's LIKE wildcards are characters
    assert args[-1] == 8  # one more than the page, to tell whether there is another
    assert f.query_name == "search_payments_fenced"
    assert parse_filters({}).query_name == "search_payments"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": ","}, "status"),
        ({"limit": "501"}, "limit"),
        ({"limit": "٣"}, "limit"),
        ({"provider": ""}, "provider"),
        ({"provider": "x" * 201}, "provider"),
        ({"late": ["true", "false"]}, "late"),
        ({"updated_to": "2026-13-01T00:00:00Z"}, "updated_to"),
        ({"cursor": Cursor(created_at=datetime.now(UTC), id=1).encode()[:-3]}, "cursor"),
    ],
)
def test_bad_filters_name_their_field(params, field) -> None:
    with pytest.raises(InvalidSearch) as caught:
        parse_filters(params)
    assert set(caught.value.fields) == {field}


def test_the_cursor_round_trips_and_refuses_forgeries() -> None:
    at = datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=UTC)
    assert Cursor.decode(Cursor(created_at=at, id=42).encode()) == Cursor(created_at=at, id=42)
    for bad in ("", "!!", "WyJ4Il0", "WyIyMDI2LTExLTIxVDEwOjAwOjAwIiwgMV0"):
        with pytest.raises(ValueError, match="cursor"):
            Cursor.decode(bad)


def test_replay_selections() -> None:
    one = payment_selection("ccpayment/shop/a/b")
    assert (one.provider, one.account, one.merchant_ref) == ("ccpayment", "shop", "a/b")
    since = datetime.now(UTC) - timedelta(hours=1)
    assert ReplaySelection(since=since, provider="hdfc").query_args(5)[3] == since
    for kwargs in (
        {},
        {"merchant_ref": "x"},
        {"since": since.replace(tzinfo=None)},
        {"since": since, "account": "shop"},
        {"provider": "p", "account": "a", "merchant_ref": "r", "since": since},
    ):
        with pytest.raises(ValueError, match=r"payment|since|time zone|provider"):
            ReplaySelection(**kwargs)
    with pytest.raises(ValueError, match="PROVIDER/ACCOUNT/MERCHANT_REF"):
        payment_selection("ccpayment/shop")


def test_sessions_sign_expire_and_follow_the_configured_tokens() -> None:
    tokens = [Secret("env:T", "token-one")]
    sessions = Sessions(b"k" * 32, 3600, tokens)
    logged_in = sessions.fresh(sessions.fingerprint("token-one"))
    cookie = sessions.dump(logged_in)
    assert "token-one" not in cookie
    assert sessions.authenticated(sessions.load(cookie))
    # Four characters of the signature: the last one alone may only carry base64's unused
    # bits, and decode to the same signature (the test then failed about 1 run in 50).
    tampered = cookie[:-4] + ("AAAA" if cookie[-4:] != "AAAA" else "BBBB")
    assert sessions.load(tampered) is None
    assert Sessions(b"x" * 32, 3600, tokens).load(cookie) is None  # another key
    assert not sessions.authenticated(sessions.fresh())
    tokens.clear()  # the token was removed from the configuration
    assert not sessions.authenticated(sessions.load(cookie))
    csrf = sessions.csrf_token(logged_in)
    assert sessions.csrf_ok(logged_in, csrf)
    assert not sessions.csrf_ok(sessions.fresh(), csrf)
    assert not sessions.csrf_ok(logged_in, None)


def test_bar_chart_geometry() -> None:
    chart = bar_chart("t", [("b", 5), ("a", 10), ("c", 0)])
    assert [b.label for b in chart.bars] == ["a", "b", "c"]
    assert chart.bars[0].width == chart.plot_width
    assert chart.bars[1].width == chart.plot_width // 2
    assert chart.bars[2].width == 0
    assert chart.total == 15
    assert bar_chart("empty", []).bars == ()
