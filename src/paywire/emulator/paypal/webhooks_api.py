"""Webhooks v1: subscriptions, event types, stored events, resend, simulator, postback, certs.

Errors here use the v1 notifications shape PayPal really sends, with the issue as the top-level
`name` (`{"name":"WEBHOOK_URL_ALREADY_EXISTS","message":…,"information_link":…}`), because
integrators match on `name`; the OpenAPI `error` schema leaves `name` free. Deviations from PayPal
on purpose: `http://` URLs (loopback receivers) are accepted, and only the event types the
emulator emits can be subscribed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from paywire.emulator.clock import iso
from paywire.emulator.paypal import events
from paywire.emulator.paypal.delivery import WebhookDeliverer
from paywire.emulator.paypal.events import EVENT_TYPES, sample_resource
from paywire.emulator.paypal.http import Ctx, Handler, route, state_of
from paywire.emulator.paypal.signing import AUTH_ALGO, CERT_PATH, raw_json_member, verify
from paywire.emulator.paypal.state import EmulatorState, Webhook, new_id

MAX_WEBHOOKS = 10
INFO_LINK = "https://developer.paypal.com/docs/api/webhooks/#errors"
V1 = "/v1/notifications"

class V1Error(Exception):
    """A webhooks-API error in PayPal's v1 notifications shape."""

    def __init__(self, status: int, name: str, message: str,
                 details: list[dict[str, str]] | None = None) -> None:
        super().__init__(f"{status} {name}")
        self.status, self.name, self.message, self.details = status, name, message, details or []

    def render(self, debug_id: str) -> dict[str, Any]:
        """The response body."""
        return {"name": self.name, "message": self.message, "debug_id": debug_id,
                "information_link": INFO_LINK, "details": self.details, "links": []}


def invalid(field: str, issue: str) -> V1Error:
    """PayPal's v1 validation error for one field."""
    return V1Error(400, "VALIDATION_ERROR", "Invalid data provided",
                   [{"field": field, "issue": issue}])


def not_found() -> V1Error:
    """PayPal's v1 answer for an unknown (or someone else's) webhook or event id."""
    return V1Error(404, "INVALID_RESOURCE_ID", "Resource id is invalid.")


def v1_route(path: str, methods: list[str], operation: str,
             auth: bool = True) -> Callable[[Handler], Route]:
    """`http.route`, with `V1Error` rendered in the v1 shape."""

    def deco(fn: Handler) -> Route:
        async def handler(ctx: Ctx) -> Response:
            try:
                return await fn(ctx)
            except V1Error as err:
                return JSONResponse(err.render(ctx.debug_id), status_code=err.status)

        return route(path, methods, operation, auth=auth)(handler)

    return deco


def deliverer_of(emu: EmulatorState) -> WebhookDeliverer:
    """The emulator's signed webhook deliverer."""
    return emu.deliverer


def _type_json(name: str, *, full: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "description": EVENT_TYPES.get(name, "ALL")}
    if full:
        out["status"] = "ENABLED"
        if name in EVENT_TYPES:
            out["resource_versions"] = ["1.0" if name.startswith("CUSTOMER.") else "2.0"]
    return out


def _webhook_json(wh: Webhook, base: str) -> dict[str, Any]:
    href = f"{base}{V1}/webhooks/{wh.id}"
    return {"id": wh.id, "url": wh.url,
            "event_types": [_type_json(n) for n in wh.event_types],
            "links": [{"href": href, "rel": "self", "method": "GET"},
                      {"href": href, "rel": "update", "method": "PATCH"},
                      {"href": href, "rel": "delete", "method": "DELETE"}]}


def _check_url(value: Any, field: str = "url") -> str:
    # PayPal insists on https and a public host; the emulator also takes http for loopback.
    if not isinstance(value, str) or not value or len(value) > 2048:
        raise invalid(field, "Not a valid webhook URL")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid(field, "Not a valid webhook URL")
    return value


def _check_types(value: Any, field: str = "event_types") -> list[str]:
    if not isinstance(value, list) or not value or len(value) > 500:
        raise invalid(field, "Event types must be a non-empty array of at most 500 items")
    names: list[str] = []
    for i, item in enumerate(value):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or (name != "*" and name not in EVENT_TYPES):
            raise invalid(f"{field}[{i}].name", f"Event type is not supported: {name}")
        if name not in names:
            names.append(name)
    return ["*"] if "*" in names else names


def _webhook(ctx: Ctx, webhook_id: str) -> Webhook:
    wh = ctx.emu.webhooks.get(webhook_id)
    if wh is None or wh.client_id != ctx.client_id:
        raise not_found()
    return wh


def _url_taken(ctx: Ctx, url: str, but: str | None = None) -> None:
    if any(w.url == url and w.client_id == ctx.client_id and w.id != but
           for w in ctx.emu.webhooks.values()):
        raise V1Error(400, "WEBHOOK_URL_ALREADY_EXISTS", "Webhook URL already exists.")


@v1_route(f"{V1}/webhooks", ["POST"], "webhooks.post")
async def create_webhook(ctx: Ctx) -> Response:
    """Subscribe a URL (at most 10 per app)."""
    body = ctx.json_body()
    url = _check_url(body.get("url"))
    types = _check_types(body.get("event_types"))
    _url_taken(ctx, url)
    if sum(w.client_id == ctx.client_id for w in ctx.emu.webhooks.values()) >= MAX_WEBHOOKS:
        raise V1Error(400, "WEBHOOK_NUMBER_LIMIT_EXCEEDED",
                      "The webhook's number limit has exceeded.")
    wh = Webhook(id=new_id(17), client_id=ctx.client_id, url=url, event_types=types)
    ctx.emu.webhooks[wh.id] = wh
    return ctx.json(_webhook_json(wh, ctx.base_url), 201)


@v1_route(f"{V1}/webhooks", ["GET"], "webhooks.list")
async def list_webhooks(ctx: Ctx) -> Response:
    """The app's webhooks, oldest first."""
    mine = [_webhook_json(w, ctx.base_url) for w in ctx.emu.webhooks.values()
            if w.client_id == ctx.client_id]
    return ctx.json({"webhooks": mine})


@v1_route(f"{V1}/webhooks/{{webhook_id}}", ["GET"], "webhooks.get")
async def get_webhook(ctx: Ctx) -> Response:
    """One webhook."""
    return ctx.json(_webhook_json(_webhook(ctx, ctx.request.path_params["webhook_id"]),
                                  ctx.base_url))


@v1_route(f"{V1}/webhooks/{{webhook_id}}", ["PATCH"], "webhooks.update")
async def update_webhook(ctx: Ctx) -> Response:
    """JSON Patch: only `replace` of `/url` or `/event_types`, applied all-or-nothing."""
    wh = _webhook(ctx, ctx.request.path_params["webhook_id"])
    try:
        ops = json.loads(ctx.body_bytes)
    except (ValueError, RecursionError) as exc:
        raise invalid("/", "MALFORMED_REQUEST_JSON") from exc
    if not isinstance(ops, list) or not ops:
        raise invalid("/", "A patch request is a non-empty array of patch operations")
    url, types = wh.url, wh.event_types
    for i, op in enumerate(ops):
        if not isinstance(op, dict) or op.get("op") != "replace":
            raise invalid(f"/{i}/op", "Only the replace operation is supported")
        if op.get("path") == "/url":
            url = _check_url(op.get("value"), f"/{i}/value")
        elif op.get("path") == "/event_types":
            types = _check_types(op.get("value"), f"/{i}/value")
        else:
            raise invalid(f"/{i}/path", "Only /url and /event_types can be replaced")
    _url_taken(ctx, url, but=wh.id)
    wh.url, wh.event_types = url, types
    return ctx.json(_webhook_json(wh, ctx.base_url))


@v1_route(f"{V1}/webhooks/{{webhook_id}}", ["DELETE"], "webhooks.delete")
async def delete_webhook(ctx: Ctx) -> Response:
    """Unsubscribe; pending retries to it stop."""
    wh = _webhook(ctx, ctx.request.path_params["webhook_id"])
    del ctx.emu.webhooks[wh.id]
    return Response(status_code=204)


@v1_route(f"{V1}/webhooks/{{webhook_id}}/event-types", ["GET"], "event-types.list")
async def webhook_event_types(ctx: Ctx) -> Response:
    """The event types one webhook subscribes to."""
    wh = _webhook(ctx, ctx.request.path_params["webhook_id"])
    return ctx.json({"event_types": [_type_json(n, full=True) for n in wh.event_types]})


@v1_route(f"{V1}/webhooks-event-types", ["GET"], "webhooks-event-types.list")
async def available_event_types(ctx: Ctx) -> Response:
    """Every event type a webhook can subscribe to."""
    return ctx.json({"event_types": [_type_json(n, full=True) for n in EVENT_TYPES]})


def _event_json(ctx: Ctx, event_id: str) -> dict[str, Any]:
    status, transmissions = deliverer_of(ctx.emu).status_of(event_id)
    out = dict(ctx.emu.events[event_id])
    if status is not None:
        out["status"] = status
        out["transmissions"] = transmissions
    return out


def _owned_event(ctx: Ctx) -> str:
    event_id = ctx.request.path_params["event_id"]
    if event_id not in ctx.emu.events or ctx.emu.event_owner.get(event_id) != ctx.client_id:
        raise not_found()
    return str(event_id)


def _time_param(ctx: Ctx, name: str) -> datetime | None:
    raw = ctx.request.query_params.get(name)
    if raw is None:
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise invalid(name, "Must be an RFC 3339 date-time, e.g. 2013-03-06T11:00:00Z") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@v1_route(f"{V1}/webhooks-events", ["GET"], "webhooks-events.list")
async def list_events(ctx: Ctx) -> Response:
    """The app's events, newest first; `next_page_token` (an event id) continues a listing."""
    q = ctx.request.query_params
    try:
        page_size = int(q.get("page_size", "10"))
    except ValueError as exc:
        raise invalid("page_size", "Must be an integer between 1 and 300") from exc
    if not 1 <= page_size <= 300:
        raise invalid("page_size", "Must be an integer between 1 and 300")
    start, end = _time_param(ctx, "start_time"), _time_param(ctx, "end_time")
    event_type, txn, after = q.get("event_type"), q.get("transaction_id"), q.get("next_page_token")
    picked: list[str] = []
    skipping = after is not None
    for event_id in reversed(list(ctx.emu.events)):
        if skipping:
            skipping = event_id != after
            continue
        ev = ctx.emu.events[event_id]
        created = datetime.fromisoformat(str(ev["create_time"]))
        if (ctx.emu.event_owner.get(event_id) != ctx.client_id
                or (event_type and ev.get("event_type") != event_type)
                or (txn and ev.get("resource", {}).get("id") != txn)
                or (start and created < start) or (end and created > end)):
            continue
        picked.append(event_id)
        if len(picked) > page_size:
            break
    more, picked = len(picked) > page_size, picked[:page_size]
    body: dict[str, Any] = {"events": [_event_json(ctx, e) for e in picked], "count": len(picked)}
    if more:
        params = {k: v for k, v in q.items() if k != "next_page_token"}
        params["next_page_token"] = picked[-1]
        body["links"] = [{"href": f"{ctx.base_url}{V1}/webhooks-events?{urlencode(params)}",
                          "rel": "next", "method": "GET"}]
    return ctx.json(body)


@v1_route(f"{V1}/webhooks-events/{{event_id}}", ["GET"], "webhooks-events.get")
async def get_event(ctx: Ctx) -> Response:
    """One stored event, with its delivery status and transmissions."""
    return ctx.json(_event_json(ctx, _owned_event(ctx)))


@v1_route(f"{V1}/webhooks-events/{{event_id}}/resend", ["POST"], "webhooks-events.resend")
async def resend_event(ctx: Ctx) -> Response:
    """Deliver a stored event again (new transmissions); pending ones are not resent."""
    event_id = _owned_event(ctx)
    body = ctx.json_body(required=False)
    ids = body.get("webhook_ids")
    if ids is None:
        event_type = ctx.emu.events[event_id].get("event_type")
        targets = [w for w in ctx.emu.webhooks.values() if w.client_id == ctx.client_id
                   and ("*" in w.event_types or event_type in w.event_types)]
    elif isinstance(ids, list) and len(ids) <= 500 and all(isinstance(i, str) for i in ids):
        targets = [_webhook(ctx, i) for i in dict.fromkeys(ids)]
    else:
        raise invalid("webhook_ids", "Must be an array of webhook ids")
    deliverer_of(ctx.emu).resend(event_id, targets)
    return ctx.json(_event_json(ctx, event_id), 202)


@v1_route(f"{V1}/simulate-event", ["POST"], "simulate-event.post")
async def simulate_event(ctx: Ctx) -> Response:
    """Send a mock event to a webhook or URL; it is neither stored nor postback-verifiable."""
    body = ctx.json_body()
    event_type = body.get("event_type")
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        raise invalid("event_type", f"Event type is not supported: {event_type}")
    webhook_id, url = body.get("webhook_id"), body.get("url")
    if webhook_id is not None:
        wh = _webhook(ctx, str(webhook_id))
        target, target_id = wh.url, wh.id
    elif url is not None:
        target, target_id = _check_url(url), None
    else:
        raise invalid("webhook_id", "Either webhook_id or url is required")
    version = body.get("resource_version")
    if version is not None and (not isinstance(version, str) or version.count(".") != 1
                                or not version.replace(".", "").isdigit()):
        raise invalid("resource_version", "Must look like 1.0 or 2.0")
    resource_type, resource = sample_resource(event_type, iso(ctx.now), ctx.base_url)
    event = events.build_event(ctx.emu, event_type, resource_type, resource, ctx.base_url)
    if version:
        event["resource_version"] = version
    deliverer_of(ctx.emu).simulate(event, target, target_id)
    return ctx.json(event, 202)


REQUIRED_POSTBACK = ("auth_algo", "cert_url", "transmission_id", "transmission_sig",
                     "transmission_time", "webhook_id")


@v1_route(f"{V1}/verify-webhook-signature", ["POST"], "verify-webhook-signature.post")
async def verify_signature(ctx: Ctx) -> Response:
    """Postback verification over the `webhook_event` bytes exactly as the caller sent them."""
    body = ctx.json_body()
    for name in REQUIRED_POSTBACK:
        if not isinstance(body.get(name), str) or not body[name]:
            raise invalid(name, "must not be null")
    if not isinstance(body.get("webhook_event"), dict):
        raise invalid("webhook_event", "must not be null")
    raw_event = raw_json_member(ctx.body_bytes, "webhook_event") or b""
    deliverer = deliverer_of(ctx.emu)
    wh = ctx.emu.webhooks.get(body["webhook_id"])
    ok = (body["auth_algo"] == AUTH_ALGO
          and wh is not None and wh.client_id == ctx.client_id
          and body["cert_url"] in (deliverer.issued_cert_urls | {deliverer.cert_url(ctx.base_url)})
          and str(body["webhook_event"].get("id")) not in deliverer.simulated
          and verify(deliverer.pki.leaf_pem, body["transmission_id"], body["transmission_time"],
                     body["webhook_id"], raw_event, body["transmission_sig"]))
    return ctx.json({"verification_status": "SUCCESS" if ok else "FAILURE"})


@v1_route(f"{CERT_PATH}{{cert_id}}", ["GET"], "certs.get", auth=False)
async def signing_certificate(ctx: Ctx) -> Response:
    """The certificate behind `PAYPAL-CERT-URL` (public, like PayPal's)."""
    pki = deliverer_of(ctx.emu).pki
    if ctx.request.path_params["cert_id"] != pki.cert_id:
        raise not_found()
    return Response(pki.leaf_pem, media_type="application/x-pem-file")


async def ca_certificate(request: Request) -> Response:
    """The emulator's CA: the trust anchor a receiver pins instead of PayPal's."""
    pki = deliverer_of(state_of(request)).pki
    return Response(pki.ca_pem, media_type="application/x-pem-file")


async def deliveries(request: Request) -> Response:
    """The delivery log (GET), or forget it (DELETE)."""
    deliverer = deliverer_of(state_of(request))
    if request.method == "DELETE":
        deliverer.log.clear()
        return Response(status_code=204)
    return JSONResponse({"deliveries": [a.to_json() for a in deliverer.log]})


routes: list[Route] = [
    create_webhook, list_webhooks, get_webhook, update_webhook, delete_webhook,
    webhook_event_types, available_event_types, list_events, get_event, resend_event,
    simulate_event, verify_signature, signing_certificate,
    Route("/_emulator/ca.pem", ca_certificate, methods=["GET"]),
    Route("/_emulator/deliveries", deliveries, methods=["GET", "DELETE"]),
]
