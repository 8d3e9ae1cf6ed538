"""A provider's status vocabulary mapped to canonical statuses: data, one per provider.

Adapters use ``canonical()`` when they parse; the fold uses ``failure_is_final``. A status
missing from the map is unknown: it is recorded with the observation, changes nothing, and
is counted so operators notice a provider's new vocabulary (design §8).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from schemas.status import Status


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusMapping:
    provider: str
    statuses: Mapping[str, Status]
    # True when a failed order can never succeed later, so money after it is an anomaly.
    failure_is_final: bool = False

    def canonical(self, provider_status: str) -> Status | None:
        return self.statuses.get(provider_status)
