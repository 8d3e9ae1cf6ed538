"""``paysync reconcile`` refuses accounts that are not configured (real Postgres: before
this check the job ran, found nothing and exited 0 with "checked 0")."""

from __future__ import annotations

import pytest

from paysync import cli
from tests.support.config import RunConfig

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--provider", "plural", "--account", "shpo"],
            "paysync: reconcile: no plural account 'shpo' is configured (configured: shop)",
        ),
        (
            ["--provider", "hdfc", "--account", "plural-shop", "--dry-run"],
            "paysync: reconcile: no hdfc account 'plural-shop' is configured (configured: shop)",
        ),
    ],
)
@pytest.mark.usefixtures("restored_logging")
def test_an_unknown_account_exits_2_with_one_line(
    config: RunConfig,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    line: str,
) -> None:
    for name, value in config.env.items():
        monkeypatch.setenv(name, value)
    code = cli.main(["--config", str(config.path), "reconcile", *args])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err == line + "\n"  # one line, no report, nothing checked
