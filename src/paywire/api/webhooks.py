"""`POST /webhooks/{provider}` over the raw request bytes (the operators' view of what came in is
`webhook_admin`: the webhook function's app serves this route alone).

One route serves every provider the shop offers, by the name of its kit (`/webhooks/paypal`,
`/webhooks/aps`, a plug-in's `/webhooks/<name>`); the container holds each one's ingest.
The signature covers the exact bytes the provider sent, so this route reads the ASGI body stream
itself, under its own size limit (`PAYWIRE_WEBHOOK_MAX_BODY_BYTES`; over it → 413 before any
verification), and the general body-limit middleware is routed around it (`BodyLimitExcept`):
nothing re-reads, buffers into another shape or re-serialises the body before it is verified.

Answers follow what PayPal's retry can achieve (architecture.md, invariant 6):

| outcome | status |
|---|---|
| acknowledged: applied, confirming (with PayPal's API), duplicate, queued, ignored | 200 |
| refused for good: missing headers, bad signature, another webhook id, cert URL off the | 400 |
| allowlist, bad or expired chain, too old, malformed JSON | |
| no webhook id configured (emulator mode only; `bootstrap.NoWebhookId`) | 403 |
| body over `PAYWIRE_WEBHOOK_MAX_BODY_BYTES` | 413 |
| transient: storage down, a concurrent writer, the cert host or postback unreachable | 503 |

The ingest answers a disposition (acknowledge, refuse, transient) and this module picks the
status. A refusal's status is the one its verifier's `SignatureError` asks for (always a 4xx;
anything else is sent as 400), so a 400 never means "try again". A refusal is
`{"error": {"code": "webhook_rejected", "message", "details": {"check", "likely_cause"},
"request_id"}}`, recorded by the ingest once per transmission id. A 503 carries the error
tree's code (`storage_unavailable`, `provider_unavailable`, `conflict`) and is never recorded
as a rejection.

A PayPal event the ingest answers `confirming` (see `services.confirm`) is confirmed with
PayPal's API right after the answer is sent, in this process (`PAYWIRE_WEBHOOK_CONFIRM_INLINE`);
the stored confirmation task is the fallback the truth fetcher runs if this process dies first
or PayPal is slow or down. The ingest queues that task already leased to this process's truth
fetcher and hands it over, so the confirmation makes no claim of its own; only a task of the
same id already pending (a body delivered again while its first confirmation runs) is claimed
by id, as any other worker would.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from paywire.api.errors import ApiError, error_response, paywire_error, render, request_id_of
from paywire.api.middleware import BodyLimitMiddleware, route_path
from paywire.api.schemas import ErrorOut, dump
from paywire.domain import deadline, trace
from paywire.domain.errors import PaywireError, SignatureError, StorageError
from paywire.ports import Metrics, Store
from paywire.services.metering import count_delivery, time_ingest
from paywire.services.truth import TruthFetcher
from paywire.services.webhooks import Disposition, WebhookIngest
from paywire.settings import Settings

log = logging.getLogger("paywire.webhooks")

WEBHOOK_PREFIX = "/webhooks/"
WEBHOOK_ROUTE = WEBHOOK_PREFIX + "{provider}"  # one route, every provider kit by name
WEBHOOK_PATH = "/webhooks/paypal"
APS_WEBHOOK_PATH = "/webhooks/aps"
# paywire's own providers' delivery paths: the AWS template routes each to the webhook
# function, and `paywire dev --aws` does the same.
RAW_BODY_PATHS = frozenset({WEBHOOK_PATH, APS_WEBHOOK_PATH})


def is_webhook_path(path: str) -> bool:
    """Whether `path` is a provider's delivery path (`/webhooks/<name>`), whose raw bytes the
    route reads itself."""
    name = path.removeprefix(WEBHOOK_PREFIX)
    return name != path and bool(name) and "/" not in name


class WebhookContainer(Protocol):
    """What these routes need from the composition root."""

    settings: Settings
    store: Store
    webhook_ingests: dict[str, WebhookIngest]  # by provider name: those the shop offers
    truth: TruthFetcher
    metrics: Metrics  # each delivery counted by outcome (`services.metering`)


async def _container(request: Request) -> WebhookContainer:
    # async: FastAPI runs a plain `def` dependency in a worker thread, a hop per request.
    container: WebhookContainer = request.app.state.container
    return container


Container = Annotated[WebhookContainer, Depends(_container)]
router = APIRouter()  # the providers' deliveries: PayPal's webhooks, APS's feedback


class BodyLimitExcept:
    """The general request body limit on every path except the providers' delivery paths,
    which read and limit their own bytes (the general limit would buffer and replay them
    first).

    A delivery (`POST /webhooks/<name>`) is also served here, straight to `provider_webhook`,
    rather than through the framework's exception middleware, router and dependency solving:
    those cost more CPU per delivery than paywire's own verification and storage (bench/
    webhook_ingest.py's profile, docs/benchmarks.md). The middleware outside this one (trace,
    request id, the catch-all 500, the deadline, CORS) still wraps it, and paywire's errors
    are answered by the same handler the framework would call. Anything else on those paths
    (another method, the app not started) goes the framework's way.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.limited = BodyLimitMiddleware(app, max_bytes=max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = route_path(scope) if scope["type"] == "http" else ""
        if not is_webhook_path(path):
            await self.limited(scope, receive, send)
            return
        container = getattr(getattr(scope.get("app"), "state", None), "container", None)
        if scope["method"] != "POST" or container is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await provider_webhook(request, container,
                                              path.removeprefix(WEBHOOK_PREFIX))
        except PaywireError as exc:
            response = await paywire_error(request, exc)
        await response(scope, receive, send)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"the webhook body is over {limit} bytes",
                    details={"max_bytes": limit}, headers={"Connection": "close"})


async def read_raw_body(request: Request, limit: int) -> bytes:
    """The request body exactly as received, or 413 once it passes `limit` bytes.

    As in `BodyLimitMiddleware`, a body only somewhat over the limit is read to its end and
    dropped first, so the sender, still writing, reads the 413 rather than a reset connection;
    past `DRAIN_FACTOR` times the limit the answer goes out at once.
    """
    drain = limit * BodyLimitMiddleware.DRAIN_FACTOR
    declared = request.headers.get("content-length")
    over = declared is not None and declared.isdigit() and int(declared) > limit
    if over and int(declared or 0) > drain:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():  # chunked bodies are counted as they come
            size += len(chunk)
            if size > drain:
                break
            if size <= limit:
                chunks.append(chunk)
    except ClientDisconnect:
        raise ApiError(400, "bad_request", "the client went away mid-body") from None
    if over or size > limit:
        raise _too_large(limit)  # refused before any verification
    return b"".join(chunks)


class WebhookAck(BaseModel):
    """A verified delivery, acknowledged (new or not)."""

    outcome: str = Field(description="applied | confirming (stored; applied once the "
                                     "provider's API confirms it) | duplicate | queued (for a "
                                     "truth fetch) | ignored (stored, not acted on)",
                         examples=["applied"])
    event_id: str | None


_WEBHOOK_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 413, 503)}


# The body is read raw (never parsed by the framework); documented here for the reader.
_RAW_DELIVERY = {"requestBody": {
    "required": True, "description": "The provider's delivery, exactly as signed: PayPal's event "
    "JSON (PAYPAL-TRANSMISSION-* headers required); APS's signed feedback parameters (JSON, or "
    "form-encoded as a tolerance)",
    "content": {"application/json": {"schema": {"type": "object"}},
                "application/x-www-form-urlencoded": {"schema": {"type": "object"}}}}}


@router.post(WEBHOOK_ROUTE, response_model=WebhookAck, responses=_WEBHOOK_ERRORS,
             tags=["webhooks"], openapi_extra=_RAW_DELIVERY)
async def provider_webhook(request: Request, c: Container, provider: str) -> JSONResponse:
    """A payment provider's signed deliveries (`paypal`: PayPal's webhook events; `aps`: Amazon
    Payment Services' direct transaction feedback and notification feedback, one URL for
    both; any other provider kit the shop offers by its name).

    Verified over the raw bytes before anything is read (the provider's own signature), stored
    once, applied. 200 for every verified delivery (new or duplicate); 4xx `webhook_rejected`
    for one that fails verification for good (recorded, with the check that failed and its
    likely cause); 503 when something on our side is down, so the provider's retry succeeds
    later; 404 when the shop does not offer the provider (PAYWIRE_PROVIDERS).
    """
    ingest = c.webhook_ingests.get(provider)
    if ingest is None:
        return error_response(404, "not_found", f"this shop does not take payments through "
                              f"{provider[:32]!r} (PAYWIRE_PROVIDERS)",
                              request_id=request_id_of(request))
    return await _ingest(request, c, ingest)


async def _ingest(request: Request, c: WebhookContainer, ingest: WebhookIngest) -> JSONResponse:
    body = await read_raw_body(request, c.settings.webhook_max_body_bytes)
    rid = request_id_of(request)
    started = time.perf_counter()
    inline = c.settings.webhook_confirm_inline
    outcome = await ingest.receive(request.headers, body, inline=inline)
    time_ingest(c.metrics, ingest.provider, started)
    trace.tag(webhook=outcome.outcome, event_id=outcome.event_id)  # on the access log line
    count_delivery(c.metrics, ingest.provider, outcome)
    if outcome.disposition is Disposition.ACKNOWLEDGE:
        later = None
        limit = c.settings.webhook_confirm_inline_timeout_seconds
        if outcome.handed is not None:  # queued leased to this process: run as handed
            handed = outcome.handed
            later = BackgroundTask(_confirm, functools.partial(
                c.truth.confirm_handed, handed.task, handed.order), handed.task.id, limit)
        elif outcome.confirm_task is not None and inline:  # pending already: claim it first
            later = BackgroundTask(_confirm, functools.partial(
                c.truth.confirm_now, outcome.confirm_task), outcome.confirm_task, limit)
        return JSONResponse(dump(WebhookAck(outcome=outcome.outcome, event_id=outcome.event_id)),
                            background=later)
    if outcome.disposition is Disposition.TRANSIENT:
        # Transient on our side: never recorded as a rejection, retried by the provider.
        _, content = render(outcome.error or StorageError("the delivery could not be stored"),
                            rid)
        return JSONResponse(content, status_code=503, headers={"Retry-After": "30"})
    asked = outcome.error.status if isinstance(outcome.error, SignatureError) else 400
    status = asked if 400 <= asked < 500 else 400
    return error_response(status, "webhook_rejected",
                          outcome.reason or "the delivery failed verification", request_id=rid,
                          details={"check": outcome.check, "likely_cause": outcome.likely_cause})


async def _confirm(run: Callable[[], Awaitable[bool]], task_id: str,
                   limit_seconds: float) -> None:
    """Confirm a stored event with the provider once its answer is sent (`run`: the truth
    fetcher on task `task_id`), for at most `limit_seconds` and never past the request's
    deadline (a Lambda function's answer waits for this); whatever goes wrong leaves the task
    to the truth fetcher."""
    if deadline.exhausted():
        log.info("no time left to confirm %s in process: the truth queue confirms it", task_id)
        return
    limit_seconds = deadline.cap(limit_seconds)
    try:
        async with asyncio.timeout(limit_seconds):
            await run()
    except TimeoutError:
        log.warning("confirming %s took over %.0f s: the truth queue finishes it once its lease "
                    "lapses", task_id, limit_seconds)
    except PaywireError as exc:
        log.warning("confirming %s in the background failed (the truth queue retries): %s",
                    task_id, exc.message)
