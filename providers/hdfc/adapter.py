"""HDFC SmartGateway's adapter: webhooks (HTTP Basic credentials, the order in
``content.order``) and the signed return URL (``validateHMAC_SHA256``, every encoding
variant tried); acknowledged with ``200``."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from datetime import datetime

from paysync.errors import AuthenticationError, MalformedMessage
from providers.base import (
    JSON_MEDIA_TYPES,
    Ack,
    ReturnHint,
    Verified,
    VerifiedReturn,
    parse_form,
)
from providers.hdfc.checkout import HdfcCheckoutApi
from providers.hdfc.scheme import (
    HEADER_AUTHORIZATION,
    MAPPING,
    NAME,
    RETURN_VARIANTS,
    HdfcAccount,
    order_observations,
    received_signature,
    sign_return,
    utc_time,
)
from providers.hdfc.status import HdfcStatusApi
from providers.payload import load_json_object
from schemas.envelope import Envelope
from schemas.observation import Observation, Source


class HdfcReturns:
    """The signed return URL (``ReturnUrlScheme``)."""

    def verify_return(
        self, account: HdfcAccount, params: Mapping[str, str], now: datetime
    ) -> VerifiedReturn:
        if not account.response_keys:
            raise AuthenticationError("return_not_configured")
        given = _required(params.get("signature"), "signature")
        order_id = _required(_order_id(params), "order_id")
        status = _required(params.get("status"), "status")
        given_bytes = received_signature(given).encode()
        # Every key under every variant (no early exit); the first match in order wins.
        matches = [
            (key.ref, variant)
            for variant in RETURN_VARIANTS
            for key in account.response_keys
            if hmac.compare_digest(sign_return(params, key.reveal(), variant).encode(), given_bytes)
        ]
        if not matches:
            raise AuthenticationError("bad_signature")
        ref, variant = matches[0]
        return VerifiedReturn(
            secret_ref=ref,
            variant=variant,
            order_id=order_id,
            provider_status=status,
            status=MAPPING.canonical(status),
        )

    def parse_return(self, envelope: Envelope) -> ReturnHint:
        params = parse_form(envelope.body)
        order_id, status = _order_id(params), params.get("status")
        if not order_id:
            raise MalformedMessage("return parameters carry no order_id")
        if not status:
            raise MalformedMessage("return parameters carry no status")
        return ReturnHint(
            provider=NAME,
            account=envelope.account,
            # Juspay's order_id is the id the merchant chose when creating the order.
            merchant_ref=order_id,
            provider_ref=None,
            provider_status=status,
            observed_at=envelope.received_at,
            dedup_key=f"{NAME}:{envelope.account}:{order_id}:return:{status}",
        )


def _order_id(params: Mapping[str, str]) -> str | None:
    # The kits fall back to camelCase; either way the value is covered by the signature.
    return params.get("order_id") or params.get("orderId")


def _required(value: str | None, name: str) -> str:
    if not value:
        raise AuthenticationError("missing_parameter", name)
    return value


class HdfcAdapter:
    name = NAME
    account_model = HdfcAccount
    mapping = MAPPING
    callback_ack = Ack(status=200, body=b"", content_type="text/plain")
    callback_media_types = JSON_MEDIA_TYPES
    returns = HdfcReturns()

    status_api = HdfcStatusApi()
    # POST /v1/checkouts: the Session API (providers/hdfc/checkout.py).
    checkout_api = HdfcCheckoutApi()

    def verify_callback(
        self,
        account: HdfcAccount,
        headers: Mapping[str, str],
        body: bytes,
        now: datetime,
    ) -> Verified:
        """HTTP Basic against the webhook username and every configured password.

        There is no timestamp and no body signature: replays are absorbed by dedup, and
        the status API confirms before anything is fulfilled (design §6).
        """
        username, password = _basic_credentials(headers.get(HEADER_AUTHORIZATION))
        user_ok = hmac.compare_digest(username, account.webhook_username.encode())
        # Both parts are compared for every password, so timing tells nothing about which
        # part was wrong.
        matching = [
            secret.ref
            for secret in account.secrets
            if hmac.compare_digest(password, secret.reveal().encode()) and user_ok
        ]
        if not matching:
            raise AuthenticationError("bad_credentials")
        return Verified(secret_ref=matching[0])

    def parse_callback(self, envelope: Envelope) -> list[Observation]:
        doc = load_json_object(envelope.body)
        if "JWT" in doc:
            raise MalformedMessage(
                "JWT/JWE webhooks are not supported; configure Basic-auth JSON webhooks"
            )
        content = doc.get("content")
        order = content.get("order") if isinstance(content, dict) else None
        if not isinstance(order, dict):
            raise MalformedMessage("content.order is missing or not an object")
        return order_observations(
            order,
            account=envelope.account,
            source=Source.CALLBACK,
            # The event's time, when Juspay stated the order's status.
            observed_at=utc_time(doc.get("date_created")) or envelope.received_at,
        )


ADAPTER = HdfcAdapter()


def _basic_credentials(header: str | None) -> tuple[bytes, bytes]:
    """``(username, password)`` bytes of a Basic ``Authorization`` header."""
    if not header:
        raise AuthenticationError("missing_header", HEADER_AUTHORIZATION)
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        raise AuthenticationError("bad_credentials", "not Basic credentials")
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise AuthenticationError("bad_credentials", "credentials are not base64") from None
    username, colon, password = decoded.partition(b":")
    if not colon:
        raise AuthenticationError("bad_credentials", "credentials have no colon")
    return username, password
