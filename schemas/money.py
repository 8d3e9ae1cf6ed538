"""Money arithmetic that is exact or fails loudly: never silently rounded. Pure.

Python's default decimal context keeps 28 significant digits, so ``Decimal(0) + x`` rounds
an amount such as ``12345678901.123456789012345678`` (29 digits). Code that adds or
subtracts money runs under :data:`EXACT` (the :func:`exact` decorator): wide enough for any
sum of real amounts, and with ``Inexact`` trapped, so an operation that would still have to
round raises instead. Conversions that must round (a crypto transfer valued in a price's
currency) do so explicitly, with the rounding stated where they are defined.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)
from typing import ParamSpec, TypeVar

# Digits an exact result may need: amounts are at most a few dozen digits (providers send
# up to 18 decimals; registrations at most 18.18), so sums of thousands of them fit with
# room to spare. Beyond it, Inexact is raised: an error, never a rounded amount.
EXACT_DIGITS = 1000

EXACT = Context(
    prec=EXACT_DIGITS,
    rounding=ROUND_HALF_EVEN,
    traps=[InvalidOperation, DivisionByZero, Overflow, Inexact],
)

P = ParamSpec("P")
R = TypeVar("R")


def exact(func: Callable[P, R]) -> Callable[P, R]:
    """Run ``func`` under :data:`EXACT` (for this call only; the caller's context is
    restored afterwards)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with localcontext(EXACT):
            return func(*args, **kwargs)

    return wrapper
