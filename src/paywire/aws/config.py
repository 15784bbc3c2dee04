"""The settings only the Lambda functions read (the SAM template sets them; no secret here).

`PAYWIRE_SQS_QUEUE_URL` names the outbox queue the drainer and the stream handler send to, and
`PAYWIRE_SQS_MAX_RECEIVES` the queue's redrive `maxReceiveCount`, so the consumer knows which
receive is the last one it gets before the dead-letter queue.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from paywire.domain.errors import ConfigError
from paywire.settings import load_validated


class AwsConfig(BaseSettings):
    """`PAYWIRE_*` settings of the Lambda entry points."""

    model_config = SettingsConfigDict(env_prefix="PAYWIRE_", extra="ignore",
                                      hide_input_in_errors=True)

    sqs_queue_url: str | None = None
    # Must equal the queue's redrive policy maxReceiveCount (the template sets both).
    sqs_max_receives: int = Field(default=5, ge=1, le=1000)
    # Messages of one batch the consumer delivers side by side (one FIFO group at a time).
    sqs_consumer_concurrency: int = Field(default=10, ge=1, le=100)
    # The drainer starts no new round with less than this left before its timeout.
    drain_reserve_seconds: float = Field(default=5.0, ge=0, le=900)
    # The HTTP API's path prefix that is not the app's (a named, non-default API stage).
    api_base_path: str = "/"

    @field_validator("sqs_queue_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("sqs_queue_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("PAYWIRE_SQS_QUEUE_URL must be the queue's http(s):// URL")
        return value

    @classmethod
    def load(cls, **overrides: Any) -> AwsConfig:
        """The configuration from the environment (and `overrides`), or ConfigError naming the
        offending settings (never their values)."""
        return load_validated(cls, overrides, "invalid Lambda settings")

    def queue_url(self) -> str:
        """The outbox queue's URL; ConfigError if it is not set."""
        if self.sqs_queue_url is None:
            raise ConfigError("PAYWIRE_SQS_QUEUE_URL must be set (the outbox queue's URL)")
        return self.sqs_queue_url
