"""Provider adapters and their registry. A provider is a folder, ``providers/<name>/``
(``scheme.py``: account model, status mapping, signatures, documents; ``adapter.py``:
callbacks and return URLs; ``status.py``: the status-API client), and one line here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from paysync.settings import ProviderAccount
from providers import ccpayment, hdfc, paycore, plural
from providers.base import ProviderAdapter
from providers.registry import Provider, registry
from providers.registry import account_models as _account_models
from providers.registry import mappings as _mappings
from schemas.mapping import StatusMapping

# One line per provider.
ADAPTERS: Sequence[ProviderAdapter[Any]] = (
    ccpayment.ADAPTER,
    hdfc.ADAPTER,
    paycore.ADAPTER,
    plural.ADAPTER,
)
REGISTRY: Mapping[str, Provider] = registry(ADAPTERS)

# Status mappings of every provider (the fold's policy reads them).
MAPPINGS: Mapping[str, StatusMapping] = _mappings(REGISTRY)


def account_models() -> dict[str, type[ProviderAccount]]:
    return _account_models(REGISTRY)
