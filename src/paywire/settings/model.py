"""`Settings`: the fields, then the checks across them, loaded once at start-up.

What the settings are loaded for (`Purpose`) is the class's, not a field: `Settings` is a
shop's, and `Settings.load(purpose=...)` builds the relaxed ones as subclasses that say so
(`settings.purpose`), made when first asked for (a process that never loads one pays nothing
for it).
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

from pydantic import model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from paywire.settings.checks import check_all
from paywire.settings.errors import load_validated
from paywire.settings.fields import SettingsFields
from paywire.settings.purpose import Purpose


class Settings(SettingsFields):
    """Everything paywire reads at start-up."""

    # What these settings were loaded for (a shop's unless `load` was told otherwise).
    purpose: ClassVar[Purpose] = Purpose.SHOP

    @model_validator(mode="after")
    def _check(self) -> Settings:
        check_all(self, self.purpose)
        return self

    @classmethod
    def load(cls, *, purpose: Purpose = Purpose.SHOP, **overrides: Any) -> Settings:
        """Settings from the environment and `.env` (overridden by `overrides`, each named as
        its setting: `paypal_client_id=...`), checked for `purpose`, or ConfigError.

        The message names each offending setting and never quotes a value.
        """
        return load_validated(_for(purpose), overrides)

    @classmethod
    def from_values(cls, *, purpose: Purpose = Purpose.SHOP, **values: Any) -> Settings:
        """Settings from `values` alone (each named as its setting: `paypal_client_id=...`),
        never the environment or `.env`, checked for `purpose`, or ConfigError: for a host
        framework whose own configuration is the one truth (Django's `settings.PAYWIRE`,
        `paywire.contrib.django`)."""
        return load_validated(_values_only(_for(purpose)), values)


@functools.cache
def _for(purpose: Purpose) -> type[Settings]:
    """`Settings` checked for `purpose`: a subclass that says so, made once."""
    if purpose is Purpose.SHOP:
        return Settings

    chosen = purpose

    class ForPurpose(Settings):
        __doc__ = f"Settings loaded for {chosen.value} (`paywire.settings.purpose`)."
        purpose: ClassVar[Purpose] = chosen

    ForPurpose.__name__ = ForPurpose.__qualname__ = (
        f"{''.join(part.title() for part in purpose.value.split('_'))}Settings")
    return ForPurpose


@functools.cache
def _values_only(base: type[Settings]) -> type[Settings]:
    """`base` reading only the values it is given (no environment variable, no `.env`)."""

    class FromValues(base):  # type: ignore[valid-type,misc]
        __doc__ = f"{base.__name__} from given values only (`Settings.from_values`)."

        @classmethod
        def settings_customise_sources(
                cls, settings_cls: type[BaseSettings],
                init_settings: PydanticBaseSettingsSource,
                env_settings: PydanticBaseSettingsSource,
                dotenv_settings: PydanticBaseSettingsSource,
                file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings,)

    FromValues.__name__ = FromValues.__qualname__ = base.__name__
    result: type[Settings] = FromValues
    return result
