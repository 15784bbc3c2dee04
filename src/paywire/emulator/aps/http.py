"""Request helpers shared by the APS emulator's routes: state, base URL, bodies, credentials."""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from paywire.emulator.aps.ledger import Refusal
from paywire.emulator.aps.signing import CARD_FIELDS, valid
from paywire.emulator.aps.state import ApsState

MAX_BODY = 64_000


class BadBody(ValueError):
    """A body the emulator cannot read as parameters."""


def state_of(request: Request) -> ApsState:
    """The APS emulator state behind this app."""
    state: ApsState = request.app.state.aps
    return state


def base_url(request: Request) -> str:
    """This app's public base URL (the configured one, else the request's origin + mount)."""
    configured = state_of(request).config.public_base_url
    if configured:
        return configured.rstrip("/")
    root = str(request.scope.get("root_path", "")).rstrip("/")
    return f"{request.url.scheme}://{request.url.netloc}{root}"


async def read_body(request: Request) -> bytes:
    """The body, refused past MAX_BODY bytes."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise BadBody("body too large")
    return body


def _flat(data: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise BadBody(f"parameter {key[:40]!r} is not a string")
        out[key] = str(value)
    return out


def parse_json(body: bytes) -> dict[str, str]:
    """A JSON object of string (or integer) parameters."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadBody("not JSON") from exc
    if not isinstance(data, dict):
        raise BadBody("not a JSON object")
    return _flat(data)


def parse_form(body: bytes) -> dict[str, str]:
    """A form-encoded body (a repeated field is refused)."""
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadBody("not a form") from exc
    params = dict(pairs)
    if len(params) != len(pairs):
        raise BadBody("a repeated field")
    return params


def check_credentials(state: ApsState, params: Mapping[str, str]) -> None:
    """Refuse a request of another account (009, 010) or with a bad signature (008)."""
    cred = state.config.credentials
    if not hmac.compare_digest(params.get("access_code", "").encode(), cred.access_code.encode()):
        raise Refusal("00010")
    if params.get("merchant_identifier") != cred.merchant_identifier:
        raise Refusal("00009")
    if not params.get("signature") or not valid(params, cred.request_phrase, cred.sha_type,
                                                CARD_FIELDS):
        raise Refusal("00008")
