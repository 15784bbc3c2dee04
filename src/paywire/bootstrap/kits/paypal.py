"""PayPal's kit: the REST client, local or postback webhook verification under the configured
trust (`paywire.bootstrap.webhooks`), and claims confirmed with PayPal's API before they are
applied (its signature covers only a CRC-32 of the body)."""

from __future__ import annotations

from dataclasses import dataclass

from paywire.bootstrap.adapters import paypal_client
from paywire.bootstrap.kits.base import KitContext, ProviderParts
from paywire.bootstrap.webhooks import webhook_verifier
from paywire.providers.paypal.events import PayPalEventParser
from paywire.settings import Settings


@dataclass(frozen=True, slots=True)
class PayPalKit:
    """PayPal (sandbox, live or the emulator), as `PAYWIRE_PAYPAL_*` describe it."""

    name: str = "paypal"
    confirm_claims: bool = True

    def environment(self, settings: Settings) -> str:
        """`PAYWIRE_PAYPAL_ENV`."""
        return settings.paypal.env

    def build(self, context: KitContext) -> ProviderParts:
        """The PayPal client, and a verifier that may post back through it."""
        client = paypal_client(context.settings)
        verifier = webhook_verifier(context.settings, client, context.clock, context.http)
        return ProviderParts(client, verifier, PayPalEventParser())
