"""Every provider's callback through ingest against real RabbitMQ: the provider's own ack
for a signed callback, and the documented 4xx for everything else, publishing nothing."""

from __future__ import annotations

import time

import pytest

from paysync.metrics import Metrics
from paysync.settings import ProviderAccount, Secret
from providers import REGISTRY
from simulator import SIMULATORS
from simulator.base import ProviderSimulator
from tests.support.amqp import depth, take
from tests.support.config import ACCOUNT, RunConfig
from tests.support.ingest import post, serving
from tests.support.metrics import sample
from tests.support.services import BrokerNames

pytestmark = pytest.mark.integration

PROVIDERS = sorted(SIMULATORS)
# HDFC webhooks carry Basic credentials, not a signature over the body.
FORGED = {"hdfc": "bad_credentials"}


def _forged_account(account: ProviderAccount) -> ProviderAccount:
    # base64 of "not-the-secret": a valid secret in every provider's format.
    forged = Secret("env:FORGED", "bm90LXRoZS1zZWNyZXQ=")
    return account.model_copy(update={"secrets": [forged]})


def _cases(
    sim: ProviderSimulator, account: ProviderAccount, merchant_ref: str, max_body: int
) -> dict[str, tuple[bytes, dict[str, str]]]:
    """Requests that must be refused, by case name: (body, headers)."""
    now = int(time.time())
    body = sim.callback_body(merchant_ref, now=now)
    signed = sim.sign_callback(account, body, now=now)
    cases = {
        "forged": (body, sim.sign_callback(_forged_account(account), body, now=now)),
        "wrong_content_type": (body, signed | {"Content-Type": "text/plain"}),
        "oversized": (
            oversized := body + b" " * max_body,
            sim.sign_callback(account, oversized, now=now),
        ),
        "non_utf8": (
            bad := body.replace(b'"', b'"\xff', 1),
            sim.sign_callback(account, bad, now=now),
        ),
        "truncated_json": (
            cut := body[: len(body) // 2],
            sim.sign_callback(account, cut, now=now),
        ),
    }
    if "Authorization" not in sim.required_headers:
        tampered = body.replace(merchant_ref.encode(), merchant_ref.upper().encode())
        cases["tampered_body"] = (tampered, signed)
    for header in sim.required_headers:
        cases[f"missing_{header}"] = (body, {k: v for k, v in signed.items() if k != header})
    if sim.signs_timestamp:
        cases["stale_timestamp"] = (body, sim.sign_callback(account, body, now=now - 3600))
        cases["future_timestamp"] = (body, sim.sign_callback(account, body, now=now + 3600))
    return cases


def _expected(provider: str, sim: ProviderSimulator) -> dict[str, tuple[int, str]]:
    expected = {
        "forged": (401, FORGED.get(provider, "bad_signature")),
        "wrong_content_type": (415, "unsupported_media_type"),
        "oversized": (413, "body_too_large"),
        "non_utf8": (400, "invalid_utf8"),
        "truncated_json": (400, "malformed_json"),
    }
    if "Authorization" not in sim.required_headers:
        expected["tampered_body"] = (401, "bad_signature")
    for header in sim.required_headers:
        expected[f"missing_{header}"] = (401, "missing_header")
    if sim.signs_timestamp:
        expected["stale_timestamp"] = (401, "stale_timestamp")
        expected["future_timestamp"] = (401, "stale_timestamp")
    return expected


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_signed_callback_gets_the_providers_own_ack_and_is_published_as_sent(
    config: RunConfig, names: BrokerNames, provider: str
) -> None:
    sim, settings = SIMULATORS[provider], config.settings
    account = settings.account(provider, ACCOUNT)
    assert account is not None
    now = int(time.time())
    body = sim.callback_body("order-1", now=now)
    async with serving(settings) as (url, broker):
        await broker.wait_connected(10)
        status, answer, _ = await post(
            f"{url}/webhooks/{provider}/{ACCOUNT}", body, sim.sign_callback(account, body, now=now)
        )
    ack = REGISTRY[provider].callback_ack
    assert (status, answer) == (ack.status, ack.body)
    [message] = await take(names.topology.inbound_queue, 1)
    assert message.body == body
    assert message.headers["x-paysync-provider"] == provider


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_every_bad_request_gets_its_documented_4xx_and_publishes_nothing(
    config: RunConfig, names: BrokerNames, provider: str
) -> None:
    sim, settings, metrics = SIMULATORS[provider], config.settings, Metrics()
    account = settings.account(provider, ACCOUNT)
    assert account is not None
    cases = _cases(sim, account, "order-2", settings.ingest.max_body_bytes)
    answers: dict[str, tuple[int, str]] = {}
    async with serving(settings, metrics=metrics) as (url, broker):
        await broker.wait_connected(10)
        for name, (body, headers) in cases.items():
            status, answer, _ = await post(f"{url}/webhooks/{provider}/{ACCOUNT}", body, headers)
            answers[name] = (status, answer.decode())
        body = sim.callback_body("order-2", now=int(time.time()))
        headers = sim.sign_callback(account, body, now=int(time.time()))
        status, answer, _ = await post(f"{url}/webhooks/{provider}/elsewhere", body, headers)
        answers["unknown_account"] = (status, answer.decode())

    expected = _expected(provider, sim) | {"unknown_account": (404, "unknown_account")}
    assert answers == {k: (s, f'{{"error": "{r}"}}') for k, (s, r) in expected.items()}
    assert await depth(names.topology.inbound_queue) == 0
    forged = FORGED.get(provider, "bad_signature")
    rendered = metrics.render().decode()
    labels = {"provider": provider, "account": ACCOUNT, "outcome": "rejected", "reason": forged}
    counted = sample(rendered, "paysync_callbacks_total", **labels)
    assert counted == sum(reason == forged for _, reason in expected.values())


async def test_a_retried_plural_delivery_gets_the_ack_and_is_not_published_twice(
    config: RunConfig, names: BrokerNames
) -> None:
    # Plural retries a delivery at most three times within seconds and asks for 2xx on a
    # duplicate (providers/plural.md): a copy of a confirmed delivery gets the normal ack.
    sim, settings, metrics = SIMULATORS["plural"], config.settings, Metrics()
    account = settings.account("plural", ACCOUNT)
    assert account is not None
    now = int(time.time())
    body = sim.callback_body("order-3", now=now)
    headers = sim.sign_callback(account, body, now=now)
    async with serving(settings, metrics=metrics) as (url, broker):
        await broker.wait_connected(10)
        answers = [await post(f"{url}/webhooks/plural/{ACCOUNT}", body, headers) for _ in range(3)]
        forged = headers | {"webhook-signature": "v1,AAAA"}
        refused = await post(f"{url}/webhooks/plural/{ACCOUNT}", body, forged)
    ack = REGISTRY["plural"].callback_ack
    assert [(status, answer) for status, answer, _ in answers] == [(ack.status, ack.body)] * 3
    # A copy is judged by its signature first: a forged one is still refused.
    assert (refused[0], refused[1]) == (401, b'{"error": "bad_signature"}')
    [_message] = await take(names.topology.inbound_queue, 1)
    assert await depth(names.topology.inbound_queue) == 0
    rendered = metrics.render().decode()
    labels = {"provider": "plural", "account": ACCOUNT}
    assert sample(rendered, "paysync_callbacks_total", **labels, outcome="accepted", reason="") == 1
    duplicate = {"outcome": "duplicate", "reason": "replayed_delivery"}
    assert sample(rendered, "paysync_callbacks_total", **labels, **duplicate) == 2
