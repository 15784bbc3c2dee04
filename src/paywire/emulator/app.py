"""The emulator's ASGI app: PayPal's REST API, the buyer pages, and the `/_emulator` control API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paywire.emulator import checkout_page, control, disputes, oauth, orders, payments, webhooks_api
from paywire.emulator.aps import create_aps_app
from paywire.emulator.clock import EmulatorClock
from paywire.emulator.config import EmulatorConfig
from paywire.emulator.errors import PayPalError, render
from paywire.emulator.state import EmulatorState, RequestLogEntry, new_debug_id

log = logging.getLogger("paywire.emulator")
# Amazon Payment Services lives under this prefix (paths, credentials and state of its own).
APS_PREFIX = "/aps"


class PayPalEdge:
    """Outermost middleware: debug id on every response, request log, HTTP fault rules."""

    def __init__(self, app: ASGIApp, emu: EmulatorState) -> None:
        self.app = app
        self.emu = emu  # the emulator's state, for in-process tests and the CLI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == APS_PREFIX or scope["path"].startswith(
                f"{APS_PREFIX}/"):
            # APS has its own faults, request log and error shapes: PayPal's edge stays out.
            await self.app(scope, receive, send)
            return
        debug_id = new_debug_id()
        scope["paypal_debug_id"] = debug_id
        method: str = scope["method"]
        path: str = scope["path"]
        status_seen = 0
        record = self.emu.config.record_responses
        chunks: list[bytes] = []
        content_type = ""

        logged = False

        def log_request() -> None:
            nonlocal logged
            if logged:
                return
            logged = True
            headers = dict(scope.get("headers", []))
            request_id = headers.get(b"paypal-request-id")
            self.emu.request_log.append(RequestLogEntry(
                at=self.emu.clock.now(), method=method, path=path,
                query=scope.get("query_string", b"").decode("latin-1"), status=status_seen,
                debug_id=debug_id,
                request_id=request_id.decode("latin-1") if request_id else None,
                client_id=scope.get("paypal_client_id") or None,
                response_body=b"".join(chunks) if record else None,
                content_type=content_type,
            ))

        async def send_wrapper(message: Message) -> None:
            nonlocal status_seen, content_type
            if message["type"] == "http.response.start":
                status_seen = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"paypal-debug-id", debug_id.encode()))
                message = {**message, "headers": headers}
                content_type = dict(headers).get(b"content-type", b"").decode("latin-1")
            elif message["type"] == "http.response.body":
                if record:
                    chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    # Logged before the last byte leaves, so a client that has its answer
                    # always finds the request in the log.
                    log_request()
            await send(message)

        try:
            if not path.startswith("/_emulator"):
                for rule in self.emu.faults.for_http(method, path):
                    if rule.action == "latency":
                        await asyncio.sleep(rule.seconds)
                    elif rule.action == "timeout":
                        await asyncio.sleep(rule.seconds)
                        resp: Response = JSONResponse(
                            render(PayPalError(504, message="Gateway timeout."), "emulator",
                                   debug_id), status_code=504)
                        await resp(scope, receive, send_wrapper)
                        return
                    elif rule.action == "error":
                        body = rule.body or render(PayPalError(rule.status), "emulator", debug_id)
                        resp = JSONResponse(body, status_code=rule.status)
                        if rule.status == 429:
                            resp.headers["retry-after"] = "1"
                        await resp(scope, receive, send_wrapper)
                        return
            await self.app(scope, receive, send_wrapper)
        finally:
            log_request()


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse(render(PayPalError(404), "emulator", str(
        request.scope.get("paypal_debug_id", ""))), status_code=404)


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    return JSONResponse({"name": "METHOD_NOT_SUPPORTED",
                         "message": "The server does not implement the requested HTTP method.",
                         "debug_id": str(request.scope.get("paypal_debug_id", ""))},
                        status_code=405)


def create_app(config: EmulatorConfig | None = None,
               clock: EmulatorClock | None = None) -> PayPalEdge:
    """A fresh emulator (its own state) as an ASGI app; `app.state.emu` holds the state."""
    cfg = config or EmulatorConfig()
    emu = EmulatorState(cfg, clock or EmulatorClock())
    deliverer = emu.deliverer

    async def sweep() -> None:
        # Orders expire on the emulator's clock even when nobody asks about them, so a
        # CHECKOUT.ORDER.VOIDED webhook goes out as PayPal's would.
        while True:
            await asyncio.sleep(0.5)
            try:
                orders.expire_due(emu)
            except Exception:  # a sweep failure must not end the sweeping
                log.exception("order expiry sweep failed")

    # APS shares the clock, so /_emulator/clock/advance moves both providers' time.
    aps_app = create_aps_app(cfg.aps, emu.clock)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await deliverer.start()
        sweeper = asyncio.create_task(sweep())
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await deliverer.stop()
            # A mounted app gets no lifespan: its deliverer starts lazily and stops here.
            await aps_app.state.aps.deliverer.stop()

    routes = [
        *oauth.routes, *orders.routes, *payments.routes, *disputes.routes,
        *webhooks_api.routes, *checkout_page.routes, *control.routes,
        Mount(APS_PREFIX, app=aps_app),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: _not_found, 405: _method_not_allowed},
    )
    app.state.emu = emu
    app.state.aps = aps_app.state.aps
    return PayPalEdge(app, emu)
