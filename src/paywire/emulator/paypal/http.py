"""How every PayPal-API route behaves: auth, debug ids, mock responses, idempotency, errors.

Handlers are plain `async def handler(ctx: Ctx) -> Response` functions registered with `route`;
the wrapper turns any `PayPalError` into PayPal's error shape for that operation and anything
unexpected into a PayPal-shaped 500, so garbage input never crashes the emulator.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from paywire.emulator.paypal.edge import CLIENT_ID, DEBUG_ID
from paywire.emulator.paypal.errors import PayPalError, api_of, issue, render
from paywire.emulator.paypal.issues import OPERATION_TABLES, SCHEMA_ISSUES
from paywire.emulator.paypal.state import EmulatorState, IdempotencyRecord

log = logging.getLogger("paywire.emulator")

MAX_BODY = 1_000_000

Handler = Callable[["Ctx"], Awaitable[Response]]


def state_of(request: Request) -> EmulatorState:
    """The emulator state behind this app."""
    emu: EmulatorState = request.app.state.emu
    return emu


def debug_id_of(request: Request) -> str:
    """The debug id the middleware assigned to this request."""
    return str(request.scope.get(DEBUG_ID, "0000000000000"))


@dataclass
class Ctx:
    """A request as a handler sees it."""

    request: Request
    emu: EmulatorState
    client_id: str
    debug_id: str
    operation: str
    body_bytes: bytes

    @property
    def now(self) -> float:
        """The emulator's clock."""
        return self.emu.clock.now()

    @property
    def base_url(self) -> str:
        """Where links point: the configured public URL, else this request's origin."""
        configured = self.emu.config.public_base_url
        if configured:
            return configured.rstrip("/")
        return f"{self.request.url.scheme}://{self.request.url.netloc}"

    def prefer_representation(self) -> bool:
        """`Prefer: return=representation` asked for the full object."""
        return "return=representation" in self.request.headers.get("prefer", "").lower()

    def json_body(self, *, required: bool = True) -> dict[str, Any]:
        """The body as a JSON object; PayPal's MALFORMED_REQUEST_JSON otherwise."""
        raw = self.body_bytes
        if not raw.strip():
            if required:
                raise issue(400, "MALFORMED_REQUEST_JSON", location="body")
            return {}
        try:
            data = strict_json(raw)
        except (ValueError, RecursionError) as exc:
            raise issue(400, "MALFORMED_REQUEST_JSON", "/", location="body") from exc
        if not isinstance(data, dict):
            raise issue(400, "MALFORMED_REQUEST_JSON", "/", location="body")
        return data

    def json(self, data: Any, status: int = 200) -> Response:
        """A JSON response carrying this request's debug id."""
        return JSONResponse(data, status_code=status)

    async def idempotent(
        self, kind: str, produce: Callable[[], Awaitable[Response]], replay_status: int | None = 200
    ) -> Response:
        """Run `produce` once per PayPal-Request-Id; replay its answer while retained.

        `kind` selects the retention ("orders" or "refunds"). Only successful answers are kept,
        so a client may retry after an error with the same id. `replay_status` None keeps the
        original status on replay.
        """
        request_id = self.request.headers.get("paypal-request-id")
        if not request_id:
            return await produce()
        if len(request_id) > 108:
            raise issue(400, "INVALID_STRING_LENGTH", "PayPal-Request-Id", location="header")
        key = (self.client_id, f"{self.request.method} {self.request.url.path}", request_id)
        now = self.now
        rec = self.emu.idempotency.get(key)
        if rec is not None and rec.expires_at > now:
            status = rec.status if replay_status is None or rec.status != 201 else replay_status
            return Response(rec.body, status_code=status, headers=rec.headers,
                            media_type="application/json")
        resp = await produce()
        if 200 <= resp.status_code < 300:
            cfg = self.emu.config
            ttl = cfg.refunds_idempotency_seconds if kind == "refunds" else (
                cfg.orders_idempotency_seconds)
            headers = {k: v for k, v in resp.headers.items()
                       if k.lower() not in ("content-length", "paypal-debug-id")}
            self.emu.idempotency[key] = IdempotencyRecord(
                status=resp.status_code, body=bytes(resp.body), headers=headers,
                expires_at=now + ttl,
            )
        return resp


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(raw: bytes | str) -> Any:
    """Parse RFC 8259 JSON: NaN and Infinity, which Python accepts, are refused."""
    return json.loads(raw, parse_constant=_refuse_constant)


def authenticate(request: Request, emu: EmulatorState) -> str:
    """The client id behind a valid bearer token, or PayPal's 401."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise PayPalError(401)
    tok = emu.tokens.get(token.strip())
    if tok is None or tok.expires_at <= emu.clock.now() or tok.client_id not in emu.apps:
        raise PayPalError(401)
    return tok.client_id


def _mock_status(operation: str, code: str) -> int:
    if code in ("INTERNAL_SERVER_ERROR", "INTERNAL_SERVICE_ERROR"):
        return 500
    if code == "SERVICE_UNAVAILABLE":
        return 503
    if code in ("RATE_LIMIT_REACHED", "TOO_MANY_REQUESTS"):
        return 429
    for status in (422, 400, 403, 404, 409):
        table = OPERATION_TABLES.get((operation, status), f"{api_of(operation)}:{status}")
        if code in SCHEMA_ISSUES.get(table, {}):
            return status
    return 422


def mock_response(request: Request, operation: str) -> PayPalError | None:
    """The error a `PayPal-Mock-Response` header asks for, as PayPal's sandbox does."""
    raw = request.headers.get("paypal-mock-response")
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return issue(400, "INVALID_PARAMETER_SYNTAX", "PayPal-Mock-Response", raw,
                     location="header")
    codes = data.get("mock_application_codes") if isinstance(data, dict) else None
    if isinstance(codes, list):
        codes = codes[0] if codes else None
    if not isinstance(codes, str) or not codes:
        return issue(400, "INVALID_PARAMETER_VALUE", "PayPal-Mock-Response", raw,
                     location="header")
    status = _mock_status(operation, codes)
    if status >= 500 or status == 429:
        return PayPalError(status)
    return issue(status, codes)


def route(path: str, methods: list[str], operation: str, *, auth: bool = True,
          max_body: int = MAX_BODY) -> Callable[[Handler], Route]:
    """Register a PayPal API handler under `path` as PayPal operation `operation`."""

    def deco(fn: Handler) -> Route:
        async def endpoint(request: Request) -> Response:
            emu = state_of(request)
            debug_id = debug_id_of(request)
            try:
                body = await _read_body(request, max_body)
                client_id = authenticate(request, emu) if auth else ""
                request.scope[CLIENT_ID] = client_id
                mocked = mock_response(request, operation)
                if mocked is not None:
                    raise mocked
                ctx = Ctx(request, emu, client_id, debug_id, operation, body)
                return await fn(ctx)
            except PayPalError as err:
                return JSONResponse(render(err, operation, debug_id), status_code=err.status)
            except Exception:  # garbage must never crash the emulator
                log.exception("emulator handler %s failed", operation)
                return JSONResponse(render(PayPalError(500), operation, debug_id),
                                    status_code=500)

        return Route(path, endpoint, methods=methods, name=operation)

    return deco


async def _read_body(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise issue(400, "INVALID_STRING_LENGTH", "/", location="body")
        chunks.append(chunk)
    return b"".join(chunks)
