"""The PayPal emulator's pieces for an ASGI app: its routes, PayPal-shaped 404/405 answers, and
the background work it needs while served.

PayPal's paths are absolute (`/v1/...`, `/v2/...`, the buyer pages, `/_emulator/...`), so PayPal
owns the root of the emulator's path space; `paywire.emulator.app` builds the one Starlette app
from these pieces, mounts APS beside them and puts `edge.paypal_edge` in front.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from paywire.emulator.paypal import (
    checkout_page,
    control,
    disputes,
    oauth,
    orders,
    payments,
    webhooks_api,
)
from paywire.emulator.paypal.edge import DEBUG_ID
from paywire.emulator.paypal.errors import PayPalError, render
from paywire.emulator.paypal.state import EmulatorState

log = logging.getLogger("paywire.emulator")

routes: list[BaseRoute] = [
    *oauth.routes, *orders.routes, *payments.routes, *disputes.routes,
    *webhooks_api.routes, *checkout_page.routes, *control.routes,
]


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse(render(PayPalError(404), "emulator", str(
        request.scope.get(DEBUG_ID, ""))), status_code=404)


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    return JSONResponse({"name": "METHOD_NOT_SUPPORTED",
                         "message": "The server does not implement the requested HTTP method.",
                         "debug_id": str(request.scope.get(DEBUG_ID, ""))},
                        status_code=405)


exception_handlers: dict[int, Callable[[Request, Exception], Awaitable[Response]]] = {
    404: _not_found, 405: _method_not_allowed}


@contextlib.asynccontextmanager
async def background(emu: EmulatorState) -> AsyncIterator[None]:
    """While served: the webhook deliverer runs, and orders expire on the emulator's clock even
    when nobody asks about them, so a CHECKOUT.ORDER.VOIDED webhook goes out as PayPal's would."""

    async def sweep() -> None:
        while True:
            await asyncio.sleep(0.5)
            try:
                orders.expire_due(emu)
            except Exception:  # a sweep failure must not end the sweeping
                log.exception("order expiry sweep failed")

    await emu.deliverer.start()
    sweeper = asyncio.create_task(sweep())
    try:
        yield
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        await emu.deliverer.stop()
