"""PayCore's adapter: verifies a callback's ``X-Signature`` with the account's keys (the
mode the body claims first), parses it as an invoice document, and acknowledges with the
``200`` PayCore counts as delivered."""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from datetime import datetime

from paysync.errors import AuthenticationError
from paysync.settings import Secret
from providers.base import JSON_MEDIA_TYPES, Ack, Verified
from providers.paycore.checkout import PayCoreCheckoutApi
from providers.paycore.scheme import (
    HEADER_SIGNATURE,
    MAPPING,
    NAME,
    PayCoreAccount,
    invoice_observations,
    sign,
)
from providers.paycore.status import PayCoreStatusApi
from providers.payload import load_json_object
from schemas.envelope import Envelope
from schemas.observation import Observation, Source


class PayCoreAdapter:
    name = NAME
    account_model = PayCoreAccount
    mapping = MAPPING
    # PayCore counts only exactly 200 as delivered and ignores the body.
    callback_ack = Ack(status=200, body=b"", content_type="text/plain")
    callback_media_types = JSON_MEDIA_TYPES
    # PayCore's return URL carries no signature.
    returns = None
    status_api = PayCoreStatusApi()
    checkout_api = PayCoreCheckoutApi()

    def verify_callback(
        self,
        account: PayCoreAccount,
        headers: Mapping[str, str],
        body: bytes,
        now: datetime,
    ) -> Verified:
        given = (headers.get(HEADER_SIGNATURE) or "").strip()
        if not given:
            raise AuthenticationError("missing_header", HEADER_SIGNATURE)
        if not given.isascii():
            raise AuthenticationError("bad_signature")
        given_bytes = given.encode("ascii")
        for variant, secrets in _candidates(account, body):
            for secret in secrets:
                expected = sign(secret.reveal(), body).encode("ascii")
                if hmac.compare_digest(expected, given_bytes):
                    return Verified(secret_ref=secret.ref, variant=variant)
        raise AuthenticationError("bad_signature")

    def parse_callback(self, envelope: Envelope) -> list[Observation]:
        return invoice_observations(
            load_json_object(envelope.body),
            account=envelope.account,
            source=Source.CALLBACK,
            received_at=envelope.received_at,
        )


ADAPTER = PayCoreAdapter()


def _candidates(account: PayCoreAccount, body: bytes) -> list[tuple[str, list[Secret]]]:
    """The account's secrets by mode, the mode the body claims first (design §8)."""
    live = ("live", list(account.secrets))
    test = ("test", list(account.test_secrets))
    return [test, live] if _claims_test_mode(body) else [live, test]


def _claims_test_mode(body: bytes) -> bool:
    """``data.attributes.test_mode`` of a body not yet authenticated: it only orders the
    attempts, so anything unreadable simply means "live first"."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return False
    data = doc.get("data") if isinstance(doc, dict) else None
    attributes = data.get("attributes") if isinstance(data, dict) else None
    return isinstance(attributes, dict) and attributes.get("test_mode") is True
