"""ASGI middleware: a request id on every answer, a catch-all 500, a request body limit, and
each request's deadline.

Both are plain ASGI (no `BaseHTTPMiddleware`), so they see every response, including the ones
Starlette makes itself, and never buffer a response body.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paywire.api.errors import error_body
from paywire.domain import deadline

log = logging.getLogger("paywire.api")

REQUEST_ID_HEADER = b"x-request-id"
_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


def route_path(scope: Scope) -> str:
    """The request's path inside this app: without the prefix it is mounted under (a shop's
    `app.mount("/pay", ...)` puts `/pay` in `root_path` and keeps it in `path`), so a path
    check means the same mounted or not."""
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", "")).rstrip("/")
    if root and (path == root or path.startswith(f"{root}/")):
        return path[len(root):] or "/"
    return path


def new_request_id() -> str:
    """A fresh request id."""
    return "req_" + secrets.token_hex(12)


async def send_json(send: Send, status: int, body: dict[str, Any],
                    headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """Send a complete JSON response."""
    raw = json.dumps(body, separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(raw)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": raw})


class RequestContextMiddleware:
    """Echo a valid incoming `X-Request-Id` or make one; answer 500 (our shape) for a crash."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers", [])).get(REQUEST_ID_HEADER, b"")
        request_id = (incoming.decode("ascii") if _VALID_REQUEST_ID.match(incoming)
                      else new_request_id())
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() != REQUEST_ID_HEADER]
                headers.append((REQUEST_ID_HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Logged with the request id and route only: never headers or bodies (secrets).
            log.exception("unhandled error in %s %s (request %s)", scope.get("method"),
                          scope.get("path"), request_id)
            if started:
                raise
            await send_json(send_with_id, 500,
                            error_body("internal_error", "internal error", None, request_id))


def replaying(body: bytes, receive: Receive) -> Receive:
    """`receive` with a body already read handed over again first (then the client's own
    messages, such as its disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class BodyLimitMiddleware:
    """Refuse a request body over `max_bytes` with 413, before the app sees any of it.

    A body only somewhat over the limit is read to its end and discarded first, so the client,
    still sending, can read the 413 instead of a reset connection; past `DRAIN_FACTOR` times the
    limit the answer goes out at once and the connection closes.
    """

    DRAIN_FACTOR = 16

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, seen: int,
                         more: bool) -> None:
        while more and seen <= self.max_bytes * self.DRAIN_FACTOR:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away: nobody to answer
            seen += len(message.get("body", b""))
            more = message.get("more_body", False)
        rid = scope.get("state", {}).get("request_id")
        await send_json(send, 413, error_body(
            "payload_too_large", f"the request body is over {self.max_bytes} bytes",
            {"max_bytes": self.max_bytes}, rid), headers=[(b"connection", b"close")])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None:
            if not length.isdigit():
                rid = scope.get("state", {}).get("request_id")
                await send_json(send, 400, error_body("bad_request", "invalid Content-Length",
                                                      None, rid))
                return
            if int(length) > self.max_bytes * self.DRAIN_FACTOR:
                await self._too_large(scope, receive, send, int(length), more=False)
                return
        # Read the (bounded) body now, so a chunked body over the limit is refused too.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away: nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            more = message.get("more_body", False)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send, size, more)
                return
            chunks.append(chunk)
            if not more:
                break
        await self.app(scope, replaying(b"".join(chunks), receive), send)


class DeadlineMiddleware:
    """Run each request under a deadline (`paywire.domain.deadline`) the provider clients,
    leases and Idempotency-Key locks respect.

    The deadline is `budget_seconds` from the request's start or, under Lambda (Mangum puts the
    invocation's context object in the scope as `aws.context`), the invocation's remaining time
    if that is less, minus `reserve_seconds` kept back to settle the request and answer. So a
    slow provider ends in the app's own 503 (`Retry-After`) before the platform kills the
    request, and never in API Gateway's generic error.
    """

    def __init__(self, app: ASGIApp, *, budget_seconds: float, reserve_seconds: float) -> None:
        self.app = app
        self.budget = budget_seconds
        self.reserve = reserve_seconds

    def seconds(self, scope: Scope) -> float:
        """The time this request's work may take."""
        budget = self.budget
        remaining = getattr(scope.get("aws.context"), "get_remaining_time_in_millis", None)
        if callable(remaining):
            budget = min(budget, remaining() / 1000)
        return max(0.0, budget - self.reserve)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with deadline.bound(deadline.Deadline.after(self.seconds(scope))):
            await self.app(scope, receive, send)
