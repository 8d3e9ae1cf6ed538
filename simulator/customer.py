"""The simulated customer: pays an order a create API made, on the provider's hosted page.

``POST /customer/{provider}/{account}/{merchant_ref}/pay`` on the simulator's app (not a
provider API: the stand-in for a person paying) completes the order through its provider's
real lifecycle (:meth:`simulator.checkout.Desk.pay`), so the status API reports it paid
from then on, and sends the provider's callbacks to the ``notify_url`` the create named
(paysync's ``/webhooks/{provider}/{account}`` when ``[api] public_url`` is set) or, for a
provider whose webhook URL is set in its dashboard instead (HDFC, Plural), to
``?webhook_url=`` (the dashboard's setting), unless ``?callbacks=drop``: then only the
status API knows, and the reconciler must find it.
Answers ``{"statuses": [...], "callbacks_sent": n, "callbacks_answered": [codes]}``.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web

from simulator.checkout import Desk

DESK_KEY = web.AppKey("customer_desk", Desk)


def add_customer_routes(app: web.Application, desk: Desk) -> None:
    app[DESK_KEY] = desk
    app.router.add_post("/customer/{provider}/{account}/{merchant_ref}/pay", _pay)


async def _pay(request: web.Request) -> web.Response:
    desk = request.app[DESK_KEY]
    provider, account, ref = (
        request.match_info[k] for k in ("provider", "account", "merchant_ref")
    )
    order = desk.find_created(provider, account, ref)
    if order is None:
        raise web.HTTPNotFound(text=f"no order {ref} was created at {provider}/{account}\n")
    life = desk.pay(provider, account, ref)
    answered: list[int] = []
    target = order.notify_url or request.query.get("webhook_url")
    if request.query.get("callbacks", "send") != "drop" and target:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for callback in life.callbacks:
                if callback.route != "webhooks":
                    continue
                async with session.post(
                    target, data=callback.body, headers=callback.headers
                ) as resp:
                    answered.append(resp.status)
    return web.json_response(
        {
            "statuses": life.statuses,
            "callbacks_sent": len(answered),
            "callbacks_answered": answered,
        }
    )
