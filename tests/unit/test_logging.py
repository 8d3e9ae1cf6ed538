"""configure_logging: one JSON object per line, context merged, secrets never printed."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from paysync.logging import SecretScrubber, configure_logging, get_logger

SECRET = "0123456789abcdef0123456789abcdef"
REDACTED = "[redacted]"

Configure = Callable[..., AbstractContextManager[io.StringIO]]


@pytest.fixture
def logs() -> Iterator[Configure]:
    """``with logs(secrets) as out:`` configures logging into ``out`` and restores it after.

    The root logger's handlers are restored inside the test body, so pytest's own capture
    handlers are back before pytest removes them; structlog is reset after every test.
    """

    @contextmanager
    def configure(secrets: list[str] | None = None, level: str = "info") -> Iterator[io.StringIO]:
        root = logging.getLogger()
        handlers, root_level = root.handlers[:], root.level
        out = io.StringIO()
        configure_logging(level, [SECRET] if secrets is None else secrets, stream=out)
        try:
            yield out
        finally:
            root.handlers[:] = handlers
            root.setLevel(root_level)

    yield configure
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def assert_no_secret(out: io.StringIO) -> None:
    text = out.getvalue()
    assert text, "nothing was logged"
    assert SECRET not in text
    assert REDACTED in text


def test_lines_are_json_with_event_level_timestamp(logs: Configure) -> None:
    with logs() as out:
        log = get_logger("test")
        log.info("thing_happened", count=3)
        log.warning("other_thing_happened")
    first, second = lines(out)
    assert first["event"] == "thing_happened"
    assert first["level"] == "info"
    assert first["count"] == 3
    assert second["event"] == "other_thing_happened"
    assert second["level"] == "warning"
    for entry in (first, second):
        stamp = entry["timestamp"]
        assert stamp.endswith("Z")
        assert datetime.fromisoformat(stamp).utcoffset() is not None


def test_a_field_with_non_string_keys_is_logged_not_raised(logs: Configure) -> None:
    with logs() as out:
        get_logger("test").info("answers_counted", answers={200: 3, 503: 1})
    [entry] = lines(out)
    assert entry["answers"] == {"200": 3, "503": 1}


def test_level_filters(logs: Configure) -> None:
    with logs(level="warning") as out:
        log = get_logger("test")
        log.debug("debug_seen")
        log.info("info_seen")
        log.error("error_seen")
    assert [e["event"] for e in lines(out)] == ["error_seen"]


def test_secret_in_a_field_is_redacted(logs: Configure) -> None:
    with logs() as out:
        get_logger("test").info("callback_rejected", header=f"Sign={SECRET};")
    assert_no_secret(out)
    [entry] = lines(out)
    assert entry["header"] == f"Sign={REDACTED};"


def test_secret_in_a_bytes_field_is_redacted(logs: Configure) -> None:
    with logs() as out:
        get_logger("test").info("body_logged", body=b"secret=" + SECRET.encode())
    assert_no_secret(out)


def test_secret_in_event_text_is_redacted(logs: Configure) -> None:
    with logs() as out:
        get_logger("test").info(f"careless {SECRET} event")
    assert_no_secret(out)
    [entry] = lines(out)
    assert entry["event"] == f"careless {REDACTED} event"


def test_secret_in_exception_message_is_redacted(logs: Configure) -> None:
    with logs() as out:
        log = get_logger("test")
        try:
            raise RuntimeError(f"could not sign with {SECRET}")
        except RuntimeError:
            log.exception("signing_failed")
    assert_no_secret(out)
    [entry] = lines(out)
    assert entry["event"] == "signing_failed"
    assert entry["level"] == "error"
    assert "RuntimeError" in entry["exception"]
    assert REDACTED in entry["exception"]


def test_secret_in_a_nested_field_is_redacted(logs: Configure) -> None:
    # "a careless field can never print one" (paysync/logging.py): dicts and lists too.
    with logs() as out:
        get_logger("test").info(
            "request_logged", headers={"Sign": SECRET}, values=[SECRET], pair=("a", SECRET)
        )
    assert_no_secret(out)


def test_secret_in_a_non_string_field_is_redacted(logs: Configure) -> None:
    # Rendered through repr() by the JSON serializer: the scrubber must still see it.
    with logs() as out:
        get_logger("test").warning("store_failed", error=ValueError(f"bad key {SECRET}"))
    assert_no_secret(out)


def test_secret_in_library_log_is_redacted(logs: Configure) -> None:
    with logs() as out:
        logging.getLogger("aio_pika.robust_connection").warning("connect to %s failed", SECRET)
    assert_no_secret(out)
    [entry] = lines(out)
    assert entry["level"] == "warning"
    assert entry["event"] == f"connect to {REDACTED} failed"


def test_secret_in_library_exception_is_redacted(logs: Configure) -> None:
    with logs() as out:
        try:
            raise ConnectionError(f"auth {SECRET} refused")
        except ConnectionError:
            logging.getLogger("aiohttp.server").exception("handler_failed")
    assert_no_secret(out)
    [entry] = lines(out)
    assert "ConnectionError" in entry["exception"]


def test_library_info_is_not_printed(logs: Configure) -> None:
    with logs(level="debug") as out:
        logging.getLogger("aio_pika").info("chatty")
        get_logger("test").debug("ours")
    assert [e["event"] for e in lines(out)] == ["ours"]


def test_every_configured_secret_is_redacted(logs: Configure) -> None:
    with logs([SECRET, "dbpassword"]) as out:
        get_logger("test").info("both", a=SECRET, b="postgresql://u:dbpassword@h/db")
    text = out.getvalue()
    assert SECRET not in text
    assert "dbpassword" not in text


def test_no_secrets_leaves_text_alone(logs: Configure) -> None:
    with logs([]) as out:
        get_logger("test").info("plain", value="nothing to hide")
    [entry] = lines(out)
    assert entry["value"] == "nothing to hide"


def test_bound_contextvars_appear(logs: Configure) -> None:
    with logs() as out:
        log = get_logger("test")
        with structlog.contextvars.bound_contextvars(provider="ccpayment", account="shop"):
            log.info("inside")
        log.info("outside")
    inside, outside = lines(out)
    assert inside["provider"] == "ccpayment"
    assert inside["account"] == "shop"
    assert "provider" not in outside
    assert "account" not in outside


def test_bound_contextvar_holding_secret_is_redacted(logs: Configure) -> None:
    with logs() as out, structlog.contextvars.bound_contextvars(token=SECRET):
        get_logger("test").info("inside")
    assert_no_secret(out)


def test_scrubber_replaces_longest_secret_whole() -> None:
    scrubber = SecretScrubber(["abc", "abcdef"])
    assert scrubber.scrub("x-abcdef-abc-y") == f"x-{REDACTED}-{REDACTED}-y"


def test_scrubber_ignores_empty_secrets() -> None:
    scrubber = SecretScrubber(["", "k3y"])
    assert scrubber.scrub("plain text") == "plain text"
    assert scrubber.scrub("a k3y") == f"a {REDACTED}"


# Upper-case hex: a secret can then never be part of the "[redacted]" marker itself.
_SECRET_TEXT = st.text(alphabet="0123456789ABCDEF", min_size=3, max_size=12)


@given(
    secrets=st.lists(_SECRET_TEXT, min_size=1, max_size=4),
    pieces=st.lists(st.text(max_size=8), max_size=6),
    picks=st.lists(st.integers(min_value=0, max_value=3), max_size=6),
)
def test_scrubbed_text_never_contains_a_secret(
    secrets: list[str], pieces: list[str], picks: list[int]
) -> None:
    text = "".join(
        piece + secrets[pick % len(secrets)] for piece, pick in zip(pieces, picks, strict=False)
    )
    scrubbed = SecretScrubber(secrets).scrub(text + secrets[0])
    for secret in secrets:
        assert secret not in scrubbed
