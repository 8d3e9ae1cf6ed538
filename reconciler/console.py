"""What ``paysync reconcile`` prints: a progress bar on a terminal, then the drift table
(or one JSON document with ``--json``)."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from reconciler.checker import Check
from reconciler.job import JobReport


class Tracker:
    """Progress callbacks for run_job: a bar when stderr is a terminal, else nothing."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress
        self._task: Any = None

    def selected(self, count: int) -> None:
        if self._progress is not None:
            self._task = self._progress.add_task("checking", total=count)

    def checked(self, _check: Check) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task)


@contextmanager
def tracking(enabled: bool) -> Iterator[Tracker]:
    if not (enabled and sys.stderr.isatty()):
        yield Tracker(None)
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        yield Tracker(progress)


def check_json(check: Check) -> dict[str, Any]:
    p = check.payment
    return {
        "provider": p.provider,
        "account": p.account,
        "merchant_ref": p.merchant_ref,
        "provider_ref": p.provider_ref,
        "our_status": p.status.value if p.status else None,
        "provider_status": check.provider_status,
        "their_status": check.their_status.value if check.their_status else None,
        "outcome": check.outcome,
        "action": check.action,
        "error": check.error,
    }


def print_json(report: JobReport, *, dry_run: bool) -> None:
    counts = Counter(c.outcome for c in report.checks)
    doc = {
        "run_id": report.run_id,
        "dry_run": dry_run,
        "checked": len(report.checks),
        "counts": {k: counts[k] for k in ("in_sync", "drift", "not_found", "failed")},
        "checks": [check_json(c) for c in report.checks],
    }
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")


def print_table(report: JobReport, *, dry_run: bool) -> None:
    # Piped to a file or a pager, rows must not wrap: a line per payment greps well.
    console = Console() if sys.stdout.isatty() else Console(width=240)
    shown = [c for c in report.checks if c.outcome != "in_sync"]
    table = Table(title=f"reconcile run {report.run_id}" + (" (dry run)" if dry_run else ""))
    for column in ("payment", "our status", "provider's status", "outcome", "action"):
        table.add_column(column)
    for check in shown:
        p = check.payment
        theirs = check.provider_status or "-"
        if check.their_status is not None:
            theirs += f" ({check.their_status.value})"
        action = check.action if check.error is None else f"{check.action}: {check.error}"
        table.add_row(
            f"{p.provider}/{p.account}/{p.merchant_ref}",
            p.status.value if p.status else "-",
            theirs,
            check.outcome,
            action,
        )
    if shown:
        console.print(table)
    counts = Counter(c.outcome for c in report.checks)
    console.print(
        f"checked {len(report.checks)}: {counts['in_sync']} in sync, {counts['drift']} drift,"
        f" {counts['not_found']} not found, {counts['failed']} failed"
    )
