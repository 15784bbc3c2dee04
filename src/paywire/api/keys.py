"""API keys without the web framework: the `Authorization: Bearer <key>` parser and the
constant-time key lookup, shared by the app's own check (`paywire.api.auth`) and API Gateway's
authorizer (`paywire.aws.authorizer`), so both read a header and match a key the same way.

A presented key is compared, in constant time, against *every* configured key (no early exit,
and over SHA-256 digests so a key's length leaks nothing either). A caller is identified by a
digest of its key, never the key: that id scopes Idempotency-Keys and may appear in logs.

This module imports neither FastAPI nor anything that does: the authorizer's cold start pays
for hashlib and pydantic's SecretStr only.
"""

from __future__ import annotations

import hashlib
import hmac

from pydantic import SecretStr

SCHEME = "bearer"


def bearer_token(header: str) -> str | None:
    """The key in an `Authorization` header value `Bearer <key>` (scheme in any case, the key
    stripped of surrounding white space), or None for another scheme or no key."""
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != SCHEME or not token:
        return None
    return token


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


class ApiKeys:
    """The configured keys, kept as digests, with a constant-time lookup."""

    def __init__(self, keys: list[SecretStr] | tuple[SecretStr, ...]) -> None:
        self._digests = [_digest(k.get_secret_value().encode()) for k in keys]

    def __repr__(self) -> str:
        return f"ApiKeys(<{len(self._digests)} keys>)"

    def identify(self, presented: str) -> str | None:
        """The caller id for a presented key, or None; checks every key whatever matches."""
        probe = _digest(presented.encode("utf-8", "surrogateescape"))
        found: bytes | None = None
        for digest in self._digests:
            if hmac.compare_digest(probe, digest):
                found = digest
        return None if found is None else "key_" + found.hex()[:16]
