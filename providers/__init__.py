"""Provider adapters and their registry: adding a provider is its modules (providers/<p>.py
and, with a status API, providers/<p>_status.py) plus one line here."""

from __future__ import annotations

from collections.abc import Mapping

from paysync.settings import ProviderAccount
from providers import ccpayment, hdfc, paycore, plural
from providers.base import ProviderAdapter
from schemas.mapping import StatusMapping

REGISTRY: Mapping[str, ProviderAdapter] = {
    ccpayment.NAME: ccpayment.ADAPTER,
    hdfc.NAME: hdfc.ADAPTER,
    paycore.NAME: paycore.ADAPTER,
    plural.NAME: plural.ADAPTER,
}


# Status mappings of every provider (the fold's policy reads them).
MAPPINGS: Mapping[str, StatusMapping] = {
    m.provider: m for m in (ccpayment.MAPPING, paycore.MAPPING, hdfc.MAPPING, plural.MAPPING)
}


def account_models() -> dict[str, type[ProviderAccount]]:
    return {name: adapter.account_model for name, adapter in REGISTRY.items()}
