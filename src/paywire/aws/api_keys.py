"""The stage's API keys alone, for API Gateway's authorizer (`paywire.aws.authorizer`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from paywire.aws.secret_reads import Freshness, api_keys_of, boto3_client, of_source, read_secret
from paywire.domain.errors import ConfigError
from paywire.settings import MIN_API_KEY_CHARS, StageSource

Clock = Callable[[], float]
ClientFactory = Callable[[str], Any]


@dataclass
class _KeysCache:
    source: StageSource
    keys: tuple[SecretStr, ...]
    fresh: Freshness


class StageApiKeys:
    """The stage's API keys alone (its app secret's `api_keys`), cached like `StageSecrets`.

    For a function that needs nothing else, API Gateway's authorizer: it reads neither the
    PayPal secret nor SSM, so its role needs `secretsmanager:GetSecretValue` on the app secret
    only, and it does not fail when the rest of the stage's configuration does. The same TTL
    and grace period apply (`PAYWIRE_SECRETS_TTL_SECONDS`, `..._STALE_GRACE_SECONDS`): a
    failed re-read keeps serving the keys last read (a WARNING) until the grace period ends,
    then raises ConfigError, as a failed first read does. The app secret's other keys are
    neither validated nor kept here; a key shorter than the app accepts (`MIN_API_KEY_CHARS`)
    is refused, as the app refuses to start with it. Unchanged keys give the very same tuple
    back, so a caller may rebuild what it derived only when they change.
    """

    def __init__(self, *, clock: Clock = time.monotonic,
                 clients: ClientFactory = boto3_client) -> None:
        self._clock = clock
        self._clients = clients
        self._client: Any = None
        self._cache: _KeysCache | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        count = len(self._cache.keys) if self._cache is not None else None
        return f"StageApiKeys(keys={count!r})"

    def keys(self) -> tuple[SecretStr, ...]:
        """The stage's API keys: cached, re-read after the TTL; ConfigError when they cannot
        be read (and no keys read before are still within the grace period)."""
        source = StageSource.load()
        with self._lock:
            now = self._clock()
            cache = of_source(self._cache, source)
            if cache is not None and now < cache.fresh.refresh_at:
                return cache.keys
            try:
                keys = self.read(source)
            except ConfigError as exc:
                if cache is None or not cache.fresh.keep_stale(now, exc, "API keys"):
                    raise
                return cache.keys
            if cache is not None and keys == cache.keys:
                keys = cache.keys  # unchanged: the same object back
            self._cache = _KeysCache(source, keys, Freshness.read_now(source, now))
            return keys

    def read(self, source: StageSource) -> tuple[SecretStr, ...]:
        """Read the app secret's `api_keys` (uncached); ConfigError naming the secret id (and
        AWS's error code, the offending key's position) when they cannot be read or used."""
        if source.stage is None:
            raise ConfigError("PAYWIRE_STAGE is not set: no stage to read API keys for")
        if self._client is None:
            self._client = self._clients("secretsmanager")
        secret_id = source.app_secret
        data = read_secret(self._client, secret_id, "PAYWIRE_APP_SECRET_ID")
        keys = tuple(api_keys_of(data.get("api_keys"), secret_id))
        for i, key in enumerate(keys, start=1):
            if len(key.get_secret_value()) < MIN_API_KEY_CHARS:
                raise ConfigError(f"the stage secret {secret_id}: api_keys #{i} is shorter "
                                  f"than {MIN_API_KEY_CHARS} characters",
                                  details={"secret_id": secret_id})
        return keys
