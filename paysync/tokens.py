"""The ``/v1`` API's bearer tokens, checked the same way by ingest and the console."""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from paysync.settings import Secret


def token_problem(authorization: str | None, tokens: Sequence[Secret]) -> str | None:
    """None when the header carries a configured token, else the rejection reason."""
    if not tokens:
        return "api_disabled"
    scheme, _, presented = (authorization or "").strip().partition(" ")
    presented = presented.strip()
    if scheme.lower() != "bearer" or not presented:
        return "missing_token"
    # Header bytes that are not UTF-8 arrive as surrogates: compared as the bytes they were.
    given = presented.encode("utf-8", "surrogateescape")
    matched = False
    for token in tokens:  # every token, so the time taken does not tell which one matched
        matched |= hmac.compare_digest(given, token.reveal().encode("utf-8"))
    return None if matched else "bad_token"
