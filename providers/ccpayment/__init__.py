"""CCPayment (v1 API): ``scheme`` (account, mapping, signature, credits), ``adapter``
(callbacks), ``status`` (the order-information API). The registry takes ``ADAPTER``."""

from __future__ import annotations

from providers.ccpayment.adapter import ADAPTER

__all__ = ["ADAPTER"]
