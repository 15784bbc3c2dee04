"""The toy provider's kit: its own settings model (`PAYWIRE_TOY_*`, read beside paywire's),
and its parts built from them."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from paywire.bootstrap.kits import KitContext, ProviderParts
from paywire.domain.errors import ConfigError
from paywire.settings import Settings
from toyprovider.provider import NAME, ToyProvider
from toyprovider.webhooks import ToyParser, ToyVerifier


class ToySettings(BaseSettings):
    """`PAYWIRE_TOY_SECRET` (the webhook secret), `PAYWIRE_TOY_PAGE_URL`, `PAYWIRE_TOY_ENV`."""

    model_config = SettingsConfigDict(env_prefix="PAYWIRE_TOY_", extra="ignore")

    secret: SecretStr | None = None
    page_url: str = "https://toy.example"
    env: str = "toyland"


@dataclass(frozen=True)
class ToyKit:
    """`ProviderKit` for the toy provider; `settings` given, or read from the environment."""

    settings: ToySettings | None = None
    name: str = NAME
    confirm_claims: bool = False
    built: list[ToyProvider] = field(default_factory=list, compare=False)

    def _settings(self) -> ToySettings:
        return self.settings or ToySettings()

    def environment(self, settings: Settings) -> str:
        """`PAYWIRE_TOY_ENV`."""
        return self._settings().env

    def build(self, context: KitContext) -> ProviderParts:
        """The toy provider and its HMAC verifier (ConfigError without a secret)."""
        own = self._settings()
        if own.secret is None:
            raise ConfigError("PAYWIRE_PROVIDERS includes toy, so PAYWIRE_TOY_SECRET must be set")
        provider = ToyProvider(own.page_url)
        self.built.append(provider)
        return ProviderParts(provider, ToyVerifier(own.secret.get_secret_value(),
                                                   context.clock.now), ToyParser())
