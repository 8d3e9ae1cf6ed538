"""PayCore.io (Corefy): ``scheme`` (account, mapping, signature, the invoice document),
``adapter`` (callbacks), ``status`` (the Commerce private API). The registry takes
``ADAPTER``."""

from __future__ import annotations

from providers.paycore.adapter import ADAPTER

__all__ = ["ADAPTER"]
