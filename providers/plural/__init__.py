"""Plural (Pine Labs Online): ``scheme`` (account, mapping, signatures, the order object),
``adapter`` (webhooks, return URL), ``status`` (Get Order, with its OAuth token). The
registry takes ``ADAPTER``."""

from __future__ import annotations

from providers.plural.adapter import ADAPTER

__all__ = ["ADAPTER"]
