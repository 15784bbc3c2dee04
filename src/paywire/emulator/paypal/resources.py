"""Pure renderers from the emulator's state to PayPal's JSON for captures, authorizations,
refunds and disputes (Payments v2 `capture-2`, `authorization-2`, `refund`; Disputes v1 `dispute`).

Nothing here mutates state or does I/O, so orders, payments, disputes and webhook events all show
one resource identically.
"""

from __future__ import annotations

import re
from typing import Any

from paywire.emulator.clock import iso
from paywire.emulator.paypal.currencies import money
from paywire.emulator.paypal.state import Authorization, Capture, Dispute, EmulatorState, Refund

# PayPal's standard domestic rate: 3.49% plus a fixed fee per currency (minor units).
FEE_BASIS_POINTS = 349
FIXED_FEES: dict[str, int] = {"JPY": 40, "HUF": 90, "TWD": 10, "GBP": 30, "EUR": 35}
DEFAULT_FIXED_FEE = 49

DISPUTE_RESPONSE_DAYS = 10
# Dispute outcomes in which the buyer gets the disputed amount back.
BUYER_REFUNDED = ("RESOLVED_BUYER_FAVOUR", "ACCEPTED", "RESOLVED_WITH_PAYOUT")
_DAY = 86400.0

SELLER_PROTECTION: dict[str, Any] = {
    "status": "ELIGIBLE",
    "dispute_categories": ["ITEM_NOT_RECEIVED", "UNAUTHORIZED_TRANSACTION"],
}

# The refund schema restricts custom_id further than the request does; a value outside this
# pattern is left out of the refund rather than rendered schema-invalid.
_REFUND_CUSTOM_ID = re.compile(r"^[A-Za-z0-9-_.,]{1,127}$")
_INVOICE_NUMBER = re.compile(r"^[A-Za-z0-9:\-|]{1,127}$")

# How a capture status reads as a dispute's `transaction_status`.
_TRANSACTION_STATUS: dict[str, str] = {
    "COMPLETED": "COMPLETED", "PARTIALLY_REFUNDED": "PARTIALLY_REFUNDED",
    "REFUNDED": "REFUNDED", "PENDING": "PENDING", "DECLINED": "DENIED", "FAILED": "FAILED",
}

# A dispute's `status` → its `dispute_state` (the filter the list call takes).
DISPUTE_STATES: dict[str, str] = {
    "OPEN": "OPEN_INQUIRIES",
    "WAITING_FOR_SELLER_RESPONSE": "REQUIRED_ACTION",
    "WAITING_FOR_BUYER_RESPONSE": "REQUIRED_OTHER_PARTY_ACTION",
    "UNDER_REVIEW": "UNDER_PAYPAL_REVIEW",
    "RESOLVED": "RESOLVED",
    "OTHER": "OPEN_INQUIRIES",
}


def paypal_fee(currency: str, gross_minor: int) -> int:
    """PayPal's fee on a capture of `gross_minor`: percentage rounded half up, plus fixed."""
    fixed = FIXED_FEES.get(currency, DEFAULT_FIXED_FEE)
    fee = (gross_minor * FEE_BASIS_POINTS + 5000) // 10000 + fixed
    return min(fee, gross_minor)


def _link(href: str, rel: str, method: str = "GET") -> dict[str, str]:
    return {"href": href, "rel": rel, "method": method}


def _related_ids(order_id: str, authorization_id: str | None = None) -> dict[str, Any]:
    ids = {"order_id": order_id}
    if authorization_id:
        ids["authorization_id"] = authorization_id
    return {"related_ids": ids}


def capture_json(emu: EmulatorState, cap: Capture, base_url: str) -> dict[str, Any]:
    """A capture as `GET /v2/payments/captures/{id}` shows it."""
    cur = cap.currency
    fee = paypal_fee(cur, cap.amount_minor)
    body: dict[str, Any] = {"id": cap.id, "status": cap.status}
    if cap.status_reason and cap.status in ("PENDING", "DECLINED", "REFUNDED",
                                             "PARTIALLY_REFUNDED"):
        body["status_details"] = {"reason": cap.status_reason}
    elif cap.status == "PENDING":
        body["status_details"] = {"reason": "PENDING_REVIEW"}
    body["amount"] = money(cur, cap.amount_minor)
    body["final_capture"] = cap.final_capture
    body["seller_protection"] = dict(SELLER_PROTECTION)
    if cap.status != "DECLINED" and cap.status != "FAILED":
        body["seller_receivable_breakdown"] = {
            "gross_amount": money(cur, cap.amount_minor),
            "paypal_fee": money(cur, fee),
            "net_amount": money(cur, cap.amount_minor - fee),
        }
    if cap.invoice_id:
        body["invoice_id"] = cap.invoice_id
    if cap.custom_id:
        body["custom_id"] = cap.custom_id
    body["supplementary_data"] = _related_ids(cap.order_id, cap.authorization_id)
    body["create_time"] = iso(cap.create_time)
    body["update_time"] = iso(cap.update_time)
    self_href = f"{base_url}/v2/payments/captures/{cap.id}"
    links = [_link(self_href, "self")]
    if cap.status in ("COMPLETED", "PARTIALLY_REFUNDED"):
        links.append(_link(f"{self_href}/refund", "refund", "POST"))
    # `up` is the authorization for an authorize-then-capture payment, else the order.
    if cap.authorization_id:
        links.append(_link(f"{base_url}/v2/payments/authorizations/{cap.authorization_id}", "up"))
    else:
        links.append(_link(f"{base_url}/v2/checkout/orders/{cap.order_id}", "up"))
    body["links"] = links
    return body


def authorization_json(emu: EmulatorState, auth: Authorization, base_url: str) -> dict[str, Any]:
    """An authorization as `GET /v2/payments/authorizations/{id}` shows it."""
    body: dict[str, Any] = {"id": auth.id, "status": auth.status}
    if auth.status == "PENDING":
        body["status_details"] = {"reason": "PENDING_REVIEW"}
    body["amount"] = money(auth.currency, auth.amount_minor)
    if auth.invoice_id:
        body["invoice_id"] = auth.invoice_id
    if auth.custom_id:
        body["custom_id"] = auth.custom_id
    body["seller_protection"] = dict(SELLER_PROTECTION)
    body["supplementary_data"] = _related_ids(auth.order_id)
    body["expiration_time"] = iso(auth.expiration_time)
    body["create_time"] = iso(auth.create_time)
    body["update_time"] = iso(auth.update_time)
    self_href = f"{base_url}/v2/payments/authorizations/{auth.id}"
    links = [_link(self_href, "self")]
    if auth.status in ("CREATED", "PARTIALLY_CAPTURED"):
        links.append(_link(f"{self_href}/capture", "capture", "POST"))
        links.append(_link(f"{self_href}/void", "void", "POST"))
        if auth.parent_id is None:
            links.append(_link(f"{self_href}/reauthorize", "reauthorize", "POST"))
    links.append(_link(f"{base_url}/v2/checkout/orders/{auth.order_id}", "up"))
    body["links"] = links
    return body


def _refunded_through(emu: EmulatorState, refund: Refund) -> int:
    """The capture's total refunded right after `refund` (a snapshot, as PayPal reports it)."""
    cap = emu.captures.get(refund.capture_id)
    if cap is None or refund.id not in cap.refund_ids:
        return refund.amount_minor
    total = 0
    for rid in cap.refund_ids[: cap.refund_ids.index(refund.id) + 1]:
        earlier = emu.refunds.get(rid)
        if earlier is not None and earlier.status in ("COMPLETED", "PENDING"):
            total += earlier.amount_minor
    return total


def refund_json(emu: EmulatorState, refund: Refund, base_url: str) -> dict[str, Any]:
    """A refund as `GET /v2/payments/refunds/{id}` shows it (its `up` link is the capture)."""
    cur = refund.currency
    body: dict[str, Any] = {"id": refund.id, "status": refund.status,
                            "amount": money(cur, refund.amount_minor)}
    if refund.invoice_id:
        body["invoice_id"] = refund.invoice_id
    if refund.custom_id and _REFUND_CUSTOM_ID.match(refund.custom_id):
        body["custom_id"] = refund.custom_id
    if refund.note_to_payer:
        body["note_to_payer"] = refund.note_to_payer
    # PayPal keeps its fee on refunds (US terms since 2019), so the merchant pays out the gross.
    body["seller_payable_breakdown"] = {
        "gross_amount": money(cur, refund.amount_minor),
        "paypal_fee": money(cur, 0),
        "net_amount": money(cur, refund.amount_minor),
        "total_refunded_amount": money(cur, _refunded_through(emu, refund)),
    }
    body["create_time"] = iso(refund.create_time)
    body["update_time"] = iso(refund.update_time)
    body["links"] = [
        _link(f"{base_url}/v2/payments/refunds/{refund.id}", "self"),
        _link(f"{base_url}/v2/payments/captures/{refund.capture_id}", "up"),
    ]
    return body


def _disputed_transaction(emu: EmulatorState, dispute: Dispute) -> dict[str, Any]:
    tx: dict[str, Any] = {"seller_transaction_id": dispute.capture_id}
    cap = emu.captures.get(dispute.capture_id)
    if cap is None:
        return tx
    tx["create_time"] = iso(cap.create_time)
    tx["transaction_status"] = _TRANSACTION_STATUS.get(cap.status, "COMPLETED")
    tx["gross_amount"] = money(cap.currency, cap.amount_minor)
    if cap.invoice_id and _INVOICE_NUMBER.match(cap.invoice_id):
        tx["invoice_number"] = cap.invoice_id
    if cap.custom_id:
        tx["custom"] = cap.custom_id[:2000]
    return tx


def dispute_summary_json(emu: EmulatorState, dispute: Dispute, base_url: str) -> dict[str, Any]:
    """A dispute as the list call shows it (`dispute_info`)."""
    return {
        "dispute_id": dispute.id,
        "create_time": iso(dispute.create_time),
        "update_time": iso(dispute.update_time),
        "reason": dispute.reason,
        "status": dispute.status,
        "dispute_state": DISPUTE_STATES.get(dispute.status, "OPEN_INQUIRIES"),
        "dispute_amount": money(dispute.currency, dispute.amount_minor),
        "dispute_life_cycle_stage": "INQUIRY",
        "dispute_channel": "INTERNAL",
        "links": [_link(f"{base_url}/v1/customer/disputes/{dispute.id}", "self")],
    }


def dispute_json(emu: EmulatorState, dispute: Dispute, base_url: str) -> dict[str, Any]:
    """A dispute as `GET /v1/customer/disputes/{id}` shows it."""
    body: dict[str, Any] = {
        "dispute_id": dispute.id,
        "create_time": iso(dispute.create_time),
        "update_time": iso(dispute.update_time),
        "disputed_transactions": [_disputed_transaction(emu, dispute)],
        "reason": dispute.reason,
        "status": dispute.status,
        "dispute_amount": money(dispute.currency, dispute.amount_minor),
        "dispute_life_cycle_stage": "INQUIRY",
        "dispute_channel": "INTERNAL",
    }
    if dispute.status == "RESOLVED":
        outcome: dict[str, Any] = {"outcome_code": dispute.outcome or "NONE"}
        if dispute.outcome in BUYER_REFUNDED:
            outcome["amount_refunded"] = money(dispute.currency, dispute.amount_minor)
        body["dispute_outcome"] = outcome
    elif dispute.status == "WAITING_FOR_SELLER_RESPONSE":
        due = dispute.create_time + DISPUTE_RESPONSE_DAYS * _DAY
        body["seller_response_due_date"] = iso(due)
    body["links"] = [_link(f"{base_url}/v1/customer/disputes/{dispute.id}", "self")]
    return body
