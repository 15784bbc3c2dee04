"""`GET /v1/orders/{id}`: the buyer's view without an API key, the whole order with one.

An order id travels in URLs, logs and referrers, so holding one must not give away provider
ids, captures, refunds or a spent card form; paywire runs over real HTTP against the emulator
(PayPal and APS), the buyer is played with the emulators' own pages and control API.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from apikit import ADMIN, Paywire, approve, assert_error
from apskit import aps_state, card_shop, pay_on_page, until
from paywire.testing import EmulatorServer

BUYER_FIELDS = {"id", "provider", "status", "amount", "lines", "payment_attempt", "approve_url",
                "checkout_form"}
OPERATOR_ONLY = {"provider_order_id", "intent", "capture_id", "authorization_id", "captured",
                 "refunded", "refundable", "needs_attention", "disputed", "created_at",
                 "updated_at"}
EMAIL = "buyer.view@example.com"


@pytest.fixture
def paywire(emulator: EmulatorServer, tmp_path: Path) -> Iterator[Paywire]:
    """paywire taking PayPal and cards (APS), both on the emulator, feedback pointed at it."""
    with card_shop(emulator, tmp_path) as pw:
        yield pw


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """A plain HTTP client (the buyer's browser, or an operator when it sends ADMIN)."""
    with httpx.Client(timeout=10) as client:
        yield client


def looked_up(http: httpx.Client, pw: Paywire, order_id: str,
              headers: dict[str, str] | None = None) -> httpx.Response:
    """GET the order; the answer is a 200 that no cache may store."""
    r = http.get(f"{pw.url}/v1/orders/{order_id}", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    return r


def buyer_view(http: httpx.Client, pw: Paywire, order_id: str) -> dict[str, Any]:
    """The order without a key: exactly the buyer's fields."""
    body: dict[str, Any] = looked_up(http, pw, order_id).json()
    assert set(body) == BUYER_FIELDS, body
    return body


def create(http: httpx.Client, pw: Paywire, **extra: Any) -> dict[str, Any]:
    """A browser's checkout of two mugs."""
    r = http.post(f"{pw.url}/v1/checkout/orders",
                  json={"items": [{"sku": "mug", "quantity": 2}], **extra})
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


async def test_paypal_order_shows_the_buyer_the_approval_link_only_while_it_is_next(
        http: httpx.Client, paywire: Paywire, emulator: EmulatorServer) -> None:
    """Unpaid: the approval link; paid (GET or a repeated capture): no link, no PayPal ids."""
    created = create(http, paywire)
    before = buyer_view(http, paywire, created["id"])
    assert (before["status"], before["approve_url"]) == ("CREATED", created["approve_url"])
    assert before["approve_url"] and before["checkout_form"] is None
    assert (before["amount"], before["lines"]) == (created["amount"], created["lines"])
    assert buyer_view(http, paywire, created["provider_order_id"]) == before  # PayPal's id too

    await approve(emulator, created["provider_order_id"])
    captured = http.post(f"{paywire.url}/v1/checkout/orders/{created['id']}/capture")
    assert captured.status_code == 200 and captured.json()["status"] == "COMPLETED"
    repeat = http.post(f"{paywire.url}/v1/checkout/orders/{created['id']}/capture")
    assert set(repeat.json()) == BUYER_FIELDS  # a repeat tells the id's holder no more
    assert repeat.headers["cache-control"] == "no-store"
    full = looked_up(http, paywire, created["id"], ADMIN).json()
    assert set(full) == BUYER_FIELDS | OPERATOR_ONLY
    assert full["capture_id"] and full["provider_order_id"] == created["provider_order_id"]

    after = looked_up(http, paywire, created["id"])
    assert set(after.json()) == BUYER_FIELDS
    assert (after.json()["status"], after.json()["approve_url"]) == ("COMPLETED", None)
    for secret in (full["capture_id"], full["provider_order_id"]):
        assert secret not in after.text


async def test_card_order_carries_the_form_only_while_paying_is_next(
        http: httpx.Client, paywire: Paywire, emulator: EmulatorServer) -> None:
    """Unpaid card order: the signed APS form; paid: no form, so no access code or e-mail."""
    created = create(http, paywire, provider="aps", customer_email=EMAIL)
    unpaid = buyer_view(http, paywire, created["id"])
    form = unpaid["checkout_form"]
    assert form == created["checkout_form"] and unpaid["approve_url"] is None
    cred = aps_state(emulator).config.credentials
    # APS's payment page takes these from the browser's post: the form must carry them.
    assert (form["fields"]["access_code"], form["fields"]["customer_email"]) == (
        cred.access_code, EMAIL)

    pay_on_page(http, form)
    until(lambda: buyer_view(http, paywire, created["id"])["status"] == "COMPLETED")
    full = looked_up(http, paywire, created["id"], ADMIN).json()
    assert full["capture_id"] and full["captured"] == created["amount"]

    paid = looked_up(http, paywire, created["id"])
    assert set(paid.json()) == BUYER_FIELDS and paid.json()["checkout_form"] is None
    for secret in (cred.access_code, cred.merchant_identifier, EMAIL, full["capture_id"],
                   form["fields"]["signature"]):
        assert secret not in paid.text


def test_a_wrong_key_is_refused_not_answered_as_the_buyer(
        http: httpx.Client, paywire: Paywire) -> None:
    """A wrong or malformed key is 401 with the one error shape, never the buyer's view."""
    created = create(http, paywire)
    url = f"{paywire.url}/v1/orders/{created['id']}"
    for header in ("Bearer not-the-key-0123456789", "Basic dXNlcjpwYXNz", "Bearer"):
        r = http.get(url, headers={"Authorization": header})
        assert_error(r, 401, "unauthorized", header)
        assert created["id"] not in r.text
    assert_error(http.get(f"{paywire.url}/v1/orders/ord_unknown"), 404, "not_found")
