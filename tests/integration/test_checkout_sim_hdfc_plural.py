"""HDFC's and Plural's create-checkout clients over real HTTP (loopback) against their
simulated create endpoints, through the reconciler's ``AccountHttp``: an order made, a
duplicate, a rejected request; and the simulated endpoints refusing what the providers
refuse, taking what their kits and SDKs send (HDFC's Node kit, pinelabs-python).

The order desk here is a small dict; the simulator's real one is part A's."""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import httpx
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pinelabs import AsyncPinelabsApi
from pinelabs.types import Amount, CheckoutCustomer, CheckoutPurchaseDetails

from paysync.errors import CheckoutRejected, ProviderRefused, ProviderUnavailable
from paysync.metrics import Metrics
from paysync.retry import Backoff
from paysync.settings import ProviderAccount, StatusApiSettings
from providers.base import CheckoutClient, CheckoutOrder, HttpCall
from providers.hdfc.adapter import ADAPTER as HDFC
from providers.hdfc.scheme import HdfcAccount
from providers.http_call import AccountHttp
from providers.plural.adapter import ADAPTER as PLURAL
from providers.plural.scheme import PluralAccount
from simulator.checkout import NewOrder
from simulator.hdfc import SIMULATOR as HDFC_SIM
from simulator.plural import SIMULATOR as PLURAL_SIM
from simulator.plural import TOKENS
from simulator.status import Faults, OrderBook, build_status_app, status_base_url

pytestmark = pytest.mark.integration

ACCOUNT = "shop"
HDFC_KEY = "MADEUPAPIKEY123"
MERCHANT_ID = "shop_demo"
CLIENT_ID = "client-0001"
CLIENT_SECRET = "s3cret-plural-client"


@dataclass
class Desk:
    """A dict-backed ``OrderDesk``."""

    accounts: dict[tuple[str, str], ProviderAccount]
    orders: dict[tuple[str, str, str], NewOrder] = field(default_factory=dict)
    creates: Counter[tuple[str, str]] = field(default_factory=Counter)

    def account(self, provider: str, name: str) -> ProviderAccount | None:
        return self.accounts.get((provider, name))

    def created(self, provider: str, account: str, order: NewOrder) -> None:
        assert (provider, account, order.merchant_ref) not in self.orders
        self.orders[(provider, account, order.merchant_ref)] = order

    def find_created(self, provider: str, account: str, merchant_ref: str) -> NewOrder | None:
        return self.orders.get((provider, account, merchant_ref))

    def count_create(self, provider: str, account: str) -> None:
        self.creates[(provider, account)] += 1


def hdfc_account(api_key: str = HDFC_KEY, client_id: str = "hdfcmaster") -> HdfcAccount:
    return HdfcAccount.model_validate(
        {
            "secrets": ["env:WH"],
            "webhook_username": "juspay",
            "merchant_id": MERCHANT_ID,
            "api_key": "env:KEY",
            "payment_page_client_id": client_id,
        },
        context={"env": {"WH": "webhook-password", "KEY": api_key}},
    )


def plural_account(secret: str = CLIENT_SECRET) -> PluralAccount:
    return PluralAccount.model_validate(
        {"secrets": ["env:WH"], "client_id": CLIENT_ID, "client_secret": "env:CS"},
        context={"env": {"WH": "bWFkZS11cC1wbHVyYWwtd2ViaG9vay1zZWNyZXQ=", "CS": secret}},
    )


@dataclass
class Sim:
    url: str
    desk: Desk
    apps: dict[str, web.Application]
    session: aiohttp.ClientSession

    def base(self, provider: str) -> str:
        return status_base_url(self.url, provider, ACCOUNT)

    def http(self, provider: str, **settings: Any) -> HttpCall:
        return AccountHttp(
            self.session,
            provider,
            ACCOUNT,
            StatusApiSettings(**{"max_attempts": 1, **settings}),
            Metrics(),
            backoff=Backoff(initial=0.01, maximum=0.05),
        )


async def serve(faults: Faults) -> AsyncIterator[Sim]:
    desk = Desk({("hdfc", ACCOUNT): hdfc_account(), ("plural", ACCOUNT): plural_account()})
    apps: dict[str, web.Application] = {}

    def hdfc_routes(app: web.Application) -> None:
        HDFC_SIM.add_status_routes(app)
        HDFC_SIM.add_create_routes(app, desk)
        apps["hdfc"] = app

    def plural_routes(app: web.Application) -> None:
        PLURAL_SIM.add_status_routes(app)
        PLURAL_SIM.add_create_routes(app, desk)
        apps["plural"] = app

    book = OrderBook(accounts=dict(desk.accounts))
    app = build_status_app(book, faults, {"hdfc": hdfc_routes, "plural": plural_routes})
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as session:
        yield Sim(str(server.make_url("")).rstrip("/"), desk, apps, session)


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    async for served in serve(Faults()):
        yield served


def order(merchant_ref: str, amount: str = "1499.00", **changes: Any) -> CheckoutOrder:
    made = CheckoutOrder(
        merchant_ref=merchant_ref,
        amount=Decimal(amount),
        currency="INR",
        description="Order at the shop",
        customer={"customer_id": "cust-42", "email": "a@example.com", "phone": "9876543210"},
        return_url="https://paysync.example/return/x/shop",
        notify_url=None,
        expires_at=None,
        idempotency_key=f"idem-{merchant_ref}",
    )
    return replace(made, **changes)


def hdfc_client(sim: Sim, account: HdfcAccount | None = None) -> CheckoutClient:
    api = HDFC.checkout_api
    assert api is not None
    return api.client(ACCOUNT, account or hdfc_account(), sim.base("hdfc"))


def plural_client(sim: Sim, account: PluralAccount | None = None) -> CheckoutClient:
    api = PLURAL.checkout_api
    assert api is not None
    return api.client(ACCOUNT, account or plural_account(), sim.base("plural"))


def now() -> datetime:
    return datetime.now(UTC)


def client_of(sim: Sim, provider: str) -> CheckoutClient:
    return hdfc_client(sim) if provider == "hdfc" else plural_client(sim)


@pytest.mark.parametrize(
    ("provider", "id_prefix", "status"), [("hdfc", "ordeh_", "NEW"), ("plural", "v1-", "CREATED")]
)
async def test_a_create_makes_the_order_the_simulator_then_knows(
    sim: Sim, provider: str, id_prefix: str, status: str
) -> None:
    created = await client_of(sim, provider).create(sim.http(provider), order("new-1"), now())
    known = sim.desk.orders[(provider, ACCOUNT, "new-1")]
    assert created.provider_ref == known.provider_ref
    assert created.provider_ref is not None
    assert created.provider_ref.startswith(id_prefix)
    assert (created.redirect_url, created.provider_status) == (known.redirect_url, status)
    assert (known.amount, known.currency) == (Decimal("1499.00"), "INR")
    assert known.return_url == "https://paysync.example/return/x/shop"
    assert created.expires_at == known.expires_at
    if provider == "hdfc":
        # The order's expiry, as Juspay states it (15 minutes in UAT).
        assert created.expires_at is not None
        assert timedelta(minutes=14) < created.expires_at - now() <= timedelta(minutes=15)
    else:
        # Plural states none.
        assert created.expires_at is None
        assert "/api/v3/checkout-bff/redirect/checkout?token=" in created.redirect_url


@pytest.mark.parametrize("provider", ["hdfc", "plural"])
async def test_a_resent_create_answers_the_first_order(sim: Sim, provider: str) -> None:
    """HDFC: undocumented, the simulator's choice; Plural: as the SDK documents."""
    client, call = client_of(sim, provider), sim.http(provider)
    first = await client.create(call, order("dup-1"), now())
    again = await client.create(call, order("dup-1"), now())
    assert (again.provider_ref, again.redirect_url) == (first.provider_ref, first.redirect_url)
    assert list(sim.desk.orders) == [(provider, ACCOUNT, "dup-1")]
    assert sim.desk.creates[(provider, ACCOUNT)] == 2


@pytest.mark.parametrize(
    ("provider", "code"), [("hdfc", "ALREADY_EXISTS"), ("plural", "INVALID_REQUEST")]
)
async def test_an_id_reused_for_another_amount_is_rejected(
    sim: Sim, provider: str, code: str
) -> None:
    client, call = client_of(sim, provider), sim.http(provider)
    await client.create(call, order("dup-2"), now())
    with pytest.raises(CheckoutRejected) as caught:
        await client.create(call, order("dup-2", amount="10.00"), now())
    assert caught.value.provider_code == code
    assert sim.desk.orders[(provider, ACCOUNT, "dup-2")].amount == Decimal("1499.00")


# --- HDFC ---------------------------------------------------------------------------------


async def test_hdfc_a_request_the_provider_refuses_is_rejected_with_its_code(sim: Sim) -> None:
    client = hdfc_client(sim, hdfc_account(client_id="not-our-page"))
    with pytest.raises(CheckoutRejected) as caught:
        await client.create(sim.http("hdfc"), order("hd-4"), now())
    assert caught.value.provider_code == "INVALID_REQUEST"
    assert "payment_page_client_id" in str(caught.value)
    assert sim.desk.orders == {}


async def test_hdfc_a_wrong_api_key_is_refused(sim: Sim) -> None:
    client = hdfc_client(sim, hdfc_account(api_key="WRONGKEY"))
    with pytest.raises(ProviderRefused):
        await client.create(sim.http("hdfc"), order("hd-5"), now())
    assert sim.desk.orders == {}


def juspay_headers(**changes: str | None) -> dict[str, str]:
    headers: dict[str, str | None] = {
        "Authorization": "Basic " + base64.b64encode(f"{HDFC_KEY}:".encode()).decode(),
        "x-merchantid": MERCHANT_ID,
        "Content-Type": "application/json",
    }
    headers.update(changes)
    return {k: v for k, v in headers.items() if v is not None}


async def post(sim: Sim, url: str, headers: Mapping[str, str], body: bytes) -> tuple[int, Any]:
    async with sim.session.post(url, headers=dict(headers), data=body) as reply:
        raw = await reply.read()
        return reply.status, orjson.loads(raw) if raw else None


async def test_hdfc_takes_the_node_kits_request(sim: Sim) -> None:
    """The Node kit: the key without a colon, no ``version``, ``amount`` a JSON number."""
    headers = juspay_headers(Authorization="Basic " + base64.b64encode(HDFC_KEY.encode()).decode())
    body = {
        "order_id": "kit-1",
        "amount": 24,
        "payment_page_client_id": "hdfcmaster",
        "customer_id": "cust-1",
        "action": "paymentPage",
    }
    status, doc = await post(sim, sim.base("hdfc") + "/session", headers, orjson.dumps(body))
    assert status == 200
    assert (doc["status"], doc["order_id"]) == ("NEW", "kit-1")
    assert doc["payment_links"]["web"] == sim.desk.orders[("hdfc", ACCOUNT, "kit-1")].redirect_url
    assert sim.desk.orders[("hdfc", ACCOUNT, "kit-1")].amount == Decimal(24)


GOOD_SESSION = {"order_id": "bad-1", "amount": "1.00", "payment_page_client_id": "hdfcmaster"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize(
    ("header_changes", "body", "status", "fields"),
    [
        ({}, {"amount": "100.1532"}, 400, ["amount"]),
        ({}, {"order_id": None}, 400, ["order_id"]),
        ({}, {"order_id": "a" * 22}, 400, ["order_id"]),
        ({}, {"payment_page_client_id": None}, 400, ["payment_page_client_id"]),
        ({}, {"customer_phone": "+919876543210"}, 400, ["customer_phone"]),
        ({}, {"currency": "USD"}, 400, ["currency"]),
        ({}, b"order_id=bad-1", 400, []),
        (FORM, {}, 400, ["Content-Type"]),
        ({"x-merchantid": "someone_else"}, {}, 401, None),
        ({"Authorization": None}, {}, 401, None),
    ],
)
async def test_hdfc_refuses_what_juspay_refuses(
    sim: Sim,
    header_changes: dict[str, str | None],
    body: dict[str, Any] | bytes,
    status: int,
    fields: list[str] | None,
) -> None:
    raw = body if isinstance(body, bytes) else orjson.dumps(without_nulls({**GOOD_SESSION, **body}))
    headers = juspay_headers(**header_changes)
    got, doc = await post(sim, sim.base("hdfc") + "/session", headers, raw)
    code = "UNAUTHENTICATED" if status == 401 else "INVALID_REQUEST"
    assert (got, doc["error_code"]) == (status, code)
    if fields is not None:
        assert doc["error_info"]["fields"] == fields
    assert sim.desk.orders == {}
    assert sim.desk.creates[("hdfc", ACCOUNT)] == 1


def without_nulls(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if v is not None}


async def test_a_create_that_times_out_is_unavailable_after_one_attempt() -> None:
    async for sim in serve(Faults(hanging=1.0, hang_seconds=5.0)):
        with pytest.raises(ProviderUnavailable):
            await hdfc_client(sim).create(
                sim.http("hdfc", timeout_seconds=0.2), order("hd-t"), now()
            )


# --- Plural -------------------------------------------------------------------------------


async def test_plural_a_revoked_token_is_replaced_once(sim: Sim) -> None:
    client, call = plural_client(sim), sim.http("plural")
    await client.create(call, order("pl-4"), now())
    sim.apps["plural"][TOKENS].issued.clear()
    created = await client.create(call, order("pl-5"), now())
    assert created.provider_ref == sim.desk.orders[("plural", ACCOUNT, "pl-5")].provider_ref


async def test_plural_wrong_client_credentials_are_refused(sim: Sim) -> None:
    with pytest.raises(ProviderRefused):
        await plural_client(sim, plural_account("wrong")).create(
            sim.http("plural"), order("pl-6"), now()
        )
    assert sim.desk.creates[("plural", ACCOUNT)] == 0


async def plural_token(sim: Sim) -> str:
    doc = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "grant_type": "client_credentials",
    }
    json_type = {"Content-Type": "application/json"}
    url = sim.base("plural") + "/api/auth/v1/token"
    status, answer = await post(sim, url, json_type, orjson.dumps(doc))
    assert status == 200
    token: str = answer["access_token"]
    return token


def amount(value: object, currency: str = "INR") -> dict[str, Any]:
    return {"order_amount": {"value": value, "currency": currency}}


def customer(**fields: str) -> dict[str, Any]:
    return {"purchase_details": {"customer": fields}}


GOOD_ORDER: dict[str, Any] = {"merchant_order_reference": "bad-1", **amount(1100)}


@pytest.mark.parametrize(
    ("header_changes", "body", "status"),
    [
        ({}, amount(99), 400),
        ({}, amount(100_000_001), 400),
        ({}, amount("1100"), 400),
        ({}, amount(1100, "USD"), 400),
        ({}, {"order_amount": None}, 400),
        ({}, {"merchant_order_reference": "has space"}, 400),
        ({}, {"merchant_order_reference": "r" * 51}, 400),
        ({}, {"merchant_order_reference": None}, 400),
        ({}, {"integration_mode": "POPUP"}, 400),
        ({}, customer(customer_id="1" * 20), 400),
        ({}, customer(mobile_number="12345678"), 400),
        ({"Request-Timestamp": "yesterday"}, {}, 400),
        ({"Content-Type": "text/plain"}, {}, 400),
        ({"Authorization": "Bearer not-issued"}, {}, 401),
        ({"Authorization": None}, {}, 401),
    ],
)
async def test_plural_refuses_what_plural_refuses(
    sim: Sim, header_changes: dict[str, str | None], body: dict[str, Any], status: int
) -> None:
    sent: dict[str, str | None] = {
        "Authorization": f"Bearer {await plural_token(sim)}",
        "Content-Type": "application/json",
        **header_changes,
    }
    url = sim.base("plural") + "/api/checkout/v1/orders"
    raw = orjson.dumps(without_nulls({**GOOD_ORDER, **body}))
    got, doc = await post(sim, url, without_nulls(sent), raw)
    code = "UNAUTHORIZED" if status == 401 else "INVALID_REQUEST"
    assert (got, doc["code"]) == (status, code)
    assert isinstance(doc["message"], str)
    assert sim.desk.orders == {}


async def test_plural_takes_the_official_sdks_create_call(sim: Sim) -> None:
    """pinelabs-python's ``checkout.generate_checkout_link``, with its defaults (no
    Request-ID, Request-Timestamp or Idempotency-Key), and its model reads the answer."""
    async with httpx.AsyncClient() as http:
        api = AsyncPinelabsApi(
            base_url=sim.base("plural"), token=await plural_token(sim), httpx_client=http
        )
        link = await api.checkout.generate_checkout_link(
            merchant_order_reference="sdk-1",
            order_amount=Amount(value=1100, currency="INR"),
            pre_auth=False,
            callback_url="https://shop.example/plural/return",
            purchase_details=CheckoutPurchaseDetails(
                customer=CheckoutCustomer(email_id="kevin.bob@example.com", first_name="Kevin")
            ),
        )
    known = sim.desk.orders[("plural", ACCOUNT, "sdk-1")]
    assert (link.order_id, link.redirect_url) == (known.provider_ref, known.redirect_url)
    assert link.token is not None
    assert link.redirect_url is not None
    assert link.redirect_url.endswith("token=" + link.token)
    assert (link.response_code, link.model_extra) == (200, {})
