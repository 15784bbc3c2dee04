"""Webhook events: the envelope PayPal wraps around a resource, stored then handed to delivery."""

from __future__ import annotations

import copy
from typing import Any

from paywire.emulator.clock import iso
from paywire.emulator.paypal.state import EmulatorState, new_id

# resource_type and resource_version PayPal sends for each event family.
RESOURCE_VERSIONS: dict[str, str] = {
    "checkout-order": "2.0",
    "capture": "2.0",
    "refund": "2.0",
    "authorization": "2.0",
    "dispute": "1.0",
}

# Every event type the emulator emits, with PayPal's description.
EVENT_TYPES: dict[str, str] = {
    "CHECKOUT.ORDER.APPROVED": "An order has been approved by buyer.",
    "CHECKOUT.ORDER.COMPLETED": "Checkout Order Completed.",
    "CHECKOUT.ORDER.VOIDED": "A checkout order is voided.",
    "CHECKOUT.PAYMENT-APPROVAL.REVERSED": "A problem occurred after the buyer approved the "
                                          "order, so the payment approval is reversed.",
    "PAYMENT.AUTHORIZATION.CREATED": "A payment authorization is created.",
    "PAYMENT.AUTHORIZATION.VOIDED": "A payment authorization is voided.",
    "PAYMENT.CAPTURE.COMPLETED": "A payment capture completes.",
    "PAYMENT.CAPTURE.PENDING": "The state of a payment capture changes to pending.",
    "PAYMENT.CAPTURE.DENIED": "A payment capture is denied.",
    "PAYMENT.CAPTURE.DECLINED": "A payment capture is declined.",
    "PAYMENT.CAPTURE.REFUNDED": "A merchant refunds a payment capture.",
    "PAYMENT.CAPTURE.REVERSED": "PayPal reverses a payment capture.",
    "CUSTOMER.DISPUTE.CREATED": "A dispute is created.",
    "CUSTOMER.DISPUTE.UPDATED": "A dispute is updated.",
    "CUSTOMER.DISPUTE.RESOLVED": "A dispute is resolved.",
}


SUMMARIES: dict[str, str] = {
    "CHECKOUT.ORDER.APPROVED": "An order has been approved by buyer",
    "CHECKOUT.ORDER.COMPLETED": "Checkout Order Completed",
    "CHECKOUT.ORDER.VOIDED": "Checkout Order Voided",
    "CHECKOUT.PAYMENT-APPROVAL.REVERSED": "A payment approval has been reversed",
    "PAYMENT.CAPTURE.COMPLETED": "Payment completed for {amount}",
    "PAYMENT.CAPTURE.PENDING": "Payment pending for {amount}",
    "PAYMENT.CAPTURE.DENIED": "Payment denied for {amount}",
    "PAYMENT.CAPTURE.DECLINED": "Payment declined for {amount}",
    "PAYMENT.CAPTURE.REFUNDED": "A {amount} capture payment was refunded",
    "PAYMENT.CAPTURE.REVERSED": "A {amount} capture payment was reversed",
    "PAYMENT.AUTHORIZATION.CREATED": "A payment authorization was created",
    "PAYMENT.AUTHORIZATION.VOIDED": "A payment authorization was voided",
    "CUSTOMER.DISPUTE.CREATED": "A new dispute opened",
    "CUSTOMER.DISPUTE.UPDATED": "A dispute was updated",
    "CUSTOMER.DISPUTE.RESOLVED": "A dispute was resolved",
}


def _amount_text(resource: dict[str, Any]) -> str:
    amount = resource.get("amount")
    if isinstance(amount, dict) and "value" in amount:
        return f"{amount.get('value')} {amount.get('currency_code')}"
    return "the"


def build_event(emu: EmulatorState, event_type: str, resource_type: str,
                resource: dict[str, Any], base_url: str) -> dict[str, Any]:
    """A webhook event envelope around a snapshot of `resource`."""
    event_id = "WH-" + new_id(8) + "-" + new_id(17)
    summary = SUMMARIES.get(event_type, event_type.replace(".", " ").title()).format(
        amount=_amount_text(resource))
    return {
        "id": event_id,
        "event_version": "1.0",
        "create_time": iso(emu.clock.now()),
        "resource_type": resource_type,
        "resource_version": RESOURCE_VERSIONS.get(resource_type, "2.0"),
        "event_type": event_type,
        "summary": summary,
        "resource": copy.deepcopy(resource),
        "links": [
            {"href": f"{base_url}/v1/notifications/webhooks-events/{event_id}", "rel": "self",
             "method": "GET"},
            {"href": f"{base_url}/v1/notifications/webhooks-events/{event_id}/resend",
             "rel": "resend", "method": "POST"},
        ],
    }


def publish(emu: EmulatorState, client_id: str, event_type: str, resource_type: str,
            resource: dict[str, Any], base_url: str) -> dict[str, Any]:
    """Store an event for `client_id` and hand it to the deliverer."""
    event = build_event(emu, event_type, resource_type, resource, base_url)
    emu.events[event["id"]] = event
    emu.event_owner[event["id"]] = client_id
    emu.deliverer.enqueue(event, client_id)
    return event


def sample_resource(event_type: str, now: str, base: str) -> tuple[str, dict[str, Any]]:
    """A plausible mock resource for a simulated event: (resource_type, resource)."""
    amount = {"currency_code": "USD", "value": "10.00"}
    rid, order_id, tail = new_id(17), new_id(17), event_type.rsplit(".", 1)[-1]
    related = {"related_ids": {"order_id": order_id}}
    if event_type.startswith("CHECKOUT."):
        kind, path = "checkout-order", f"/v2/checkout/orders/{order_id}"
        res: dict[str, Any] = {
            "id": order_id, "intent": "CAPTURE",
            "status": tail if tail in ("COMPLETED", "VOIDED") else "APPROVED",
            "purchase_units": [{"reference_id": "default", "amount": amount}]}
    elif event_type in ("PAYMENT.CAPTURE.REFUNDED", "PAYMENT.CAPTURE.REVERSED"):
        # These carry the refund (or the reversal's refund-shaped record), not the capture.
        kind, path = "refund", f"/v2/payments/refunds/{rid}"
        res = {"id": rid, "status": "COMPLETED", "amount": amount}
    elif event_type.startswith("PAYMENT."):
        kind = "capture" if ".CAPTURE." in event_type else "authorization"
        path = f"/v2/payments/{kind}s/{rid}"
        status = "DECLINED" if tail == "DENIED" else tail  # a denied capture reads DECLINED
        res = {"id": rid, "status": status, "amount": amount, "supplementary_data": related}
    else:
        kind, rid = "dispute", "PP-D-" + new_id(5)
        path = f"/v1/customer/disputes/{rid}"
        res = {"dispute_id": rid, "reason": "MERCHANDISE_OR_SERVICE_NOT_RECEIVED",
               "status": "RESOLVED" if tail == "RESOLVED" else "OPEN", "dispute_amount": amount,
               "disputed_transactions": [{"seller_transaction_id": new_id(17)}]}
    res.update(create_time=now, update_time=now,
               links=[{"href": f"{base}{path}", "rel": "self", "method": "GET"}])
    return kind, res
