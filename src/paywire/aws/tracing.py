"""X-Ray traces of the Lambda functions (Powertools' Tracer), with no secret and no body in them.

The template runs every function with active tracing: Lambda records each invocation's segment.
`traced` adds, under it, one subsegment for the handler (`## paywire.aws.<module>.handler`,
annotated `function`, with Powertools' `ColdStart` and `Service`) and, under that, one for each
outbound call: DynamoDB, SQS, Secrets Manager and SSM (botocore patched), PayPal, APS and the
shop (httpx patched). A handler adds a few annotations an operator can search by (`annotate`:
an order id, a batch's outbox message ids, the HTTP route) — values paywire already holds, never
read from a body for the purpose.

What is never recorded: request or response bodies, the handler's answer (Powertools'
`capture_response` off) and the exception object (`capture_error` off: its attributes may hold
requests and responses; the SDK still records a failure's type, message and stack, and
paywire's messages are secret-free). The SDK records only an operation's name, region, status
and a few whitelisted parameters (table name, queue URL, counts) for AWS calls, and method, URL
(query and password removed) and status for HTTP ones. As a last guard, every document is
redacted as the log lines are (`paywire.aws.logs`) just before it is sent to the X-Ray daemon.

Tracing is on only where Powertools turns it on: inside Lambda (`LAMBDA_TASK_ROOT` set), not
under SAM local or Chalice, and not with `POWERTOOLS_TRACE_DISABLED` true. Anywhere else —
tests, `paywire dev --aws` — `traced` returns the handler unchanged and the X-Ray SDK is never
imported. When on, the SDK is imported and the libraries patched once per process, at the first
invocation, before any client is made (some 15-35 ms of a cold start, measured beside boto3).
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

log = logging.getLogger("paywire.aws.tracing")

R = TypeVar("R")
Annotation = str | int | bool
PATCHED = ("botocore", "httpx")  # boto3 (DynamoDB, SQS, Secrets Manager, SSM); PayPal, APS, shop
MAX_ANNOTATION_CHARS = 250  # an annotation holds a key, not a document
ORDER_PATH = re.compile(r"/orders/([A-Za-z0-9_-]{1,64})(?=/|$)")


def _truthy(name: str, default: str = "false") -> bool:
    return os.environ.get(name, default).strip().lower() in ("1", "y", "yes", "t", "true", "on")


def enabled() -> bool:
    """Whether Powertools' Tracer would trace here: inside Lambda (`LAMBDA_TASK_ROOT`), not
    under SAM local (`AWS_SAM_LOCAL`) or Chalice (`AWS_CHALICE_CLI_MODE`), not disabled by
    `POWERTOOLS_TRACE_DISABLED`. (Powertools' own check, read here so that the X-Ray SDK is not
    imported where it would stay off; the Tracer still has the last word.)"""
    if _truthy("POWERTOOLS_TRACE_DISABLED"):
        return False
    return bool(os.environ.get("LAMBDA_TASK_ROOT")) and not (
        os.environ.get("AWS_SAM_LOCAL") or os.environ.get("AWS_CHALICE_CLI_MODE"))


@functools.cache
def tracer() -> Tracer | None:
    """The process's Tracer, the recorder configured and botocore and httpx patched (once);
    None where tracing is off."""
    if not enabled():
        return None
    from aws_lambda_powertools import Tracer

    from paywire.aws import logs, xray

    xray.configure()
    made = Tracer(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or logs.SERVICE,
                  patch_modules=PATCHED)
    if made.disabled:
        return None
    log.debug("X-Ray tracing on: %s patched", ", ".join(PATCHED))
    return made


def traced(fn: Callable[[Any, Any], R], name: str, kind: str) -> Callable[[Any, Any], R]:
    """`fn(event, context)` in a subsegment `## <name>` annotated `function=<kind>` (with
    Powertools' ColdStart and Service), neither its answer nor its exception object recorded;
    `fn` itself where tracing is off."""
    active = tracer()
    if active is None:
        return fn

    def handler(event: Any, context: Any) -> R:
        annotate(function=kind)
        return fn(event, context)

    handler.__name__ = handler.__qualname__ = name
    wrapped: Callable[[Any, Any], R] = active.capture_lambda_handler(
        handler, capture_response=False, capture_error=False)
    return wrapped


def annotate(**values: Annotation | None) -> None:
    """Annotate the current (handler's) subsegment; None values are left out, long strings cut.
    Nothing where tracing is off."""
    active = tracer()
    if active is None:
        return
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, str):
            value = value[:MAX_ANNOTATION_CHARS]
        active.put_annotation(key, cast(Any, value))  # an int is a numbers.Number


def http_annotations(event: Mapping[str, Any]) -> dict[str, Annotation | None]:
    """What an API Gateway (HTTP API 2.0) event tells without its body: the route (method and
    path, an order's id replaced by `{order_id}`) and the order id the path names."""
    context = event.get("requestContext") or {}
    method = str((context.get("http") or {}).get("method") or "")
    path = str(event.get("rawPath") or "")
    found = ORDER_PATH.search(path)
    route = ORDER_PATH.sub("/orders/{order_id}", path, count=1) if found else path
    return {"route": f"{method} {route}".strip() or None,
            "order_id": found.group(1) if found else None}
