"""A provider as ingest, the worker and the reconciler see it, and the registry of them.

Each provider's adapter is typed on its own account model (``ProviderAdapter[A]``). The
roles hold accounts as the settings loaded them (``ProviderAccount``, each built with its
provider's model by ``account_models``); :class:`Provider` hands an adapter only accounts
of its model, checked here once instead of in every adapter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from paysync.errors import AuthenticationError, MalformedMessage
from paysync.settings import ProviderAccount
from providers.base import (
    A,
    Ack,
    CheckoutClient,
    ProviderAdapter,
    ReturnHint,
    StatusClient,
    Verified,
    VerifiedReturn,
)
from schemas.envelope import Envelope
from schemas.mapping import StatusMapping
from schemas.observation import Observation


class Provider:
    """One registered provider: its adapter behind methods that take any configured
    account and pass it on as the adapter's own model."""

    __slots__ = ("_adapter",)

    def __init__(self, adapter: ProviderAdapter[A]) -> None:
        self._adapter: ProviderAdapter[Any] = adapter

    def __repr__(self) -> str:
        return f"Provider({self.name!r})"

    @property
    def name(self) -> str:
        return self._adapter.name

    @property
    def account_model(self) -> type[ProviderAccount]:
        model: type[ProviderAccount] = self._adapter.account_model
        return model

    @property
    def mapping(self) -> StatusMapping:
        return self._adapter.mapping

    @property
    def callback_ack(self) -> Ack:
        return self._adapter.callback_ack

    @property
    def callback_media_types(self) -> frozenset[str]:
        return self._adapter.callback_media_types

    @property
    def has_returns(self) -> bool:
        """Whether the provider signs the customer's redirect (a return route exists)."""
        return self._adapter.returns is not None

    @property
    def status_base_url(self) -> str | None:
        """The status API's production URL; None when the provider has no status API."""
        api = self._adapter.status_api
        return None if api is None else api.default_base_url

    def verify_callback(
        self, account: ProviderAccount, headers: Mapping[str, str], body: bytes, now: datetime
    ) -> Verified:
        return self._adapter.verify_callback(self._own(account), headers, body, now)

    def parse_callback(self, envelope: Envelope) -> list[Observation]:
        return self._adapter.parse_callback(envelope)

    def verify_return(
        self, account: ProviderAccount, params: Mapping[str, str], now: datetime
    ) -> VerifiedReturn:
        scheme = self._adapter.returns
        if scheme is None:
            raise AuthenticationError("no_return_url")
        return scheme.verify_return(self._own(account), params, now)

    def parse_return(self, envelope: Envelope) -> ReturnHint:
        scheme = self._adapter.returns
        if scheme is None:
            raise MalformedMessage(f"{self.name} has no return-URL scheme")
        return scheme.parse_return(envelope)

    def status_client(
        self, account_name: str, account: ProviderAccount, base_url: str
    ) -> StatusClient | None:
        """A status-API client for one account; None when the provider has none."""
        api = self._adapter.status_api
        if api is None:
            return None
        return api.client(account_name, self._own(account), base_url)

    @property
    def has_checkout(self) -> bool:
        """Whether paysync can create the provider's hosted page (``POST /v1/checkouts``)."""
        return self._adapter.checkout_api is not None

    def checkout_client(
        self, account_name: str, account: ProviderAccount, base_url: str | None
    ) -> CheckoutClient | None:
        """A create-checkout client for one account (``base_url``: the account's
        ``status_api.base_url``, else the provider's default); None when it has none."""
        api = self._adapter.checkout_api
        if api is None:
            return None
        return api.client(account_name, self._own(account), base_url or api.default_base_url)

    def _own(self, account: ProviderAccount) -> Any:
        # Settings build each provider's accounts with its model (account_models below),
        # so another type here is a wiring bug, never a request's fault.
        if not isinstance(account, self._adapter.account_model):
            raise TypeError(
                f"{self.name} was handed a {type(account).__name__} account,"
                f" not a {self._adapter.account_model.__name__}"
            )
        return account


def registry(adapters: Iterable[ProviderAdapter[Any]]) -> dict[str, Provider]:
    """The registry of these adapters, by name; a name used twice is a wiring bug."""
    providers: dict[str, Provider] = {}
    for adapter in adapters:
        if adapter.name in providers:
            raise ValueError(f"provider {adapter.name!r} registered twice")
        providers[adapter.name] = Provider(adapter)
    return providers


def account_models(providers: Mapping[str, Provider]) -> dict[str, type[ProviderAccount]]:
    """Each provider's account model, for ``paysync.settings.load_settings``."""
    return {name: provider.account_model for name, provider in providers.items()}


def mappings(providers: Mapping[str, Provider]) -> dict[str, StatusMapping]:
    """Each provider's status mapping (the store's fold policy reads them)."""
    return {name: provider.mapping for name, provider in providers.items()}
