"""Bar charts for the overview, computed here and drawn as SVG by the template: pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

WIDTH = 560
BAR_HEIGHT = 22
GAP = 8
LABEL_WIDTH = 170
VALUE_WIDTH = 60


@dataclass(frozen=True, slots=True, kw_only=True)
class Bar:
    label: str
    value: int
    y: int
    width: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BarChart:
    title: str
    bars: tuple[Bar, ...]
    height: int
    total: int

    @property
    def plot_width(self) -> int:
        return WIDTH - LABEL_WIDTH - VALUE_WIDTH


def bar_chart(title: str, counts: Iterable[tuple[str, int]]) -> BarChart:
    """Largest first (ties by label); bar lengths in proportion to the largest count."""
    items = sorted(counts, key=lambda kv: (-kv[1], kv[0]))
    top = max((v for _, v in items), default=0)
    plot = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    bars = tuple(
        Bar(
            label=label,
            value=value,
            y=i * (BAR_HEIGHT + GAP),
            width=max(1, round(plot * value / top)) if top and value else 0,
        )
        for i, (label, value) in enumerate(items)
    )
    height = max(BAR_HEIGHT, len(bars) * (BAR_HEIGHT + GAP) - GAP)
    return BarChart(title=title, bars=bars, height=height, total=sum(v for _, v in items))
