"""Reading provider payloads strictly: what every adapter needs from a header or a JSON body.

Money is never a float: JSON numbers are parsed as ``Decimal`` and a decimal string must be
plain digits (``Decimal()`` alone would accept ``"1e3"``, ``"1_000"`` or ``" 5"``). Missing
or odd fields raise ``MalformedMessage`` naming the field; a missing header raises
``AuthenticationError("missing_header")``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from paysync.errors import AuthenticationError, MalformedMessage

_DECIMAL_TEXT = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def required_header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if not value:
        raise AuthenticationError("missing_header", name)
    return value


def load_json_object(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body, parse_float=Decimal)
    except (ValueError, RecursionError) as exc:
        raise MalformedMessage(f"body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise MalformedMessage("body is not a JSON object")
    return doc


def required_text(doc: object, key: str, label: str) -> str:
    """``doc[key]`` as a non-empty string; ``label`` names the field in the error."""
    value = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(value, str) or not value:
        raise MalformedMessage(f"{label} is missing or not a string")
    return value


def optional_text(doc: Mapping[str, Any], key: str) -> str | None:
    value = doc.get(key)
    return value if isinstance(value, str) and value else None


def decimal_amount(raw: object) -> Decimal | None:
    """A finite, non-negative amount from a JSON number or a plain decimal string; else None."""
    if isinstance(raw, bool):  # an int to Python, never an amount
        return None
    if isinstance(raw, int | Decimal) or (isinstance(raw, str) and _DECIMAL_TEXT.fullmatch(raw)):
        value = Decimal(raw)
    else:
        return None
    return value if value.is_finite() and value >= 0 else None


def money(
    doc: Mapping[str, Any], key: str, label: str, *, required: bool = False
) -> Decimal | None:
    """``doc[key]`` as an amount; absent → None unless ``required``."""
    raw = doc.get(key)
    if raw is None and not required:
        return None
    value = decimal_amount(raw)
    if value is None:
        raise MalformedMessage(f"{label} is not a non-negative decimal amount")
    return value
