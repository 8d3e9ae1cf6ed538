"""The heart of paysync (design §5): the stored state depends only on the *set* of a
payment's receipts, never on their order or on how often, when or by whom each fact was
reported, and deciding receipts one by one never lowers the status rank.

The generator makes what providers do: facts whose reports arrive several times from
different sources at different times (a callback when it is received, a poll at the
provider's own time), around the payment's deadline, so a fact's reports fall on both
sides of it. ``test_the_property_fails_for_the_first_receipt_rule`` shows
the property can fail: the store's old rule (only a fact's first receipt counts) breaks it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import Phase, event, given, settings
from hypothesis import strategies as st

from paysync.state.decision import decide
from paysync.state.fold import PaymentState, Policy, fold
from providers import MAPPINGS
from schemas.observation import Kind, Observation, Source
from schemas.status import Status

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
DEADLINE = T0 + timedelta(hours=24)
PROVIDERS = sorted(MAPPINGS)
# The property per provider mapping; small cases keep it fast (see the README's test times).
EXAMPLES = 500

# One draw each (drawing is most of the time a case takes): amounts, terms, times.
amounts = st.sampled_from(
    [Decimal("100.00"), Decimal("120.00"), Decimal("50.00"), Decimal("30.00")]
)
# Money and statuses most often: they decide the status and ``late``.
kinds = st.sampled_from([Kind.CREDIT, Kind.CREDIT, Kind.STATUS, Kind.STATUS, *Kind])
terms = st.sampled_from(
    [
        {"amount_due": due, "currency": cur, "provider_ref": ref, "expires_at": exp}
        for due, cur, ref, exp in itertools.product(
            [None, Decimal("100.00"), Decimal("120.00")],
            [None, "USD", "INR"],
            [None, "p-1", "p-2"],
            [None, DEADLINE, DEADLINE, DEADLINE],
        )
    ]
)
NO_TERMS: dict[str, Any] = dict.fromkeys(("amount_due", "currency", "provider_ref", "expires_at"))
# Observation times within two hours of the deadline, on both sides.
near_deadline = st.integers(min_value=-120, max_value=120).map(
    lambda m: DEADLINE + timedelta(minutes=m)
)
# How much earlier or later another report of a fact is observed: never at the same time.
shifts = st.integers(min_value=-240, max_value=239).map(
    lambda m: timedelta(minutes=m if m < 0 else m + 1)
)


def policy_of(provider: str) -> Policy:
    return Policy(failure_is_final=MAPPINGS[provider].failure_is_final)


@st.composite
def observation(draw: st.DrawFn, provider: str, index: int) -> Observation:
    mapping = MAPPINGS[provider]
    kind = draw(kinds)
    common: dict[str, Any] = {
        "kind": kind,
        "source": draw(st.sampled_from(list(Source))),
        "provider": provider,
        "account": "acct",
        "merchant_ref": "order-1",
        "dedup_key": f"{provider}:acct:{kind.value}:{index}",
        "observed_at": draw(near_deadline),
        **draw(terms),
    }
    if kind is Kind.STATUS:
        provider_status = draw(st.sampled_from([*mapping.statuses, "SOMETHING_NEW"]))
        return Observation(
            **common,
            provider_status=provider_status,
            status=mapping.canonical(provider_status),
        )
    if kind in (Kind.CREDIT, Kind.REFUND):
        return Observation(**common, record_id=f"r{index}", amount=draw(amounts))
    return Observation(**common)


@st.composite
def reports(draw: st.DrawFn, fact: Observation) -> list[Observation]:
    """The fact as first reported, and up to two more reports of it: each from another
    source at another time; some without the terms (a poll that does not repeat them)."""
    made = [fact]
    others = [s for s in Source if s != fact.source]
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        made.append(
            replace(
                fact,
                observed_at=fact.observed_at + draw(shifts),
                source=draw(st.sampled_from(others)),
                **({} if draw(st.booleans()) else NO_TERMS),
            )
        )
    return made


@st.composite
def arrivals(draw: st.DrawFn, provider: str) -> list[Observation]:
    """Every report of a few facts, in an arbitrary order of arrival."""
    count = draw(st.integers(min_value=1, max_value=5))
    facts = [draw(observation(provider, i)) for i in range(count)]
    received = [r for fact in facts for r in draw(reports(fact))]
    return draw(st.permutations(received))


def stored_after(
    arrived: list[Observation], policy: Policy, *, check_steps: bool = False
) -> PaymentState:
    """The state the store keeps after deciding each receipt in arrival order."""
    state = PaymentState()  # the row the store creates on first sight
    for i, new in enumerate(arrived):
        decision = decide(state, arrived[:i], new, policy)
        if check_steps:
            _check_step(state, decision.after, decision.transition, decision.regression)
        state = decision.after
    return state


def _check_step(
    before: PaymentState,
    after: PaymentState,
    transition: tuple[Status | None, Status] | None,
    regression: object,
) -> None:
    # The fold itself never lowers a rank: the store's guard is never what saves it.
    assert regression is None
    old = before.status
    if old is not None:
        assert after.status is not None
        assert after.status.rank >= old.rank
    assert transition == ((old, after.status) if after.status not in (None, old) else None)


@pytest.mark.parametrize("provider", PROVIDERS)
@settings(max_examples=EXAMPLES, deadline=None)
@given(data=st.data())
def test_deciding_receipts_one_by_one_in_any_order_stores_the_fold_of_the_set(
    provider: str, data: st.DataObject
) -> None:
    arrived = data.draw(arrivals(provider))
    _note_shape(arrived)
    policy = policy_of(provider)
    assert stored_after(arrived, policy, check_steps=True) == fold(arrived, policy)


def _note_shape(arrived: list[Observation]) -> None:
    """Hypothesis statistics (``--hypothesis-show-statistics``): what the cases hold."""
    by_key: dict[str, list[Observation]] = {}
    for obs in arrived:
        by_key.setdefault(obs.dedup_key, []).append(obs)
    repeated = [group for group in by_key.values() if len(group) > 1]
    event("a fact reported more than once" if repeated else "every fact reported once")
    if any(_straddles(group) for group in repeated):
        event("a fact's reports on both sides of the deadline")


def _straddles(group: list[Observation]) -> bool:
    return len({o.observed_at > DEADLINE for o in group}) == 2


def first_receipt_rule(arrived: list[Observation], policy: Policy) -> PaymentState:
    """The store before the fix: a fact's later receipts were recorded, never folded."""
    first: dict[str, Observation] = {}
    for obs in arrived:
        first.setdefault(obs.dedup_key, obs)
    return fold(first.values(), policy)


def fails_somewhere(provider: str, claim: Callable[[list[Observation]], bool]) -> None:
    """Hypothesis finds a case against ``claim`` within the property's own budget (no
    shrinking: any counterexample will do)."""

    @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate])
    @given(arrived=arrivals(provider))
    def check(arrived: list[Observation]) -> None:
        assert claim(arrived)

    with pytest.raises(AssertionError):
        check()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_property_fails_for_the_first_receipt_rule(provider: str) -> None:
    policy = policy_of(provider)
    fails_somewhere(provider, lambda a: first_receipt_rule(a, policy) == fold(a, policy))
    # ... and on the late flag, not only on terms a fact's first report left out.
    fails_somewhere(provider, lambda a: first_receipt_rule(a, policy).late == fold(a, policy).late)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_generator_reports_facts_from_three_sources_across_the_deadline(
    provider: str,
) -> None:
    def never(arrived: list[Observation]) -> bool:
        groups: dict[str, list[Observation]] = {}
        for obs in arrived:
            groups.setdefault(obs.dedup_key, []).append(obs)
        return not any(
            _straddles(g) and len({o.source for o in g}) == len({o.observed_at for o in g}) == 3
            for g in groups.values()
        )

    fails_somewhere(provider, never)


@settings(max_examples=200, deadline=None)
@given(provider=st.sampled_from(PROVIDERS), data=st.data())
def test_an_unknown_provider_status_changes_nothing(provider: str, data: st.DataObject) -> None:
    facts = data.draw(arrivals(provider))
    policy = policy_of(provider)
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
@given(
    provider=st.sampled_from(PROVIDERS),
    data=st.data(),
    claimed=st.sampled_from(["PROCESSED", "CHARGED", "FAILED"]),
)
def test_a_return_url_hint_never_changes_the_state(
    provider: str, data: st.DataObject, claimed: str
) -> None:
    facts = data.draw(arrivals(provider))
    policy = policy_of(provider)
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
