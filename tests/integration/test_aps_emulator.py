"""The APS emulator over real HTTP: S2S commands, hosted page, tokenization, 3-D Secure,
feedback channels with retries, fault injection, the control API, and mounting under a prefix."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from apskit import tokenize
from paywire.emulator.aps import ApsCredentials, ApsEmulatorConfig, create_aps_app
from paywire.emulator.aps.state import ApsState
from paywire.providers.aps.signature import Signer
from paywire.testing import ServerThread

CRED = ApsCredentials(access_code="EmuAccessCode0000001", merchant_identifier="EmuMerch",
                      request_phrase="emu-request-phrase", response_phrase="emu-response-phrase")
SIGNER = Signer(CRED.sha_type, CRED.request_phrase, CRED.response_phrase)
SUCCESS_CARD, CHALLENGE_CARD = "4005550000000001", "4557012345678902"
DECLINE_CARD, PENDING_CARD = "4000000000000002", "4000000000000192"
# One keep-alive client for the module (a client per call pays for a TLS context each time).
HTTP = httpx.Client(timeout=10)


@pytest.fixture(scope="module", autouse=True)
def _close_http() -> Iterator[None]:
    """Close the shared client after the module."""
    yield
    HTTP.close()


class Receiver:
    """Merchants' feedback endpoints on one server: `/{run}/{channel}`, one run per test, so a
    late delivery from an earlier test never lands in a later one's inbox."""

    def __init__(self) -> None:
        self.url = ""
        self.records: list[tuple[str, str, bytes, str]] = []
        self.statuses: dict[str, list[int]] = {}
        self.lock = threading.Lock()
        self.app = Starlette(routes=[Route("/{run}/{channel}", self.handle, methods=["POST"])])

    async def handle(self, request: Request) -> Response:
        """Record the delivery and answer the run's next queued status (200 when none)."""
        body = await request.body()
        run = request.path_params["run"]
        with self.lock:
            self.records.append((run, request.path_params["channel"], body,
                                 request.headers.get("content-type", "")))
            queue = self.statuses.get(run) or []
            status = queue.pop(0) if queue else 200
        return Response(status_code=status)


class Inbox:
    """One test's view of the receiver."""

    def __init__(self, receiver: Inbox) -> None:
        self.receiver = receiver
        self.run = uuid.uuid4().hex[:12]
        self.url = f"{receiver.url}/{self.run}"
        self.statuses: list[int] = receiver.statuses.setdefault(self.run, [])

    @property
    def received(self) -> list[tuple[str, bytes, str]]:
        """(channel, body, content type) of every delivery so far."""
        with self.receiver.lock:
            return [(ch, body, ct) for run, ch, body, ct in self.receiver.records
                    if run == self.run]

    def wait_for(self, count: int, timeout: float = 5.0) -> list[tuple[str, bytes, str]]:
        """At least `count` deliveries (fails after `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.received
            if len(got) >= count:
                return got
            time.sleep(0.01)
        raise AssertionError(f"expected {count} deliveries, got {len(self.received)}")

    def params(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Every JSON delivery's parameters (optionally one channel's)."""
        return [json.loads(body) for ch, body, _ in self.received if channel in (None, ch)]


@pytest.fixture(scope="module")
def receiver_server() -> Iterator[Receiver]:
    """The feedback receiver, served for the module."""
    rec = Receiver()
    server = ServerThread(rec.app)
    server.start()
    rec.url = server.url
    try:
        yield rec
    finally:
        server.stop()


@pytest.fixture
def receiver(receiver_server: Receiver) -> Inbox:
    """This test's inbox."""
    return Inbox(receiver_server)


BASE_CONFIG = ApsEmulatorConfig(credentials=CRED, feedback_time_scale=0.001, seed=7)


@pytest.fixture(scope="module")
def emulator_server() -> Iterator[tuple[str, ApsState]]:
    """One APS emulator for the module (each test resets it and sets its own config)."""
    app = create_aps_app(dataclasses.replace(BASE_CONFIG))
    server = ServerThread(app)
    server.start()
    try:
        yield server.url, app.state.aps
    finally:
        server.stop()


def configure(served: tuple[str, ApsState], inbox: Inbox | None = None,
              **changes: Any) -> tuple[str, ApsState]:
    """Reset the emulator (on its own loop) and give it a fresh config for this test."""
    url, state = served
    assert HTTP.post(f"{url}/_aps/reset").status_code == 204
    if inbox is not None:
        changes.setdefault("direct_feedback_url", f"{inbox.url}/direct")
        changes.setdefault("notification_feedback_url", f"{inbox.url}/notification")
    state.config = dataclasses.replace(BASE_CONFIG, **changes)
    return served


@pytest.fixture
def aps(emulator_server: tuple[str, ApsState], receiver: Inbox) -> tuple[str, ApsState]:
    """The emulator, reset, with both feedback channels pointed at this test's inbox."""
    return configure(emulator_server, receiver)


def base_params(**extra: str) -> dict[str, str]:
    """Access code, merchant identifier, language, plus `extra`."""
    return {"access_code": CRED.access_code, "merchant_identifier": CRED.merchant_identifier,
            "language": "en", **extra}


def call(url: str, params: dict[str, str], *, sign: bool = True) -> dict[str, Any]:
    """One signed S2S call; the answer's response signature is checked before returning it."""
    body = SIGNER.sign_request(params) if sign else params
    resp = HTTP.post(f"{url}/FortAPI/paymentApi", json=body)
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    SIGNER.verify_response(data)
    return data


def token(url: str, number: str = SUCCESS_CARD) -> str:
    """Tokenize a test card through the control API."""
    return tokenize(HTTP, url, number)


def pay(url: str, ref: str, number: str = SUCCESS_CARD, command: str = "PURCHASE",
        amount: str = "10000", **extra: str) -> dict[str, Any]:
    """A server PURCHASE/AUTHORIZATION on a fresh token."""
    return call(url, base_params(command=command, merchant_reference=ref, amount=amount,
                                 currency="AED", customer_email="buyer@example.com",
                                 token_name=token(url, number), **extra))


def until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    """Wait until `condition()` holds (deliveries finish on the emulator's own loop)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.01)


def hidden_fields(html: str) -> dict[str, str]:
    """The hidden inputs of a page's form."""
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html))


# --- S2S API ---------------------------------------------------------------------------------


def test_purchase_succeeds_and_sends_direct_feedback(aps: tuple[str, ApsState],
                                                     receiver: Inbox) -> None:
    """A PURCHASE answers 14000, signed, echoing the request; the same result is fed back."""
    url, _ = aps
    answer = pay(url, "ord_a-1")
    assert (answer["response_code"], answer["status"]) == ("14000", "14")
    assert answer["merchant_reference"] == "ord_a-1" and answer["amount"] == "10000"
    assert re.fullmatch(r"[0-9]{18}", answer["fort_id"])
    assert answer["card_number"] == "400555******0001"
    receiver.wait_for(1)
    (_, body, ctype), = receiver.received
    assert ctype == "application/json"
    fed = json.loads(body)
    SIGNER.verify_response(fed)
    assert fed == answer


def test_check_status_reports_totals(aps: tuple[str, ApsState]) -> None:
    """CHECK_STATUS answers 12000 with the transaction's code and totals; unknown -> 11036."""
    url, _ = aps
    pay(url, "ord_b-1", amount="1250")
    status = call(url, base_params(query_command="CHECK_STATUS", merchant_reference="ord_b-1"))
    assert status["response_code"] == "12000"
    assert (status["transaction_status"], status["transaction_code"]) == ("14", "14000")
    assert (status["authorized_amount"], status["captured_amount"],
            status["refunded_amount"]) == ("1250", "1250", "0")
    missing = call(url, base_params(query_command="CHECK_STATUS", merchant_reference="nope-1"))
    assert missing["response_code"] == "11036"


def test_requests_are_authenticated(aps: tuple[str, ApsState]) -> None:
    """A bad signature (00008), access code (00010) or identifier (00009) is refused, signed."""
    url, state = aps
    params = base_params(query_command="CHECK_STATUS", merchant_reference="x-1")
    forged = {**SIGNER.sign_request(params), "merchant_reference": "y-1"}
    assert call(url, forged, sign=False)["response_code"] == "00008"
    assert call(url, {**params, "access_code": "wrong"})["response_code"] == "00010"
    assert call(url, {**params, "merchant_identifier": "wrong"})["response_code"] == "00009"
    assert [r.signature_valid for r in state.requests] == [False, True, True]


@pytest.mark.parametrize(("params", "code"), [
    ({"command": "PURCHASE", "merchant_reference": "r-1"}, "00001"),
    ({"command": "PURCHASE", "merchant_reference": "r-1", "amount": "10.50", "currency": "AED",
      "customer_email": "a@b.c", "token_name": "t"}, "00044"),
    ({"command": "FLY", "merchant_reference": "r-1"}, "00004"),
    ({"query_command": "GET_TOKENS"}, "00004"),
    ({"query_command": "CHECK_STATUS", "merchant_reference": "r-1", "language": "fr"}, "00002"),
])
def test_invalid_requests(aps: tuple[str, ApsState], params: dict[str, str], code: str) -> None:
    """Missing fields, unknown tokens and commands, bad languages: refused with 00xxx."""
    url, _ = aps
    assert call(url, base_params(**params))["response_code"] == code


def test_malformed_body_is_refused(aps: tuple[str, ApsState]) -> None:
    """A body that is not a JSON object of strings answers 00073, still signed."""
    url, _ = aps
    for content in (b"not json", b"[1]", b'{"a": {"nested": 1}}'):
        resp = HTTP.post(f"{url}/FortAPI/paymentApi", content=content)
        data = resp.json()
        SIGNER.verify_response(data)
        assert data["response_code"] == "00073"


def test_duplicate_reference_refused(aps: tuple[str, ApsState]) -> None:
    """A merchant reference is used once, whatever became of it (00066)."""
    url, _ = aps
    assert pay(url, "ord_c-1", DECLINE_CARD)["response_code"] == "13666"
    assert pay(url, "ord_c-1")["response_code"] == "00066"
    assert pay(url, "ord_c-2")["response_code"] == "14000"


def test_card_behaviours(aps: tuple[str, ApsState]) -> None:
    """Decline, insufficient funds, uncertain (truth: success) and pending test cards."""
    url, _ = aps
    assert pay(url, "d-1", DECLINE_CARD)["response_code"] == "13666"
    assert pay(url, "d-2", "4000000000009995", command="AUTHORIZATION")[
        "response_code"] == "03029"
    assert pay(url, "d-3", "4000000000000150")["response_code"] == "15777"
    truth = call(url, base_params(query_command="CHECK_STATUS", merchant_reference="d-3"))
    assert truth["transaction_code"] == "14000"
    assert pay(url, "d-4", PENDING_CARD)["response_code"] == "19000"


def test_three_d_secure_from_server_purchase(aps: tuple[str, ApsState],
                                             receiver: Inbox) -> None:
    """20064 with a 3ds_url; the challenge page approves; the result is fed back and returned."""
    url, _ = aps
    answer = pay(url, "ord_d-1", CHALLENGE_CARD, return_url=f"{url}/merchant/return")
    assert answer["response_code"] == "20064"
    receiver.wait_for(1)
    three_ds = answer["3ds_url"]
    assert three_ds.startswith(f"{url}/FortAPI/3ds/{answer['fort_id']}?key=")
    page = HTTP.get(three_ds)
    assert page.status_code == 200 and 'id="approve"' in page.text
    assert "script-src 'nonce-" in page.headers["content-security-policy"]
    forged = HTTP.post(three_ds.split("?")[0], data={"key": "guess", "action": "approve"})
    assert forged.status_code == 403
    done = HTTP.post(three_ds.split("?")[0], data={**hidden_fields(page.text),
                                                    "action": "approve"})
    assert done.status_code == 200 and f'action="{url}/merchant/return"' in done.text
    returned = hidden_fields(done.text)
    SIGNER.verify_response(returned)
    assert returned["response_code"] == "14000"
    receiver.wait_for(2)
    assert [p["response_code"] for p in receiver.params("direct")] == ["20064", "14000"]
    assert HTTP.get(three_ds).status_code == 410


def test_three_d_secure_failed_by_control_api(aps: tuple[str, ApsState]) -> None:
    """The control API answers the challenge as the buyer: a failed check is 13030."""
    url, _ = aps
    pay(url, "ord_e-1", CHALLENGE_CARD)
    resp = HTTP.post(f"{url}/_aps/transactions/ord_e-1/3ds", json={"action": "fail"})
    assert resp.status_code == 200
    assert resp.json()["return_params"]["response_code"] == "13030"
    again = HTTP.post(f"{url}/_aps/transactions/ord_e-1/3ds", json={"action": "approve"})
    assert again.status_code == 409


def test_capture_void_refund(aps: tuple[str, ApsState], receiver: Inbox) -> None:
    """Partial capture, two equal partial refunds, over-refund and void refusals, duplicate
    maintenance references; each processed operation is a notification."""
    url, state = aps
    auth = pay(url, "ord_f-1", command="AUTHORIZATION", amount="1000")
    assert auth["response_code"] == "02000"
    fort = auth["fort_id"]

    def op(command: str, ref: str, amount: str | None = "400") -> str:
        params = base_params(command=command, merchant_reference="ord_f-1", fort_id=fort)
        if command == "REFUND":  # APS takes a maintenance_reference on REFUND only
            params["maintenance_reference"] = ref
        if amount is not None:
            params.update(amount=amount, currency="AED")
        code: str = call(url, params)["response_code"]
        return code

    assert op("CAPTURE", "cap-1", "1200") == "05042"
    assert op("CAPTURE", "cap-2", "800") == "04000"
    assert op("VOID_AUTHORIZATION", "void-1", None) == "09034"
    assert op("REFUND", "ref-1") == "06000"
    assert op("REFUND", "ref-2") == "06000"  # two equal partial refunds
    assert op("REFUND", "ref-3", "1") == "07048"  # 800 captured, 800 refunded
    assert op("REFUND", "ref-1") == "00066"
    assert op("REFUND", "ref-4", "1") == "07048"
    tx = state.transactions["ord_f-1"]
    assert (tx.captured, tx.refunded, tx.status) == (800, 800, "06")
    receiver.wait_for(8)
    codes = sorted(p["response_code"] for p in receiver.params("notification"))
    # Each feedback is sent on its own, so arrival order is not the order of the operations.
    assert codes == ["04000", "05042", "06000", "06000", "07048", "07048", "09034"]
    assert {p["maintenance_reference"] for p in receiver.params("notification")
            if p["response_code"] == "06000"} == {"ref-1", "ref-2"}


def test_void_authorization(aps: tuple[str, ApsState]) -> None:
    """An uncaptured authorization voids once; a capture after it is refused."""
    url, _ = aps
    fort = pay(url, "ord_g-1", command="AUTHORIZATION")["fort_id"]
    common = base_params(merchant_reference="ord_g-1", fort_id=fort)
    assert call(url, {**common, "command": "VOID_AUTHORIZATION"})["response_code"] == "08000"
    assert call(url, {**common, "command": "CAPTURE",
                      "amount": "1", "currency": "AED"})["response_code"] == "05034"


def test_maintenance_reference_only_on_refund(aps: tuple[str, ApsState],
                                              receiver: Inbox) -> None:
    """CAPTURE and VOID_AUTHORIZATION carrying maintenance_reference are refused as an invalid
    extra parameter (00027) and change nothing; REFUND takes it."""
    url, state = aps
    fort = pay(url, "ord_h-1", command="AUTHORIZATION", amount="1000")["fort_id"]
    common = base_params(merchant_reference="ord_h-1", fort_id=fort)
    capture = {**common, "command": "CAPTURE", "amount": "1000", "currency": "AED"}
    for params in ({**capture, "maintenance_reference": "c1"},
                   {**common, "command": "VOID_AUTHORIZATION", "maintenance_reference": "v1"}):
        answer = call(url, params)
        assert (answer["response_code"], answer["status"]) == ("00027", "00")
        assert answer["response_message"] == "Invalid extra parameters"
    tx = state.transactions["ord_h-1"]
    assert (tx.captured, tx.voided, tx.operations) == (0, False, [])
    assert call(url, capture)["response_code"] == "04000"
    refund = {**common, "command": "REFUND", "amount": "300", "currency": "AED",
              "maintenance_reference": "r1"}
    assert call(url, refund)["response_code"] == "06000"
    assert [o.maintenance_reference for o in tx.operations] == [None, "r1"]
    assert call(url, {**common, "command": "REFUND", "maintenance_reference": "r1",
                      "amount": "1", "currency": "USD"})["response_code"] == "00013"
    other = call(url, {**common, "fort_id": "1" * 18, "command": "VOID_AUTHORIZATION"})
    assert other["response_code"] == "00036"


# --- hosted page and tokenization -------------------------------------------------------------


def page_form(url: str, **fields: str) -> dict[str, str]:
    """A signed hosted-page form."""
    return SIGNER.sign_request(base_params(return_url=f"{url}/merchant/return", **fields))


def test_hosted_payment_page(aps: tuple[str, ApsState], receiver: Inbox) -> None:
    """Redirection: the card page, a card refused inline, then success -> return + feedback."""
    url, _ = aps
    form = page_form(url, command="PURCHASE", merchant_reference="ord_h-1", amount="1250",
                     currency="KWD", customer_email="b@example.com")
    page = HTTP.post(f"{url}/FortAPI/paymentPage", data=form)
    assert page.status_code == 200 and "1.250 KWD" in page.text
    session = hidden_fields(page.text)
    card = {"expiry_date": "3512", "card_security_code": "123", "card_holder_name": "A B"}
    bad = HTTP.post(f"{url}/FortAPI/paymentPage/card",
                     data={**session, **card, "card_number": "4111111111111111",
                           "action": "pay"})
    assert bad.status_code == 200 and 'id="card-error"' in bad.text
    done = HTTP.post(f"{url}/FortAPI/paymentPage/card",
                      data={**session, **card, "card_number": SUCCESS_CARD, "action": "pay"})
    returned = hidden_fields(done.text)
    SIGNER.verify_response(returned)
    assert (returned["response_code"], returned["amount"]) == ("14000", "1250")
    assert "card_security_code" not in returned
    receiver.wait_for(1)
    assert receiver.params("direct")[0] == returned
    used = HTTP.post(f"{url}/FortAPI/paymentPage/card",
                      data={**session, **card, "card_number": SUCCESS_CARD, "action": "pay"})
    assert used.status_code == 410


def test_hosted_page_challenge_and_cancel(aps: tuple[str, ApsState]) -> None:
    """The challenge card shows 3-D Secure inside the page flow; cancel returns 00072."""
    url, _ = aps
    card = {"expiry_date": "3512", "card_security_code": "123", "action": "pay"}
    page = HTTP.post(f"{url}/FortAPI/paymentPage", data=page_form(
        url, command="AUTHORIZATION", merchant_reference="ord_i-1", amount="500",
        currency="AED", customer_email="c@example.com"))
    challenge = HTTP.post(f"{url}/FortAPI/paymentPage/card",
                           data={**hidden_fields(page.text), **card,
                                 "card_number": CHALLENGE_CARD})
    assert 'id="approve"' in challenge.text
    action = re.search(r'action="([^"]+)"', challenge.text)
    assert action is not None
    done = HTTP.post(action.group(1), data={**hidden_fields(challenge.text),
                                             "action": "approve"})
    assert hidden_fields(done.text)["response_code"] == "02000"
    page = HTTP.post(f"{url}/FortAPI/paymentPage", data=page_form(
        url, command="PURCHASE", merchant_reference="ord_i-2", amount="500", currency="AED",
        customer_email="c@example.com"))
    cancelled = HTTP.post(f"{url}/FortAPI/paymentPage/card",
                           data={**hidden_fields(page.text), "action": "cancel"})
    assert hidden_fields(cancelled.text)["response_code"] == "00072"


def test_hosted_page_refusals(aps: tuple[str, ApsState]) -> None:
    """A bad signature returns 00008 to return_url; no return_url shows an error page."""
    url, _ = aps
    form = page_form(url, command="PURCHASE", merchant_reference="ord_j-1", amount="1",
                     currency="AED", customer_email="d@example.com")
    refused = HTTP.post(f"{url}/FortAPI/paymentPage", data={**form, "amount": "2"})
    assert hidden_fields(refused.text)["response_code"] == "00008"
    no_return = {k: v for k, v in form.items() if k != "return_url"}
    page = HTTP.post(f"{url}/FortAPI/paymentPage", data=SIGNER.sign_request(no_return))
    assert page.status_code == 400 and "00037" in page.text
    assert HTTP.post(f"{url}/FortAPI/paymentPage", json=form).status_code == 400


def test_tokenization_form(aps: tuple[str, ApsState]) -> None:
    """TOKENIZATION: card fields posted with the signed form give a token at once (18000)."""
    url, state = aps
    form = page_form(url, service_command="TOKENIZATION", merchant_reference="tok-1")
    resp = HTTP.post(f"{url}/FortAPI/paymentPage", data={
        **form, "card_number": CHALLENGE_CARD, "expiry_date": "3512",
        "card_security_code": "123", "card_holder_name": "Test Buyer"})
    returned = hidden_fields(resp.text)
    SIGNER.verify_response(returned)
    assert returned["response_code"] == "18000" and returned["card_bin"] == "455701"
    assert returned["card_number"] == "455701******8902"
    assert returned["token_name"] in state.tokens
    expired = HTTP.post(f"{url}/FortAPI/paymentPage", data={
        **form, "card_number": SUCCESS_CARD, "expiry_date": "2001"})
    assert hidden_fields(expired.text)["response_code"] == "17012"


def test_return_by_get(emulator_server: tuple[str, ApsState], receiver: Inbox) -> None:
    """With return_method GET the buyer is redirected (303) with the signed query."""
    url, _ = configure(emulator_server, receiver, return_method="GET")
    form = page_form(url, service_command="TOKENIZATION", merchant_reference="tok-2")
    page = HTTP.post(f"{url}/FortAPI/paymentPage", data=form)
    resp = HTTP.post(f"{url}/FortAPI/paymentPage/card", data={
        **hidden_fields(page.text), "card_number": SUCCESS_CARD, "expiry_date": "3512",
        "card_security_code": "123", "action": "pay"})
    assert resp.status_code == 303
    location = urlsplit(resp.headers["location"])
    assert location.path == "/merchant/return"
    returned = dict(parse_qsl(location.query, keep_blank_values=True))
    SIGNER.verify_response(returned)
    assert returned["response_code"] == "18000"


# --- feedback delivery, faults, control ------------------------------------------------------


def test_feedback_retried_until_received(aps: tuple[str, ApsState],
                                         receiver: Inbox) -> None:
    """Non-2xx answers are retried with the same bytes; a 302 counts as received."""
    url, state = aps
    receiver.statuses.extend([500, 404, 302])
    pay(url, "ord_k-1")
    received = receiver.wait_for(3)
    assert len({body for _, body, _ in received}) == 1
    (fb,) = state.deliverer.feedback
    until(lambda: fb.status != "pending")
    assert (fb.status, fb.attempts, fb.last_status) == ("delivered", 3, 302)
    assert len(receiver.received) == 3


def test_feedback_gives_up_after_the_schedule(emulator_server: tuple[str, ApsState],
                                              receiver: Inbox) -> None:
    """A URL that never accepts gets 1 + len(schedule) attempts, then the feedback fails."""
    url, state = configure(emulator_server, receiver, feedback_retry_delays=(1.0, 2.0))
    receiver.statuses.extend([503] * 10)
    pay(url, "ord_l-1")
    receiver.wait_for(3)
    until(lambda: state.deliverer.feedback[0].status != "pending")
    assert state.deliverer.feedback[0].status == "failed"
    assert len(receiver.received) == 3


def test_form_encoded_feedback(emulator_server: tuple[str, ApsState], receiver: Inbox) -> None:
    """feedback_format="form" posts form-encoded parameters (same signature)."""
    url, _ = configure(emulator_server, receiver, feedback_format="form")
    answer = pay(url, "ord_m-1")
    (_, body, ctype), = receiver.wait_for(1)
    assert ctype == "application/x-www-form-urlencoded"
    assert dict(parse_qsl(body.decode(), keep_blank_values=True)) == answer


def fault(url: str, **rule: Any) -> dict[str, Any]:
    """Add a fault rule through the control API."""
    resp = HTTP.post(f"{url}/_aps/faults", json=rule)
    assert resp.status_code == 201, resp.text
    data: dict[str, Any] = resp.json()
    return data


def test_http_fault_rules(aps: tuple[str, ApsState]) -> None:
    """An error rule answers its status (then lapses); the control API is never faulted."""
    url, state = aps
    fault(url, action="error", status=503, path="^/FortAPI/paymentApi$", count=1)
    fault(url, action="error", status=500, path=".*", method="GET", count=5)
    resp = HTTP.post(f"{url}/FortAPI/paymentApi", json={})
    assert resp.status_code == 503
    assert HTTP.get(f"{url}/_aps/faults").status_code == 200
    assert pay(url, "ord_n-1")["response_code"] == "14000"
    assert [r["fired"] for r in HTTP.get(f"{url}/_aps/faults").json()["rules"]] == [1, 0]
    assert HTTP.delete(f"{url}/_aps/faults").status_code == 204
    assert state.faults.rules == []
    bad = HTTP.post(f"{url}/_aps/faults", json={"action": "explode"})
    assert bad.status_code == 400


def test_feedback_faults(aps: tuple[str, ApsState], receiver: Inbox) -> None:
    """Drop loses a notification for good; duplicate sends the same bytes twice."""
    url, state = aps
    fault(url, action="drop", event_type="^notification:", count=1)
    fault(url, action="duplicate", event_type="^direct:PURCHASE$", count=1)
    fort = pay(url, "ord_o-1")["fort_id"]
    call(url, base_params(command="REFUND", merchant_reference="ord_o-1", fort_id=fort,
                          maintenance_reference="r1", amount="100", currency="AED"))
    received = receiver.wait_for(2)
    until(lambda: all(f.status != "pending" for f in state.deliverer.feedback))
    assert [ch for ch, _, _ in receiver.received] == ["direct", "direct"]
    assert received[0][1] == received[1][1]
    drops = [a for a in state.deliverer.attempts if a.fault == "drop"]
    assert len(drops) == 1 and drops[0].channel == "notification"
    log = HTTP.get(f"{url}/_aps/deliveries", params={"channel": "notification"}).json()
    assert [f["status"] for f in log["feedback"]] == ["dropped"]


def test_feedback_delay_fault(aps: tuple[str, ApsState], receiver: Inbox) -> None:
    """A delay rule holds the feedback `seconds` before it goes out."""
    url, state = aps
    fault(url, action="delay", seconds=0.3, event_type="^direct:", count=1)
    started = time.monotonic()
    pay(url, "ord_s-1")
    time.sleep(0.1)
    assert receiver.received == []
    receiver.wait_for(1)
    assert time.monotonic() - started >= 0.3
    until(lambda: state.deliverer.attempts)  # logged once its answer is back
    assert [a.fault for a in state.deliverer.attempts] == ["delay"]


def test_control_resolve_refund_resend(aps: tuple[str, ApsState], receiver: Inbox) -> None:
    """Pending resolved offline, a back-office refund, and a byte-for-byte resend: all notify."""
    url, _ = aps
    pay(url, "ord_p-1", PENDING_CARD)
    receiver.wait_for(1)
    resolved = HTTP.post(f"{url}/_aps/transactions/ord_p-1/resolve", json={"result": "success"})
    assert resolved.json()["status"] == "14"
    refund = HTTP.post(f"{url}/_aps/transactions/ord_p-1/refund", json={"amount": 300})
    assert refund.json()["response_code"] == "06000"
    resent = HTTP.post(f"{url}/_aps/transactions/ord_p-1/feedback", json={})
    assert resent.status_code == 202
    received = receiver.wait_for(4)
    notes = [json.loads(b) for ch, b, _ in received if ch == "notification"]
    assert sorted(n["response_code"] for n in notes) == ["06000", "06000", "14000"]
    refunds = [b for ch, b, _ in received if ch == "notification" and b"06000" in b]
    assert len(refunds) == 2 and refunds[0] == refunds[1]  # the resend repeats the bytes
    for note in notes:
        SIGNER.verify_response(note)
    tx = HTTP.get(f"{url}/_aps/transactions/ord_p-1").json()
    assert (tx["refunded_amount"], tx["operations"][0]["command"]) == (300, "REFUND")
    assert HTTP.post(f"{url}/_aps/transactions/ord_p-1/resolve",
                      json={"result": "success"}).status_code == 409
    assert HTTP.get(f"{url}/_aps/transactions/none").status_code == 404


def test_control_index_hides_phrases_and_reset(aps: tuple[str, ApsState]) -> None:
    """The index and request log show no phrase or access code; reset forgets everything."""
    url, state = aps
    pay(url, "ord_q-1")
    index = HTTP.get(f"{url}/_aps/").text
    assert CRED.merchant_identifier in index
    for secret in (CRED.request_phrase, CRED.response_phrase, CRED.access_code):
        assert secret not in index and secret not in repr(state.config)
    requests = HTTP.get(f"{url}/_aps/requests").json()["requests"]
    assert requests[0]["command"] == "PURCHASE"
    assert "signature" not in requests[0]["params"]
    assert "access_code" not in requests[0]["params"]
    assert HTTP.post(f"{url}/_aps/reset").status_code == 204
    assert state.transactions == {} and state.tokens == {}


def test_mounted_under_a_prefix(receiver: Inbox) -> None:
    """Mounted at /aps as the lead mounts it (the parent's lifespan stops the deliverer): links
    carry the prefix, faults match routed paths, and feedback still goes out."""
    cfg = dataclasses.replace(BASE_CONFIG, direct_feedback_url=f"{receiver.url}/direct")
    aps_app = create_aps_app(cfg)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await aps_app.state.aps.deliverer.stop()

    server = ServerThread(Starlette(routes=[Mount("/aps", app=aps_app)], lifespan=lifespan))
    server.start()
    try:
        url = f"{server.url}/aps"
        answer = pay(url, "ord_r-1", CHALLENGE_CARD)
        assert answer["3ds_url"].startswith(f"{url}/FortAPI/3ds/")
        assert HTTP.get(answer["3ds_url"]).status_code == 200
        fault(url, action="error", status=502, path="^/FortAPI/paymentApi$", count=1)
        assert HTTP.post(f"{url}/FortAPI/paymentApi", json={}).status_code == 502
        receiver.wait_for(1)
    finally:
        server.stop()
