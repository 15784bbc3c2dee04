"""Amazon Payment Services' kit: the provider over its API client, and its feedback verified
by the response signature (which covers every parameter, so claims are applied as signed)."""

from __future__ import annotations

from dataclasses import dataclass

from paywire.bootstrap.adapters import aps_parts
from paywire.bootstrap.kits.base import KitContext, ProviderParts
from paywire.providers.aps.events import ApsEventParser
from paywire.settings import Settings


@dataclass(frozen=True, slots=True)
class ApsKit:
    """APS (sandbox, live or the emulator), as `PAYWIRE_APS_*` describe it."""

    name: str = "aps"
    confirm_claims: bool = False

    def environment(self, settings: Settings) -> str:
        """`PAYWIRE_APS_ENV` (a stage's environment on a stage)."""
        return settings.aps.env

    def build(self, context: KitContext) -> ProviderParts:
        """The APS provider and its feedback verifier, sharing one merchant's signer."""
        provider, verifier = aps_parts(context.settings, context.clock)
        return ProviderParts(provider, verifier, ApsEventParser())
