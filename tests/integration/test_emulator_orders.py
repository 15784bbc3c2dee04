"""Orders v2 on the emulator over real HTTP: validation, lifecycle, idempotency, expiry, faults."""

from __future__ import annotations

import httpx
import pytest

from paywire.emulator import AppCredentials, EmulatorConfig
from paywire.testing import EmulatorServer, run_emulator
from testkit import CLIENT_ID, CLIENT_SECRET, approve, auth_headers, order_body


def issue_of(r: httpx.Response) -> str:
    """The first PayPal issue name in an error answer."""
    issue: str = r.json()["details"][0]["issue"]
    return issue


def test_create_minimal_has_approve_link(paypal: httpx.Client) -> None:
    """A created order answers 201 minimal with self, approve, update and capture links."""
    r = paypal.post("/v2/checkout/orders", json=order_body())
    assert r.status_code == 201
    body = r.json()
    assert set(body) == {"id", "status", "links"}
    assert body["status"] == "CREATED"
    rels = {link["rel"] for link in body["links"]}
    assert rels == {"self", "approve", "update", "capture"}
    assert r.headers["paypal-debug-id"]


def test_create_representation_and_get(paypal: httpx.Client) -> None:
    """Prefer: return=representation returns the full order, equal to a later GET."""
    r = paypal.post("/v2/checkout/orders", json=order_body("12.34", custom_id="c-1"),
                    headers={"Prefer": "return=representation"})
    assert r.status_code == 201
    full = r.json()
    assert full["purchase_units"][0]["amount"]["value"] == "12.34"
    assert full["purchase_units"][0]["custom_id"] == "c-1"
    got = paypal.get(f"/v2/checkout/orders/{full['id']}").json()
    assert got == full


def test_wallet_payment_source_requires_payer_action(paypal: httpx.Client) -> None:
    """A payment_source.paypal order starts PAYER_ACTION_REQUIRED with a payer-action link."""
    body = order_body()
    body["payment_source"] = {"paypal": {"experience_context": {
        "return_url": "https://shop.example/return", "cancel_url": "https://shop.example/cancel"}}}
    r = paypal.post("/v2/checkout/orders", json=body)
    assert r.json()["status"] == "PAYER_ACTION_REQUIRED"
    assert "payer-action" in {link["rel"] for link in r.json()["links"]}


@pytest.mark.parametrize(("unit", "status", "issue"), [
    ({"amount": {"currency_code": "USD", "value": "10.001"}}, 422, "DECIMAL_PRECISION"),
    ({"amount": {"currency_code": "JPY", "value": "100.5"}}, 422, "DECIMAL_PRECISION"),
    ({"amount": {"currency_code": "XYZ", "value": "1.00"}}, 422, "INVALID_CURRENCY_CODE"),
    ({"amount": {"currency_code": "USD", "value": "abc"}}, 400, "INVALID_PARAMETER_SYNTAX"),
    ({"amount": {"currency_code": "USD", "value": "0.00"}}, 422, "CANNOT_BE_ZERO_OR_NEGATIVE"),
    ({"amount": {"currency_code": "USD"}}, 400, "MISSING_REQUIRED_PARAMETER"),
    ({}, 400, "MISSING_REQUIRED_PARAMETER"),
    ({"amount": {"currency_code": "USD", "value": "10.00",
                 "breakdown": {"item_total": {"currency_code": "USD", "value": "9.00"}}}},
     422, "AMOUNT_MISMATCH"),
    ({"amount": {"currency_code": "USD", "value": "10.00",
                 "breakdown": {"item_total": {"currency_code": "USD", "value": "10.00"}}},
      "items": [{"name": "a", "quantity": "3",
                 "unit_amount": {"currency_code": "USD", "value": "3.00"}}]},
     422, "ITEM_TOTAL_MISMATCH"),
    ({"amount": {"currency_code": "USD", "value": "10.00"},
      "items": [{"name": "a", "quantity": "1",
                 "unit_amount": {"currency_code": "USD", "value": "10.00"}}]},
     422, "ITEM_TOTAL_REQUIRED"),
])
def test_create_validates_like_paypal(paypal: httpx.Client, unit: dict[str, object],
                                      status: int, issue: str) -> None:
    """Invalid amounts, currencies and sums answer PayPal's status and issue name."""
    r = paypal.post("/v2/checkout/orders", json={"intent": "CAPTURE", "purchase_units": [unit]})
    assert r.status_code == status, r.text
    assert issue_of(r) == issue


def test_whole_unit_currency_accepts_integers(paypal: httpx.Client) -> None:
    """JPY, HUF and TWD amounts are whole units at PayPal."""
    for currency in ("JPY", "HUF", "TWD"):
        r = paypal.post("/v2/checkout/orders", json=order_body("1500", currency))
        assert r.status_code == 201, r.text


@pytest.mark.parametrize("raw", [b"{nope", b"[]", b"", b"\xff\xfe", b'"x"', b"1e999999"])
def test_malformed_json_is_a_400(paypal: httpx.Client, raw: bytes) -> None:
    """Unparseable or non-object bodies answer 400 MALFORMED_REQUEST_JSON, never 500."""
    r = paypal.post("/v2/checkout/orders", content=raw,
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert issue_of(r) == "MALFORMED_REQUEST_JSON"


def test_missing_intent_and_units(paypal: httpx.Client) -> None:
    """Required fields missing answer MISSING_REQUIRED_PARAMETER naming the field."""
    r = paypal.post("/v2/checkout/orders", json={"purchase_units": []})
    assert r.status_code == 400
    assert r.json()["details"][0]["field"] == "/intent"
    r = paypal.post("/v2/checkout/orders", json={"intent": "CAPTURE"})
    assert r.json()["details"][0]["field"] == "/purchase_units"


def test_capture_lifecycle(paypal: httpx.Client) -> None:
    """Capture needs approval, completes the order once, and refuses a second capture."""
    order_id = paypal.post("/v2/checkout/orders", json=order_body()).json()["id"]
    r = paypal.post(f"/v2/checkout/orders/{order_id}/capture")
    assert r.status_code == 422
    assert issue_of(r) == "ORDER_NOT_APPROVED"
    approved = approve(paypal, order_id)
    assert approved["status"] == "APPROVED"
    r = paypal.post(f"/v2/checkout/orders/{order_id}/capture")
    assert r.status_code == 201
    cap = r.json()["purchase_units"][0]["payments"]["captures"][0]
    assert cap["status"] == "COMPLETED"
    assert cap["supplementary_data"]["related_ids"]["order_id"] == order_id
    r = paypal.post(f"/v2/checkout/orders/{order_id}/capture")
    assert r.status_code == 422
    assert issue_of(r) == "ORDER_ALREADY_CAPTURED"
    assert paypal.get(f"/v2/checkout/orders/{order_id}").json()["status"] == "COMPLETED"


@pytest.mark.parametrize(("scenario", "status", "reason"), [
    ("decline", "DECLINED", None), ("pending", "PENDING", "PENDING_REVIEW")])
def test_capture_scenarios(paypal: httpx.Client, scenario: str, status: str,
                           reason: str | None) -> None:
    """The buyer's scenario decides the capture status: declined or pending review."""
    order_id = paypal.post("/v2/checkout/orders", json=order_body()).json()["id"]
    approve(paypal, order_id, scenario)
    cap = paypal.post(f"/v2/checkout/orders/{order_id}/capture").json()[
        "purchase_units"][0]["payments"]["captures"][0]
    assert cap["status"] == status
    assert cap.get("status_details", {}).get("reason") == reason


def test_instrument_declined_keeps_order_approved(paypal: httpx.Client) -> None:
    """INSTRUMENT_DECLINED at capture leaves the order APPROVED so the buyer can retry."""
    order_id = paypal.post("/v2/checkout/orders", json=order_body()).json()["id"]
    approve(paypal, order_id, "instrument_declined")
    r = paypal.post(f"/v2/checkout/orders/{order_id}/capture")
    assert r.status_code == 422
    assert issue_of(r) == "INSTRUMENT_DECLINED"
    assert paypal.get(f"/v2/checkout/orders/{order_id}").json()["status"] == "APPROVED"
    approve(paypal, order_id, "approve")
    assert paypal.post(f"/v2/checkout/orders/{order_id}/capture").status_code == 201


def test_authorize_intent(paypal: httpx.Client) -> None:
    """An AUTHORIZE order yields an authorization; authorizing twice is refused."""
    body = order_body()
    body["intent"] = "AUTHORIZE"
    order_id = paypal.post("/v2/checkout/orders", json=body).json()["id"]
    approve(paypal, order_id)
    r = paypal.post(f"/v2/checkout/orders/{order_id}/authorize",
                    headers={"Prefer": "return=representation"})
    assert r.status_code == 201
    auth = r.json()["purchase_units"][0]["payments"]["authorizations"][0]
    assert auth["status"] == "CREATED"
    assert auth["expiration_time"]
    r = paypal.post(f"/v2/checkout/orders/{order_id}/authorize")
    assert issue_of(r) == "ORDER_ALREADY_AUTHORIZED"


def test_duplicate_invoice_id(paypal: httpx.Client) -> None:
    """A second order for an invoice id already paid is refused with DUPLICATE_INVOICE_ID."""
    first = paypal.post("/v2/checkout/orders", json=order_body(invoice_id="INV-1")).json()["id"]
    second = paypal.post("/v2/checkout/orders", json=order_body(invoice_id="INV-1")).json()["id"]
    approve(paypal, first)
    approve(paypal, second)
    assert paypal.post(f"/v2/checkout/orders/{first}/capture").status_code == 201
    r = paypal.post(f"/v2/checkout/orders/{second}/capture")
    assert r.status_code == 422
    assert issue_of(r) == "DUPLICATE_INVOICE_ID"
    r = paypal.post("/v2/checkout/orders", json=order_body(invoice_id="INV-1"))
    assert issue_of(r) == "DUPLICATE_INVOICE_ID"


def test_request_id_replays_create_and_capture(emulator: EmulatorServer,
                                               paypal: httpx.Client) -> None:
    """The same PayPal-Request-Id returns the first result and acts only once."""
    h = {"PayPal-Request-Id": "create-1"}
    a = paypal.post("/v2/checkout/orders", json=order_body(), headers=h)
    b = paypal.post("/v2/checkout/orders", json=order_body("99.00"), headers=h)
    assert (a.status_code, b.status_code) == (201, 200)
    assert a.json() == b.json()
    assert len(emulator.emu.orders) == 1
    approve(paypal, a.json()["id"])
    h = {"PayPal-Request-Id": "capture-1"}
    c1 = paypal.post(f"/v2/checkout/orders/{a.json()['id']}/capture", headers=h)
    c2 = paypal.post(f"/v2/checkout/orders/{a.json()['id']}/capture", headers=h)
    assert (c1.status_code, c2.status_code) == (201, 200)
    assert c1.json() == c2.json()
    assert len(emulator.emu.captures) == 1


def test_request_id_past_zero_retention() -> None:
    """With zero retention a replayed capture answers ORDER_ALREADY_CAPTURED, as PayPal does."""
    cfg = EmulatorConfig(apps=[AppCredentials(CLIENT_ID, CLIENT_SECRET)],
                         orders_idempotency_seconds=0)
    with run_emulator(cfg) as emu, httpx.Client(base_url=emu.url,
                                                headers=auth_headers(emu.url)) as c:
        h = {"PayPal-Request-Id": "create-1"}
        first = c.post("/v2/checkout/orders", json=order_body(), headers=h).json()["id"]
        second = c.post("/v2/checkout/orders", json=order_body(), headers=h).json()["id"]
        assert first != second
        approve(c, first)
        h = {"PayPal-Request-Id": "capture-1"}
        assert c.post(f"/v2/checkout/orders/{first}/capture", headers=h).status_code == 201
        r = c.post(f"/v2/checkout/orders/{first}/capture", headers=h)
        assert r.status_code == 422
        assert issue_of(r) == "ORDER_ALREADY_CAPTURED"


def test_patch_before_completion(paypal: httpx.Client) -> None:
    """PATCH replaces purchase-unit fields (re-validated) and is refused once completed."""
    order_id = paypal.post("/v2/checkout/orders", json=order_body()).json()["id"]
    ref = "/purchase_units/@reference_id=='default'"
    r = paypal.patch(f"/v2/checkout/orders/{order_id}", json=[
        {"op": "add", "path": f"{ref}/invoice_id", "value": "INV-9"},
        {"op": "replace", "path": f"{ref}/amount", "value": {
            "currency_code": "USD", "value": "10.00",
            "breakdown": {"item_total": {"currency_code": "USD", "value": "10.00"}}}}])
    assert r.status_code == 204, r.text
    unit = paypal.get(f"/v2/checkout/orders/{order_id}").json()["purchase_units"][0]
    assert unit["invoice_id"] == "INV-9"
    r = paypal.patch(f"/v2/checkout/orders/{order_id}", json=[
        {"op": "replace", "path": f"{ref}/amount", "value": {"currency_code": "USD",
                                                             "value": "11.00"}}])
    assert r.status_code == 422
    assert issue_of(r) == "ITEM_TOTAL_REQUIRED"
    r = paypal.patch(f"/v2/checkout/orders/{order_id}", json=[
        {"op": "replace", "path": "/purchase_units/@reference_id=='nope'/custom_id",
         "value": "x"}])
    assert issue_of(r) == "REFERENCE_ID_NOT_FOUND"
    approve(paypal, order_id)
    paypal.post(f"/v2/checkout/orders/{order_id}/capture")
    r = paypal.patch(f"/v2/checkout/orders/{order_id}", json=[
        {"op": "replace", "path": f"{ref}/custom_id", "value": "x"}])
    assert issue_of(r) == "ORDER_ALREADY_COMPLETED"


def test_unknown_order_is_404(paypal: httpx.Client) -> None:
    """An unknown order id answers RESOURCE_NOT_FOUND / INVALID_RESOURCE_ID."""
    r = paypal.get("/v2/checkout/orders/NOPE")
    assert r.status_code == 404
    assert r.json()["name"] == "RESOURCE_NOT_FOUND"
    assert issue_of(r) == "INVALID_RESOURCE_ID"


def test_unapproved_order_expires(emulator: EmulatorServer, paypal: httpx.Client) -> None:
    """An order not approved within the window is voided; a GET then answers 404."""
    order_id = paypal.post("/v2/checkout/orders", json=order_body()).json()["id"]
    r = paypal.post("/_emulator/clock/advance", json={"seconds": 3 * 3600 + 1})
    assert r.status_code == 200
    assert paypal.get(f"/v2/checkout/orders/{order_id}").status_code == 404
    assert emulator.emu.orders[order_id].status == "VOIDED"
    voided = [e for e in emulator.emu.events.values()
              if e["event_type"] == "CHECKOUT.ORDER.VOIDED"]
    assert [e["resource"]["id"] for e in voided] == [order_id]


def test_expired_order_can_read_as_voided() -> None:
    """With expired_order_get="voided" a GET of an expired order shows status VOIDED."""
    cfg = EmulatorConfig(apps=[AppCredentials(CLIENT_ID, CLIENT_SECRET)],
                         expired_order_get="voided", order_expiry_seconds=60)
    with run_emulator(cfg) as emu, httpx.Client(base_url=emu.url,
                                                headers=auth_headers(emu.url)) as c:
        order_id = c.post("/v2/checkout/orders", json=order_body()).json()["id"]
        c.post(f"/_emulator/orders/{order_id}/expire")
        r = c.get(f"/v2/checkout/orders/{order_id}")
        assert r.status_code == 200
        assert r.json()["status"] == "VOIDED"


def test_bearer_tokens(emulator: EmulatorServer) -> None:
    """Missing, unknown and expired bearer tokens answer 401 AUTHENTICATION_FAILURE."""
    url = f"{emulator.url}/v2/checkout/orders/X"
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        r = httpx.get(url, headers=headers)
        assert r.status_code == 401
        assert r.json()["name"] == "AUTHENTICATION_FAILURE"
    headers = auth_headers(emulator.url)
    assert httpx.get(url, headers=headers).status_code == 404
    emulator.emu.clock.advance(emulator.emu.config.token_ttl_seconds + 1)
    assert httpx.get(url, headers=headers).status_code == 401


def test_oauth_refuses_bad_credentials(emulator: EmulatorServer) -> None:
    """Bad client credentials answer 401 in the OAuth shape (invalid_client)."""
    r = httpx.post(f"{emulator.url}/v1/oauth2/token", auth=(CLIENT_ID, "wrong"),
                   data={"grant_type": "client_credentials"})
    assert r.status_code == 401
    assert r.json() == {"error": "invalid_client",
                        "error_description": "Client Authentication failed"}
    r = httpx.post(f"{emulator.url}/v1/oauth2/token", auth=(CLIENT_ID, CLIENT_SECRET),
                   data={"grant_type": "password"})
    assert r.status_code == 400


def test_mock_response_header(paypal: httpx.Client) -> None:
    """PayPal-Mock-Response answers the named error instead of acting."""
    order_id = paypal.post("/v2/checkout/orders", json=order_body()).json()["id"]
    approve(paypal, order_id)
    mock = {"PayPal-Mock-Response": '{"mock_application_codes": "INSTRUMENT_DECLINED"}'}
    r = paypal.post(f"/v2/checkout/orders/{order_id}/capture", headers=mock)
    assert r.status_code == 422
    assert issue_of(r) == "INSTRUMENT_DECLINED"
    assert paypal.get(f"/v2/checkout/orders/{order_id}").json()["status"] == "APPROVED"
    mock = {"PayPal-Mock-Response": '{"mock_application_codes": "INTERNAL_SERVER_ERROR"}'}
    r = paypal.post(f"/v2/checkout/orders/{order_id}/capture", headers=mock)
    assert r.status_code == 500
    assert r.json()["name"] == "INTERNAL_SERVER_ERROR"


def test_http_fault_rules(paypal: httpx.Client) -> None:
    """Fault rules answer errors a set number of times, add latency, and time out."""
    r = paypal.post("/_emulator/faults", json={"method": "POST", "path": "^/v2/checkout/orders$",
                                               "action": "error", "status": 503, "count": 1})
    assert r.status_code == 201
    assert paypal.post("/v2/checkout/orders", json=order_body()).status_code == 503
    assert paypal.post("/v2/checkout/orders", json=order_body()).status_code == 201
    paypal.post("/_emulator/faults", json={"path": "^/v2/checkout/orders/", "action": "timeout",
                                           "seconds": 1, "count": 1})
    with pytest.raises(httpx.ReadTimeout):
        paypal.get("/v2/checkout/orders/X", timeout=0.3)
    rules = paypal.get("/_emulator/faults").json()["rules"]
    assert [r["fired"] for r in rules] == [1, 1]
    r = paypal.post("/_emulator/faults", json={"action": "explode"})
    assert r.status_code == 400
    assert paypal.delete("/_emulator/faults").status_code == 204


def test_request_log_records_every_call(paypal: httpx.Client) -> None:
    """The control API lists each request with its status and PayPal-Request-Id."""
    paypal.post("/v2/checkout/orders", json=order_body(), headers={"PayPal-Request-Id": "r-1"})
    log = paypal.get("/_emulator/requests", params={"path": "/v2/"}).json()["requests"]
    assert [(e["method"], e["status"], e["paypal_request_id"]) for e in log] == [
        ("POST", 201, "r-1")]
