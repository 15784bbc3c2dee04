"""The PayPal emulator's edge: three plain ASGI middlewares, each doing one thing PayPal's front
door does for every request, composed in order by `paypal_edge`.

- `DebugIdMiddleware` gives the request PayPal's debug id (in the scope for handlers and error
  bodies, and as the `PayPal-Debug-Id` response header), so it is outermost: every answer,
  fault or not, carries one.
- `RequestLogMiddleware` records each request in the state's request log (tests and the control
  API read it; with `record_responses` it keeps the body for the OpenAPI conformance check).
- `FaultInjectionMiddleware` applies the HTTP fault rules (latency, timeout, error) before the
  routes see the request; the control API under `/_emulator` is exempt, so a rule can always be
  removed. Its answers pass through the log and get a debug id like any other.
"""

from __future__ import annotations

import asyncio

from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paywire.emulator.faults import FaultInjector
from paywire.emulator.paypal.errors import PayPalError, render
from paywire.emulator.paypal.state import EmulatorState, RequestLogEntry, new_debug_id

# Where a request's debug id and (once authenticated) client id live in the ASGI scope.
DEBUG_ID = "paypal_debug_id"
CLIENT_ID = "paypal_client_id"
CONTROL_PREFIX = "/_emulator"


def paypal_edge(app: ASGIApp, emu: EmulatorState) -> ASGIApp:
    """`app` behind PayPal's edge, outermost first: debug id, request log, fault injection."""
    return DebugIdMiddleware(RequestLogMiddleware(FaultInjectionMiddleware(app, emu.faults), emu))


class DebugIdMiddleware:
    """A fresh debug id per request: `scope["paypal_debug_id"]` and the `PayPal-Debug-Id` header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        debug_id = new_debug_id()
        scope[DEBUG_ID] = debug_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"paypal-debug-id", debug_id.encode())]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)


class RequestLogMiddleware:
    """One `RequestLogEntry` per request, appended before the answer's last byte leaves, so a
    client that has its answer always finds the request in the log (and appended anyway when the
    app fails or never answers)."""

    def __init__(self, app: ASGIApp, emu: EmulatorState) -> None:
        self.app = app
        self.emu = emu  # read per request: `reset()` replaces the log and a test may flip config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        emu = self.emu
        method: str = scope["method"]
        path: str = scope["path"]  # as received (routing may rewrite the scope's)
        record = emu.config.record_responses
        chunks: list[bytes] = []
        status = 0
        content_type = ""
        logged = False

        def log_request() -> None:
            nonlocal logged
            if logged:
                return
            logged = True
            headers = dict(scope.get("headers", []))
            request_id = headers.get(b"paypal-request-id")
            traceparent = headers.get(b"traceparent")
            emu.request_log.append(RequestLogEntry(
                at=emu.clock.now(), method=method, path=path,
                query=scope.get("query_string", b"").decode("latin-1"), status=status,
                debug_id=str(scope.get(DEBUG_ID, "")),
                request_id=request_id.decode("latin-1") if request_id else None,
                client_id=scope.get(CLIENT_ID) or None,
                response_body=b"".join(chunks) if record else None,
                content_type=content_type,
                traceparent=traceparent.decode("latin-1") if traceparent else None,
            ))

        async def send_logged(message: Message) -> None:
            nonlocal status, content_type
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = dict(message.get("headers", []))
                content_type = headers.get(b"content-type", b"").decode("latin-1")
            elif message["type"] == "http.response.body":
                if record:
                    chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    log_request()
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        finally:
            log_request()


class FaultInjectionMiddleware:
    """The HTTP fault rules, in the order added: `latency` waits then lets the request through,
    `timeout` waits then answers 504, `error` answers `status` (its `body`, or PayPal's error
    shape; a 429 says `Retry-After: 1`) without the routes seeing the request."""

    def __init__(self, app: ASGIApp, faults: FaultInjector) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        debug_id = str(scope.get(DEBUG_ID, ""))
        for rule in self.faults.for_http(scope["method"], scope["path"]):
            if rule.action == "latency":
                await asyncio.sleep(rule.seconds)
            elif rule.action == "timeout":
                await asyncio.sleep(rule.seconds)
                resp: Response = JSONResponse(render(
                    PayPalError(504, message="Gateway timeout."), "emulator", debug_id),
                    status_code=504)
                await resp(scope, receive, send)
                return
            elif rule.action == "error":
                body = rule.body or render(PayPalError(rule.status), "emulator", debug_id)
                resp = JSONResponse(body, status_code=rule.status)
                if rule.status == 429:
                    resp.headers["retry-after"] = "1"
                await resp(scope, receive, send)
                return
        await self.app(scope, receive, send)
