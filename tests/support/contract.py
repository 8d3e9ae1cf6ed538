"""The provider contract: what every registered provider and its simulator must do, checked
the same way for each (tests/unit/test_provider_contract.py runs it over the registry,
tests/unit/test_fake_provider.py over a throwaway fifth provider). What is particular to
one provider — its test vectors, its documented payloads, its quirks — stays in
tests/unit/test_<provider>_*.py.

A ``Subject`` is one provider with its simulator and a configured account; each check is
a function of it that raises ``AssertionError`` when the provider breaks the contract.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from paysync.errors import (
    AuthenticationError,
    ConfigError,
    MalformedMessage,
    ProviderRefused,
    ProviderUnavailable,
)
from paysync.settings import ProviderAccount, Secret
from paysync.state.fold import PaymentState, Policy, fold
from providers.base import PaymentRef, Poll, Verified
from providers.registry import Provider
from schemas.envelope import Envelope, EnvelopeKind
from schemas.observation import Observation
from simulator.base import ProviderSimulator, Request
from simulator.status import OrderBook, status_base_url
from tests.support.status_api import StatusSim, Unavailable, serve_status_sim


@dataclass(frozen=True, slots=True, kw_only=True)
class Subject:
    provider: Provider
    simulator: ProviderSimulator
    account: ProviderAccount
    account_name: str
    # A fresh value valid as one of this provider's ``secrets`` (for rotation, forgery).
    spare_secret: Callable[[], str]

    @property
    def name(self) -> str:
        return self.provider.name

    @property
    def policy(self) -> Policy:
        return Policy(failure_is_final=self.provider.mapping.failure_is_final)

    def with_secrets(self, *values: Secret) -> ProviderAccount:
        return self.account.model_copy(update={"secrets": list(values)})

    def spare(self, ref: str) -> Secret:
        return Secret(ref, self.spare_secret())


NOW = int(time.time())
AT = datetime.fromtimestamp(NOW, UTC)

# Bodies no parser can read, or that are not one JSON object about a payment.
UNREADABLE = [
    b"",
    b"not json",
    b"{",
    b'{"a": 1,}',
    b"\xff\xfe",
    b"\xff",
    b"[" * 100_000,
    b"[1]",
    b"[1, 2]",
    b'"x"',
    b"1",
    b"null",
    b"true",
    b"{}",
]


def envelope(s: Subject, body: bytes, verified: Verified | None = None) -> Envelope:
    return Envelope(
        message_id="msg-contract",
        kind=EnvelopeKind.CALLBACK,
        provider=s.name,
        account=s.account_name,
        received_at=AT,
        body=body,
        content_type="application/json",
        verified_by=verified.secret_ref if verified else "",
        http_headers=dict(verified.http_headers) if verified else {},
    )


def verify(s: Subject, request: Request, account: ProviderAccount | None = None) -> Verified:
    return s.provider.verify_callback(account or s.account, request.headers, request.body, AT)


def receive(s: Subject, request: Request) -> list[Observation]:
    """Verify a simulated callback as ingest does, then parse it as the worker does."""
    verified = verify(s, request)
    assert verified.secret_ref == s.account.secrets[0].ref
    return s.provider.parse_callback(envelope(s, request.body, verified))


def folded(s: Subject, observations: Sequence[Observation]) -> PaymentState:
    return fold(list(observations), s.policy)


def signed(s: Subject, account: ProviderAccount, ref: str = "contract-1") -> Request:
    body = s.simulator.callback_body(ref, now=NOW)
    return Request(headers=s.simulator.sign_callback(account, body, now=NOW), body=body)


# --- callbacks -----------------------------------------------------------------------------


def check_the_simulator_is_the_providers(s: Subject) -> None:
    assert s.simulator.name == s.name
    assert (s.simulator.returns is not None) == s.provider.has_returns
    assert s.simulator.required_headers, "every scheme reads some header"
    assert s.provider.callback_ack.status == 200
    assert "application/json" in s.provider.callback_media_types


def check_a_simulated_callback_verifies_and_parses(s: Subject) -> None:
    request = signed(s, s.account)
    assert request.headers["Content-Type"].startswith("application/json")
    observations = receive(s, request)
    assert observations
    for obs in observations:
        assert (obs.provider, obs.account, obs.merchant_ref) == (
            s.name,
            s.account_name,
            "contract-1",
        )
        # Keys are unique per provider account: two accounts never share a fact.
        assert obs.dedup_key.startswith(f"{s.name}:{s.account_name}:")


def check_the_lifecycle_folds_to_its_statuses_in_any_order(s: Subject) -> None:
    life = s.simulator.lifecycle(s.account, "contract-2", now=NOW)
    assert life.statuses
    assert len(life.callbacks) == len(life.statuses)
    seen: list[Observation] = []
    statuses = []
    for request in life.callbacks:
        assert (request.route, request.method) == ("webhooks", "POST")
        observations = receive(s, request)
        assert {o.merchant_ref for o in observations} == {life.merchant_ref}
        seen += observations
        status = folded(s, seen).status
        assert status is not None
        statuses.append(status.value)
    assert statuses == life.statuses
    final = folded(s, seen)
    assert final.amount_paid == life.amount
    # Reversed and every fact twice: the same payment (design §5).
    assert folded(s, [*reversed(seen), *seen]) == final


def check_another_secret_is_refused_and_never_shown(s: Subject) -> None:
    forged = signed(s, s.with_secrets(s.spare("env:FORGED")))
    with pytest.raises(AuthenticationError) as info:
        verify(s, forged)
    assert info.value.reason in {"bad_signature", "bad_credentials"}
    error = info.value
    shown = f"{error} {error!r} {error.detail} {error.args!r} {s.account!r} {s.account}"
    for secret in s.account.all_secrets():
        assert secret.reveal() not in shown
        assert secret.ref in repr(s.account)  # by reference only


def check_a_second_secret_verifies_and_is_named(s: Subject) -> None:
    new = s.spare("env:ROTATED")
    request = signed(s, s.with_secrets(new))
    for order in ([*s.account.secrets, new], [new, *s.account.secrets]):
        assert verify(s, request, s.with_secrets(*order)).secret_ref == "env:ROTATED"


def check_each_required_header_is_needed(s: Subject) -> None:
    request = signed(s, s.account)
    for header in s.simulator.required_headers:
        kept = {k: v for k, v in request.headers.items() if k.lower() != header.lower()}
        with pytest.raises(AuthenticationError) as info:
            verify(s, Request(headers=kept, body=request.body))
        assert info.value.reason == "missing_header", header


def check_a_stale_timestamp_is_refused(s: Subject) -> None:
    if not s.simulator.signs_timestamp:
        return
    body = s.simulator.callback_body("contract-3", now=NOW)
    for offset in (-86_400, 86_400):
        headers = s.simulator.sign_callback(s.account, body, now=NOW + offset)
        with pytest.raises(AuthenticationError) as info:
            verify(s, Request(headers=headers, body=body))
        assert info.value.reason == "stale_timestamp"


def check_unreadable_bodies_are_malformed(s: Subject) -> None:
    valid = s.simulator.callback_body("contract-4", now=NOW)
    for body in [*UNREADABLE, b"[" + valid + b"]"]:
        with pytest.raises(MalformedMessage):
            s.provider.parse_callback(envelope(s, body))


# --- the status API ------------------------------------------------------------------------


def check_the_status_api_needs_its_credentials(s: Subject) -> None:
    base_url = s.provider.status_base_url
    assert base_url is not None
    assert base_url.startswith("https://")
    assert s.provider.status_client(s.account_name, s.account, base_url) is not None
    for field in s.account.status_api_fields:
        lacking = s.account.model_copy(update={field: None})
        with pytest.raises(ConfigError) as info:
            s.provider.status_client(s.account_name, lacking, base_url)
        key = f"accounts.{s.name}.{s.account_name}.{field}"
        assert info.value.problems == [f"{key}: required by the status API"]
    if s.account.status_api_fields:
        none = s.account.model_copy(update=dict.fromkeys(s.account.status_api_fields))
        with pytest.raises(ConfigError) as every:
            s.provider.status_client(s.account_name, none, base_url)
        assert every.value.problems == [
            f"accounts.{s.name}.{s.account_name}.{field}: required by the status API"
            for field in s.account.status_api_fields
        ]


async def polled(
    s: Subject,
    sim: StatusSim,
    ref: PaymentRef,
    account: ProviderAccount | None = None,
) -> Poll:
    url = status_base_url(sim.url, s.name, s.account_name)
    client = s.provider.status_client(s.account_name, account or s.account, url)
    assert client is not None
    [poll] = await client.poll(sim.call, [ref], AT)
    assert poll.ref == ref
    return poll


async def check_a_poll_tells_what_the_callbacks_told(s: Subject, sim: StatusSim) -> None:
    life = s.simulator.lifecycle(s.account, "contract-5", now=NOW)
    sim.book.add(s.name, s.account_name, life)
    ref = PaymentRef(merchant_ref=life.merchant_ref, provider_ref=life.provider_ref)
    poll = await polled(s, sim, ref)
    assert poll.found
    assert poll.provider_status
    final = folded(s, poll.observations).status
    assert final is not None
    assert final.value == life.statuses[-1]
    # Each fact the poll reports is one a callback reported, under the same key: counted
    # once, however it arrives.
    told = [o for request in life.callbacks for o in receive(s, request)]
    assert {o.dedup_key for o in poll.observations} <= {o.dedup_key for o in told}
    assert folded(s, [*told, *poll.observations]) == folded(s, told)
    assert sim.book.polls[(s.name, s.account_name, life.merchant_ref)] == 1


async def check_an_unknown_order_is_not_found(s: Subject, sim: StatusSim) -> None:
    poll = await polled(s, sim, PaymentRef(merchant_ref="contract-nope", provider_ref="nope-1"))
    assert not poll.found
    assert poll.observations == []


async def check_wrong_credentials_are_refused_not_not_found(s: Subject, sim: StatusSim) -> None:
    life = s.simulator.lifecycle(s.account, "contract-6", now=NOW)
    sim.book.add(s.name, s.account_name, life)
    # Every secret of the account replaced: whichever the status API uses is wrong.
    replaced: dict[str, object] = {}
    for name in type(s.account).model_fields:
        value = getattr(s.account, name)
        if isinstance(value, Secret):
            replaced[name] = s.spare(f"env:WRONG_{name}")
        elif isinstance(value, list) and value and isinstance(value[0], Secret):
            replaced[name] = [s.spare(f"env:WRONG_{name}") for _ in value]
    wrong = s.account.model_copy(update=replaced)
    ref = PaymentRef(merchant_ref=life.merchant_ref, provider_ref=life.provider_ref)
    with pytest.raises(ProviderRefused):
        await polled(s, sim, ref, wrong)


async def check_unavailability_passes_through(s: Subject, sim: StatusSim) -> None:
    client = s.provider.status_client(s.account_name, s.account, sim.url)
    assert client is not None
    ref = PaymentRef(merchant_ref="contract-7", provider_ref="contract-ref-7")
    with pytest.raises(ProviderUnavailable):
        await client.poll(Unavailable(), [ref], AT)


CALLBACK_CHECKS: Sequence[Callable[[Subject], None]] = (
    check_the_simulator_is_the_providers,
    check_a_simulated_callback_verifies_and_parses,
    check_the_lifecycle_folds_to_its_statuses_in_any_order,
    check_another_secret_is_refused_and_never_shown,
    check_a_second_secret_verifies_and_is_named,
    check_each_required_header_is_needed,
    check_a_stale_timestamp_is_refused,
    check_unreadable_bodies_are_malformed,
    check_the_status_api_needs_its_credentials,
)
STATUS_CHECKS: Sequence[Callable[[Subject, StatusSim], Awaitable[None]]] = (
    check_a_poll_tells_what_the_callbacks_told,
    check_an_unknown_order_is_not_found,
    check_wrong_credentials_are_refused_not_not_found,
    check_unavailability_passes_through,
)


async def run_status_check(
    s: Subject, check: Callable[[Subject, StatusSim], Awaitable[None]]
) -> None:
    """Serve the subject's simulated status API on the loopback interface; run ``check``."""
    book = OrderBook()
    book.accounts[(s.name, s.account_name)] = s.account
    async with serve_status_sim(book, {s.name: s.simulator.add_status_routes}) as sim:
        await check(s, sim)


def check_ids(checks: Sequence[Callable[..., object]]) -> list[str]:
    return [c.__name__.removeprefix("check_") for c in checks]


def registered_parts(
    registry: Mapping[str, Provider],
    simulators: Mapping[str, ProviderSimulator],
    fixtures: Callable[[str], bool],
    scenarios: Mapping[str, Sequence[str]],
) -> list[str]:
    """What a registered provider lacks: a simulator, fixtures, a lifecycle scenario."""
    missing = []
    for name in sorted(registry):
        if name not in simulators:
            missing.append(f"{name}: no simulator (simulator/__init__.py SIMULATORS)")
        if not fixtures(name):
            missing.append(f"{name}: no fixtures (tests/fixtures/{name}/)")
        if name not in scenarios:
            missing.append(f"{name}: no lifecycle scenario (tests/support/lifecycles.py SCENARIOS)")
    for name in sorted(set(simulators) - set(registry)):
        missing.append(f"{name}: a simulator of no registered provider")
    return missing
