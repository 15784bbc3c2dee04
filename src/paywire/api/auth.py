"""Bearer API keys for admin and trusted server-to-server callers, as FastAPI dependencies.

The header's parsing and the constant-time key lookup live in `paywire.api.keys` (API
Gateway's authorizer uses them too); this module turns their answers into a `Caller` or a 401.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from paywire.api.errors import ApiError
from paywire.api.keys import ApiKeys, bearer_token

PUBLIC = "public"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: `public` (a browser), or a trusted holder of an API key."""

    id: str
    trusted: bool


def unauthorized(message: str) -> ApiError:
    """401 in the one error shape."""
    return ApiError(401, "unauthorized", message)


async def caller(request: Request) -> Caller:
    """The caller: public without an Authorization header; a wrong key is refused (401).

    `async` though it awaits nothing: FastAPI runs a plain function dependency in its thread
    pool, a thread hop per request for a header lookup and a few hashes."""
    header = request.headers.get("authorization")
    if header is None:
        return Caller(PUBLIC, trusted=False)
    token = bearer_token(header)
    if token is None:
        raise unauthorized("use `Authorization: Bearer <API key>`")
    keys: ApiKeys = request.app.state.api_keys
    caller_id = keys.identify(token)
    if caller_id is None:
        raise unauthorized("invalid API key")
    return Caller(caller_id, trusted=True)


CallerDep = Annotated[Caller, Depends(caller)]


async def admin(who: CallerDep) -> Caller:
    """A trusted caller, or 401."""
    if not who.trusted:
        raise unauthorized("this endpoint needs an API key (`Authorization: Bearer <key>`)")
    return who


AdminDep = Annotated[Caller, Depends(admin)]
