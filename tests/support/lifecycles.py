"""Each provider's lifecycle scenario, as the issue states it: the events paysync emits for
the simulator's callbacks (tests/e2e/test_provider_lifecycles.py checks them through real
processes; tests/unit/test_provider_contract.py that every registered provider has one)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

SCENARIOS: Mapping[str, Sequence[str]] = {
    "plural": ["authorized", "captured"],
    "hdfc": ["paid"],
    "paycore": ["paid", "refunded"],
    "ccpayment": ["underpaid", "paid"],
}
# What a customer's redirect claims after the payment, in the provider's words (providers
# that sign their return URL).
CLAIMED_FAILURE: Mapping[str, str] = {"hdfc": "AUTHORIZATION_FAILED", "plural": "FAILED"}
