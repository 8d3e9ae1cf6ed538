"""PayCore parse_callback on the doc's example payloads and built documents, the status
mapping, and the simulator round trip (verify → parse → fold)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from multidict import CIMultiDict

from paysync.errors import MalformedMessage
from paysync.state.fold import Policy, fold
from providers.paycore import scheme as paycore
from providers.paycore.adapter import PayCoreAdapter
from providers.paycore.scheme import MAPPING, PayCoreAccount, invoice_observations
from schemas.envelope import Envelope, EnvelopeKind
from schemas.observation import Kind, Observation, Source
from schemas.status import Status
from simulator.base import ProviderSimulator
from simulator.paycore import SIMULATOR, invoice_body, signature

FIXTURES = Path(__file__).parents[1] / "fixtures" / "paycore"
ADAPTER = PayCoreAdapter()
RECEIVED_AT = datetime(2024, 5, 17, 13, 0, 0, tzinfo=UTC)
ACCOUNT = "shop-eu"
POLICY = Policy(failure_is_final=MAPPING.failure_is_final)


def envelope(body: bytes, *, account: str = ACCOUNT) -> Envelope:
    return Envelope(
        message_id="msg-1",
        kind=EnvelopeKind.CALLBACK,
        provider="paycore",
        account=account,
        received_at=RECEIVED_AT,
        body=body,
        content_type="application/json",
        verified_by="env:PAYCORE_LIVE",
    )


def parse_bytes(body: bytes) -> list[Observation]:
    return ADAPTER.parse_callback(envelope(body))


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def doc(**attributes: Any) -> dict[str, Any]:
    """A minimal payment-invoice document; keyword arguments replace attributes
    (``None`` removes one)."""
    attrs: dict[str, Any] = {
        "status": "processed",
        "amount": Decimal("25.5"),
        "payment_amount": Decimal("25.5"),
        "currency": "USD",
        "reference_id": "order-1001",
        "test_mode": False,
        "processed_amount": Decimal("25.5"),
        "metadata": [],
        "created": 1700000000,
        "updated": 1700000300,
    }
    attrs.update(attributes)
    attrs = {k: v for k, v in attrs.items() if v is not None}
    return {"data": {"type": "payment-invoices", "id": "cpi_TestVector000001", "attributes": attrs}}


def dumps(document: object) -> bytes:
    """Compact JSON with Decimals as JSON numbers digit for digit, as PayCore sends amounts."""

    def number(value: object) -> orjson.Fragment:
        if isinstance(value, Decimal):
            return orjson.Fragment(str(value))
        raise TypeError(value)

    return orjson.dumps(document, default=number)


def parse(document: object) -> list[Observation]:
    return parse_bytes(dumps(document))


# --- the doc's example payloads -----------------------------------------------------------


def test_example_processed_callback() -> None:
    [obs] = parse_bytes(fixture("callback_processed.json"))
    assert obs == Observation(
        kind=Kind.STATUS,
        source=Source.CALLBACK,
        provider="paycore",
        account=ACCOUNT,
        merchant_ref="ord-20240517-0042",
        dedup_key="paycore:shop-eu:cpi_Q7mK2xLp9RtV4nBc:processed:1715950812",
        observed_at=datetime.fromtimestamp(1715950812, UTC),
        provider_ref="cpi_Q7mK2xLp9RtV4nBc",
        status=Status.PAID,
        provider_status="processed",
        amount_due=Decimal("49.9"),
        currency="EUR",
    )
    assert isinstance(obs.amount_due, Decimal)
    assert obs.observed_at == datetime(2024, 5, 17, 13, 0, 12, tzinfo=UTC)


def test_example_failed_callback_with_empty_lists() -> None:
    body = fixture("callback_process_failed.json")
    assert b'"metadata":[]' in body
    assert b'"relationships":[]' in body
    assert b'"links":[]' in body
    [obs] = parse_bytes(body)
    assert obs == Observation(
        kind=Kind.STATUS,
        source=Source.CALLBACK,
        provider="paycore",
        account=ACCOUNT,
        merchant_ref="ord-77",
        dedup_key="paycore:shop-eu:cpi_Zr81HqW0aEe5TyUo:process_failed:1715950123",
        observed_at=datetime.fromtimestamp(1715950123, UTC),
        provider_ref="cpi_Zr81HqW0aEe5TyUo",
        status=Status.FAILED,
        provider_status="process_failed",
        amount_due=Decimal(10),
        currency="USD",
    )


def test_vector_body_parses() -> None:
    [obs] = parse_bytes(fixture("vector_body.json"))
    assert (obs.merchant_ref, obs.provider_ref, obs.status) == (
        "order-1001",
        "cpi_TestVector000001",
        Status.PAID,
    )
    assert obs.amount_due == Decimal("25.5")


def test_example_payloads_fold() -> None:
    observations = parse_bytes(fixture("callback_processed.json"))
    assert fold(observations, POLICY).status is Status.PAID
    assert fold(parse_bytes(fixture("callback_process_failed.json")), POLICY).status is (
        Status.FAILED
    )


# --- mapping ------------------------------------------------------------------------------

DOC_STATUSES = {
    "created": Status.PENDING,
    "processing": Status.PENDING,
    "process_pending": Status.PENDING,
    "process_error": Status.PENDING,
    "processed": Status.PAID,
    "partially_processed": Status.UNDERPAID,
    "process_failed": Status.FAILED,
    "expired": Status.EXPIRED,
    "terminated": Status.EXPIRED,
    "verified": Status.PENDING,
    "verify_failed": Status.FAILED,
    "refunding": Status.PAID,
    "refund_pending": Status.PAID,
    "refund_error": Status.PAID,
    "refunded": Status.REFUNDED,
    "partially_refunded": Status.PARTIALLY_REFUNDED,
    "refund_failed": Status.PAID,
    "charged_back": Status.CHARGED_BACK,
    "partially_charged_back": Status.CHARGED_BACK,
}


def test_mapping_covers_the_doc_status_table_exactly() -> None:
    assert dict(MAPPING.statuses) == DOC_STATUSES
    assert MAPPING.provider == "paycore"
    assert MAPPING.failure_is_final is True


@pytest.mark.parametrize(("status", "expected"), DOC_STATUSES.items())
def test_each_status_parses_to_its_mapping(status: str, expected: Status) -> None:
    [obs] = parse(doc(status=status))
    assert obs.kind is Kind.STATUS
    assert (obs.provider_status, obs.status) == (status, expected)


@pytest.mark.parametrize("status", ["refunding", "refund_pending", "refund_error", "refund_failed"])
def test_refund_side_states_never_lower_or_change_a_paid_payment(status: str) -> None:
    paid = parse(doc(status="processed", updated=1))
    later = parse(doc(status=status, updated=2))
    assert fold(paid + later, POLICY).status is Status.PAID
    assert fold(later, POLICY).status is Status.PAID
    refunded = parse(doc(status="partially_refunded", updated=3))
    assert fold(paid + refunded + later, POLICY).status is Status.PARTIALLY_REFUNDED


@pytest.mark.parametrize("status", ["refunding", "refund_pending", "refund_error", "refund_failed"])
def test_refund_side_state_of_partly_processed_invoice_stays_underpaid(status: str) -> None:
    [obs] = parse(doc(status=status, processed_amount=Decimal("10.00")))
    assert obs.status is Status.UNDERPAID
    partial = parse(doc(status="partially_processed", processed_amount=Decimal(10), updated=1))
    assert fold([*partial, obs], POLICY).status is Status.UNDERPAID


def test_refund_side_partial_check_falls_back_to_amount() -> None:
    [obs] = parse(doc(status="refunding", payment_amount=None, processed_amount=Decimal(25)))
    assert obs.status is Status.UNDERPAID
    [full] = parse(doc(status="refunding", payment_amount=None, processed_amount=None))
    assert full.status is Status.PAID


def test_customer_paid_fee_on_top_is_not_partial() -> None:
    [obs] = parse(
        doc(
            status="refund_failed",
            amount=Decimal(100),
            payment_amount=Decimal("102.5"),
            processed_amount=Decimal("102.5"),
        )
    )
    assert obs.status is Status.PAID


def test_unknown_status_is_kept_without_canonical_status() -> None:
    [obs] = parse(doc(status="awaiting_moon_phase"))
    assert obs.kind is Kind.STATUS
    assert obs.status is None
    assert obs.provider_status == "awaiting_moon_phase"
    assert fold([obs], POLICY).status is None


def test_refund_statuses_carry_no_money_observation() -> None:
    # refunded_amount is cumulative: summing it per callback would double count.
    first = parse(doc(status="partially_refunded", refunded_amount=Decimal(5), updated=1))
    second = parse(doc(status="partially_refunded", refunded_amount=Decimal(10), updated=2))
    everything = first + second
    assert all(o.kind is Kind.STATUS and o.amount is None for o in everything)
    state = fold(everything, POLICY)
    assert state.status is Status.PARTIALLY_REFUNDED
    assert state.amount_refunded == 0
    full = parse(doc(status="refunded", refunded_amount=Decimal("25.5"), updated=3))
    assert fold(everything + full, POLICY).status is Status.REFUNDED


def test_late_processed_never_lowers_refunded() -> None:
    refunded = parse(doc(status="refunded", updated=2))
    processing = parse(doc(status="processing", updated=0))
    processed = parse(doc(status="processed", updated=1))
    assert fold(refunded + processed + processing, POLICY).status is Status.REFUNDED


# --- dedup and times ----------------------------------------------------------------------


def test_dedup_key_is_account_invoice_status_updated() -> None:
    [a] = parse(doc(status="processed", updated=100, resolution="ok"))
    [b] = parse(doc(status="processed", updated=100, amount=Decimal(1), metadata={"x": "y"}))
    [c] = parse(doc(status="processed", updated=101))
    [d] = parse(doc(status="refunded", updated=100))
    [e] = ADAPTER.parse_callback(envelope(dumps(doc(updated=100)), account="other"))
    assert a.dedup_key == b.dedup_key == "paycore:shop-eu:cpi_TestVector000001:processed:100"
    assert len({a.dedup_key, c.dedup_key, d.dedup_key, e.dedup_key}) == 4


def test_same_document_from_the_status_api_has_the_same_key() -> None:
    document = json.loads(fixture("callback_processed.json"), parse_float=Decimal)
    [polled] = invoice_observations(
        document, account=ACCOUNT, source=Source.RECONCILER, received_at=RECEIVED_AT
    )
    [called] = parse_bytes(fixture("callback_processed.json"))
    assert polled.dedup_key == called.dedup_key
    assert polled.source is Source.RECONCILER


def test_a_document_parsed_with_floats_is_refused() -> None:
    # A float amount has already lost exactness; callers must parse with Decimal.
    document = json.loads(fixture("callback_processed.json"))
    with pytest.raises(MalformedMessage, match="amount"):
        invoice_observations(
            document, account=ACCOUNT, source=Source.RECONCILER, received_at=RECEIVED_AT
        )


@pytest.mark.parametrize("updated", [None, "absent"])
def test_no_updated_falls_back_to_received_at(updated: str | None) -> None:
    document = doc()
    if updated is None:
        document["data"]["attributes"]["updated"] = None
    else:
        del document["data"]["attributes"]["updated"]
    [obs] = parse(document)
    assert obs.observed_at == RECEIVED_AT
    assert obs.dedup_key == "paycore:shop-eu:cpi_TestVector000001:processed:"


def test_updated_zero_is_the_epoch() -> None:
    [obs] = parse(doc(updated=0))
    assert obs.observed_at == datetime(1970, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "updated",
    ["1700000300", Decimal("1700000300.5"), -1, True, Decimal(10**20), [], {}],
    ids=["string", "fraction", "negative", "bool", "huge", "list", "object"],
)
def test_bad_updated_is_malformed(updated: object) -> None:
    with pytest.raises(MalformedMessage, match="updated"):
        parse(doc(updated=updated))


# --- other resource types and tolerated shapes ---------------------------------------------


@pytest.mark.parametrize("resource", ["payout-invoices", "refund", "payment-requests"])
def test_other_resource_types_are_authentic_but_empty(resource: str) -> None:
    document = doc()
    document["data"]["type"] = resource
    del document["data"]["attributes"]["reference_id"]
    assert parse(document) == []


def test_empty_objects_as_lists_are_accepted_everywhere() -> None:
    document = doc(metadata=[], payload=[], flow_data=[])
    document["data"]["relationships"] = []
    document["data"]["links"] = []
    document["included"] = []
    [obs] = parse(document)
    assert obs.status is Status.PAID


def test_objects_where_lists_may_appear_are_accepted_too() -> None:
    document = doc(metadata={}, payload={"card": {"mask": "4111"}}, flow_data={"action": "x"})
    document["data"]["relationships"] = {}
    document["data"]["links"] = {}
    [obs] = parse(document)
    assert obs.status is Status.PAID


def test_absent_amount_and_currency_are_none() -> None:
    [obs] = parse(doc(amount=None, currency=None))
    assert (obs.amount_due, obs.currency) == (None, None)


@pytest.mark.parametrize("currency", [5, "", [], True])
def test_odd_currency_is_dropped(currency: object) -> None:
    [obs] = parse(doc(currency=currency))
    assert obs.currency is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"49.9", Decimal("49.9")),
        (b"0.1", Decimal("0.1")),
        (b"0.30000000000000004", Decimal("0.30000000000000004")),
        (b"22", Decimal(22)),
        (b"0", Decimal(0)),
        (b"1e2", Decimal(100)),
        (b"123456789012345678901234567890.12", Decimal("123456789012345678901234567890.12")),
    ],
)
def test_json_number_amount_stays_exact(raw: bytes, expected: Decimal) -> None:
    body = dumps(doc(amount="AMOUNT")).replace(b'"AMOUNT"', raw)
    [obs] = parse_bytes(body)
    assert obs.amount_due == expected
    assert isinstance(obs.amount_due, Decimal)


def test_decimal_string_amount_is_accepted() -> None:
    [obs] = parse(doc(amount="49.90"))
    assert obs.amount_due == Decimal("49.90")


# --- malformed ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [{}, {"data": None}, {"data": []}, {"data": [doc()["data"]]}, {"data": "x"}, {"errors": []}],
    ids=["no-data", "null", "empty-list", "collection", "string", "errors"],
)
def test_missing_or_odd_data_is_malformed(document: object) -> None:
    with pytest.raises(MalformedMessage, match="data"):
        parse(document)


@pytest.mark.parametrize("resource", [None, "", 7])
def test_missing_type_is_malformed(resource: object) -> None:
    document = doc()
    document["data"]["type"] = resource
    with pytest.raises(MalformedMessage, match=r"data\.type"):
        parse(document)


@pytest.mark.parametrize("invoice_id", [None, "", 42])
def test_missing_id_is_malformed(invoice_id: object) -> None:
    document = doc()
    document["data"]["id"] = invoice_id
    with pytest.raises(MalformedMessage, match=r"data\.id"):
        parse(document)


@pytest.mark.parametrize("attributes", [None, [], "x", 1])
def test_missing_attributes_is_malformed(attributes: object) -> None:
    document = doc()
    document["data"]["attributes"] = attributes
    with pytest.raises(MalformedMessage, match="attributes"):
        parse(document)


@pytest.mark.parametrize("reference_id", [None, "", 1001, ["order-1001"], {"id": "x"}])
def test_missing_reference_id_is_malformed(reference_id: object) -> None:
    document = doc()
    if reference_id is None:
        del document["data"]["attributes"]["reference_id"]
    else:
        document["data"]["attributes"]["reference_id"] = reference_id
    with pytest.raises(MalformedMessage, match="reference_id"):
        parse(document)


@pytest.mark.parametrize("status", ["", 3, ["processed"]])
def test_missing_status_is_malformed(status: object) -> None:
    with pytest.raises(MalformedMessage, match="status"):
        parse(doc(status=status))


@pytest.mark.parametrize(
    "amount",
    ["abc", "-1", "-0.5", "NaN", "Infinity", "", " 1", "1_000", "1e2", True, False, [], {}],
)
def test_bad_amount_is_malformed(amount: object) -> None:
    with pytest.raises(MalformedMessage, match="amount"):
        parse(doc(amount=amount))


@pytest.mark.parametrize("raw", [b"NaN", b"Infinity", b"-Infinity", b"-1.5", b"-2", b"-0.01"])
def test_non_finite_or_negative_json_number_amount_is_malformed(raw: bytes) -> None:
    body = dumps(doc(amount="AMOUNT")).replace(b'"AMOUNT"', raw)
    with pytest.raises(MalformedMessage, match="amount"):
        parse_bytes(body)


def test_bad_processed_amount_on_refund_side_state_is_malformed() -> None:
    with pytest.raises(MalformedMessage, match="processed_amount"):
        parse(doc(status="refunding", processed_amount="abc"))


# --- simulator round trip -------------------------------------------------------------------

LIVE = "sk_live_SIMULATORkey000000001"
TEST = "sk_test_SIMULATORkey000000001"
NOW = 1715950800


def sim_account() -> PayCoreAccount:
    return PayCoreAccount.model_validate(
        {"secrets": ["env:LIVE"], "test_secrets": ["env:TEST"]},
        context={"env": {"LIVE": LIVE, "TEST": TEST}},
    )


def verify_and_parse(headers: dict[str, str], body: bytes) -> list[Observation]:
    now = datetime.fromtimestamp(NOW, UTC)
    verified = ADAPTER.verify_callback(sim_account(), CIMultiDict(headers), body, now)
    assert (verified.secret_ref, verified.variant) == ("env:LIVE", "live")
    return ADAPTER.parse_callback(envelope(body))


def test_simulator_satisfies_the_protocol() -> None:
    sim: ProviderSimulator = SIMULATOR
    assert sim.name == paycore.NAME == "paycore"
    assert sim.signs_timestamp is False
    assert sim.required_headers == ("X-Signature",)
    assert sim.returns is None


def test_simulator_callback_verifies_and_parses() -> None:
    body = SIMULATOR.callback_body("order-7", now=NOW)
    headers = SIMULATOR.sign_callback(sim_account(), body, now=NOW)
    assert headers["Content-Type"] == "application/json"
    [obs] = verify_and_parse(headers, body)
    assert (obs.merchant_ref, obs.status, obs.provider_status) == (
        "order-7",
        Status.PAID,
        "processed",
    )
    assert obs.amount_due == Decimal("49.90")
    assert obs.currency == "EUR"
    assert obs.provider_ref is not None
    assert obs.provider_ref.startswith("cpi_")


def test_simulator_lifecycle_verifies_parses_and_folds_to_its_statuses() -> None:
    life = SIMULATOR.lifecycle(sim_account(), "order-42", now=NOW)
    assert life.statuses == ["paid", "refunded"]
    assert len(life.provider_ref) == 20
    assert life.provider_ref[4:].isalnum()
    assert (life.amount, life.currency) == (Decimal("49.90"), "EUR")
    seen: list[Observation] = []
    folded: list[str] = []
    for request in life.callbacks:
        assert request.route == "webhooks"
        assert request.method == "POST"
        [obs] = verify_and_parse(request.headers, request.body)
        assert (obs.merchant_ref, obs.provider_ref) == ("order-42", life.provider_ref)
        assert obs.amount_due == life.amount
        seen.append(obs)
        status = fold(seen, POLICY).status
        assert status is not None
        folded.append(status.value)
    assert folded == life.statuses
    assert len({o.dedup_key for o in seen}) == 2
    assert seen[1].observed_at > seen[0].observed_at
    # Out of order and duplicated, the set still folds to the final status.
    assert fold([seen[1], seen[0], seen[1]], POLICY).status is Status.REFUNDED


def test_simulator_lifecycle_bodies_look_like_paycore() -> None:
    life = SIMULATOR.lifecycle(sim_account(), "order-42", now=NOW)
    processed, refunded = (json.loads(r.body) for r in life.callbacks)
    assert b'"amount":49.9,' in life.callbacks[0].body
    assert processed["data"]["attributes"]["metadata"] == []
    assert refunded["data"]["attributes"]["refunded_amount"] == 49.9
    assert refunded["data"]["attributes"]["updated"] > processed["data"]["attributes"]["updated"]
    assert processed["data"]["links"]["self"] == f"/api/payment-invoices/{life.provider_ref}"


def test_simulator_test_mode_body_verifies_with_test_key() -> None:
    body = invoice_body(
        "order-9", "cpi_AAAAAAAAAAAAAAAA", "processed", Decimal(10), "USD", NOW, True
    )
    now = datetime.fromtimestamp(NOW, UTC)
    headers = CIMultiDict({"X-Signature": signature(TEST, body)})
    verified = ADAPTER.verify_callback(sim_account(), headers, body, now)
    assert (verified.secret_ref, verified.variant) == ("env:TEST", "test")


def test_simulator_tampered_body_is_rejected() -> None:
    from paysync.errors import AuthenticationError

    body = SIMULATOR.callback_body("order-7", now=NOW)
    headers = SIMULATOR.sign_callback(sim_account(), body, now=NOW)
    tampered = body.replace(b'"amount":49.9,', b'"amount":4.99,')
    assert tampered != body
    with pytest.raises(AuthenticationError, match="bad_signature"):
        verify_and_parse(headers, tampered)
