"""Fake providers: callbacks signed exactly as each provider signs them, for tests and demos.

Adding a provider's simulator is one module satisfying ``simulator.base.ProviderSimulator``
plus one line here.
"""

from __future__ import annotations

from collections.abc import Mapping

from simulator import ccpayment, hdfc, paycore, plural
from simulator.base import ProviderSimulator

SIMULATORS: Mapping[str, ProviderSimulator] = {
    ccpayment.SIMULATOR.name: ccpayment.SIMULATOR,
    hdfc.SIMULATOR.name: hdfc.SIMULATOR,
    paycore.SIMULATOR.name: paycore.SIMULATOR,
    plural.SIMULATOR.name: plural.SIMULATOR,
}
