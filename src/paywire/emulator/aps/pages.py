"""The buyer's side of APS: the hosted payment page, the tokenization form, 3-D Secure.

- `POST /FortAPI/paymentPage` takes the merchant's signed form. `command=PURCHASE|
  AUTHORIZATION` (redirection) and `service_command=TOKENIZATION` open the card page; a
  tokenization post that already carries the card fields (a custom merchant form) is tokenized
  at once.
- `POST /FortAPI/paymentPage/card` is the card page's own form; a per-session key in it keeps
  other sites from posting it blind.
- `/FortAPI/3ds/{fort_id}?key=…` is the `3ds_url` of a transaction on hold (20064): approve or
  fail the challenge.

Results return to `return_url` signed with the response phrase (an auto-submitted POST form, or
a 303 with a query string, per `return_method`); a payment's result also goes out as direct
feedback. Everything shown is attacker-controlled, so templates autoescape and pages carry a
nonce-based Content-Security-Policy.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from jinja2 import Environment, PackageLoader
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from paywire.emulator.aps import cards, ledger
from paywire.emulator.aps.http import (
    BadBody,
    base_url,
    check_credentials,
    parse_form,
    read_body,
    state_of,
)
from paywire.emulator.aps.state import ApsState, PageSession, Token, Transaction, message_for

_env = Environment(loader=PackageLoader("paywire.emulator.aps", "templates"), autoescape=True)


def _html(template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    resp = HTMLResponse(_env.get_template(template).render(nonce=nonce, **ctx),
                        status_code=status)
    resp.headers["content-security-policy"] = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "base-uri 'none'; frame-ancestors 'none'")
    resp.headers["cache-control"] = "no-store"
    resp.headers["referrer-policy"] = "no-referrer"
    resp.headers["x-content-type-options"] = "nosniff"
    return resp


def _message(status: int, title: str, text: str) -> HTMLResponse:
    return _html("message.html", status, title=title, text=text)


def _valid_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc) and len(url) <= 400


def _with_query(url: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k not in params]
    query.extend(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _return(state: ApsState, url: str, params: Mapping[str, str]) -> Response:
    """Send the buyer back to the merchant with the signed result."""
    signed = ledger.sign_answer(state, params)
    if state.config.return_method == "GET":
        return RedirectResponse(_with_query(url, signed), status_code=303)
    return _html("return.html", url=url, fields=sorted(signed.items()))


def _refused(params: Mapping[str, str], code: str) -> dict[str, str]:
    out = ledger.echo_of(params)
    out.update({"response_code": code, "response_message": message_for(code),
                "status": code[:2]})
    return out


def _amount_text(state: ApsState, minor: int, currency: str) -> str:
    exp = state.config.currencies.get(currency, 2)
    whole, frac = divmod(minor, 10**exp)
    return f"{whole}.{frac:0{exp}d} {currency}" if exp else f"{whole} {currency}"


async def _form(request: Request) -> dict[str, str] | None:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        return None
    try:
        return parse_form(await read_body(request))
    except BadBody:
        return None


def _token_answer(params: Mapping[str, str], token: Token) -> dict[str, str]:
    out = ledger.echo_of(params)
    out.update({"token_name": token.name, "card_number": cards.masked(token.card_number),
                "expiry_date": token.expiry_date, "card_bin": token.card_number[:6],
                "card_holder_name": token.holder, "response_code": "18000",
                "response_message": message_for("18000"), "status": "18"})
    return out


def _tokenize(state: ApsState, form: Mapping[str, str]) -> Token | str:
    """A token for the card fields in `form`, or the message code refusing them."""
    number = form.get("card_number", "").replace(" ", "")
    expiry = form.get("expiry_date", "")
    problem = cards.card_problem(number, expiry, form.get("card_security_code"),
                                 state.clock.now_dt())
    if problem is not None:
        return problem
    return state.new_token(number, expiry, form.get("card_holder_name", ""),
                           cards.BY_NUMBER[number].brand)


# --- the merchant's signed form -------------------------------------------------------------


def _check_page_request(state: ApsState, form: Mapping[str, str]) -> str:
    """The session kind (payment | tokenization), or a Refusal."""
    check_credentials(state, form)
    if not _valid_url(form.get("return_url", "")):
        raise ledger.Refusal("00037")
    if form.get("language") not in ("en", "ar"):
        raise ledger.Refusal("00002")
    service = form.get("service_command")
    if service:
        if service != "TOKENIZATION" or form.get("command"):
            raise ledger.Refusal("00004")
        ledger.require(form, "merchant_reference")
        ledger.check_reference(form["merchant_reference"])
        return "tokenization"
    if form.get("command") not in ledger.PAYMENT_COMMANDS:
        raise ledger.Refusal("00004")
    ledger.require(form, "merchant_reference", "customer_email")
    ledger.check_reference(form["merchant_reference"])
    ledger.amount_of(state, form)
    with state.lock:
        if form["merchant_reference"] in state.transactions:
            raise ledger.Refusal("00066")
    return "payment"


async def payment_page(request: Request) -> Response:
    """The merchant's signed form arrives: open the card page (or tokenize at once)."""
    state = state_of(request)
    form = await _form(request)
    if form is None:
        return _message(400, "Bad request", "Post the merchant's signed form to this page.")
    return_url = form.get("return_url", "")
    try:
        kind = _check_page_request(state, form)
    except ledger.Refusal as refusal:
        if _valid_url(return_url):
            return _return(state, return_url, _refused(form, refusal.code))
        return _message(400, "Payment request refused",
                        f"APS answered {refusal.code}: {message_for(refusal.code)}.")
    if kind == "tokenization" and form.get("card_number"):
        token = _tokenize(state, form)
        if isinstance(token, str):
            return _return(state, return_url, _refused(form, "17" + token))
        return _return(state, return_url, _token_answer(form, token))
    session = PageSession(id=secrets.token_urlsafe(12), key=secrets.token_urlsafe(16),
                          kind=kind, params=ledger.echo_of(form),
                          created_at=state.clock.now())
    with state.lock:
        state.sessions[session.id] = session
    return _card_page(request, state, session)


def _card_page(request: Request, state: ApsState, session: PageSession,
               error: str | None = None) -> Response:
    p = session.params
    amount = ""
    if session.kind == "payment":
        amount = _amount_text(state, int(p["amount"]), p["currency"])
    return _html("card_form.html", tokenization=session.kind == "tokenization",
                 merchant=p.get("merchant_identifier", ""), reference=p["merchant_reference"],
                 command=p.get("command", ""), amount=amount, error=error,
                 action=f"{base_url(request)}/FortAPI/paymentPage/card", session_id=session.id,
                 key=session.key, cards=cards.CARDS, lang=p.get("language", "en"))


# --- the card page's own form ---------------------------------------------------------------


async def card_submit(request: Request) -> Response:
    """The buyer submits a card (or cancels)."""
    state = state_of(request)
    form = await _form(request)
    if form is None:
        return _message(400, "Bad request", "Submit the card form to continue.")
    with state.lock:
        session = state.sessions.get(form.get("session", ""))
    if session is None:
        return _message(404, "Unknown payment page", "This payment page does not exist.")
    if not hmac.compare_digest(form.get("key", "").encode(), session.key.encode()):
        return _message(403, "Payment page expired", "Open the payment page again.")
    if session.done:
        return _message(410, "Payment page used", "This payment page has been submitted.")
    return_url = session.params["return_url"]
    if form.get("action") == "cancel":
        session.done = True
        return _return(state, return_url, _refused(session.params, "00072"))
    token = _tokenize(state, form)
    if isinstance(token, str):
        return _card_page(request, state, session, f"{message_for('00' + token)}: check the "
                          "card and try again.")
    session.done = True
    if session.kind == "tokenization":
        return _return(state, return_url, _token_answer(session.params, token))
    try:
        tx, code = ledger.start_payment(state, session.params, token, "page")
    except ledger.Refusal as refusal:
        return _return(state, return_url, _refused(session.params, refusal.code))
    if tx.challenge_key is not None:
        return _challenge_page(request, state, tx)
    out = ledger.answer(state, tx, base_url(request), code)
    ledger.send_feedback(state, "direct", out)
    return _return(state, return_url, out)


# --- 3-D Secure -----------------------------------------------------------------------------


def _challenge_page(request: Request, state: ApsState, tx: Transaction) -> Response:
    return _html("challenge.html", amount=_amount_text(state, tx.amount, tx.currency),
                 card=tx.card_masked or "", reference=tx.merchant_reference,
                 action=f"{base_url(request)}/FortAPI/3ds/{tx.fort_id}",
                 key=tx.challenge_key or "", lang=tx.echo.get("language", "en"))


async def challenge(request: Request) -> Response:
    """The `3ds_url`: show the challenge (GET) or record the buyer's answer (POST)."""
    state = state_of(request)
    with state.lock:
        tx = state.find(None, request.path_params["fort_id"])
    if request.method == "POST":
        form = await _form(request) or {}
        key = form.get("key", "")
    else:
        form, key = {}, request.query_params.get("key", "")
    if tx is None:
        return _message(404, "Unknown transaction", "This 3-D Secure link is not valid.")
    if tx.challenge_key is None:
        return _message(410, "3-D Secure already completed",
                        "This payment's 3-D Secure check has been answered.")
    if not hmac.compare_digest(key.encode(), tx.challenge_key.encode()):
        return _message(403, "3-D Secure link expired", "Open the 3-D Secure link again.")
    if request.method == "GET":
        return _challenge_page(request, state, tx)
    action = form.get("action")
    if action not in ("approve", "fail"):
        return _message(400, "Bad request", "Choose approve or fail.")
    ledger.complete_challenge(state, tx, action == "approve")
    out = ledger.answer(state, tx, base_url(request))
    ledger.send_feedback(state, "direct", out)
    if tx.return_url and _valid_url(tx.return_url):
        return _return(state, tx.return_url, out)
    return _message(200, "3-D Secure complete", f"The payment answered {out['response_code']}: "
                    f"{out['response_message']}. You can close this window.")


routes = [
    Route("/FortAPI/paymentPage", payment_page, methods=["POST"], name="aps.page"),
    Route("/FortAPI/paymentPage/card", card_submit, methods=["POST"], name="aps.card"),
    Route("/FortAPI/3ds/{fort_id}", challenge, methods=["GET", "POST"], name="aps.3ds"),
]
