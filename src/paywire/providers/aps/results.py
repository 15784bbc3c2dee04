"""Verified APS parameters as typed results, and what they mean for an order. Pure: no I/O.

Callers verify the signature first (`Signer.verify_response`), then parse. Parsing never
raises for what APS sends: a malformed or missing field turns the classification into
`Outcome.UNKNOWN` (needs attention) with the reason, so the raw parameters are still kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from paywire.domain.errors import ValidationError
from paywire.domain.money import Money
from paywire.domain.order import OrderStatus
from paywire.providers.aps.amounts import from_aps_amount
from paywire.providers.aps.mapping import (
    AUTHORIZATION,
    CAPTURE,
    CHECK_STATUS,
    PAYMENT_COMMANDS,
    PURCHASE,
    VOID,
    Classification,
    Outcome,
    classify,
    classify_transaction,
)

S = OrderStatus


def _text(params: Mapping[str, Any], key: str) -> str | None:
    value = params.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) and value != "" else None


def _as_unknown(c: Classification, why: str) -> Classification:
    return dataclasses.replace(c, outcome=Outcome.UNKNOWN, reason=f"{why} ({c.reason})",
                               kind="unknown", retryable=False)


@dataclass(frozen=True, slots=True)
class TransactionStatus:
    """CHECK_STATUS's answer: the query's own outcome and the transaction's, with totals."""

    query: Classification
    transaction: Classification | None  # None unless the query succeeded
    fort_id: str | None
    merchant_reference: str | None
    transaction_status: str | None
    transaction_code: str | None
    transaction_message: str | None
    authorized: Money | None
    captured: Money | None
    refunded: Money | None
    params: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @property
    def found(self) -> bool:
        """Whether APS knows the transaction (the query succeeded)."""
        return self.query.outcome is Outcome.SUCCESS and self.transaction is not None

    def order_status(self) -> OrderStatus | None:
        """The order status this truth means; None when there is nothing to apply yet (on
        hold, uncertain) or nothing consistent to apply (the caller flags needs-attention
        when `transaction.needs_attention`)."""
        t = self.transaction
        if not self.found or t is None or t.outcome is Outcome.UNKNOWN:
            return None
        status = self.transaction_status or t.response_code[:2]
        if status in ("13", "03"):
            return S.DENIED
        if status == "08":
            return S.VOIDED
        if t.outcome in (Outcome.UNCERTAIN, Outcome.ON_HOLD):
            return None
        if t.outcome is Outcome.PENDING:
            return S.PENDING
        captured = self.captured.minor if self.captured else 0
        refunded = self.refunded.minor if self.refunded else 0
        if captured > 0:
            if refunded >= captured:
                return S.REFUNDED
            return S.PARTIALLY_REFUNDED if refunded > 0 else S.COMPLETED
        if self.authorized is not None and self.authorized.minor > 0:
            return S.AUTHORIZED
        return None


@dataclass(frozen=True, slots=True)
class ApsResult:
    """One transaction answer (S2S response, feedback, return_url), verified and classified.

    `truth` is set when the answer was resolved by CHECK_STATUS (a duplicate reference): then
    `classification` is the transaction's, read from the truth, not the refusal's.
    """

    command: str
    classification: Classification
    fort_id: str | None
    merchant_reference: str | None
    maintenance_reference: str | None
    amount: Money | None
    response_message: str | None
    three_ds_url: str | None = None
    token_name: str | None = None
    params: Mapping[str, Any] = field(repr=False, default_factory=dict)
    truth: TransactionStatus | None = None

    @property
    def outcome(self) -> Outcome:
        """The classification's outcome."""
        return self.classification.outcome

    @property
    def response_code(self) -> str:
        """The five-digit code classified (the truth's transaction code when resolved)."""
        return self.classification.response_code

    def fact_key(self) -> str:
        """The fact this answer reports, keyed as aps.md says: (fort_id, command, amount, our
        per-operation reference), so two equal partial refunds stay two facts."""
        amount = str(self.amount.minor) if self.amount is not None else ""
        ref = self.maintenance_reference or self.merchant_reference or ""
        return f"{self.fort_id or ''}:{self.command}:{amount}:{ref}"

    def target_status(self) -> OrderStatus | None:
        """The order status this answer moves an order to; None when it does not decide one
        (a refund: the refunded total decides; a failed maintenance call; anything open)."""
        if self.truth is not None:
            return self.truth.order_status()
        outcome = self.outcome
        if outcome is Outcome.SUCCESS:
            return {PURCHASE: S.COMPLETED, AUTHORIZATION: S.AUTHORIZED, CAPTURE: S.COMPLETED,
                    VOID: S.VOIDED}.get(self.command)
        if self.command in PAYMENT_COMMANDS:
            if outcome is Outcome.DECLINED:
                return S.DENIED
            if outcome is Outcome.PENDING:
                return S.PENDING
        return None


def parse_result(params: Mapping[str, Any], *, command: str | None = None,
                 expected_amount: Money | None = None,
                 expected_reference: str | None = None) -> ApsResult:
    """Verified transaction parameters as an `ApsResult`.

    `command` is the one sent (the parameters' own `command`/`service_command` otherwise). An
    answer for another command or merchant reference, or for an amount other than
    `expected_amount`, is UNKNOWN: paywire never fulfils an amount it did not ask for.
    """
    sent = _text(params, "command") or _text(params, "service_command")
    cmd = command or sent or ""
    c = classify(cmd, params.get("response_code"))
    if command is not None and sent is not None and sent != command:
        c = _as_unknown(c, f"answer for command {sent[:40]!r}, sent {command}")
    ref = _text(params, "merchant_reference")
    if expected_reference is not None and ref is not None and ref != expected_reference:
        c = _as_unknown(c, f"answer for merchant_reference {str(ref)[:40]!r}")
    amount: Money | None = None
    if params.get("amount") not in (None, ""):
        try:
            amount = from_aps_amount(params.get("amount"), params.get("currency"))
        except ValidationError as exc:
            c = _as_unknown(c, f"malformed amount: {exc.message}")
    if expected_amount is not None and amount is not None and amount != expected_amount:
        c = _as_unknown(c, f"amount {amount} differs from the {expected_amount} sent")
    return ApsResult(
        command=cmd, classification=c, fort_id=_text(params, "fort_id"),
        merchant_reference=ref,
        maintenance_reference=_text(params, "maintenance_reference"), amount=amount,
        response_message=_text(params, "response_message"),
        three_ds_url=_text(params, "3ds_url"), token_name=_text(params, "token_name"),
        params=MappingProxyType(dict(params)))


def parse_status(params: Mapping[str, Any], currency: str) -> TransactionStatus:
    """Verified CHECK_STATUS parameters as a `TransactionStatus` (amounts in `currency`)."""
    query = classify(CHECK_STATUS, params.get("response_code"))
    sent = _text(params, "query_command")
    if sent is not None and sent != CHECK_STATUS:
        query = _as_unknown(query, f"answer for query_command {sent[:40]!r}")
    transaction: Classification | None = None
    t_status, t_code = _text(params, "transaction_status"), _text(params, "transaction_code")
    if query.outcome is Outcome.SUCCESS:
        transaction = classify_transaction(t_code)
        if t_status is not None and t_code is not None and t_code[:2] != t_status:
            transaction = _as_unknown(transaction, f"transaction_status {t_status} disagrees "
                                      f"with transaction_code {t_code}")
    totals: dict[str, Money | None] = {}
    for key in ("authorized_amount", "captured_amount", "refunded_amount"):
        raw = params.get(key)
        totals[key] = None
        if raw in (None, ""):
            continue
        try:
            totals[key] = from_aps_amount(raw, currency)
        except ValidationError as exc:
            if transaction is not None:
                transaction = _as_unknown(transaction, f"malformed {key}: {exc.message}")
    return TransactionStatus(
        query=query, transaction=transaction, fort_id=_text(params, "fort_id"),
        merchant_reference=_text(params, "merchant_reference"), transaction_status=t_status,
        transaction_code=t_code, transaction_message=_text(params, "transaction_message"),
        authorized=totals["authorized_amount"], captured=totals["captured_amount"],
        refunded=totals["refunded_amount"], params=MappingProxyType(dict(params)))


def resolved(original: ApsResult, truth: TransactionStatus) -> ApsResult:
    """`original` (a duplicate-reference refusal) answered by CHECK_STATUS's truth.

    For a payment, the transaction's status decides: its own outcome while it is a payment
    status, SUCCESS once a maintenance operation followed it (it was paid). For a maintenance
    call the truth describes the transaction's *last* operation: its outcome stands when that is
    this command; otherwise this call stays UNCERTAIN and the totals (`truth.captured` /
    `truth.refunded`) settle it.
    """
    t = truth.transaction
    cmd = original.command
    if not truth.found or t is None:
        why = f"duplicate reference, and CHECK_STATUS answered {truth.query.response_code}"
        c = _as_unknown(original.classification, why)
    elif t.outcome in (Outcome.UNKNOWN, Outcome.DUPLICATE_REFERENCE):
        c = _as_unknown(dataclasses.replace(t, command=cmd), "CHECK_STATUS cannot settle it")
    elif cmd in PAYMENT_COMMANDS:
        if t.command == PURCHASE and t.outcome not in (Outcome.SUCCESS, Outcome.DECLINED):
            c = dataclasses.replace(t, command=cmd)  # open statuses mean the same for both
        elif t.command in PAYMENT_COMMANDS:
            c = t if t.command == cmd else _as_unknown(
                t, f"duplicate reference names a {t.command}, sent {cmd}")
        else:
            c = Classification(cmd, t.response_code, Outcome.SUCCESS,
                               f"paid; the last operation since: {t.reason}")
    elif t.command == cmd:
        c = t
    else:
        c = Classification(cmd, t.response_code, Outcome.UNCERTAIN,
                           f"duplicate reference; the transaction's last operation is "
                           f"{t.command}: settle by its totals")
    return dataclasses.replace(original, classification=c, truth=truth,
                               fort_id=original.fort_id or truth.fort_id)
