"""A stage: a deployment whose secrets live in AWS Secrets Manager, and where to find them.

`StageSource` is read before any secret (`paywire.aws.secrets.stage_settings()` then reads the
secrets it names and builds `Settings` with them); the naming helpers here are the one place
that says how a stage's secret ids and SSM path are spelt, for the loader and the deploy guide.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from paywire.settings.errors import load_validated
from paywire.settings.urls import PayPalEnv

# A stage name goes into secret names and SSM paths: letters, digits, `-` and `_`.
_STAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def stage_name(value: str | None) -> str | None:
    """A valid stage name, None when blank, ValueError otherwise."""
    if value is None or not value.strip():
        return None
    if not _STAGE_NAME.fullmatch(value):
        raise ValueError("PAYWIRE_STAGE must be 1-64 letters, digits, '-' or '_' (it names the "
                         "stage's secrets and SSM parameters), starting with a letter or digit")
    return value


def paypal_secret_name(stage: str, override: str | None = None) -> str:
    """The Secrets Manager id of a stage's PayPal secret (`paywire/<stage>/paypal`)."""
    return override or f"paywire/{stage}/paypal"


def app_secret_name(stage: str, override: str | None = None) -> str:
    """The Secrets Manager id of a stage's app secret (`paywire/<stage>/app`)."""
    return override or f"paywire/{stage}/app"


def ssm_path(stage: str) -> str:
    """The SSM Parameter Store path of a stage's plain settings (`/paywire/<stage>`): each is a
    parameter `/paywire/<stage>/<setting>`, the setting's name without `PAYWIRE_`, lower case."""
    return f"/paywire/{stage}"



class StageSource(BaseSettings):
    """What says where a stage's settings come from, read from the environment (and `.env`)
    before any secret: the stage, the secret ids, the cache's TTL and grace period, and the
    environments `PAYWIRE_PAYPAL_ENV` and `PAYWIRE_APS_ENV` claim (if set) to check against the
    stage's secret."""

    model_config = SettingsConfigDict(env_prefix="PAYWIRE_", env_file=".env",
                                      env_file_encoding="utf-8", extra="ignore",
                                      hide_input_in_errors=True)

    stage: str | None = None
    paypal_env: PayPalEnv | None = None
    aps_env: PayPalEnv | None = None
    paypal_secret_id: str | None = None
    app_secret_id: str | None = None
    # Secrets are re-read after this long; a failed re-read keeps serving the cached values
    # for the grace period (a WARNING each time), then start-up fails.
    secrets_ttl_seconds: float = Field(default=300.0, ge=0, le=86400)
    secrets_stale_grace_seconds: float = Field(default=900.0, ge=0, le=7 * 86400)

    @field_validator("stage", mode="before")
    @classmethod
    def _stage(cls, value: Any) -> Any:
        return stage_name(value) if isinstance(value, str) else value

    @field_validator("paypal_env", "aps_env", "paypal_secret_id", "app_secret_id",
                     mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def paypal_secret(self) -> str:
        """The stage's PayPal secret id (ValueError when no stage is set)."""
        return paypal_secret_name(self._require_stage(), self.paypal_secret_id)

    @property
    def app_secret(self) -> str:
        """The stage's app secret id (ValueError when no stage is set)."""
        return app_secret_name(self._require_stage(), self.app_secret_id)

    @property
    def parameters_path(self) -> str:
        """The stage's SSM parameter path (ValueError when no stage is set)."""
        return ssm_path(self._require_stage())

    def _require_stage(self) -> str:
        if self.stage is None:
            raise ValueError("PAYWIRE_STAGE is not set")
        return self.stage

    @classmethod
    def load(cls, **overrides: Any) -> StageSource:
        """The stage source from the environment, or ConfigError naming the setting."""
        return load_validated(cls, overrides)

