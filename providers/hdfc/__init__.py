"""HDFC SmartGateway (Juspay): ``scheme`` (account, mapping, return-URL signature, the
order object), ``adapter`` (webhooks, return URL), ``status`` (the Order Status API). The
registry takes ``ADAPTER``."""

from __future__ import annotations

from providers.hdfc.adapter import ADAPTER

__all__ = ["ADAPTER"]
