"""The heart of paysync (design §5): the folded state depends only on the *set* of
observations, never on their order or on how often each arrived, and applying them one by
one never lowers the status rank."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from paysync.state.fold import Policy, fold
from providers import MAPPINGS
from schemas.observation import Kind, Observation, Source
from schemas.status import Status

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
PROVIDERS = sorted(MAPPINGS)

amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("500"), places=2)
moments = st.integers(min_value=0, max_value=48 * 60).map(lambda m: T0 + timedelta(minutes=m))


@st.composite
def observation(draw: st.DrawFn, provider: str, index: int) -> Observation:
    mapping = MAPPINGS[provider]
    kind = draw(st.sampled_from(list(Kind)))
    provider_status = draw(st.sampled_from([*mapping.statuses, "SOMETHING_NEW"]))
    common: dict[str, Any] = {
        "kind": kind,
        "source": draw(st.sampled_from(list(Source))),
        "provider": provider,
        "account": "acct",
        "merchant_ref": "order-1",
        "dedup_key": f"{provider}:acct:{kind.value}:{index}",
        "observed_at": draw(moments),
        "amount_due": draw(st.none() | st.sampled_from([Decimal("100.00"), Decimal("120.00")])),
        "currency": draw(st.none() | st.sampled_from(["USD", "USD", "INR"])),
        "provider_ref": draw(st.none() | st.sampled_from(["p-1", "p-2"])),
        "expires_at": draw(st.none() | st.just(T0 + timedelta(hours=24))),
    }
    if kind is Kind.STATUS:
        return Observation(
            **common,
            provider_status=provider_status,
            status=mapping.canonical(provider_status),
        )
    if kind in (Kind.CREDIT, Kind.REFUND):
        return Observation(**common, record_id=f"r{index}", amount=draw(amounts))
    return Observation(**common)


@st.composite
def observation_sets(draw: st.DrawFn) -> tuple[str, list[Observation]]:
    provider = draw(st.sampled_from(PROVIDERS))
    count = draw(st.integers(min_value=1, max_value=8))
    return provider, [draw(observation(provider, i)) for i in range(count)]


@st.composite
def arrivals(draw: st.DrawFn, facts: list[Observation]) -> list[Observation]:
    """The facts in any order, some arriving several times (a retry may carry a later
    receipt time, as a provider's resend does)."""
    repeated = []
    for fact in facts:
        for _ in range(draw(st.integers(min_value=1, max_value=3))):
            repeated.append(fact)
    return draw(st.permutations(repeated))


@settings(max_examples=400, deadline=None)
@given(data=st.data(), case=observation_sets())
def test_every_order_with_any_duplicates_folds_to_the_same_row(
    data: st.DataObject, case: tuple[str, list[Observation]]
) -> None:
    provider, facts = case
    policy = Policy(failure_is_final=MAPPINGS[provider].failure_is_final)
    expected = fold(facts, policy)
    for _ in range(3):
        arrived = data.draw(arrivals(facts))
        assert fold(arrived, policy) == expected


@settings(max_examples=400, deadline=None)
@given(data=st.data(), case=observation_sets())
def test_applying_one_observation_at_a_time_never_lowers_the_rank(
    data: st.DataObject, case: tuple[str, list[Observation]]
) -> None:
    provider, facts = case
    policy = Policy(failure_is_final=MAPPINGS[provider].failure_is_final)
    arrived = data.draw(arrivals(facts))
    previous = -1
    for i in range(1, len(arrived) + 1):
        state = fold(arrived[:i], policy)
        rank = state.status.rank if state.status is not None else -1
        assert rank >= previous, (arrived[:i], state)
        previous = rank


@settings(max_examples=200, deadline=None)
@given(case=observation_sets())
def test_an_unknown_provider_status_changes_nothing(case: tuple[str, list[Observation]]) -> None:
    provider, facts = case
    policy = Policy(failure_is_final=MAPPINGS[provider].failure_is_final)
    unknown = Observation(
        kind=Kind.STATUS,
        source=Source.CALLBACK,
        provider=provider,
        account="acct",
        merchant_ref="order-1",
        dedup_key=f"{provider}:acct:unknown",
        observed_at=T0,
        provider_status="BRAND_NEW_STATUS",
        status=None,
    )
    assert fold([*facts, unknown], policy) == fold(facts, policy)


@settings(max_examples=200, deadline=None)
@given(case=observation_sets(), claimed=st.sampled_from(["PROCESSED", "CHARGED", "FAILED"]))
def test_a_return_url_hint_never_changes_the_state(
    case: tuple[str, list[Observation]], claimed: str
) -> None:
    provider, facts = case
    policy = Policy(failure_is_final=MAPPINGS[provider].failure_is_final)
    # A hint that claims success with other terms: the fold must not take any of it.
    hint = Observation(
        kind=Kind.HINT,
        source=Source.RETURN_URL,
        provider=provider,
        account="acct",
        merchant_ref="order-1",
        dedup_key=f"{provider}:acct:order-1:return:{claimed}",
        observed_at=T0,
        provider_status=claimed,
        status=Status.PAID,
        amount_due=Decimal("1.00"),
        currency="EUR",
        provider_ref="forged",
    )
    assert fold([*facts, hint], policy) == fold(facts, policy)
