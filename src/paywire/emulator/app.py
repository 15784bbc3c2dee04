"""The whole emulator as one ASGI app: PayPal at the root behind its edge, APS under `/aps`.

This is the one place the two providers meet: they share a clock (so `/_emulator/clock/advance`
moves both providers' time) and a process, and nothing else. PayPal's edge (debug ids, request
log, fault rules) stays out of APS's requests, which have faults, a request log and error shapes
of their own.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from paywire.emulator.aps import create_aps_app
from paywire.emulator.aps.state import ApsState
from paywire.emulator.clock import EmulatorClock
from paywire.emulator.config import EmulatorConfig
from paywire.emulator.paypal import app as paypal
from paywire.emulator.paypal.edge import paypal_edge
from paywire.emulator.paypal.state import EmulatorState

# Amazon Payment Services lives under this prefix (paths, credentials and state of its own).
APS_PREFIX = "/aps"


class Emulator:
    """The emulator's ASGI app; `emu` is PayPal's live state and `aps` APS's (for in-process
    tests and the CLI), `app` the routed Starlette app without PayPal's edge."""

    def __init__(self, app: Starlette, emu: EmulatorState, aps: ApsState) -> None:
        self.app = app
        self.emu = emu
        self.aps = aps
        self._paypal: ASGIApp = paypal_edge(app, emu)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if path == APS_PREFIX or path.startswith(f"{APS_PREFIX}/"):
            await self.app(scope, receive, send)
        else:
            await self._paypal(scope, receive, send)


def create_app(config: EmulatorConfig | None = None,
               clock: EmulatorClock | None = None) -> Emulator:
    """A fresh emulator (its own state) as an ASGI app; `.emu` and `.aps` hold the state."""
    cfg = config or EmulatorConfig()
    emu = EmulatorState(cfg, clock or EmulatorClock())
    aps_app = create_aps_app(cfg.aps, emu.clock)
    aps: ApsState = aps_app.state.aps

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            async with paypal.background(emu):
                yield
        finally:
            # A mounted app gets no lifespan: its deliverer starts lazily and stops here.
            await aps.deliverer.stop()

    app = Starlette(routes=[*paypal.routes, Mount(APS_PREFIX, app=aps_app)], lifespan=lifespan,
                    exception_handlers=paypal.exception_handlers)
    app.state.emu = emu
    app.state.aps = aps
    return Emulator(app, emu, aps)
