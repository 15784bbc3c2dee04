"""What every provider's settings share: a section of `Settings` named after the provider.

A provider's settings are the variables `PAYWIRE_<PROVIDER>_*`, read into `Settings.<provider>`
(`PAYWIRE_PAYPAL_CLIENT_ID` into `settings.paypal.client_id`): pydantic-settings splits a
variable once, after the provider's name, so the names stay those of a flat model. Each section
holds its fields, what each says on its own, what they resolve to and the checks that concern
that provider alone; `Settings` asks the sections of the providers a shop offers whether it
takes real money (`is_live`) or none (`is_emulated`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from paywire.settings.urls import PayPalEnv


def csv_items(value: Any) -> Any:
    """Accept "a,b" (an env var) as well as a list; blanks dropped."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def blank_is_unset(value: Any) -> Any:
    """A blank string (spaces too) as unset, so `PAYWIRE_X=` means the default."""
    return None if isinstance(value, str) and not value.strip() else value


class ProviderSettings(BaseModel):
    """One provider's section of `Settings`: at least the environment it points at.

    Unknown keys are ignored, as `Settings` ignores unknown variables: `PAYWIRE_PAYPAL_SECRET_ID`
    (a stage's secret id, a top-level setting) reaches the PayPal section too and is dropped
    there.
    """

    model_config = ConfigDict(extra="ignore", validate_default=True, hide_input_in_errors=True)

    env: PayPalEnv = "emulator"

    @property
    def is_live(self) -> bool:
        """Whether this provider takes real money."""
        return self.env == "live"

    @property
    def is_emulated(self) -> bool:
        """Whether this provider is the emulator (`paywire emulator`)."""
        return self.env == "emulator"
