"""PayPal wire mapping (`mapping`, `money`, `refusals`): money, the create-order body, status
tables and the error-issue table."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paywire.domain.errors import ProviderError, ValidationError
from paywire.domain.money import ISO_EXPONENTS, Money, exponent
from paywire.domain.order import Intent, Order, OrderLine, OrderStatus
from paywire.providers.paypal import mapping as m
from paywire.providers.paypal import money, refusals

S = OrderStatus
PAYPAL = sorted(money.PAYPAL_EXPONENTS)
NOT_PAYPAL = sorted(set(ISO_EXPONENTS) - set(money.PAYPAL_EXPONENTS))
NOW = datetime(2025, 1, 1, tzinfo=UTC)

# The enums of PayPal's OpenAPI files (Orders v2 / Payments v2).
CAPTURE_ENUM = ["COMPLETED", "DECLINED", "PARTIALLY_REFUNDED", "PENDING", "REFUNDED", "FAILED"]
AUTHORIZATION_ENUM = ["CREATED", "CAPTURED", "DENIED", "PARTIALLY_CAPTURED", "VOIDED", "PENDING"]
REFUND_ENUM = ["CANCELLED", "FAILED", "PENDING", "COMPLETED"]
ORDER_ENUM = ["CREATED", "SAVED", "APPROVED", "VOIDED", "COMPLETED", "PAYER_ACTION_REQUIRED"]


def step(currency: str) -> int:
    """ISO minor units per PayPal minor unit."""
    return int(10 ** (exponent(currency) - money.PAYPAL_EXPONENTS[currency]))


@st.composite
def payable(draw: st.DrawFn) -> Money:
    """A Money PayPal can represent, in any PayPal currency."""
    cur = draw(st.sampled_from(PAYPAL))
    top = (money.MAX_WHOLE_UNITS + 1) * 10 ** money.PAYPAL_EXPONENTS[cur]
    units = draw(st.integers(1, top - 1))
    return Money(units * step(cur), cur)


def order_of(*lines: OrderLine, intent: Intent = Intent.CAPTURE, oid: str = "ord_1") -> Order:
    """A priced order of `lines`."""
    return Order.new(oid, intent, list(lines), NOW)


def line(value: str, currency: str = "USD", qty: int = 1, name: str = "Mug") -> OrderLine:
    """One order line."""
    return OrderLine(sku="SKU-1", name=name, quantity=qty,
                     unit_price=Money.parse(value, currency))


def test_paypal_exponents_never_exceed_iso() -> None:
    """Every PayPal currency is ISO 4217, with no more decimals at PayPal than under ISO."""
    assert len(PAYPAL) == 24
    assert all(money.PAYPAL_EXPONENTS[c] <= exponent(c) for c in PAYPAL)
    assert {c for c in PAYPAL if money.PAYPAL_EXPONENTS[c] == 0} == {"HUF", "JPY", "TWD"}


@given(payable())
def test_money_round_trips_exactly(amount: Money) -> None:
    """to_paypal_money then from_paypal_money gives back the same Money, via strings only."""
    wire = money.to_paypal_money(amount)
    assert isinstance(wire["value"], str)
    decimals = wire["value"].partition(".")[2]
    assert len(decimals) == money.PAYPAL_EXPONENTS[amount.currency]
    assert money.from_paypal_money(wire) == amount


@given(st.sampled_from(PAYPAL), st.integers(-10**18, 10**20))
def test_check_amount_accepts_exactly_what_paypal_can_represent(cur: str, minor: int) -> None:
    """check_amount refuses sign, precision and size PayPal cannot carry, over every currency."""
    amount = Money(minor, cur)
    ok = minor > 0 and minor % step(cur) == 0 and minor // 10 ** exponent(cur) <= 10**15 - 1
    if ok:
        money.check_amount(amount)
    else:
        with pytest.raises(ValidationError):
            money.check_amount(amount)


@given(st.sampled_from(NOT_PAYPAL), st.integers(1, 10**9))
def test_check_amount_refuses_currencies_paypal_lacks(cur: str, minor: int) -> None:
    """An ISO currency PayPal does not take is refused whatever the amount."""
    with pytest.raises(ValidationError) as info:
        money.check_amount(Money(minor, cur))
    assert info.value.field == "currency"


def test_whole_unit_currencies_and_limits() -> None:
    """HUF/TWD are whole units at PayPal (ISO: two decimals); values hold 15 integer digits."""
    assert money.to_paypal_money(Money.parse("100.00", "HUF")) == {"currency_code": "HUF",
                                                              "value": "100"}
    assert money.to_paypal_money(Money(1500, "JPY"))["value"] == "1500"
    assert money.to_paypal_money(Money(1050, "USD"))["value"] == "10.50"
    for bad in (Money.parse("100.50", "HUF"), Money.parse("7.01", "TWD")):
        with pytest.raises(ValidationError):
            money.check_amount(bad)
    assert money.from_paypal_money({"currency_code": "HUF", "value": "100"}) == Money(10000, "HUF")
    money.check_amount(Money(money.MAX_WHOLE_UNITS * 100 + 99, "USD"))
    money.check_amount(Money(money.MAX_WHOLE_UNITS * 100, "HUF"))
    for too_big in (Money((money.MAX_WHOLE_UNITS + 1) * 100, "USD"), Money(10**15, "JPY")):
        with pytest.raises(ValidationError):
            money.check_amount(too_big)


@pytest.mark.parametrize("data", [
    {"currency_code": "USD", "value": 10.5}, {"currency_code": "USD", "value": "1e3"},
    {"currency_code": "USD", "value": "10.001"}, {"currency_code": "XXX", "value": "1"},
    {"currency_code": "JPY", "value": "1.5"}, {"value": "1.00"}, "10.00", None,
])
def test_from_paypal_money_refuses_inexact_or_malformed(data: Any) -> None:
    """Floats, exponents, extra precision and unknown currencies are refused, never rounded."""
    with pytest.raises(ValidationError):
        money.from_paypal_money(data)


def test_from_paypal_money_keeps_zero_padding_exact() -> None:
    """Trailing zeros beyond the exponent and negative values parse exactly."""
    assert money.from_paypal_money({"currency_code": "JPY", "value": "15.00"}) == Money(15, "JPY")
    assert money.from_paypal_money({"currency_code": "USD", "value": "-0.30"}) == Money(-30, "USD")


def test_order_request_shape() -> None:
    """One purchase unit keyed by our order id, item_total equal to the items' sum."""
    order = order_of(line("2.50", qty=3), OrderLine("SKU-2", "x" * 200, 1, Money(100, "USD")))
    body = m.order_request(order)
    assert body["intent"] == "CAPTURE" and "payment_source" not in body
    (unit,) = body["purchase_units"]
    assert unit["reference_id"] == unit["custom_id"] == unit["invoice_id"] == "ord_1"
    assert unit["amount"] == {"currency_code": "USD", "value": "8.50",
                              "breakdown": {"item_total": {"currency_code": "USD",
                                                           "value": "8.50"}}}
    assert unit["items"][0] == {"name": "Mug", "sku": "SKU-1", "quantity": "3",
                                "unit_amount": {"currency_code": "USD", "value": "2.50"},
                                "category": "PHYSICAL_GOODS"}
    assert len(unit["items"][1]["name"]) == 127


def test_order_request_experience_context() -> None:
    """Return/cancel URLs go in payment_source.paypal.experience_context with PAY_NOW."""
    body = m.order_request(order_of(line("1.00"), intent=Intent.AUTHORIZE),
                           return_url="https://shop.example/ok",
                           cancel_url="https://shop.example/no")
    assert body["intent"] == "AUTHORIZE"
    assert body["payment_source"] == {"paypal": {"experience_context": {
        "return_url": "https://shop.example/ok", "cancel_url": "https://shop.example/no",
        "user_action": "PAY_NOW", "shipping_preference": "NO_SHIPPING"}}}


def test_order_request_refuses_what_paypal_would() -> None:
    """Unpayable unit prices, long ids and unknown categories fail before any call."""
    with pytest.raises(ValidationError):
        m.order_request(order_of(line("100.50", "HUF", qty=2)))
    with pytest.raises(ValidationError):
        m.order_request(order_of(line("1.00"), oid="o" * 128))
    with pytest.raises(ValidationError):
        m.order_request(order_of(line("1.00")), category="SERVICES")


@given(st.sampled_from(PAYPAL), st.lists(st.tuples(st.integers(1, 10**6), st.integers(1, 50)),
                                         min_size=1, max_size=8))
def test_order_request_item_total_is_the_sum(cur: str, specs: list[tuple[int, int]]) -> None:
    """amount = item_total = Σ unit_amount × quantity, computed back from the wire strings."""
    lines = [OrderLine(f"S{i}", "Thing", q, Money(u * step(cur), cur))
             for i, (u, q) in enumerate(specs)]
    unit = m.order_request(order_of(*lines))["purchase_units"][0]
    total = Money.zero(cur)
    for item in unit["items"]:
        total = total + money.from_paypal_money(item["unit_amount"]) * int(item["quantity"])
    assert money.from_paypal_money(unit["amount"]["breakdown"]["item_total"]) == total
    assert money.from_paypal_money(unit["amount"]) == total


@pytest.mark.parametrize(("table", "enum"), [
    # EXPIRED: from an older revision of PayPal's reference (docs/emulator-authorizations.md).
    (m.CAPTURE_STATUS, CAPTURE_ENUM), (m.AUTHORIZATION_STATUS, [*AUTHORIZATION_ENUM, "EXPIRED"]),
    (m.REFUND_STATUS, REFUND_ENUM), (m.ORDER_STATUS, ORDER_ENUM),
])
def test_status_tables_are_total(table: dict[str, Any], enum: list[str]) -> None:
    """Every status PayPal's specs enumerate maps; anything else is the explicit unknown."""
    assert sorted(table) == sorted(enum)
    with pytest.raises(ProviderError) as info:
        m.lookup(table, "SOMETHING_NEW", "test")
    assert info.value.kind == "unknown"


def test_capture_statuses() -> None:
    """Capture statuses map to the order status they mean; PENDING keeps its reason."""
    expect = {"COMPLETED": S.COMPLETED, "PENDING": S.PENDING, "DECLINED": S.DENIED,
              "FAILED": S.FAILED, "PARTIALLY_REFUNDED": S.PARTIALLY_REFUNDED,
              "REFUNDED": S.REFUNDED}
    for status, want in expect.items():
        cap = m.parse_capture(capture_json(status, reason="PENDING_REVIEW"))
        assert (cap.status, cap.provider_status, cap.reason) == (want, status, "PENDING_REVIEW")
        assert cap.provider_order_id == "ORDER1" and cap.amount == Money(1000, "USD")
    assert m.parse_capture(capture_json("REFUNDED", reason="CHARGEBACK")).status == S.REVERSED
    with pytest.raises(ProviderError):
        m.parse_capture(capture_json("REVERSED"))


def capture_json(status: str, reason: str | None = None, value: str = "10.00") -> dict[str, Any]:
    """A Payments v2 capture."""
    data: dict[str, Any] = {"id": "CAP1", "status": status,
                            "amount": {"currency_code": "USD", "value": value},
                            "supplementary_data": {"related_ids": {"order_id": "ORDER1"}}}
    if reason:
        data["status_details"] = {"reason": reason}
    return data


def auth_json(status: str) -> dict[str, Any]:
    """A Payments v2 authorization."""
    return {"id": "AUTH1", "status": status, "amount": {"currency_code": "USD", "value": "10.00"},
            "expiration_time": "2025-02-01T00:00:00Z"}


def order_json(status: str, captures: list[dict[str, Any]] | None = None,
               auths: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A GET order answer."""
    unit: dict[str, Any] = {"reference_id": "ord_1",
                            "amount": {"currency_code": "USD", "value": "10.00"}}
    if captures or auths:
        unit["payments"] = {"captures": captures or [], "authorizations": auths or []}
    return {"id": "ORDER1", "status": status, "purchase_units": [unit]}


@pytest.mark.parametrize(("status", "want"), [
    ("CREATED", S.CREATED), ("PAYER_ACTION_REQUIRED", S.CREATED), ("APPROVED", S.APPROVED),
    ("SAVED", S.APPROVED), ("VOIDED", S.VOIDED),
])
def test_order_states_before_payment(status: str, want: OrderStatus) -> None:
    """Order statuses before payment map directly."""
    state = m.parse_order_state(order_json(status))
    assert (state.status, state.provider_status, state.amount) == (want, status,
                                                                    Money(1000, "USD"))


@pytest.mark.parametrize(("captures", "auths", "want"), [
    (["COMPLETED"], [], S.COMPLETED), (["PENDING"], [], S.PENDING), (["DECLINED"], [], S.DENIED),
    (["FAILED"], [], S.FAILED), (["PARTIALLY_REFUNDED"], [], S.PARTIALLY_REFUNDED),
    (["REFUNDED"], [], S.REFUNDED), (["REFUNDED", "COMPLETED"], [], S.PARTIALLY_REFUNDED),
    (["DECLINED", "COMPLETED"], [], S.COMPLETED), ([], ["CREATED"], S.AUTHORIZED),
    ([], ["PENDING"], S.PENDING), ([], ["VOIDED"], S.VOIDED), ([], ["DENIED"], S.DENIED),
    (["COMPLETED"], ["PARTIALLY_CAPTURED"], S.COMPLETED), ([], ["EXPIRED"], S.EXPIRED),
    ([], ["EXPIRED", "CREATED"], S.AUTHORIZED),
])
def test_completed_order_derives_from_payments(captures: list[str], auths: list[str],
                                               want: OrderStatus) -> None:
    """A COMPLETED order means what its captures, else its authorizations, mean."""
    state = m.parse_order_state(order_json("COMPLETED", [capture_json(c) for c in captures],
                                           [auth_json(a) for a in auths]))
    assert state.status == want
    assert len(state.captures) == len(captures) and len(state.authorizations) == len(auths)


def test_unknown_order_status_and_empty_completed_order() -> None:
    """An unknown order status, or a COMPLETED order without payments, is the explicit unknown."""
    for body in (order_json("ARCHIVED"), order_json("COMPLETED"), {"status": "CREATED"}):
        with pytest.raises(ProviderError) as info:
            m.parse_order_state(body)
        assert info.value.kind == "unknown"


def test_parse_created_authorization_and_refund() -> None:
    """Create answers yield the approve/payer-action link; authorizations an aware expiry."""
    link = {"href": "https://pp.example/checkoutnow?token=O1", "method": "GET"}
    for rel in ("approve", "payer-action"):
        created = m.parse_order_created({"id": "O1", "status": "PAYER_ACTION_REQUIRED",
                                         "links": [{**link, "rel": rel}]})
        assert (created.status, created.approve_url) == ("CREATED", link["href"])
    auth = m.parse_authorization(order_json("COMPLETED", auths=[auth_json("CREATED")]))
    assert auth.status == S.AUTHORIZED and auth.expires_at == datetime(2025, 2, 1, tzinfo=UTC)
    refund = m.parse_refund({"id": "R1", "status": "CANCELLED",
                             "amount": {"currency_code": "USD", "value": "1.00"}})
    assert (refund.status, refund.provider_status, refund.amount) == ("failed", "CANCELLED",
                                                                      Money(100, "USD"))


def test_authorization_expiry_falls_back_on_29_days_from_creation() -> None:
    """Without expiration_time an authorization expires 29 days after its create_time; a
    timestamp without a zone is the explicit unknown."""
    data = auth_json("CREATED")
    del data["expiration_time"]
    assert m.parse_authorization(data).expires_at is None
    data["create_time"] = "2025-01-01T00:00:00Z"
    assert m.parse_authorization(data).expires_at == datetime(2025, 1, 30, tzinfo=UTC)
    data["create_time"] = "2025-01-01T00:00:00"
    with pytest.raises(ProviderError) as info:
        m.parse_authorization(data)
    assert info.value.kind == "unknown"


ISSUES = {
    "ORDER_ALREADY_CAPTURED": "already_done", "ORDER_ALREADY_AUTHORIZED": "already_done",
    "AUTHORIZATION_ALREADY_CAPTURED": "already_done", "CAPTURE_FULLY_REFUNDED": "already_done",
    "DUPLICATE_INVOICE_ID": "duplicate_invoice", "ORDER_NOT_APPROVED": "not_approved",
    "INSTRUMENT_DECLINED": "payer_action", "PAYER_ACTION_REQUIRED": "payer_action",
    "TRANSACTION_REFUSED": "declined", "PAYER_CANNOT_PAY": "declined",
    "MAX_NUMBER_OF_PAYMENT_ATTEMPTS_EXCEEDED": "declined", "AUTHORIZATION_EXPIRED": "declined",
    "REFUND_AMOUNT_EXCEEDED": "over_refund", "INVALID_RESOURCE_ID": "not_found",
    "DECIMAL_PRECISION": "invalid", "INVALID_CURRENCY_CODE": "invalid",
    "AMOUNT_MISMATCH": "invalid", "ITEM_TOTAL_MISMATCH": "invalid",
    "CURRENCY_MISMATCH": "invalid", "MALFORMED_REQUEST_JSON": "invalid",
    "PERMISSION_DENIED": "auth",
    "REAUTHORIZATION_TOO_SOON": "invalid", "AUTHORIZATION_AMOUNT_EXCEEDED": "invalid",
}


@pytest.mark.parametrize(("issue", "kind"), sorted(ISSUES.items()))
def test_error_issue_table(issue: str, kind: str) -> None:
    """Each PayPal issue paywire must handle maps to its ProviderError kind, fields kept."""
    body = {"name": "UNPROCESSABLE_ENTITY", "message": "x", "debug_id": "abc123",
            "details": [{"issue": issue, "description": "why"}]}
    err = refusals.error_from_response(422, body, what="test")
    assert (err.kind, err.issue, err.name, err.debug_id, err.status) == (
        kind, issue, "UNPROCESSABLE_ENTITY", "abc123", 422)
    assert err.retryable is False and err.provider == "paypal" and kind in err.KINDS


def test_error_issue_table_only_names_known_kinds() -> None:
    """The issue table uses only ProviderError.KINDS."""
    assert set(refusals.ISSUE_KINDS.values()) <= set(ProviderError.KINDS)


@pytest.mark.parametrize(("status", "body", "kind"), [
    (500, {"name": "INTERNAL_SERVER_ERROR"}, "transient"), (503, None, "transient"),
    (429, {"name": "RATE_LIMIT_REACHED"}, "transient"),
    (401, {"name": "AUTHENTICATION_FAILURE"}, "auth"),
    (401, {"error": "invalid_token", "error_description": "expired"}, "auth"),
    (401, {"error": "invalid_client"}, "auth"), (404, {"name": "RESOURCE_NOT_FOUND"}, "not_found"),
    (400, {"name": "INVALID_REQUEST", "details": [{"issue": "NEW_ISSUE"}]}, "invalid"),
    (422, {"name": "UNPROCESSABLE_ENTITY", "details": [{"issue": "NEW_ISSUE"}]}, "unknown"),
    (409, "not json", "unknown"),
])
def test_error_status_fallbacks(status: int, body: Any, kind: str) -> None:
    """Status decides 401/429/5xx; unknown issues fall back on the HTTP status."""
    err = refusals.error_from_response(status, body, what="test", debug_id="hdr")
    assert err.kind == kind and err.retryable == (kind == "transient")
    assert err.debug_id == "hdr"


def test_invalid_client_message_names_the_credentials() -> None:
    """A refused client id/secret says so (the secret is never known to the mapping)."""
    err = refusals.error_from_response(401, {"error": "invalid_client",
                                      "error_description": "Client Authentication failed"},
                                what="OAuth token")
    assert "client id/secret" in err.message and err.name == "invalid_client"
