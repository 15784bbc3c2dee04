"""PayPal's official Python SDK against the emulator, changing nothing but the base URL."""

from __future__ import annotations

from typing import Any, ClassVar

import httpx
import pytest
from paypalserversdk.configuration import Configuration, Environment, Server
from paypalserversdk.exceptions.error_exception import ErrorException
from paypalserversdk.exceptions.o_auth_provider_exception import OAuthProviderException
from paypalserversdk.http.auth.o_auth_2 import ClientCredentialsAuthCredentials
from paypalserversdk.models.amount_breakdown import AmountBreakdown
from paypalserversdk.models.amount_with_breakdown import AmountWithBreakdown
from paypalserversdk.models.checkout_payment_intent import CheckoutPaymentIntent
from paypalserversdk.models.item import Item
from paypalserversdk.models.money import Money
from paypalserversdk.models.order_request import OrderRequest
from paypalserversdk.models.purchase_unit_request import PurchaseUnitRequest
from paypalserversdk.models.refund_request import RefundRequest
from paypalserversdk.paypal_serversdk_client import PaypalServersdkClient

from paywire.testing import EmulatorServer
from testkit import CLIENT_ID, CLIENT_SECRET

pytestmark = pytest.mark.sdk


def sdk_client(base_url: str, client_id: str = CLIENT_ID,
               secret: str = CLIENT_SECRET) -> PaypalServersdkClient:
    """The SDK's own client, configured as for the sandbox except for the host."""

    class EmulatorConfiguration(Configuration):  # type: ignore[misc]
        environments: ClassVar[dict[Environment, dict[Server, str]]] = {
            Environment.SANDBOX: {Server.DEFAULT: base_url},
            Environment.PRODUCTION: {Server.DEFAULT: base_url},
        }

    config = EmulatorConfiguration(
        environment=Environment.SANDBOX,
        client_credentials_auth_credentials=ClientCredentialsAuthCredentials(
            o_auth_client_id=client_id, o_auth_client_secret=secret),
    )
    return PaypalServersdkClient(config=config)


def order_request(value: str = "20.00") -> OrderRequest:
    """A two-item CAPTURE order built from the SDK's models."""
    half = f"{int(value.split('.')[0]) // 2}.00"
    return OrderRequest(
        intent=CheckoutPaymentIntent.CAPTURE,
        purchase_units=[PurchaseUnitRequest(
            reference_id="default",
            custom_id="paywire-order-1",
            amount=AmountWithBreakdown(
                currency_code="USD", value=value,
                breakdown=AmountBreakdown(item_total=Money(currency_code="USD", value=value))),
            items=[Item(name="Mug", quantity="2",
                        unit_amount=Money(currency_code="USD", value=half))],
        )],
    )


def approve(emulator: EmulatorServer, order_id: str, scenario: str = "approve") -> None:
    """Approve as the test buyer through the control API."""
    r = httpx.post(f"{emulator.url}/_emulator/orders/{order_id}/approve",
                   json={"scenario": scenario})
    assert r.status_code == 200, r.text


def test_sdk_create_get_capture_refund(emulator: EmulatorServer) -> None:
    """The SDK creates, gets and captures an order, then refunds part of the capture."""
    client = sdk_client(emulator.url)
    created = client.orders.create_order({"body": order_request(), "prefer": "return=minimal",
                                          "paypal_request_id": "sdk-create-1"})
    assert created.status_code == 201
    order_id = created.body.id
    assert created.body.status == "CREATED"
    assert any(link.rel == "approve" for link in created.body.links)

    got = client.orders.get_order({"id": order_id})
    assert got.status_code == 200
    assert got.body.purchase_units[0].amount.value == "20.00"
    assert got.body.purchase_units[0].custom_id == "paywire-order-1"

    approve(emulator, order_id)
    captured = client.orders.capture_order({"id": order_id, "prefer": "return=representation",
                                            "paypal_request_id": "sdk-capture-1"})
    assert captured.status_code == 201
    assert captured.body.status == "COMPLETED"
    capture = captured.body.purchase_units[0].payments.captures[0]
    assert capture.status == "COMPLETED"
    assert capture.amount.value == "20.00"

    refund = client.payments.refund_captured_payment({
        "capture_id": capture.id, "paypal_request_id": "sdk-refund-1",
        "body": RefundRequest(amount=Money(currency_code="USD", value="5.00")),
        "prefer": "return=representation"})
    assert refund.status_code == 201
    assert refund.body.status == "COMPLETED"
    assert refund.body.amount.value == "5.00"

    fetched = client.payments.get_captured_payment({"capture_id": capture.id})
    assert fetched.body.status == "PARTIALLY_REFUNDED"
    again = client.payments.get_refund({"refund_id": refund.body.id})
    assert again.body.id == refund.body.id


def test_sdk_sees_paypal_errors(emulator: EmulatorServer) -> None:
    """A capture before approval raises the SDK's ErrorException with PayPal's issue name."""
    client = sdk_client(emulator.url)
    order_id = client.orders.create_order({"body": order_request()}).body.id
    with pytest.raises(ErrorException) as info:
        client.orders.capture_order({"id": order_id})
    exc: Any = info.value
    assert exc.response_code == 422
    assert exc.name == "UNPROCESSABLE_ENTITY"
    assert exc.details[0].issue == "ORDER_NOT_APPROVED"


def test_sdk_bad_credentials_are_refused(emulator: EmulatorServer) -> None:
    """Wrong client credentials fail the SDK's token fetch with invalid_client."""
    client = sdk_client(emulator.url, secret="wrong")
    with pytest.raises(OAuthProviderException) as info:
        client.oauth_2.fetch_token()
    assert info.value.response_code == 401
    assert info.value.error == "invalid_client"
    good = sdk_client(emulator.url).oauth_2.fetch_token()
    assert good.access_token and good.token_type == "Bearer"
