"""ApsClient over real HTTP against the APS emulator: payments, 3-D Secure, maintenance,
duplicate references resolved by CHECK_STATUS, retries, signatures, forms and feedback."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from apskit import tokenize
from paywire.domain.errors import OverRefund, ProviderError, SignatureError, ValidationError
from paywire.domain.money import Money
from paywire.domain.order import OrderStatus
from paywire.emulator.aps import ApsCredentials, ApsEmulatorConfig, create_aps_app
from paywire.emulator.aps.signing import signed
from paywire.emulator.aps.state import ApsState
from paywire.providers.aps.amounts import merchant_reference
from paywire.providers.aps.client import ApsClient, ResponseSignatureError
from paywire.providers.aps.forms import Merchant, parse_body
from paywire.providers.aps.mapping import Outcome
from paywire.providers.aps.signature import Signer, delivery_key
from paywire.testing import ServerThread, free_port

S, Out = OrderStatus, Outcome
CRED = ApsCredentials(access_code="ClientAccessCode0001", merchant_identifier="CliMerch",
                      request_phrase="client-req-phrase", response_phrase="client-resp-phrase",
                      sha_type="SHA-512")
SUCCESS_CARD, CHALLENGE_CARD = "4005550000000001", "4557012345678902"
DECLINE_CARD, UNCERTAIN_CARD, PENDING_CARD = ("4000000000000002", "4000000000000150",
                                              "4000000000000192")
HTTP = httpx.Client(timeout=10)  # one keep-alive client for the control API
BASE_CONFIG = ApsEmulatorConfig(credentials=CRED, feedback_time_scale=0.001, seed=11)


@pytest.fixture(scope="module", autouse=True)
def _close_http() -> Iterator[None]:
    """Close the shared control client after the module."""
    yield
    HTTP.close()


async def _ok(request: Request) -> Response:
    return Response(status_code=200)


@pytest.fixture(scope="module")
def sink() -> Iterator[str]:
    """A feedback endpoint that accepts everything (the bodies are read from the emulator)."""
    server = ServerThread(Starlette(routes=[Route("/{path:path}", _ok, methods=["POST"])]))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def served(sink: str) -> Iterator[tuple[str, ApsState]]:
    """One APS emulator for the module."""
    app = create_aps_app(dataclasses.replace(BASE_CONFIG))
    server = ServerThread(app)
    server.start()
    try:
        yield server.url, app.state.aps
    finally:
        server.stop()


@pytest.fixture
def emu(served: tuple[str, ApsState], sink: str) -> tuple[str, ApsState]:
    """The emulator, reset, feeding back to the sink."""
    url, state = served
    assert HTTP.post(f"{url}/_aps/reset").status_code == 204
    state.config = dataclasses.replace(BASE_CONFIG, direct_feedback_url=f"{sink}/direct",
                                       notification_feedback_url=f"{sink}/notification")
    return served


class Sleeps(list[float]):
    """A `sleep` that records each delay instead of waiting."""

    async def __call__(self, delay: float) -> None:
        self.append(delay)


def make_client(url: str, sleeps: Sleeps, *, request_phrase: str = CRED.request_phrase,
                response_phrase: str = CRED.response_phrase, **kw: Any) -> ApsClient:
    """A client for the emulator with jitter removed and sleeps recorded."""
    merchant = Merchant(CRED.access_code, CRED.merchant_identifier,
                        Signer(CRED.sha_type, request_phrase, response_phrase))
    return ApsClient(f"{url}/FortAPI/paymentApi", merchant, page_url=f"{url}/FortAPI/paymentPage",
                     jitter=lambda d: d, sleep=sleeps, **kw)


@pytest.fixture
def sleeps() -> Sleeps:
    """Recorded retry delays."""
    return Sleeps()


@pytest.fixture
async def client(emu: tuple[str, ApsState], sleeps: Sleeps) -> AsyncIterator[ApsClient]:
    """An ApsClient on the emulator."""
    async with make_client(emu[0], sleeps) as c:
        yield c


def token(url: str, number: str = SUCCESS_CARD) -> str:
    """Tokenize a test card through the control API."""
    return tokenize(HTTP, url, number)


def fault(url: str, **rule: Any) -> dict[str, Any]:
    """Add a fault rule through the control API."""
    resp = HTTP.post(f"{url}/_aps/faults", json=rule)
    assert resp.status_code == 201, resp.text
    data: dict[str, Any] = resp.json()
    return data


def commands(state: ApsState) -> list[tuple[str, str]]:
    """(command, response code) of every S2S request the emulator answered."""
    return [(r.command, r.response_code) for r in state.requests]


KWD = Money(1250, "KWD")  # 1.250 KWD: three decimals


async def purchase(client: ApsClient, url: str, ref: str, number: str = SUCCESS_CARD,
                   amount: Money = KWD, **kw: str) -> Any:
    """A PURCHASE on a fresh token."""
    return await client.purchase(merchant_reference=ref, amount=amount,
                                 token_name=token(url, number),
                                 customer_email="buyer@example.com", **kw)


# --- payments ---------------------------------------------------------------------------------


async def test_purchase_succeeds_and_its_feedback_verifies(client: ApsClient,
                                                           emu: tuple[str, ApsState]) -> None:
    """PURCHASE -> SUCCESS/COMPLETED in KWD minor units; the direct feedback verifies to the
    same fact, and its delivery key is the hash of its signed parameters."""
    url, state = emu
    result = await purchase(client, url, merchant_reference("ord_a", 1))
    assert (result.outcome, result.target_status()) == (Out.SUCCESS, S.COMPLETED)
    assert result.amount == KWD and result.response_code == "14000"
    (fb,) = state.deliverer.feedback
    params = parse_body(fb.body, fb.content_type)
    feedback = client.verify_feedback(params)
    assert feedback.result.fact_key() == result.fact_key() == (
        f"{result.fort_id}:PURCHASE:1250:ord_a-1")
    assert feedback.delivery_key == delivery_key(params)


async def test_three_d_secure_then_check_status(client: ApsClient,
                                                emu: tuple[str, ApsState]) -> None:
    """20064 is ON_HOLD with a 3ds_url (not a decline, no order change); once the buyer
    approves, CHECK_STATUS and the direct feedback both say COMPLETED."""
    url, state = emu
    ref = merchant_reference("ord_b", 1)
    result = await purchase(client, url, ref, CHALLENGE_CARD, return_url=f"{url}/shop/return")
    assert (result.outcome, result.target_status()) == (Out.ON_HOLD, None)
    assert result.three_ds_url is not None
    page = HTTP.get(result.three_ds_url)
    key = re.search(r'name="key" value="([^"]+)"', page.text)
    assert key is not None
    HTTP.post(result.three_ds_url.split("?")[0], data={"key": key.group(1), "action": "approve"})
    truth = await client.check_status(ref, currency="KWD")
    assert truth.found and truth.order_status() is S.COMPLETED
    final = client.verify_feedback(parse_body(state.deliverer.feedback[-1].body,
                                              "application/json"))
    assert (final.result.outcome, final.result.target_status()) == (Out.SUCCESS, S.COMPLETED)


async def test_declined_then_second_attempt(client: ApsClient,
                                            emu: tuple[str, ApsState]) -> None:
    """A decline is DENIED for that attempt; attempt 2 (a new reference) can still pay."""
    url, _ = emu
    first = await purchase(client, url, merchant_reference("ord_c", 1), DECLINE_CARD)
    assert (first.outcome, first.classification.kind, first.target_status()) == (
        Out.DECLINED, "declined", S.DENIED)
    second = await purchase(client, url, merchant_reference("ord_c", 2))
    assert second.outcome is Out.SUCCESS


async def test_uncertain_is_resolved_by_check_status(client: ApsClient,
                                                     emu: tuple[str, ApsState]) -> None:
    """15777 is UNCERTAIN (never a decline, nothing applied); CHECK_STATUS gives the truth."""
    url, _ = emu
    ref = merchant_reference("ord_d", 1)
    result = await purchase(client, url, ref, UNCERTAIN_CARD)
    assert (result.outcome, result.target_status()) == (Out.UNCERTAIN, None)
    assert (await client.check_status(ref, currency="KWD")).order_status() is S.COMPLETED


async def test_pending_then_notification(client: ApsClient, emu: tuple[str, ApsState]) -> None:
    """19 is PENDING; the offline resolution arrives as a notification that verifies."""
    url, state = emu
    ref = merchant_reference("ord_e", 1)
    result = await purchase(client, url, ref, PENDING_CARD)
    assert (result.outcome, result.target_status()) == (Out.PENDING, S.PENDING)
    HTTP.post(f"{url}/_aps/transactions/{ref}/resolve", json={"result": "success"})
    note = state.deliverer.feedback[-1]
    assert note.channel == "notification"
    verified = client.verify_feedback(parse_body(note.body, note.content_type))
    assert verified.result.target_status() is S.COMPLETED


async def test_duplicate_reference_asks_check_status(client: ApsClient,
                                                     emu: tuple[str, ApsState]) -> None:
    """A repeated PURCHASE under a used reference is answered by CHECK_STATUS's truth: the
    earlier success (or the earlier decline), never a decline of its own."""
    url, state = emu
    ref = merchant_reference("ord_f", 1)
    await purchase(client, url, ref)
    again = await purchase(client, url, ref)
    assert (again.outcome, again.target_status()) == (Out.SUCCESS, S.COMPLETED)
    assert again.truth is not None and again.truth.transaction_code == "14000"
    assert commands(state) == [("PURCHASE", "14000"), ("PURCHASE", "00066"),
                               ("CHECK_STATUS", "12000")]
    declined_ref = merchant_reference("ord_f", 2)
    await purchase(client, url, declined_ref, DECLINE_CARD)
    repeat = await purchase(client, url, declined_ref)
    assert (repeat.outcome, repeat.response_code) == (Out.DECLINED, "13666")


# --- maintenance -----------------------------------------------------------------------------


async def test_authorize_capture_refunds(client: ApsClient, emu: tuple[str, ApsState]) -> None:
    """AUTHORIZATION, partial CAPTURE, two equal partial refunds (two facts), over-refund
    refused before the call, and APS's own over-refund refusal mapped."""
    url, state = emu
    ref = merchant_reference("ord_g", 1)
    amount = Money(1000, "AED")
    auth = await client.authorize(merchant_reference=ref, amount=amount,
                                  token_name=token(url), customer_email="b@example.com")
    assert (auth.outcome, auth.target_status()) == (Out.SUCCESS, S.AUTHORIZED)
    fort = auth.fort_id
    assert fort is not None
    cap = await client.capture(merchant_reference=ref, fort_id=fort, amount=Money(600, "AED"))
    assert (cap.outcome, cap.target_status()) == (Out.SUCCESS, S.COMPLETED)
    assert "maintenance_reference" not in state.requests[-1].params
    refunds = [await client.refund(merchant_reference=ref, fort_id=fort,
                                   maintenance_reference=f"ref-{i}", amount=Money(200, "AED"),
                                   refundable=Money(600 - 200 * i, "AED")) for i in (0, 1)]
    assert [r.outcome for r in refunds] == [Out.SUCCESS, Out.SUCCESS]
    assert refunds[0].fact_key() != refunds[1].fact_key()
    sent = len(state.requests)
    with pytest.raises(OverRefund):
        await client.refund(merchant_reference=ref, fort_id=fort, maintenance_reference="ref-2",
                            amount=Money(300, "AED"), refundable=Money(200, "AED"))
    assert len(state.requests) == sent  # refused before APS was called
    refused = await client.refund(merchant_reference=ref, fort_id=fort,
                                  maintenance_reference="ref-3", amount=Money(500, "AED"),
                                  refundable=Money(600, "AED"))  # our records are wrong
    assert (refused.outcome, refused.classification.kind) == (Out.DECLINED, "over_refund")
    truth = await client.check_status(ref, currency="AED")
    assert (truth.captured, truth.refunded) == (Money(600, "AED"), Money(400, "AED"))
    assert truth.order_status() is S.PARTIALLY_REFUNDED


async def test_void_and_duplicate_maintenance_reference(client: ApsClient,
                                                        emu: tuple[str, ApsState]) -> None:
    """VOID_AUTHORIZATION -> VOIDED without a maintenance_reference (APS takes one on REFUND
    only); a refund repeated under its reference is resolved by CHECK_STATUS, not refused."""
    url, state = emu
    ref = merchant_reference("ord_h", 1)
    auth = await client.authorize(merchant_reference=ref, amount=Money(700, "AED"),
                                  token_name=token(url), customer_email="b@example.com")
    assert auth.fort_id is not None
    void = await client.void_authorization(merchant_reference=ref, fort_id=auth.fort_id,
                                           currency="AED")
    assert (void.outcome, void.target_status()) == (Out.SUCCESS, S.VOIDED)
    assert "maintenance_reference" not in state.requests[-1].params
    pay_ref = merchant_reference("ord_h", 2)
    paid = await purchase(client, url, pay_ref, amount=Money(900, "AED"))
    assert paid.fort_id is not None
    kw: dict[str, Any] = {"merchant_reference": pay_ref, "fort_id": paid.fort_id,
                          "maintenance_reference": "r-1", "amount": Money(900, "AED"),
                          "refundable": Money(900, "AED")}
    assert (await client.refund(**kw)).outcome is Out.SUCCESS
    repeated = await client.refund(**kw)
    assert (repeated.outcome, repeated.target_status()) == (Out.SUCCESS, S.REFUNDED)


# --- signatures and errors ----------------------------------------------------------------------


async def test_bad_response_signature(emu: tuple[str, ApsState], sleeps: Sleeps) -> None:
    """A wrong response phrase: every answer fails verification with kind bad_signature,
    flagged as possibly done for a mutating call; no phrase in the error."""
    url, _ = emu
    async with make_client(url, sleeps, response_phrase="not-the-phrase") as bad:
        with pytest.raises(ResponseSignatureError) as err:
            await purchase(bad, url, merchant_reference("ord_i", 1))
        assert err.value.kind == "bad_signature" and err.value.details["may_have_happened"]
        with pytest.raises(ResponseSignatureError):
            await bad.check_status(merchant_reference("ord_i", 1), currency="KWD")
    text = f"{err.value} {err.value.details}"
    assert "not-the-phrase" not in text and CRED.response_phrase not in text


async def test_wrong_request_phrase_is_an_auth_error(emu: tuple[str, ApsState],
                                                     sleeps: Sleeps) -> None:
    """APS refuses a request signed with the wrong phrase (00008): an ERROR of kind auth."""
    url, _ = emu
    async with make_client(url, sleeps, request_phrase="stale-phrase") as stale:
        result = await purchase(stale, url, merchant_reference("ord_j", 1))
    assert (result.outcome, result.classification.kind, result.response_code) == (
        Out.ERROR, "auth", "00008")
    assert result.classification.error().kind == "auth"


# --- retries --------------------------------------------------------------------------------------


async def test_check_status_retries_5xx(client: ApsClient, emu: tuple[str, ApsState],
                                        sleeps: Sleeps) -> None:
    """A query is retried on 5xx with backoff, then answers."""
    url, _ = emu
    ref = merchant_reference("ord_k", 1)
    await purchase(client, url, ref)
    rule = fault(url, action="error", status=503, path="^/FortAPI/paymentApi$", count=2)
    assert (await client.check_status(ref, currency="KWD")).order_status() is S.COMPLETED
    assert sleeps == [0.5, 1.0]
    assert HTTP.get(f"{url}/_aps/faults").json()["rules"][0]["fired"] == 2 == rule["count"]


async def test_check_status_gives_up(client: ApsClient, emu: tuple[str, ApsState],
                                     sleeps: Sleeps) -> None:
    """Bounded: after max_attempts a transient, retryable ProviderError."""
    url, _ = emu
    fault(url, action="error", status=500, path="^/FortAPI/paymentApi$")
    with pytest.raises(ProviderError) as err:
        await client.check_status("ord_l-1", currency="KWD")
    assert (err.value.kind, err.value.retryable, err.value.status) == ("transient", True, 500)
    assert sleeps == [0.5, 1.0, 2.0]


async def test_mutating_call_is_not_resent_after_5xx(client: ApsClient,
                                                     emu: tuple[str, ApsState],
                                                     sleeps: Sleeps) -> None:
    """A PURCHASE that got a 5xx may have happened: UNCERTAIN, no blind resend."""
    url, _ = emu
    fault(url, action="error", status=502, path="^/FortAPI/paymentApi$", count=1)
    result = await purchase(client, url, merchant_reference("ord_m", 1))
    assert (result.outcome, result.target_status()) == (Out.UNCERTAIN, None)
    assert "HTTP 502" in result.classification.reason and sleeps == []


async def test_timeout_is_uncertain_and_check_status_tells(emu: tuple[str, ApsState],
                                                          sleeps: Sleeps) -> None:
    """A PURCHASE whose answer times out is UNCERTAIN; it did happen, as CHECK_STATUS says."""
    url, state = emu
    fault(url, action="latency", seconds=0.6, path="^/FortAPI/paymentApi$", count=1)
    ref = merchant_reference("ord_n", 1)
    async with make_client(url, sleeps, timeout=0.2) as impatient:
        result = await purchase(impatient, url, ref)
        assert result.outcome is Out.UNCERTAIN and "Timeout" in result.classification.reason
        deadline = time.monotonic() + 5
        while ref not in state.transactions and time.monotonic() < deadline:
            time.sleep(0.02)
    async with make_client(url, sleeps) as patient:
        assert (await patient.check_status(ref, currency="KWD")).order_status() is S.COMPLETED


async def test_connection_refused_is_retried_then_transient(sleeps: Sleeps) -> None:
    """Nothing listening: the call never left, so it is retried, then a transient error."""
    merchant = Merchant(CRED.access_code, CRED.merchant_identifier,
                        Signer(CRED.sha_type, CRED.request_phrase, CRED.response_phrase))
    async with ApsClient(f"http://127.0.0.1:{free_port()}/FortAPI/paymentApi", merchant,
                         jitter=lambda d: d, sleep=sleeps, max_attempts=3) as c:
        with pytest.raises(ProviderError) as err:
            await c.purchase(merchant_reference="o-1", amount=KWD, token_name="t",
                             customer_email="a@b.c")
    assert (err.value.kind, err.value.retryable) == ("transient", True)
    assert sleeps == [0.5, 1.0]


async def test_rate_limit_is_retried_and_4xx_is_final(client: ApsClient,
                                                      emu: tuple[str, ApsState],
                                                      sleeps: Sleeps) -> None:
    """429 (never processed) is retried even for a PURCHASE; a 403 is final."""
    url, _ = emu
    fault(url, action="error", status=429, path="^/FortAPI/paymentApi$", count=1)
    assert (await purchase(client, url, merchant_reference("ord_o", 1))).outcome is Out.SUCCESS
    assert sleeps == [0.5]
    fault(url, action="error", status=403, path="^/FortAPI/paymentApi$", count=1)
    with pytest.raises(ProviderError) as err:
        await client.check_status("ord_o-1", currency="KWD")
    assert (err.value.kind, err.value.status, err.value.retryable) == ("auth", 403, False)


async def test_refused_before_any_call(client: ApsClient, emu: tuple[str, ApsState]) -> None:
    """Currencies, amounts and references APS cannot take never reach it."""
    _, state = emu
    for amount, ref in ((Money(100, "JPY"), "o-1"), (Money(0, "AED"), "o-1"),
                        (Money(100, "AED"), "o" * 41), (Money(100, "AED"), "o:1")):
        with pytest.raises(ValidationError):
            await client.purchase(merchant_reference=ref, amount=amount, token_name="t",
                                  customer_email="a@b.c")
    with pytest.raises(ValidationError):
        await client.purchase(merchant_reference="o-1", amount=KWD, token_name="t",
                              customer_email="a@b.c", surprise="x")
    assert state.requests == []


# --- forms and feedback ---------------------------------------------------------------------------


async def test_forms_accepted_by_the_emulator(client: ApsClient,
                                              emu: tuple[str, ApsState]) -> None:
    """The signed hosted page opens; the tokenization form's return verifies and its token
    pays."""
    url, _ = emu
    page = client.payment_page(command="PURCHASE", merchant_reference="ord_p-1",
                               amount=Money(10000, "AED"), customer_email="c@example.com",
                               return_url=f"{url}/shop/return", order_description="Mugs")
    opened = HTTP.post(page.url, data=page.params)
    assert opened.status_code == 200 and "100.00 AED" in opened.text
    form = client.tokenization_page(merchant_reference="ord_p-2",
                                    return_url=f"{url}/shop/return")
    back = HTTP.post(form.url, data={**form.params, "card_number": SUCCESS_CARD,
                                     "expiry_date": "3512", "card_security_code": "123",
                                     "card_holder_name": "Test Buyer"})
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">',
                             back.text))
    verified = client.verify_feedback(fields).result
    assert (verified.command, verified.outcome) == ("TOKENIZATION", Out.SUCCESS)
    assert verified.token_name is not None
    paid = await client.purchase(merchant_reference="ord_p-2", amount=Money(500, "AED"),
                                 token_name=verified.token_name, customer_email="c@example.com")
    assert paid.outcome is Out.SUCCESS


def test_feedback_refusals(client: ApsClient) -> None:
    """Tampered feedback, feedback for another account, malformed bodies: refused."""
    good = signed({"command": "PURCHASE", "response_code": "14000", "amount": "10",
                   "currency": "AED", "merchant_reference": "o-1", "fort_id": "1",
                   "access_code": CRED.access_code,
                   "merchant_identifier": CRED.merchant_identifier},
                  CRED.response_phrase, CRED.sha_type)
    assert client.verify_feedback(dict(good)).result.outcome is Out.SUCCESS
    with pytest.raises(SignatureError) as err:
        client.verify_feedback({**good, "amount": "1000"})
    assert err.value.check == "signature"
    other = signed({**good, "merchant_identifier": "Other"}, CRED.response_phrase,
                   CRED.sha_type)
    with pytest.raises(SignatureError) as err:
        client.verify_feedback(other)
    assert err.value.check == "merchant"
    assert parse_body(b"a=1&b=", "application/x-www-form-urlencoded") == {"a": "1", "b": ""}
    assert parse_body(b'{"amount": 1250, "x": 1.50}', "application/json") == {
        "amount": "1250", "x": "1.50"}
    for body, ctype in ((b"a=1&a=2", "application/x-www-form-urlencoded"),
                        (b'{"a": "1", "a": "2"}', "application/json"),
                        (b"[1]", "application/json"), (b"\xff", "application/json"),
                        (b"{NaN", "application/json")):
        with pytest.raises(ValidationError):
            parse_body(body, ctype)


def test_no_secret_in_reprs(client: ApsClient) -> None:
    """Neither phrase nor the access code shows in the client's, merchant's or signer's repr."""
    shown = repr(client) + repr(client.merchant) + repr(client.merchant.signer)
    for secret in (CRED.request_phrase, CRED.response_phrase, CRED.access_code):
        assert secret not in shown
    assert CRED.merchant_identifier in shown
