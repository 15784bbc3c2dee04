"""The shop's receiving side of fulfilment: check a paywire delivery and tell whether it was
seen before (`paywire.verify_delivery`; `http_callback` is the sending side).

paywire delivers every announcement at least once under a stable message id (the
`webhook-id` header, also the body's `id`). A shop's endpoint does::

    delivery = paywire.verify_delivery(await request.body(), request.headers, SECRET,
                                       seen=already_processed)
    if not delivery.duplicate:
        fulfil(delivery.order_id, delivery.type, delivery.data)
    return 204  # any 2xx: paywire stops re-sending this id

`verify_delivery` checks the Standard Webhooks signature (HMAC-SHA256 with the `whsec_`
secret, timestamp within 5 minutes) with the `standardwebhooks` package, over the raw bytes,
before anything is parsed; a failure raises `SignatureError` (answer 4xx, do not fulfil).

`Delivery.trace_id` is the W3C trace id of the story the message belongs to (the order's), from
its `traceparent` header: log it beside the order id to find paywire's side of the story. The
header is not signed (`paywire.delivery.http_callback` says why): a label for logs, never a
reason to act; None when absent or not a valid `traceparent`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from paywire.domain import trace
from paywire.domain.errors import SignatureError

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


@dataclass(frozen=True, slots=True)
class Delivery:
    """A verified announcement from paywire; `duplicate` if `seen` knew its id already."""

    id: str
    type: str
    order_id: str
    data: dict[str, Any]
    duplicate: bool = False
    created_at: str | None = None
    trace_id: str | None = None  # from the unsigned `traceparent` header: for logs only


def _fail(reason: str, check: str = "signature") -> SignatureError:
    return SignatureError(f"paywire delivery refused: {reason}", check=check, status=400)


def verify_delivery(body: bytes, headers: Mapping[str, str], secret: str, *,
                    seen: Callable[[str], bool] | None = None) -> Delivery:
    """Verify a delivery's signature and parse it; `seen(message_id)` says if it was had before.

    Raises `SignatureError` when the headers are missing, the signature does not match, the
    timestamp is more than 5 minutes off, or the signed body is not a paywire announcement.
    """
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("the fulfilment secret must start with 'whsec_'")
    plain = {k.lower(): v for k, v in headers.items()}
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail("the body is not UTF-8", "body") from exc
    try:
        Webhook(secret).verify(text, plain, json_parse=False)
    except WebhookVerificationError as exc:
        raise _fail(str(exc)) from exc
    except ValueError as exc:  # a malformed signature header (no comma, bad base64)
        raise _fail(f"malformed webhook-signature ({type(exc).__name__})", "headers") from exc
    try:
        envelope = json.loads(text)
        message_id = envelope["id"]
        kind = envelope["type"]
        order_id = envelope["order_id"]
        data = envelope.get("data") or {}
    except (ValueError, KeyError, TypeError) as exc:
        raise _fail("the body is not a paywire announcement", "json") from exc
    if message_id != plain.get("webhook-id"):
        raise _fail("the body's id differs from the signed webhook-id", "json")
    if not (isinstance(kind, str) and isinstance(order_id, str) and isinstance(data, dict)):
        raise _fail("the body is not a paywire announcement", "json")
    created = envelope.get("created_at")
    caller = trace.parse(plain.get(trace.TRACEPARENT))
    return Delivery(id=message_id, type=kind, order_id=order_id, data=data,
                    duplicate=bool(seen(message_id)) if seen is not None else False,
                    created_at=created if isinstance(created, str) else None,
                    trace_id=None if caller is None else caller.trace_id)
