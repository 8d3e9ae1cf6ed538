"""The command line as a newcomer meets it, without services: every ``--help`` with its
choices and defaults, ``--version``, the demo's secrets read from the checkout, one line
(never a traceback) for an expected failure, tables that fit 80 columns."""

from __future__ import annotations

import argparse
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from rich.console import Console

from paysync import cli
from paysync.cli.failures import DEMO_ENV, DEMO_SECRETS_SCRIPT, explain
from paysync.cli.parser import _has_default, build_parser, paysync_version
from paysync.cli.render import console, print_listing, print_table
from paysync.dead import DeadLetter, Listing
from reconciler.checker import Check, Due
from reconciler.job import JobReport
from schemas.status import Status

pytestmark = pytest.mark.usefixtures("restored_logging")


def commands(parser: argparse.ArgumentParser, path: str = "paysync") -> Iterator[tuple[str, str]]:
    """Every command and subcommand with its --help text."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from commands(child, f"{path} {name}")
            return
    yield path, parser.format_help()


def test_every_help_says_what_the_command_does_and_takes_config() -> None:
    found = dict(commands(build_parser()))
    assert len(found) == 18  # with console, events replay, payment list and checkout create
    for path, text in found.items():
        assert "--config FILE" in text, path
        description = text.split("\n\n")[1]
        assert len(description) > 20, (path, description)  # more than its usage and -h


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("paysync reconcile", ["one of: ccpayment, hdfc, paycore, plural", "(default: 24h)"]),
        ("paysync simulate", ["one of: ccpayment, hdfc, paycore, plural", "(default: 1)"]),
        ("paysync demo", ["(default: 5.0)", "(default: 8090)", "(default: 0.3)"]),
        ("paysync migrate", ["(default: 0.0)"]),
        ("paysync events watch", ["(default: payment.#)", "(default: 0)"]),
        ("paysync dead list", ["(default: 10000)", "--wide"]),
        ("paysync payment refold", ["--dry-run", "--wide", "--json"]),
        ("paysync events replay", ["(default: 200", "one of: pending", "--dry-run"]),
        ("paysync payment list", ["--merchant-ref-prefix", "--status", "--json"]),
        ("paysync all", ["--console"]),
    ],
)
def test_choices_and_defaults_are_in_the_help(path: str, shown: list[str]) -> None:
    text = " ".join(dict(commands(build_parser()))[path].split())
    for part in shown:
        assert part in text, (path, part)


def parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from parsers(child)


def test_every_option_shows_its_default_and_choices() -> None:
    checked = 0
    for parser in parsers(build_parser()):
        helps = {
            action.dest: parser._get_formatter()._get_help_string(action) or ""
            for action in parser._actions
        }
        for action in parser._actions:
            if action.option_strings and _has_default(action):
                assert "default" in helps[action.dest], (parser.prog, action.dest)
                checked += 1
            if action.choices is not None and action.metavar is not None:
                assert "one of: " in helps[action.dest], (parser.prog, action.dest)
                checked += 1
    assert checked >= 16


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"paysync {paysync_version()}\n"
    assert paysync_version() == "0.1.0"


def test_config_is_taken_after_the_command_too() -> None:
    args = build_parser().parse_args(["payment", "show", "p", "a", "r", "--config", "x.toml"])
    assert args.config == "x.toml"
    assert build_parser().parse_args(["--config", "y.toml", "config", "check"]).config == "y.toml"


DEMO_CONFIG = """
[api]
tokens = ["env:DEMO_API_TOKEN"]

[accounts.hdfc.demo-shop]
webhook_username = "paysync"
secrets = ["env:HDFC_DEMO_SHOP_WEBHOOK_PASSWORD"]
api_key = "env:HDFC_DEMO_SHOP_API_KEY"
merchant_id = "shop_demo"
"""


def checkout(tmp_path: Path, *, secrets: bool) -> Path:
    """A checkout's demo config: paysync.toml beside deploy/demo-secrets.sh (and, once
    `make run` ran, .run/demo.env)."""
    (tmp_path / DEMO_SECRETS_SCRIPT).parent.mkdir(parents=True)
    (tmp_path / DEMO_SECRETS_SCRIPT).write_text("#!/bin/sh\n")
    config = tmp_path / "paysync.toml"
    config.write_text(DEMO_CONFIG)
    if secrets:
        (tmp_path / DEMO_ENV).parent.mkdir()
        (tmp_path / DEMO_ENV).write_text(
            "DEMO_API_TOKEN=t0ken\nHDFC_DEMO_SHOP_WEBHOOK_PASSWORD=pw\nHDFC_DEMO_SHOP_API_KEY=k\n"
        )
    return config


def test_the_demo_secrets_are_read_from_the_checkout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DEMO_API_TOKEN", "HDFC_DEMO_SHOP_WEBHOOK_PASSWORD", "HDFC_DEMO_SHOP_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HDFC_DEMO_SHOP_API_KEY", "from-the-shell")  # what is set wins
    config = checkout(tmp_path, secrets=True)
    assert cli.main(["--config", str(config), "config", "check"]) == 0
    out = capsys.readouterr().out
    assert '"env:HDFC_DEMO_SHOP_WEBHOOK_PASSWORD"' in out
    assert "t0ken" not in out


def test_without_the_demo_secrets_one_message_says_what_to_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DEMO_API_TOKEN", "HDFC_DEMO_SHOP_WEBHOOK_PASSWORD", "HDFC_DEMO_SHOP_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    config = checkout(tmp_path, secrets=False)
    assert cli.main(["--config", str(config), "config", "check"]) == 2
    assert capsys.readouterr().err == (
        "paysync: the demo's secrets are not set"
        " (3 variables: HDFC_DEMO_SHOP_WEBHOOK_PASSWORD, ...):"
        f" `make run` generates them into {tmp_path / DEMO_ENV} (or run"
        " deploy/demo-secrets.sh), and paysync then reads that file by itself\n"
    )
    # Another problem beside them: every problem is listed, by key, as always.
    config.write_text(DEMO_CONFIG.replace('merchant_id = "shop_demo"', 'merchant_id = ""'))
    assert cli.main(["--config", str(config), "config", "check"]) == 2
    err = capsys.readouterr().err
    assert "accounts.hdfc.demo-shop.merchant_id:" in err
    assert "environment variable HDFC_DEMO_SHOP_WEBHOOK_PASSWORD is not set" in err


def test_elsewhere_no_file_is_read_and_no_hint_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HDFC_DEMO_SHOP_WEBHOOK_PASSWORD", raising=False)
    config = tmp_path / "prod.toml"
    config.write_text(DEMO_CONFIG)
    assert cli.main(["--config", str(config), "config", "check"]) == 2
    assert "make run" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["simulate", "hdfc", "--account", "nope"],
            "paysync: simulate: no hdfc account 'nope' is configured (configured: demo-shop)",
        ),
        (
            ["simulate", "plural"],
            "paysync: simulate: no plural account is configured (configured: none)",
        ),
        (
            ["reconcile", "--provider", "hdfc", "--account", "shpo"],
            "paysync: reconcile: no hdfc account 'shpo' is configured (configured: demo-shop)",
        ),
        (
            ["reconcile", "--provider", "hdfc", "--since", "soon"],
            "paysync: reconcile: --since 'soon' is not a duration such as 30m, 24h or 7d",
        ),
    ],
)
def test_an_unknown_account_or_bad_argument_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], line: str
) -> None:
    config = checkout(tmp_path, secrets=True)
    assert cli.main(["--config", str(config), *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == line + "\n"


def test_expected_failures_are_explained_in_one_line() -> None:
    not_migrated = explain(asyncpg.UndefinedTableError('relation "payments" does not exist'))
    assert not_migrated == (
        'the database is not migrated (relation "payments" does not exist): run paysync migrate'
    )
    missing = explain(asyncpg.InvalidCatalogNameError('database "paysync" does not exist'))
    assert (
        missing
        == 'database "paysync" does not exist: run paysync migrate (it creates the database)'
    )
    key = aiohttp.client_reqrep.ConnectionKey("127.0.0.1", 8080, False, True, None, None, None)
    down = explain(
        aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connection refused"))
    )
    assert down == (
        "ingest not reachable at 127.0.0.1:8080 (Connection refused):"
        " is paysync running? (make run, or paysync ingest)"
    )
    # Anything else is a bug: its traceback must show.
    assert explain(KeyError("x")) is None


# --- tables --------------------------------------------------------------------------------

LONG_REF = "sim-5f0c3a9b1e2d4c5b8a7f6e5d4c3b2a19-with-a-long-merchant-reference"


def narrow() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=80, force_terminal=False, color_system=None), out


def test_a_drift_table_fits_80_columns_and_cuts_no_id() -> None:
    table_console, out = narrow()
    check = drift_check()
    print_table(JobReport(run_id=7, checks=[check]), dry_run=True, out=table_console)
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in out.getvalue()
    payment = f"ccpayment/demo-shop/{LONG_REF}"
    cells = "".join(line.split("│")[1].strip() for line in lines if line.startswith("│"))
    assert payment in cells  # folded over lines, every character there


def test_wide_is_one_line_per_row() -> None:
    wide = console(wide=True)
    out = io.StringIO()
    wide.file = out
    print_table(JobReport(run_id=7, checks=[drift_check()]), dry_run=False, out=wide)
    [row] = [line for line in out.getvalue().splitlines() if LONG_REF in line]
    assert "drift" in row
    assert "repair" in row


def test_a_dead_letter_table_fits_80_columns() -> None:
    table_console, out = narrow()
    letter = DeadLetter(
        message_id="5f0c3a9b-1e2d-4c5b-8a7f-6e5d4c3b2a19",
        dead_at="2026-11-21T20:21:55.868000+00:00",
        provider="ccpayment",
        account="demo-shop",
        kind="callback",
        reason="MalformedMessage: extend.merchant_order_id is missing or not a string",
        body_bytes=1234,
    )
    print_listing(Listing(letters=(letter,), scanned=1, ready=1), as_json=False, out=table_console)
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    assert text.splitlines()[-1] == "1 dead letters"


def drift_check() -> Check:
    return Check(
        payment=due_payment(),
        outcome="drift",
        provider_status="success",
        their_status=Status.PAID,
        action="repair",
    )


def due_payment() -> Due:
    return Due(
        id=1,
        provider="ccpayment",
        account="demo-shop",
        merchant_ref=LONG_REF,
        provider_ref=None,
        status=Status.UNDERPAID,
        created_at=datetime.now(UTC),
        expires_at=None,
        attempts=1,
    )
