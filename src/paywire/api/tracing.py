"""Each request's trace (W3C `traceparent`, `paywire.domain.trace`) and its one access log line.

`TraceMiddleware` runs every request as work of its own: in the caller's trace when the request
carries one valid `traceparent` (its `tracestate` kept for the provider calls), else in a new
trace. A missing, malformed or repeated header is never refused: the request only loses its
link to the caller. What the request turns out to be about (`trace.follow` in the services: an
order, its provider) is added as it is learned, and a request that started its own trace joins
the order's, so a buyer's capture lands in the story of the checkout that created the order.

The answer carries `traceresponse` (W3C Trace Context Level 2's header, same format as
`traceparent`), so a caller that sent no trace learns the id under which its request was
recorded. When the request is done, one log line says what happened (method, route, status,
duration) with the trace id, the order and the provider (`paywire.api.access`; probes at DEBUG).
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paywire.api.middleware import route_path
from paywire.domain import trace

log = logging.getLogger("paywire.api.access")

TRACERESPONSE = b"traceresponse"
_TRACEPARENT = trace.TRACEPARENT.encode()
_TRACESTATE = trace.TRACESTATE.encode()
QUIET_PATHS = frozenset({"/healthz", "/readyz"})  # probes: DEBUG, not a line every few seconds


def request_trace(scope: Scope) -> trace.TraceContext:
    """The span of this request: the caller's trace when exactly one `traceparent` header is
    valid (the spec: several are as good as none), else a new one."""
    parents: list[bytes] = []
    states: list[bytes] = []
    for name, value in scope.get("headers", []):
        if name == _TRACEPARENT:
            parents.append(value)
        elif name == _TRACESTATE:
            states.append(value)
    if len(parents) != 1:
        return trace.start()
    state = b",".join(states).decode("latin-1") if states else None
    return trace.start(parents[0].decode("latin-1"), state)


class TraceMiddleware:
    """Run each HTTP request in its trace; answer `traceresponse`; log one line when done."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        with trace.scope(request_trace(scope)) as work:

            async def send_traced(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    headers = [(k, v) for k, v in message.get("headers", [])
                               if k.lower() != TRACERESPONSE]
                    headers.append((TRACERESPONSE, work.trace.traceparent.encode()))
                    message = {**message, "headers": headers}
                await send(message)

            try:
                await self.app(scope, receive, send_traced)
            finally:
                self._log(scope, status or 500, time.perf_counter() - started)

    @staticmethod
    def _log(scope: Scope, status: int, seconds: float) -> None:
        path = str(scope.get("path", ""))
        method = str(scope.get("method", ""))
        level = logging.DEBUG if route_path(scope) in QUIET_PATHS else logging.INFO
        if not log.isEnabledFor(level):
            return
        request_id = (scope.get("state") or {}).get("request_id")
        # The path only: a query string may hold what a buyer's page was given (APS returns).
        log.log(level, "%s %s -> %d", method, path, status, extra={
            "outcome": str(status), "http_method": method, "path": path, "status": status,
            "duration_ms": round(seconds * 1000, 1), "request_id": request_id})
