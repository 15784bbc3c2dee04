"""Reading AWS Secrets Manager for a stage: clients, errors that explain themselves, freshness.

What both of the stage's loaders share (`paywire.aws.secrets.StageSecrets`, the settings;
`paywire.aws.api_keys.StageApiKeys`, the authorizer's keys): a boto3 client with short timeouts
whose DEBUG lines never print a payload, one secret read as a JSON object with a ConfigError
that names the secret id, AWS's error code and the fix (never a value), and the TTL and grace
period cached values live by.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pydantic import SecretStr

from paywire.domain.errors import ConfigError
from paywire.settings import StageSource

log = logging.getLogger("paywire.aws.secrets")

STALE_RETRY_SECONDS = 30.0
_HINTS = {
    "ResourceNotFoundException": "create it (README, deploy section) or set {var}",
    "AccessDeniedException": "grant this role secretsmanager:GetSecretValue on it",
    "DecryptionFailure": "grant this role kms:Decrypt on the secret's KMS key",
}


@dataclass
class Freshness:
    """When cached values were read and when they are read again: after the TTL, and after a
    failed re-read every `STALE_RETRY_SECONDS` (at most) until the grace period ends."""

    read_at: float  # when the values were last read successfully
    ttl: float
    grace: float
    refresh_at: float  # when the next read is due

    @classmethod
    def read_now(cls, source: StageSource, now: float) -> Freshness:
        """Values read successfully at `now`, under `source`'s TTL and grace period."""
        ttl = source.secrets_ttl_seconds
        return cls(now, ttl, source.secrets_stale_grace_seconds, now + ttl)

    def keep_stale(self, now: float, error: ConfigError, what: str) -> bool:
        """After a failed re-read: False once the grace period is over (the caller raises),
        else True, the next try scheduled and a WARNING naming `what` and the error."""
        deadline = self.read_at + self.ttl + self.grace
        if now >= deadline:
            return False
        # Retried now and then (not at every call of an outage), and at the deadline.
        self.refresh_at = min(now + min(self.ttl, STALE_RETRY_SECONDS), deadline)
        log.warning("%s not refreshed: %s; serving those read %.0f s ago (for up to %.0f s "
                    "more)", what, error.message, now - self.read_at, deadline - now)
        return True


class Sourced(Protocol):
    """A cache that remembers which stage source its values came from."""

    source: StageSource


C = TypeVar("C", bound=Sourced)


def of_source(cache: C | None, source: StageSource) -> C | None:
    """The cache if its values came from `source` (another source is another stage)."""
    return cache if cache is not None and cache.source == source else None


class SecretPayloadFilter(logging.Filter):
    """Redacts botocore's DEBUG lines that carry a Secrets Manager payload.

    botocore logs every request's parameters and every response body at DEBUG: a
    GetSecretValue answer would put the secret into the logs of anyone who turns DEBUG on.
    """

    MARKERS = ("SecretString", "SecretBinary")

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep the record; blank its message if it holds a secret payload."""
        try:
            text = record.getMessage()
        except (TypeError, ValueError, KeyError):  # a malformed record: logging reports it
            return True
        if any(marker in text for marker in self.MARKERS):
            record.msg, record.args = "%s", ("[a Secrets Manager payload, redacted]",)
        return True


@functools.cache
def redact_secret_payloads() -> None:
    """Install `SecretPayloadFilter` on the botocore loggers that print payloads (once)."""
    for name in ("botocore.endpoint", "botocore.parsers", "botocore.hooks", "botocore.auth",
                 "botocore.retryhandler", "botocore.httpsession"):
        logging.getLogger(name).addFilter(SecretPayloadFilter())


def boto3_client(service: str) -> Any:
    """A boto3 client from the standard AWS environment (region, endpoint, credentials), with
    short timeouts and bounded retries; ConfigError without the extra or a region."""
    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError
    except ImportError as exc:
        raise ConfigError("PAYWIRE_STAGE is set: reading a stage's secrets needs the AWS extra: "
                          "pip install 'paywire[aws]'") from exc
    redact_secret_payloads()
    config = Config(connect_timeout=3, read_timeout=5,
                    retries={"max_attempts": 3, "mode": "standard"})
    try:
        return boto3.session.Session().client(service, config=config)
    except BotoCoreError as exc:
        raise ConfigError(f"cannot make an AWS {service} client: {type(exc).__name__} (set "
                          "AWS_REGION)", details={"aws_error_code": type(exc).__name__}
                          ) from exc


def aws_error_code(exc: Exception) -> str:
    """AWS's error code of a botocore error (`ResourceNotFoundException`), else its type."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = (response.get("Error") or {}).get("Code")
        if isinstance(code, str) and code:
            return code
    return type(exc).__name__


def read_secret(client: Any, secret_id: str, override_var: str) -> dict[str, Any]:
    """One Secrets Manager secret holding a JSON object, read with `client`; ConfigError naming
    the secret id, AWS's error code and what to do (`override_var` names the variable that
    chooses another id), never a value."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        answer = client.get_secret_value(SecretId=secret_id)
    except (ClientError, BotoCoreError) as exc:
        code = aws_error_code(exc)
        hint = _HINTS.get(code, "check the secret and this role's access to it")
        raise ConfigError(f"cannot read the stage secret {secret_id} from AWS Secrets "
                          f"Manager: {code}; {hint.format(var=override_var)}",
                          details={"secret_id": secret_id, "aws_error_code": code}) from exc
    text = answer.get("SecretString")
    if text is None and isinstance(answer.get("SecretBinary"), bytes):
        text = answer["SecretBinary"].decode("utf-8", errors="replace")
    try:
        data = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        data = None  # the parser's error would quote the secret
    if not isinstance(data, dict):
        raise ConfigError(f"the stage secret {secret_id} is not a JSON object",
                          details={"secret_id": secret_id})
    return data


def api_keys_of(value: Any, secret_id: str) -> list[SecretStr]:
    """The app secret's `api_keys`: a list of strings or one comma-separated string."""
    if value is None:
        return []
    if isinstance(value, str):
        return [SecretStr(part.strip()) for part in value.split(",") if part.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [SecretStr(v) for v in value if v.strip()]
    raise ConfigError(f"the stage secret {secret_id}: api_keys must be a string or a list of "
                      "strings", details={"secret_id": secret_id})
