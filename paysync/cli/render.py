"""What the operator commands print: ``paysync reconcile`` (a progress bar on a terminal,
then the drift table), ``paysync payment refold`` and ``paysync dead list | replay``;
each table or one JSON document.

Tables go to stdout. On a terminal they fit its width: a long cell (an id, a reason)
folds onto more lines and is never cut. With ``--wide``, or when stdout is not a terminal
(a file, a pager, grep), each row is one line.
"""

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

from paysync.dead import DeadLetter, Listing, ReplayReport
from reconciler.checker import Check
from reconciler.job import JobReport
from worker.refold import RefoldReport, changes, report_json

# Wide enough that no row of any report wraps.
_ONE_LINE_PER_ROW = 10_000


def console(*, wide: bool = False) -> Console:
    """The console a report prints on (see the module docstring)."""
    if wide or not sys.stdout.isatty():
        return Console(width=_ONE_LINE_PER_ROW)
    return Console()


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title)
    for column in columns:
        # fold: a long id is split over lines, never cut to the width with an ellipsis.
        table.add_column(column, overflow="fold")
    return table


def _print_json(doc: object) -> None:
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")


# --- paysync reconcile ---------------------------------------------------------------------


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
    _print_json(
        {
            "run_id": report.run_id,
            "dry_run": dry_run,
            "checked": len(report.checks),
            "counts": {k: counts[k] for k in ("in_sync", "drift", "not_found", "failed")},
            "checks": [check_json(c) for c in report.checks],
        }
    )


def print_table(report: JobReport, *, dry_run: bool, out: Console | None = None) -> None:
    out = out or console()
    shown = [c for c in report.checks if c.outcome != "in_sync"]
    title = f"reconcile run {report.run_id}" + (" (dry run)" if dry_run else "")
    table = _table(title, "payment", "our status", "provider's status", "outcome", "action")
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
        out.print(table)
    counts = Counter(c.outcome for c in report.checks)
    out.print(
        f"checked {len(report.checks)}: {counts['in_sync']} in sync, {counts['drift']} drift,"
        f" {counts['not_found']} not found, {counts['failed']} failed"
    )


# --- paysync payment refold ----------------------------------------------------------------


def print_refold(report: RefoldReport, *, as_json: bool, out: Console | None = None) -> None:
    if as_json:
        _print_json(report_json(report))
        return
    out = out or console()
    title = "payment refold" + (" (dry run)" if report.dry_run else "")
    table = _table(title, "payment", "changes (stored -> refolded)", "event")
    for found in report.differing:
        text = "; ".join(
            f"{name}: {_refold_text(c['stored'])} -> {_refold_text(c['refolded'])}"
            for name, c in changes(found).items()
        )
        table.add_row(found.payment, text, found.event.value if found.event else "-")
    if report.differing:
        out.print(table)
    differing = len(report.differing)
    if not differing:
        out.print(f"checked {report.checked}: every row is the fold of its receipts")
        return
    verb = "would be rewritten (dry run)" if report.dry_run else "rewritten"
    out.print(f"checked {report.checked}: {differing} differed, {verb}")


def _refold_text(value: Any) -> str:
    if value is None:
        return "-"
    return orjson.dumps(value).decode() if isinstance(value, bool) else str(value)


# --- paysync dead list | replay --------------------------------------------------------------


def print_listing(listing: Listing, *, as_json: bool, out: Console | None = None) -> None:
    if as_json:
        _print_json([letter.to_json() for letter in listing.letters])
        return
    out = out or console()
    if listing.letters:
        out.print(_dead_table(listing.letters, "paysync.dead"))
    more = f" ({listing.hidden} more not shown)" if listing.hidden else ""
    out.print(f"{len(listing.letters)} dead letters{more}")


def print_replay(report: ReplayReport, *, out: Console | None = None) -> None:
    out = out or console()
    if report.dry_run:
        if report.selected:
            out.print(_dead_table(report.selected, "would replay (dry run)"))
        out.print(f"would replay {len(report.selected)}, keep {report.kept - len(report.selected)}")
    else:
        out.print(f"replayed {len(report.replayed)}, kept {report.kept}")
    for message_id in report.missing:
        out.print(f"not found on paysync.dead: {message_id} (nothing replayed)")
    for letter, error in report.failed:
        out.print(f"not replayed: {letter.message_id}: {error}")


def _dead_table(letters: tuple[DeadLetter, ...], title: str) -> Table:
    table = _table(title, "message_id", "dead at", "provider", "account", "kind", "reason", "bytes")
    for letter in letters:
        table.add_row(
            letter.message_id or "-",
            letter.dead_at or "-",
            letter.provider or "-",
            letter.account or "-",
            letter.kind or "-",
            letter.reason or "-",
            str(letter.body_bytes),
        )
    return table
