"""The APS emulator's ASGI app: S2S API, hosted pages, control API, HTTP fault rules."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paywire.emulator.aps import api, control, pages
from paywire.emulator.aps.config import ApsEmulatorConfig
from paywire.emulator.aps.state import ApsState
from paywire.emulator.clock import EmulatorClock


class ApsFaults:
    """Applies HTTP fault rules to every route outside `/_aps/` (paths as routed, without the
    mount prefix): `error` answers `status` (with `body` as JSON when given) and `timeout` waits
    `seconds` then answers 504, both without processing the request; `latency` processes it at
    once and holds the answer `seconds`."""

    def __init__(self, app: ASGIApp, state: ApsState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        root = str(scope.get("root_path", ""))
        if root and path.startswith(root):
            path = path[len(root):] or "/"
        if path.startswith("/_aps"):
            await self.app(scope, receive, send)
            return
        body = await _drain(receive)
        receive = _replay(body, receive)
        with self.state.lock:
            rules = self.state.faults.for_http(scope["method"], path, _command_of(body))
        final = next((r for r in rules if r.action in ("error", "timeout")), None)
        if final is not None:
            if final.action == "timeout":
                await asyncio.sleep(final.seconds)
                resp: Response = PlainTextResponse("Gateway Timeout", status_code=504)
            elif final.body is not None:
                resp = JSONResponse(final.body, status_code=final.status)
            else:
                resp = PlainTextResponse("Service error (fault rule)", status_code=final.status)
            await resp(scope, receive, send)
            return
        delay = sum(r.seconds for r in rules if r.action == "latency")
        if not delay:
            await self.app(scope, receive, send)
            return
        # Latency holds the *answer*: the request is processed at once, so a client that gives
        # up waiting leaves a transaction it cannot see (the uncertain case).
        held: list[Message] = []

        async def hold(message: Message) -> None:
            """Keep the answer back."""
            held.append(message)

        await self.app(scope, receive, hold)
        await asyncio.sleep(delay)
        for message in held:
            await send(message)


async def _drain(receive: Receive) -> bytes:
    """The whole request body."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app `body` again, then the server's own (disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _command_of(body: bytes) -> str:
    """An S2S call's `command` or `query_command` (fault rules may match it), else ""."""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    found = data.get("command") or data.get("query_command")
    return found if isinstance(found, str) else ""


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": "not_found", "message": "no such APS emulator route"},
                        status_code=404)


def create_aps_app(config: ApsEmulatorConfig | None = None,
                   clock: EmulatorClock | None = None) -> Starlette:
    """A fresh APS emulator (its own state) as a Starlette app; `app.state.aps` holds it.

    Mounted inside another app it gets no lifespan events: the feedback deliverer then binds to
    the loop on first use, and the owner should `await app.state.aps.deliverer.stop()` on
    shutdown.
    """
    state = ApsState(config or ApsEmulatorConfig(), clock)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        """Bind the feedback deliverer to the server's loop; stop it on shutdown."""
        await state.deliverer.start()
        try:
            yield
        finally:
            await state.deliverer.stop()

    app = Starlette(routes=[*api.routes, *pages.routes, *control.routes], lifespan=lifespan,
                    middleware=[Middleware(ApsFaults, state=state)],
                    exception_handlers={404: _not_found})
    app.state.aps = state
    return app
