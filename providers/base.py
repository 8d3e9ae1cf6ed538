"""The small interface every provider adapter implements, and the values it returns.

An adapter is pure: it verifies a request against its provider's scheme, parses an
authenticated body into observations and says how to acknowledge. It does no I/O, so
ingest, worker, simulator and tests share it without a network.

Two entry points may exist per provider:

- the server-to-server **callback** (``POST /webhooks/{provider}/{account}``):
  ``verify_callback`` then, in the worker, ``parse_callback``;
- the customer's **return URL** (``GET|POST /return/{provider}/{account}``), for providers
  whose redirect is signed (``returns`` is not ``None``): ``verify_return`` then, in the
  worker, ``parse_return``. A return URL is a hint, never a fact: it names an order and
  asks for an immediate status poll; it never changes a payment's status.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol, TypeVar
from urllib.parse import parse_qsl

from pydantic import Field

from paysync.errors import MalformedMessage
from paysync.settings import ProviderAccount
from schemas.envelope import Envelope
from schemas.mapping import StatusMapping
from schemas.observation import Observation
from schemas.status import Status

# A provider's own account model. Each adapter, return-URL scheme and status API is typed on
# its provider's model, so it reads its fields without a runtime check; the one check that a
# configured account is of that model is ``providers.registry.Provider``'s.
A = TypeVar("A", bound=ProviderAccount)
A_contra = TypeVar("A_contra", bound=ProviderAccount, contravariant=True)

JSON_MEDIA_TYPES = frozenset({"application/json"})
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True, slots=True, kw_only=True)
class Verified:
    """A callback passed verification; ``secret_ref`` names which secret matched."""

    secret_ref: str
    # Request headers the parser needs later; they travel in the envelope. Never credentials.
    http_headers: Mapping[str, str] = field(default_factory=dict)
    # Which variant of the scheme matched (a key encoding, a string encoding), when the
    # provider's documentation leaves a choice open; logged with the acceptance.
    variant: str = ""
    # A provider-assigned delivery id that is signed (Plural's ``webhook-id``): ingest
    # refuses a second request with the same id within its replay window.
    replay_key: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack:
    status: int
    body: bytes
    content_type: str


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedReturn:
    """A return-URL request whose signature matched."""

    secret_ref: str
    variant: str = ""
    # The order id the redirect names (provider's or merchant's, as the provider sends it).
    order_id: str
    # What the redirect claims, raw and mapped. Used only to choose the page the customer
    # sees; never applied to the payment.
    provider_status: str
    status: Status | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReturnHint:
    """What the worker learns from a verified return URL: which order to poll now.

    At least one of ``merchant_ref`` and ``provider_ref`` is set; the worker finds the
    payment by the first it has (Plural's redirect carries only its own order id).
    """

    provider: str
    account: str
    merchant_ref: str | None
    provider_ref: str | None
    provider_status: str
    observed_at: datetime
    dedup_key: str


class ReturnPagesAccount(ProviderAccount):
    """An account of a provider with signed return URLs: where to send the customer.

    ``GET|POST /return/{provider}/{account}`` answers ``303`` to one of these pages with
    ``?status=`` appended; while neither is set the route answers ``404``.
    """

    return_success_url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")
    return_failure_url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")


class ReturnUrlScheme(Protocol[A_contra]):
    def verify_return(
        self, account: A_contra, params: Mapping[str, str], now: datetime
    ) -> VerifiedReturn:
        """Check a redirect's parameters (query or form fields, decoded once) or raise
        ``AuthenticationError(reason)``."""
        ...

    def parse_return(self, envelope: Envelope) -> ReturnHint:
        """The hint carried by a verified redirect (``envelope.body`` is the raw query string
        or form body) or raise ``MalformedMessage``."""
        ...


class ProviderAdapter(Protocol[A]):
    """What each provider implements (``providers/<name>/adapter.py``), typed on its
    account model; the registry wraps it in a ``providers.registry.Provider``."""

    @property
    def name(self) -> str: ...

    @property
    def account_model(self) -> type[A]: ...

    @property
    def mapping(self) -> StatusMapping:
        """Provider status → canonical status, and whether a failure is final (the fold's
        policy reads it)."""
        ...

    @property
    def callback_ack(self) -> Ack: ...

    @property
    def callback_media_types(self) -> frozenset[str]:
        """Content-Type media types a callback may carry (compared without parameters)."""
        ...

    @property
    def returns(self) -> ReturnUrlScheme[A] | None:
        """The return-URL scheme, or ``None`` when the provider's redirect is not signed."""
        ...

    @property
    def status_api(self) -> StatusApi[A] | None:
        """The provider's status API (the reconciler's source of truth), if it has one."""
        ...

    @property
    def checkout_api(self) -> CheckoutApi[A] | None:
        """The provider's create-checkout API (``POST /v1/checkouts``), if paysync can
        create its hosted page."""
        ...

    def verify_callback(
        self,
        account: A,
        headers: Mapping[str, str],
        body: bytes,
        now: datetime,
    ) -> Verified:
        """Return who verified the request or raise ``AuthenticationError(reason)``."""
        ...

    def parse_callback(self, envelope: Envelope) -> list[Observation]:
        """Turn an authenticated body into observations or raise ``MalformedMessage``.

        An empty list means the callback is authentic but about nothing paysync tracks
        (a payout, say): the worker records nothing and acks."""
        ...


def parse_form(raw: bytes) -> dict[str, str]:
    """Decode a query string or ``application/x-www-form-urlencoded`` body exactly once.

    Ingest and the worker both use this, so the parameters verified are the parameters
    parsed. Blank values are kept (they were signed); a repeated key, bytes that are not
    UTF-8 or a NUL character (Postgres could never store it) raise ``MalformedMessage``.
    """
    try:
        text = raw.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False, errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedMessage(f"parameters are not UTF-8 form data: {exc}") from None
    params: dict[str, str] = {}
    for key, value in pairs:
        if "\x00" in key or "\x00" in value:
            raise MalformedMessage(f"parameter {key!r} holds a NUL character")
        if key in params:
            raise MalformedMessage(f"parameter {key!r} is repeated")
        params[key] = value
    return params


# --- status APIs (the reconciler's side) ------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentRef:
    """A payment as paysync asks a provider about it."""

    merchant_ref: str
    provider_ref: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpAnswer:
    status: int
    headers: Mapping[str, str]
    body: bytes


class HttpCall(Protocol):
    async def __call__(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
    ) -> HttpAnswer:
        """One HTTP exchange with the provider, under the account's rate and concurrency
        limits and timeout. 429, 5xx and timeouts are retried with backoff and jitter inside;
        when the attempts run out it raises ``ProviderUnavailable``. Any other status is
        returned as it came: the client decides what it means."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Poll:
    """What a provider's status API said about one payment.

    ``observations`` carry ``source=Source.RECONCILER`` and the same dedup keys the
    callback parser gives the same facts, so a fact seen both ways is counted once.
    ``found`` is False when the provider does not know the order (404, NOT_FOUND, absent
    from a batch answer): nothing is observed then.
    """

    ref: PaymentRef
    found: bool
    provider_status: str | None = None
    observations: list[Observation] = field(default_factory=list)
    # False when the client could not even ask (PayCore without an invoice id): nothing is
    # concluded from the silence, not even that a deadline passed unpaid.
    asked: bool = True


class StatusClient(Protocol):
    """One account's status-API client. It may keep state between calls (an OAuth token)."""

    @property
    def batch_size(self) -> int:
        """How many payments one call may ask about (CCPayment: 100; the others: 1)."""
        ...

    async def poll(self, call: HttpCall, refs: list[PaymentRef], now: datetime) -> list[Poll]:
        """Ask about ``refs`` (at most ``batch_size``); one Poll per ref, in order.

        Raises ``ProviderUnavailable`` (from ``call``) or ``ProviderRefused`` (401/403, an
        unexpected status, a response that fails its signature or cannot be read)."""
        ...


class StatusApi(Protocol[A_contra]):
    """A provider's status API: where it lives and a client per configured account."""

    @property
    def default_base_url(self) -> str: ...

    def client(self, account_name: str, account: A_contra, base_url: str) -> StatusClient:
        """A client for one account; ``base_url`` is the configured one or the default."""
        ...


# --- hosted checkout creation (ingest's ``POST /v1/checkouts``) --------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckoutOrder:
    """What a merchant asks paysync to create a hosted payment page for.

    ``amount`` is in major units of ``currency`` (each client renders it the way its
    provider wants: a string, a float, minor units). ``customer`` holds the customer fields
    the provider needs (``email``, ``phone``, ``name``, ``first_name``, ``last_name``,
    ``customer_id``), already validated by the caller; a client reads the ones it sends.
    ``idempotency_key`` is the merchant's ``Idempotency-Key`` header; a client may pass it
    on to a provider that takes one.
    """

    merchant_ref: str
    amount: Decimal
    currency: str
    description: str
    customer: Mapping[str, str]
    # Where the provider sends the customer's browser after paying (our return route or the
    # merchant's page), and where it posts callbacks when it takes that per order.
    return_url: str | None
    notify_url: str | None
    expires_at: datetime | None
    idempotency_key: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CreatedCheckout:
    """What the provider answered to a create call that succeeded."""

    # Where the merchant redirects the customer (the hosted page).
    redirect_url: str
    # The provider's id for the order, as the status API asks by it (PayCore ``cpi_…``,
    # Plural's order id); None when the provider returns none (CCPayment: the status API
    # asks by our merchant_ref).
    provider_ref: str | None
    # The deadline the provider will enforce, when it says or when the request fixed it.
    expires_at: datetime | None
    # The provider's own status of the new order (``created``, ``NEW``), for the timeline.
    provider_status: str | None = None


class CheckoutClient(Protocol):
    """One account's create-checkout client."""

    @property
    def retry_safe(self) -> bool:
        """Whether resending the same create after a timeout or 5xx cannot make a second
        order (the provider refuses or returns the first for the same id). When False the
        caller makes one attempt and, if its outcome is unknown, says so."""
        ...

    async def create(self, call: HttpCall, order: CheckoutOrder, now: datetime) -> CreatedCheckout:
        """Create the provider's order and hosted page for ``order``.

        Raises ``CheckoutRejected`` when the provider refused the order (with its code),
        ``ProviderUnavailable`` (from ``call``: timeouts, 5xx, 429 after the attempts) when
        the outcome is unknown, and ``ProviderRefused`` on 401/403 or an answer that fails
        its signature or cannot be read."""
        ...


class CheckoutApi(Protocol[A_contra]):
    """A provider's create-checkout API and a client per configured account."""

    @property
    def default_base_url(self) -> str:
        """The production base URL; the account's ``status_api.base_url`` overrides it (each
        provider's create and status endpoints share a host)."""
        ...

    def client(self, account_name: str, account: A_contra, base_url: str) -> CheckoutClient: ...
