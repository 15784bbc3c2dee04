"""What a provider kit is: everything paywire needs to offer one payment provider.

A kit turns the settings into the provider's parts (the client the services call, the webhook
verifier and the event parser its deliveries go through) and says how far a verified delivery
is trusted (`confirm_claims`) and which environment the settings point it at. The composition
root builds every kit `PAYWIRE_PROVIDERS` names and nothing else knows one provider from
another: adding a provider is adding a kit (`paywire.bootstrap.kits.register_kit`), with no
edit to the services, the API or `build`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import httpx

from paywire.ports import Clock, EventParser, PaymentProvider, WebhookVerifier
from paywire.settings import Settings


@dataclass(frozen=True, slots=True)
class KitContext:
    """What the composition root lends a kit while it builds: the settings, the clock, and the
    shared HTTP client for certificate and CA fetches (never a provider API's own client). The
    kit owns nothing here; the container closes them."""

    settings: Settings
    clock: Clock
    http: httpx.AsyncClient


@dataclass(frozen=True, slots=True)
class ProviderParts:
    """One provider as built: the client (unwrapped: the container wraps, counts and closes it),
    the verifier of its webhook deliveries and the parser of their bodies."""

    provider: PaymentProvider
    verifier: WebhookVerifier
    parser: EventParser


class ProviderKit(Protocol):
    """One payment provider, collected by `name` (the name in PAYWIRE_PROVIDERS, in the
    webhook path `/webhooks/{name}` and on every order created there)."""

    @property
    def name(self) -> str:
        """The provider's name (lower-case; `Settings` checks the spelling)."""
        ...

    @property
    def confirm_claims(self) -> bool:
        """Whether a verified delivery's claims are confirmed with the provider's API before
        they move money (PayPal signs only a CRC-32 of the body: `services.confirm`)."""
        ...

    def environment(self, settings: Settings) -> str:
        """The environment `settings` point the provider at (sandbox, live, emulator, ...),
        for the start-up log."""
        ...

    def build(self, context: KitContext) -> ProviderParts:
        """The provider's parts for `context.settings`; `ConfigError` naming the setting when
        they cannot work. No network call."""
        ...
