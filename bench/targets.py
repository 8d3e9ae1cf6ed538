"""The issue's targets as rows (``met`` / ``MISSED``), and the cells of the plain-text tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Target:
    label: str  # what is required, e.g. "worker msg/s >= 0.7 x raw asyncpg"
    figure: str  # what was measured, formatted
    met: bool | None  # None: not measured (a side produced no figure)

    def line(self) -> str:
        return f"  {self.label}: {self.figure}  {verdict(self.met)}"

    def as_json(self) -> dict[str, Any]:
        return {"target": self.label, "measured": self.figure, "met": self.met}


def verdict(met: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "unknown"}[met]


def num(value: float | None, fmt: str = ".1f") -> str:
    return "-" if value is None else format(value, fmt)


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} %"


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def at_least(value: float | None, minimum: float) -> bool | None:
    return None if value is None else value >= minimum


def below(value: float | None, maximum: float) -> bool | None:
    return None if value is None else value < maximum
