"""The checkout's two calls served straight to their handlers: `POST /v1/checkout/orders` and
`POST /v1/checkout/orders/{id}/capture`.

Why (issue 18's profile of bench/checkout_throughput.py): the framework's exception
middleware, router, dependency solving (the caller, the container, the gate, the header, the
body) and request wrapper cost a create or a capture more CPU than the route's own work outside
the store and the provider call. As for the providers' deliveries (`webhooks.BodyLimitExcept`),
these two are served here, inside the body limit and every middleware of paywire's (trace,
request id, the deadline, CORS, the catch-all 500), by the very functions the router would call
(`routes.create_order`, `routes.capture_order`), and paywire's errors are answered by the
handler the framework would use.

Only a request the lane reads exactly as the framework would is served here: a valid id, a JSON
body (`Content-Type: application/json`) that validates as `CreateOrderIn`, at most one
`Idempotency-Key`. Anything else (a body that does not validate, another method, the app not
started) goes the framework's way, with the body already read replayed to it, so its refusals
(422 and their details) stay the framework's own.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from paywire.api import routes
from paywire.api.auth import caller
from paywire.api.errors import paywire_error
from paywire.api.middleware import replaying, route_path
from paywire.api.schemas import ID_PATTERN, CreateOrderIn
from paywire.domain.errors import PaywireError

CREATE = "/v1/checkout/orders"
_CAPTURE = re.compile(r"/v1/checkout/orders/([^/]+)/capture")
# `fullmatch` of the pattern between its anchors: in Python's `re` a `$` also matches before a
# final newline, where the framework's check (pydantic-core's regex) does not.
_ID = re.compile(ID_PATTERN.removeprefix("^").removesuffix("$"))


def _json_body(scope: Scope) -> bool:
    """Whether the request says its body is JSON, as the framework would read it."""
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for name, value in headers:
        if name == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == b"application/json"
    return False


def _one_key(scope: Scope) -> bool:
    """At most one Idempotency-Key header (the framework picks among several itself)."""
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    return sum(name == b"idempotency-key" for name, _ in headers) <= 1


class CheckoutLane:
    """Serves a checkout create or capture straight to its route function (module doc)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        container = getattr(getattr(scope.get("app"), "state", None), "container", None)
        path = route_path(scope) if container is not None else ""
        if path == CREATE and _json_body(scope) and _one_key(scope):
            await self._create(scope, receive, send)
            return
        found = _CAPTURE.fullmatch(path)
        if found is not None and _ID.fullmatch(found[1]):
            await self._answer(scope, receive, send, capture=found[1])
            return
        await self.app(scope, receive, send)

    async def _create(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        raw = await request.body()
        try:
            body = CreateOrderIn.model_validate(json.loads(raw))
        except (ValueError, RecursionError, ValidationError):
            # Not JSON (nested past the parser's depth too), or not a valid create: the framework.
            await self.app(scope, replaying(raw, receive), send)
            return
        await self._answer(scope, receive, send, create=body, request=request)

    async def _answer(self, scope: Scope, receive: Receive, send: Send, *,
                      capture: str | None = None, create: CreateOrderIn | None = None,
                      request: Request | None = None) -> None:
        request = request or Request(scope, receive)
        c: Any = scope["app"].state.container
        try:
            who = await caller(request)
            if create is not None:
                response = await routes.create_order(
                    create, request, who, c, scope["app"].state.gate,
                    request.headers.get("idempotency-key"))
            else:
                response = await routes.capture_order(str(capture), who, c)
        except PaywireError as exc:
            response = await paywire_error(request, exc)
        await response(scope, receive, send)
