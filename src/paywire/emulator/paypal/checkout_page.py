"""The buyer's side of PayPal: the approval page behind `checkoutnow` links, and the JS SDK.

A test buyer opens `/checkoutnow?token=<order id>`, sees the order and approves it (choosing
what happens at capture) or cancels. Like PayPal, the answer is a 303 to the order's return or
cancel URL with `token` (and `PayerID`) appended. When the emulator's JS SDK opened the page as
a popup (`sdk=1&origin=<shop origin>`), the result page instead `postMessage`s the outcome to
`window.opener` and the SDK calls the shop's `onApprove` / `onCancel`.

Everything shown is attacker-controlled (order data, query parameters), so templates autoescape
and pages carry a nonce-based Content-Security-Policy. A per-emulator HMAC of the order id rides
in the form so another site cannot approve an order by posting to the emulator blind.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from jinja2 import ChainableUndefined, Environment, PackageLoader
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from paywire.emulator.paypal import orders
from paywire.emulator.paypal.currencies import EXPONENTS
from paywire.emulator.paypal.errors import PayPalError
from paywire.emulator.paypal.http import state_of
from paywire.emulator.paypal.state import EmulatorState, Order

MAX_FORM = 16_384

# What each approval scenario means to the test buyer; unknown ones show their name.
SCENARIO_LABELS: dict[str, str] = {
    "approve": "Approve: the capture completes",
    "decline": "Card declined at capture (the capture is DECLINED)",
    "pending": "Capture pending review (PENDING, reason PENDING_REVIEW)",
    "instrument_declined": "Funding source refused at capture (422 INSTRUMENT_DECLINED: "
                           "the buyer must approve again)",
}

_env = Environment(loader=PackageLoader("paywire.emulator.paypal", "templates"), autoescape=True,
                   undefined=ChainableUndefined)


def base_url_of(request: Request, emu: EmulatorState) -> str:
    """Where links point: the configured public URL, else this request's origin."""
    configured = emu.config.public_base_url
    if configured:
        return configured.rstrip("/")
    return f"{request.url.scheme}://{request.url.netloc}"


def valid_origin(raw: str | None) -> str | None:
    """`raw` as a bare `scheme://host[:port]` web origin, or None when it is anything else."""
    if not raw or len(raw) > 300:
        return None
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username is not None:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        return None
    host = parts.hostname
    if any(c in host for c in "<>\"'` \\"):
        return None
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{shown}" + (f":{port}" if port is not None else "")


def with_query(url: str, params: dict[str, str]) -> str | None:
    """`url` with `params` appended to its own query (replacing same-named keys); None unless
    `url` is an absolute http(s) URL."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query.extend(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def approval_key(request: Request, order_id: str) -> str:
    """The form's anti-forgery key: an HMAC of the order id under a per-emulator secret."""
    secret: bytes | None = getattr(request.app.state, "checkout_secret", None)
    if secret is None:
        secret = secrets.token_bytes(32)
        request.app.state.checkout_secret = secret
    return hmac.new(secret, order_id.encode(), hashlib.sha256).hexdigest()[:32]


def _html(template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    body = _env.get_template(template).render(nonce=nonce, **ctx)
    resp = HTMLResponse(body, status_code=status)
    resp.headers["content-security-policy"] = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'"
    )
    resp.headers["cache-control"] = "no-store"
    resp.headers["referrer-policy"] = "no-referrer"
    resp.headers["x-content-type-options"] = "nosniff"
    return resp


def _message(status: int, title: str, text: str) -> HTMLResponse:
    return _html("message.html", status, title=title, text=text)


def _not_found() -> HTMLResponse:
    return _message(404, "We can't find this checkout",
                    "This checkout link is unknown or has expired. Go back to the merchant and "
                    "start the payment again.")


def _sdk_origin(params: Any) -> tuple[bool, str | None]:
    """(opened by the JS SDK, the opener's validated origin)."""
    sdk = params.get("sdk") == "1"
    return sdk, valid_origin(params.get("origin")) if sdk else None


def _merchant(order: Order, data: dict[str, Any]) -> str:
    units = data.get("purchase_units")
    payee = units[0].get("payee") if isinstance(units, list) and units and isinstance(
        units[0], dict) else None
    if isinstance(payee, dict):
        display = payee.get("display_data")
        if isinstance(display, dict) and display.get("brand_name"):
            return str(display["brand_name"])
        for key in ("email_address", "merchant_id"):
            if payee.get(key):
                return str(payee[key])
    return f"Sandbox merchant (app {order.client_id[:16]})"


def _money_text(value: Any) -> str:
    if not isinstance(value, dict):
        return ""
    return f"{value.get('value', '')} {value.get('currency_code', '')}".strip()


def _unit_view(unit: dict[str, Any]) -> dict[str, Any]:
    """What the page shows of a purchase unit, as plain strings (templates never touch the
    raw JSON, whose keys could shadow dict methods)."""
    items = unit.get("items") if isinstance(unit.get("items"), list) else []
    return {
        "reference_id": str(unit.get("reference_id") or ""),
        "description": str(unit.get("description") or ""),
        "total": _money_text(unit.get("amount")),
        "view_items": [{"name": str(i.get("name", "")), "quantity": str(i.get("quantity", "")),
                   "price": _money_text(i.get("unit_amount"))}
                  for i in items or [] if isinstance(i, dict)],
    }


async def checkout(request: Request) -> Response:
    """`/checkoutnow?token=…`: show the order (GET) or record the buyer's decision (POST)."""
    if request.method == "POST":
        return await _decide(request)
    emu = state_of(request)
    token = request.query_params.get("token", "")
    order = orders.find_order(emu, token) if token else None
    if order is None:
        return _not_found()
    if order.status not in orders.OPEN:
        return _message(410, "This checkout has ended",
                        f"The order is {order.status}; there is nothing left to approve.")
    sdk, origin = _sdk_origin(request.query_params)
    if sdk and origin is None:
        return _message(400, "Invalid checkout link",
                        "The link's origin parameter is not a web origin.")
    data = orders.order_json(emu, order, base_url_of(request, emu))
    units = [_unit_view(u) for u in data.get("purchase_units") or [] if isinstance(u, dict)]
    return _html(
        "checkout.html", order=order, units=units, merchant=_merchant(order, data),
        scenarios=[(s, SCENARIO_LABELS.get(s, s)) for s in orders.SCENARIOS],
        key=approval_key(request, order.id), sdk=sdk, origin=origin or "",
    )


async def _read_form(request: Request) -> dict[str, str] | None:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            return None
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except (UnicodeDecodeError, ValueError):
        return None


async def _decide(request: Request) -> Response:
    emu = state_of(request)
    form = await _read_form(request)
    if form is None:
        return _message(400, "Bad request", "Submit the checkout form to continue.")
    token = form.get("token", "")
    order = orders.find_order(emu, token) if token else None
    if order is None:
        return _not_found()
    if not hmac.compare_digest(form.get("key", ""), approval_key(request, order.id)):
        return _message(403, "Checkout form expired",
                        "Open the checkout link again and approve from the page.")
    sdk, origin = _sdk_origin(form)
    if sdk and origin is None:
        return _message(400, "Invalid checkout link",
                        "The link's origin parameter is not a web origin.")
    action = form.get("action")
    base_url = base_url_of(request, emu)
    if action == "approve":
        scenario = form.get("scenario", "approve")
        if scenario not in orders.SCENARIOS:
            return _message(400, "Unknown scenario", f"No scenario named {scenario!r}.")
        try:
            orders.approve_order(emu, order, scenario, base_url)
        except PayPalError as err:
            return _message(422, "This order cannot be approved",
                            f"PayPal answered: {err}. The order is {order.status}.")
        payer_id = str((order.payer or {}).get("payer_id", ""))
        params = {"token": order.id, "PayerID": payer_id}
        target = order.return_url
    elif action == "cancel":
        payer_id = ""
        params = {"token": order.id}
        target = order.cancel_url
    else:
        return _message(400, "Bad request", "Choose approve or cancel.")
    if sdk and origin is not None:
        message = {"type": "paywire-emulator", "action": action, "orderID": order.id,
                   "payerID": payer_id or None}
        return _html("result.html", action=action, message=message, origin=origin)
    redirect = with_query(target, params) if target else None
    if redirect is None:
        return _html("result.html", action=action, message=None, origin="")
    return RedirectResponse(redirect, status_code=303)


def _sdk_error(text: str) -> Response:
    # PayPal answers a refused SDK URL with 400 and a script that throws the validation error;
    # browsers do not run a 400 script, so the page sees the <script> tag's error event.
    body = f"/* paywire emulator */\nthrow new Error({json.dumps(text)});\n"
    return Response(body, status_code=400, media_type="application/javascript",
                    headers={"cache-control": "no-store", "access-control-allow-origin": "*"})


async def sdk_js(request: Request) -> Response:
    """`/sdk/js?client-id=…`: a minimal PayPal JS SDK (`paypal.Buttons`) for this emulator."""
    emu = state_of(request)
    client_id = request.query_params.get("client-id")
    if not client_id:
        return _sdk_error("SDK Validation error: 'Expected client-id to be passed'")
    if client_id not in emu.apps:
        return _sdk_error(f"SDK Validation error: 'Invalid query value for client-id: "
                          f"{client_id[:80]}'")
    currency = request.query_params.get("currency", "USD")
    if currency not in EXPONENTS:
        return _sdk_error(f"SDK Validation error: 'Invalid query value for currency: "
                          f"{currency[:8]}'")
    config = {"base": base_url_of(request, emu), "clientId": client_id, "currency": currency}
    body = _env.get_template("sdk.js").render(config=config)
    return Response(body, media_type="application/javascript",
                    headers={"cache-control": "no-store", "access-control-allow-origin": "*"})


routes: list[Route] = [
    Route("/checkoutnow", checkout, methods=["GET", "POST"], name="checkout.page"),
    Route("/sdk/js", sdk_js, methods=["GET"], name="checkout.sdk"),
]
