"""`Settings`: the fields, then the checks across them, loaded once at start-up."""

from __future__ import annotations

from typing import Any

from pydantic import model_validator

from paywire.settings.checks import check_all
from paywire.settings.errors import load_validated
from paywire.settings.fields import SettingsFields


class Settings(SettingsFields):
    """Everything paywire reads at start-up."""

    @model_validator(mode="after")
    def _check(self) -> Settings:
        check_all(self)
        return self

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Settings from the environment and `.env` (overridden by `overrides`), or ConfigError.

        The message names each offending setting and never quotes a value.
        """
        return load_validated(cls, overrides)
