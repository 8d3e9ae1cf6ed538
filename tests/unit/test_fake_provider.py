"""Adding a provider, shown with a throwaway one (tests/fake_provider/: its folder, its
simulator, its fixtures): one registry line and a config example, and it keeps the same
provider contract the four real ones keep, lacks none of the parts, and is configured,
parsed, applied and offered by the CLI with no change to paysync."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from paysync.cli.parser import build_parser
from paysync.errors import ConfigError
from paysync.metrics import Metrics
from paysync.settings import ProviderAccount, WorkerSettings, load_settings
from providers import ADAPTERS
from providers.registry import account_models, registry
from simulator import SIMULATORS
from tests.fake_provider.adapter import ADAPTER as ACME
from tests.fake_provider.simulator import SIMULATOR as ACME_SIMULATOR
from tests.support.contract import (
    CALLBACK_CHECKS,
    STATUS_CHECKS,
    Subject,
    check_ids,
    registered_parts,
    run_status_check,
)
from tests.support.envelopes import callback_envelope
from tests.support.fakes import FakeBroker, FakeMessage, FakeStore
from tests.support.lifecycles import SCENARIOS
from tests.support.status_api import StatusSim
from worker.handler import MessageHandler

# The one registry line a fifth provider adds (providers/__init__.py ADAPTERS).
WITH_ACME = registry([*ADAPTERS, ACME])
SIMULATORS_WITH_ACME = {**SIMULATORS, "acme": ACME_SIMULATOR}
SCENARIOS_WITH_ACME = {**SCENARIOS, "acme": ["pending", "paid"]}
FIXTURES = {"acme": Path(__file__).parents[1] / "fake_provider" / "fixtures"}
# Its config example, as README's account examples are written.
CONFIG = """
[accounts.acme.shop]
secrets = ["env:ACME_SECRET"]
api_key = "env:ACME_API_KEY"   # the status API's bearer key
"""
ENV = {"ACME_SECRET": "acme-webhook-secret-1", "ACME_API_KEY": "acme-api-key-1"}


def acme_account(tmp_path: Path, config: str = CONFIG) -> ProviderAccount:
    path = tmp_path / "paysync.toml"
    path.write_text(config, encoding="utf-8")
    account = load_settings(account_models(WITH_ACME), path=path, env=ENV).account("acme", "shop")
    assert account is not None
    return account


def subject(tmp_path: Path) -> Subject:
    return Subject(
        provider=WITH_ACME["acme"],
        simulator=ACME_SIMULATOR,
        account=acme_account(tmp_path),
        account_name="shop",
        spare_secret=lambda: f"acme-secret-{time.monotonic_ns()}",
    )


@pytest.mark.parametrize("check", CALLBACK_CHECKS, ids=check_ids(CALLBACK_CHECKS))
def test_acme_keeps_the_callback_contract(tmp_path: Path, check: Callable[[Subject], None]) -> None:
    check(subject(tmp_path))


@pytest.mark.parametrize("check", STATUS_CHECKS, ids=check_ids(STATUS_CHECKS))
async def test_acme_keeps_the_status_api_contract(
    tmp_path: Path, check: Callable[[Subject, StatusSim], Awaitable[None]]
) -> None:
    await run_status_check(subject(tmp_path), check)


def has_fixtures(provider: str) -> bool:
    folder = FIXTURES.get(provider, Path(__file__).parents[1] / "fixtures" / provider)
    return folder.is_dir() and any(folder.iterdir())


def test_with_acme_registered_no_part_is_missing() -> None:
    assert (
        registered_parts(WITH_ACME, SIMULATORS_WITH_ACME, has_fixtures, SCENARIOS_WITH_ACME) == []
    )
    # Forgetting one is named, not silently skipped.
    assert registered_parts(WITH_ACME, SIMULATORS, has_fixtures, SCENARIOS) == [
        "acme: no simulator (simulator/__init__.py SIMULATORS)",
        "acme: no lifecycle scenario (tests/support/lifecycles.py SCENARIOS)",
    ]


def test_its_configuration_is_checked_like_any_other(tmp_path: Path) -> None:
    lacking = CONFIG.replace('api_key = "env:ACME_API_KEY"', "")
    with pytest.raises(ConfigError) as info:
        acme_account(tmp_path, lacking)
    assert info.value.problems == ["accounts.acme.shop.api_key: required by the status API"]


async def test_the_worker_applies_its_callbacks_unchanged(tmp_path: Path) -> None:
    account = acme_account(tmp_path)
    life = ACME_SIMULATOR.lifecycle(account, "order-1", now=int(time.time()))
    store, broker = FakeStore(), FakeBroker()
    stop = asyncio.Event()
    handler = MessageHandler(store, WITH_ACME, broker, WorkerSettings(), Metrics(), stop)
    for request in life.callbacks:
        message = FakeMessage.of(callback_envelope("acme", "shop", request.body))
        await handler.handle(message)
        assert message.settled == ["ack"]
    assert [obs.status for _, [obs] in store.applied] == ["pending", "paid"]
    assert broker.published == []


def test_the_cli_offers_it_to_reconcile() -> None:
    args = build_parser(WITH_ACME).parse_args(["reconcile", "--provider", "acme"])
    assert args.provider == "acme"
