"""Provider adapters and their registry: adding a provider is one module plus one line here."""

from __future__ import annotations

from collections.abc import Mapping

from paysync.settings import ProviderAccount
from providers import ccpayment
from providers.base import ProviderAdapter

REGISTRY: Mapping[str, ProviderAdapter] = {
    ccpayment.NAME: ccpayment.ADAPTER,
}


def account_models() -> dict[str, type[ProviderAccount]]:
    return {name: adapter.account_model for name, adapter in REGISTRY.items()}
