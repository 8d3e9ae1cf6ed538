"""Acme's side: signed callbacks (an order opened, then paid) and its status API, served from
the same lifecycle."""

from __future__ import annotations

import secrets
from decimal import Decimal

import orjson
from aiohttp import web

from paysync.settings import ProviderAccount
from simulator.base import Lifecycle, Request
from simulator.status import book_of
from tests.fake_provider.scheme import HEADER_SIGNATURE, HEADER_TIMESTAMP, NAME, AcmeAccount, sign

AMOUNT = Decimal("10.00")


def order(merchant_ref: str, order_id: str, status: str) -> bytes:
    doc = {"id": order_id, "order": merchant_ref, "status": status, "amount": str(AMOUNT)}
    return orjson.dumps(doc | {"currency": "EUR"})


class AcmeSimulator:
    name = NAME
    signs_timestamp = True
    required_headers = (HEADER_SIGNATURE, HEADER_TIMESTAMP)
    returns = None

    def callback_body(self, merchant_ref: str, *, now: int) -> bytes:
        return order(merchant_ref, f"acme_{secrets.token_hex(6)}", "PAID")

    def sign_callback(self, account: ProviderAccount, body: bytes, *, now: int) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            HEADER_TIMESTAMP: str(now),
            HEADER_SIGNATURE: sign(account.secrets[0].reveal(), str(now), body),
        }

    def lifecycle(self, account: ProviderAccount, merchant_ref: str, *, now: int) -> Lifecycle:
        order_id = f"acme_{secrets.token_hex(6)}"
        bodies = [order(merchant_ref, order_id, s) for s in ("OPEN", "PAID")]
        return Lifecycle(
            merchant_ref=merchant_ref,
            provider_ref=order_id,
            amount=AMOUNT,
            currency="EUR",
            callbacks=[
                Request(headers=self.sign_callback(account, b, now=now), body=b) for b in bodies
            ],
            statuses=["pending", "paid"],
        )

    def add_status_routes(self, app: web.Application) -> None:
        app.router.add_get("/{account}/orders/{ref}", _order)


async def _order(request: web.Request) -> web.Response:
    book, name = book_of(request), request.match_info["account"]
    account = book.account(NAME, name)
    key = account.api_key if isinstance(account, AcmeAccount) else None
    if key is None or request.headers.get("Authorization") != f"Bearer {key.reveal()}":
        raise web.HTTPUnauthorized
    life = book.find(NAME, name, merchant_ref=request.match_info["ref"])
    if life is None:
        raise web.HTTPNotFound
    return web.Response(body=life.callbacks[-1].body, content_type="application/json")


SIMULATOR = AcmeSimulator()
