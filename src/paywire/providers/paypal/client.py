"""PayPal's endpoints as `ports.PaymentProvider`: Orders v2, Payments v2, Disputes v1 and the
webhook-signature postback.

Each method names a path, builds its body with `mapping` / `money` and reads the answer with
`mapping`; how a call is sent (OAuth, `PayPal-Request-Id`, bounded retries, the request's
deadline) is `transport`'s, so every endpoint gets the same rules without repeating them.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from paywire.domain.errors import ProviderError, ValidationError
from paywire.domain.money import Money
from paywire.domain.order import Order
from paywire.ports import (
    AuthorizationResult,
    CaptureResult,
    CheckoutForm,
    DisputeResult,
    ProviderOrder,
    ProviderOrderState,
    RefundResult,
)
from paywire.providers.paypal import mapping, money
from paywire.providers.paypal.transport import PayPalTransport


def _seg(resource_id: str) -> str:
    if not resource_id:
        raise ValidationError("a PayPal resource id is required", field="id")
    return quote(resource_id, safe="")


class PayPalClient(PayPalTransport):
    """`ports.PaymentProvider` for PayPal's REST API (or the bundled emulator)."""

    # --- PaymentProvider ------------------------------------------------------------------

    def check_amount(self, amount: Money) -> None:
        """Refuse (ValidationError) a currency or amount PayPal cannot take."""
        money.check_amount(amount)

    async def create_order(self, order: Order, *, request_id: str, return_url: str | None = None,
                           cancel_url: str | None = None) -> ProviderOrder:
        """Create the order at PayPal (one purchase unit, invoice id = our order id)."""
        body = mapping.order_request(order, return_url=return_url, cancel_url=cancel_url)
        return await self._parsed(mapping.parse_order_created, "POST", "/v2/checkout/orders",
                                  what="create order", request_id=request_id, body=body)

    def checkout_form(self, order: Order) -> CheckoutForm | None:
        """None: the buyer approves at PayPal's `approve_url`, no form is posted."""
        return None

    async def capture_order(self, provider_order_id: str, *, request_id: str,
                            order: Order | None = None,
                            token: str | None = None) -> CaptureResult:
        """Capture an approved CAPTURE-intent order."""
        path = f"/v2/checkout/orders/{_seg(provider_order_id)}/capture"
        return await self._parsed(mapping.parse_capture, "POST", path, what="capture order",
                                  request_id=request_id)

    async def authorize_order(self, provider_order_id: str, *, request_id: str,
                              order: Order | None = None,
                              token: str | None = None) -> AuthorizationResult:
        """Authorize an approved AUTHORIZE-intent order."""
        path = f"/v2/checkout/orders/{_seg(provider_order_id)}/authorize"
        return await self._parsed(mapping.parse_authorization, "POST", path,
                                  what="authorize order", request_id=request_id)

    async def capture_authorization(self, authorization_id: str, amount: Money | None, *,
                                    request_id: str, final: bool = True,
                                    order: Order | None = None) -> CaptureResult:
        """Capture `amount` of an authorization (None = all that is left)."""
        body: dict[str, Any] = {"final_capture": final}
        if amount is not None:
            body["amount"] = money.to_paypal_money(amount)
        path = f"/v2/payments/authorizations/{_seg(authorization_id)}/capture"
        return await self._parsed(mapping.parse_capture, "POST", path,
                                  what="capture authorization", request_id=request_id, body=body)

    async def void_authorization(self, authorization_id: str, *, request_id: str,
                                 order: Order | None = None) -> None:
        """Void an authorization."""
        path = f"/v2/payments/authorizations/{_seg(authorization_id)}/void"
        await self._call("POST", path, what="void authorization", request_id=request_id)

    async def refund_capture(self, capture_id: str, amount: Money | None, *, request_id: str,
                             invoice_id: str | None = None,
                             note_to_payer: str | None = None,
                             order: Order | None = None) -> RefundResult:
        """Refund `amount` of a capture (None = all that is left)."""
        body: dict[str, Any] = {}
        if amount is not None:
            body["amount"] = money.to_paypal_money(amount)
        if invoice_id is not None:
            body["invoice_id"] = invoice_id
        if note_to_payer is not None:
            body["note_to_payer"] = note_to_payer
        path = f"/v2/payments/captures/{_seg(capture_id)}/refund"
        return await self._parsed(mapping.parse_refund, "POST", path, what="refund capture",
                                  request_id=request_id, body=body)

    async def get_order(self, provider_order_id: str, *,
                        order: Order | None = None) -> ProviderOrderState:
        """PayPal's truth about an order."""
        path = f"/v2/checkout/orders/{_seg(provider_order_id)}"
        return await self._parsed(mapping.parse_order_state, "GET", path, what="get order")

    async def get_capture(self, capture_id: str) -> CaptureResult:
        """A capture as PayPal reports it now."""
        path = f"/v2/payments/captures/{_seg(capture_id)}"
        return await self._parsed(mapping.parse_capture, "GET", path, what="get capture")

    async def get_authorization(self, authorization_id: str) -> AuthorizationResult:
        """An authorization as PayPal reports it now."""
        path = f"/v2/payments/authorizations/{_seg(authorization_id)}"
        return await self._parsed(mapping.parse_authorization, "GET", path,
                                  what="get authorization")

    async def get_refund(self, refund_id: str) -> RefundResult:
        """A refund as PayPal reports it now."""
        path = f"/v2/payments/refunds/{_seg(refund_id)}"
        return await self._parsed(mapping.parse_refund, "GET", path, what="get refund")

    async def get_dispute(self, dispute_id: str) -> DisputeResult:
        """A dispute as PayPal reports it now."""
        path = f"/v1/customer/disputes/{_seg(dispute_id)}"
        return await self._parsed(mapping.parse_dispute, "GET", path, what="get dispute")

    # --- webhooks: postback verification --------------------------------------------------

    async def verify_webhook_signature(self, *, auth_algo: str, cert_url: str,
                                       transmission_id: str, transmission_sig: str,
                                       transmission_time: str, webhook_id: str,
                                       event_body: bytes) -> bool:
        """PayPal's verdict (`verify-webhook-signature`) on one transmission: SUCCESS -> True.

        `event_body` (the event's raw bytes, a JSON object) is spliced into the request
        unchanged: re-serializing it would change the bytes PayPal checks the CRC-32 of.
        """
        content = _postback_body({
            "auth_algo": auth_algo, "cert_url": cert_url, "transmission_id": transmission_id,
            "transmission_sig": transmission_sig, "transmission_time": transmission_time,
            "webhook_id": webhook_id}, event_body)
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        what = "verify webhook signature"
        resp = await self._send("POST", "/v1/notifications/verify-webhook-signature", what=what,
                                headers=headers, content=content)
        verdict = self._json(resp, what).get("verification_status")
        if verdict not in ("SUCCESS", "FAILURE"):
            raise ProviderError(f"PayPal {what} answered verification_status {verdict!r}",
                                provider=self.name, kind="unknown", status=resp.status_code,
                                debug_id=resp.headers.get("paypal-debug-id"))
        return bool(verdict == "SUCCESS")


def _postback_body(fields: dict[str, str], event_body: bytes) -> bytes:
    """The postback request: `fields` as JSON, then `"webhook_event":` and the raw event bytes."""
    if not event_body.strip().startswith(b"{"):
        raise ValidationError("the webhook event must be a JSON object", field="webhook_event")
    head = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return head[:-1] + b',"webhook_event":' + event_body + b"}"
