"""Bearer API keys for admin and trusted server-to-server callers.

A presented key is compared, in constant time, against *every* configured key (no early exit,
and over SHA-256 digests so a key's length leaks nothing either). A caller is identified by a
digest of its key, never the key: that id scopes Idempotency-Keys and may appear in logs.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from pydantic import SecretStr

from paywire.api.errors import ApiError

PUBLIC = "public"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: `public` (a browser), or a trusted holder of an API key."""

    id: str
    trusted: bool


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


class ApiKeys:
    """The configured keys, kept as digests, with a constant-time lookup."""

    def __init__(self, keys: list[SecretStr]) -> None:
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


def unauthorized(message: str) -> ApiError:
    """401 in the one error shape."""
    return ApiError(401, "unauthorized", message)


def caller(request: Request) -> Caller:
    """The caller: public without an Authorization header; a wrong key is refused (401)."""
    header = request.headers.get("authorization")
    if header is None:
        return Caller(PUBLIC, trusted=False)
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("use `Authorization: Bearer <API key>`")
    keys: ApiKeys = request.app.state.api_keys
    caller_id = keys.identify(token.strip())
    if caller_id is None:
        raise unauthorized("invalid API key")
    return Caller(caller_id, trusted=True)


CallerDep = Annotated[Caller, Depends(caller)]


def admin(who: CallerDep) -> Caller:
    """A trusted caller, or 401."""
    if not who.trusted:
        raise unauthorized("this endpoint needs an API key (`Authorization: Bearer <key>`)")
    return who


AdminDep = Annotated[Caller, Depends(admin)]
