"""Pair 5: peak resident memory (``VmHWM``) of each role's process under load.

Linux keeps a process's high-water mark of resident memory in ``/proc/<pid>/status``. Each
pair notes the child processes it loaded right before stopping them (a peak can only be
read while the process lives), so the figure covers everything the process went through.
The baselines' processes are noted too: what a bare aiohttp or asyncpg process costs here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.targets import Target

TARGET_MB = 150.0  # each paysync role <= 150 MB
ROLES = ("ingest", "worker", "reconciler")


def vm_hwm_kib(pid: int) -> int | None:
    """The process's peak resident set size in KiB, or None when unreadable."""
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


def megabytes(kib: int) -> float:
    """KiB as MB (10^6 bytes): the stricter reading of the 150 MB target."""
    return kib * 1024 / 1e6


@dataclass(slots=True)
class Peak:
    kib: int
    where: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Recorder:
    """The highest ``VmHWM`` seen per (role, side), and in which pairs it was loaded."""

    peaks: dict[tuple[str, str], Peak] = field(default_factory=dict)

    def note(self, role: str, side: str, pid: int, where: str) -> int | None:
        kib = vm_hwm_kib(pid)
        if kib is None:
            return None
        peak = self.peaks.setdefault((role, side), Peak(kib=0))
        peak.kib = max(peak.kib, kib)
        if where not in peak.where:
            peak.where.append(where)
        return kib

    def note_kib(self, role: str, side: str, kib: int, where: str) -> None:
        """A peak read elsewhere (the highest of a supervisor's processes)."""
        peak = self.peaks.setdefault((role, side), Peak(kib=0))
        peak.kib = max(peak.kib, kib)
        if where not in peak.where:
            peak.where.append(where)

    def paysync_mb(self, role: str) -> float | None:
        peak = self.peaks.get((role, "paysync"))
        return None if peak is None else megabytes(peak.kib)

    def targets(self) -> list[Target]:
        found = []
        for role in ROLES:
            mb = self.paysync_mb(role)
            if mb is not None:
                found.append(
                    Target(
                        label=f"{role} peak RSS <= {TARGET_MB:g} MB",
                        figure=f"{mb:.1f} MB",
                        met=mb <= TARGET_MB,
                    )
                )
        return found

    def as_json(self) -> dict[str, Any]:
        return {
            "target_mb_max": TARGET_MB,
            "peaks": [
                {
                    "role": role,
                    "side": side,
                    "vm_hwm_kib": peak.kib,
                    "mb": round(megabytes(peak.kib), 1),
                    "loaded_in": peak.where,
                }
                for (role, side), peak in sorted(self.peaks.items())
            ],
            "targets": [t.as_json() for t in self.targets()],
        }

    def render(self) -> list[str]:
        lines = [
            "peak RSS (VmHWM) of each process under load",
            f"{'role':<12}{'side':<10}{'MB':>8}  loaded in",
        ]
        for (role, side), peak in sorted(self.peaks.items()):
            mb = megabytes(peak.kib)
            lines.append(f"{role:<12}{side:<10}{mb:>8.1f}  {', '.join(peak.where)}")
        return lines
