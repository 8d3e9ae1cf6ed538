"""Every registered provider with its simulator keeps the provider contract
(tests/support/contract.py), and has what adding a provider takes: a simulator, fixtures
and a lifecycle scenario. The per-provider files hold only vectors and quirks."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from paysync.settings import Settings
from providers import REGISTRY
from simulator import SIMULATORS
from simulator.status import status_base_url
from tests.support.config import ACCOUNT, PROVIDER_SECRETS, write_config
from tests.support.contract import (
    CALLBACK_CHECKS,
    STATUS_CHECKS,
    Subject,
    check_ids,
    registered_parts,
    run_status_check,
)
from tests.support.lifecycles import SCENARIOS
from tests.support.status_api import StatusSim

FIXTURES = Path(__file__).parents[1] / "fixtures"
PROVIDERS = sorted(REGISTRY)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The test configuration's accounts (one per provider, named ``shop``)."""
    config = write_config(
        tmp_path_factory.mktemp("contract"), database_url="postgresql://unused", prefix="t."
    )
    return config.settings


def subject(settings: Settings, provider: str) -> Subject:
    account = settings.account(provider, ACCOUNT)
    assert account is not None, f"tests/support/config.py has no {provider} account"
    env_name = account.secrets[0].ref.removeprefix("env:")
    return Subject(
        provider=REGISTRY[provider],
        simulator=SIMULATORS[provider],
        account=account,
        account_name=ACCOUNT,
        spare_secret=PROVIDER_SECRETS.get(env_name, lambda: secrets.token_hex(16)),
    )


@pytest.mark.parametrize("check", CALLBACK_CHECKS, ids=check_ids(CALLBACK_CHECKS))
@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_provider_keeps_the_callback_contract(
    settings: Settings, provider: str, check: Callable[[Subject], None]
) -> None:
    check(subject(settings, provider))


@pytest.mark.parametrize("check", STATUS_CHECKS, ids=check_ids(STATUS_CHECKS))
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_every_provider_keeps_the_status_api_contract(
    settings: Settings,
    provider: str,
    check: Callable[[Subject, StatusSim], Awaitable[None]],
) -> None:
    await run_status_check(subject(settings, provider), check)


def test_every_registered_provider_has_a_simulator_fixtures_and_a_scenario() -> None:
    assert registered_parts(REGISTRY, SIMULATORS, has_fixtures, SCENARIOS) == []


def has_fixtures(provider: str) -> bool:
    folder = FIXTURES / provider
    return folder.is_dir() and any(folder.iterdir())


def test_a_provider_lacking_a_part_is_named() -> None:
    partial = {name: sim for name, sim in SIMULATORS.items() if name != "hdfc"}
    scenarios = {name: s for name, s in SCENARIOS.items() if name != "plural"}
    assert registered_parts(
        REGISTRY, partial, lambda name: name != "paycore" and has_fixtures(name), scenarios
    ) == [
        "hdfc: no simulator (simulator/__init__.py SIMULATORS)",
        "paycore: no fixtures (tests/fixtures/paycore/)",
        "plural: no lifecycle scenario (tests/support/lifecycles.py SCENARIOS)",
    ]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_each_simulated_lifecycle_is_its_scenario(settings: Settings, provider: str) -> None:
    s = subject(settings, provider)
    life = s.simulator.lifecycle(s.account, "scenario-1", now=0)
    assert life.statuses == list(SCENARIOS[provider])


def test_the_status_simulator_mounts_each_provider_under_its_name() -> None:
    assert status_base_url("http://127.0.0.1:8181", "hdfc", "shop-in") == (
        "http://127.0.0.1:8181/hdfc/shop-in"
    )
    assert status_base_url("http://sim/", "plural", "a") == "http://sim/plural/a"
