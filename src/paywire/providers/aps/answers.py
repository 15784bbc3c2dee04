"""What an APS answer means for one of paywire's flows: a port result or a typed refusal.

Pure: no I/O. `results` reads APS's parameters and `mapping` classifies its codes; this module
turns those into what `ApsProvider` (`provider.py`) hands to the services, so that the
operations there only choose which command to send and when, and every flow reads an answer
the same way. The rules themselves are `provider.py`'s module doc.

A refund's id is built here too, because the feedback (`events.py`) names a notified refund
with the same string as the API's answer: one refund is then counted once, whichever arrives
first.
"""

from __future__ import annotations

import dataclasses

from paywire.domain.errors import ProviderError
from paywire.domain.money import Money
from paywire.domain.order import Order, OrderStatus
from paywire.ports import AuthorizationResult, CaptureResult, ProviderOrderState
from paywire.providers.aps.amounts import merchant_reference, parse_merchant_reference
from paywire.providers.aps.mapping import PROVIDER, REFUND, Outcome
from paywire.providers.aps.results import ApsResult, TransactionStatus

S = OrderStatus
REFUND_ID_SEP = "@"


def error(kind: str, message: str, code: str | None = None) -> ProviderError:
    """A refusal of `kind`; `unknown` also asks for a person (see below)."""
    # An answer no rule covers is never guessed at: the services flag the order for a person
    # (`details["needs_attention"]`) and leave the operation to be resumed.
    details = {"needs_attention": f"aps_unmapped:{code or 'none'}"} if kind == "unknown" else None
    return ProviderError(message, provider=PROVIDER, kind=kind, name=code,
                         retryable=kind == "transient", details=details)


def attempt_reference(order: Order) -> str:
    """The merchant reference of the order's current payment attempt."""
    return merchant_reference(order.id, order.capture_attempt)


# --- refunds: one id for the API's answer and the notification -------------------------------

def refund_id_of(result: ApsResult) -> str:
    """A refund's id: its fact key, then the transaction's merchant reference and currency
    (what asking about it later needs)."""
    currency = result.amount.currency if result.amount is not None else ""
    return REFUND_ID_SEP.join((result.fact_key(), result.merchant_reference or "", currency))


@dataclasses.dataclass(frozen=True, slots=True)
class RefundRef:
    """What a refund id says: where to ask (reference, currency, fort id) and how much was
    refunded (`minor` units of `currency`)."""

    merchant_reference: str
    currency: str
    fort_id: str | None
    minor: int

    @property
    def amount(self) -> Money:
        """The refunded amount (built when asked, as before the split: after CHECK_STATUS)."""
        return Money(self.minor, self.currency)


def parse_refund_id(refund_id: str) -> RefundRef:
    """The parts of a `refund_id_of` string; anything else is `invalid`."""
    pieces = refund_id.split(REFUND_ID_SEP)
    parts = pieces[0].split(":")
    if len(pieces) != 3 or len(parts) != 4 or parse_merchant_reference(pieces[1]) is None:
        raise error("invalid", f"not an APS refund id: {refund_id[:80]!r}")
    reference, currency = pieces[1], pieces[2]
    fort_id, command, minor, _ref = parts
    if command != REFUND or not minor.isdigit() or not currency:
        raise error("invalid", f"not an APS refund id: {refund_id[:80]!r}")
    return RefundRef(merchant_reference=reference, currency=currency, fort_id=fort_id or None,
                     minor=int(minor))


def refund_status(truth: TransactionStatus, amount: Money) -> str:
    """A refund's standing from CHECK_STATUS of its transaction.

    APS reports totals and the transaction's *last* operation, not each refund: the refund is
    completed when the last operation is a successful REFUND and the refunded total covers
    `amount`, failed when it is a failed REFUND, pending otherwise.
    """
    t = truth.transaction
    if t is not None and t.command == REFUND:
        refunded = truth.refunded.minor if truth.refunded else 0
        if t.outcome is Outcome.SUCCESS and refunded >= amount.minor:
            return "completed"
        if t.outcome is Outcome.DECLINED:
            return "failed"
    return "pending"


def with_request(result: ApsResult, reference: str, amount: Money, maintenance: str,
                 fort_id: str) -> ApsResult:
    """`result` with what the request sent filling what the answer left out (fact key)."""
    return dataclasses.replace(result, merchant_reference=result.merchant_reference or reference,
                               amount=result.amount or amount,
                               maintenance_reference=result.maintenance_reference or maintenance,
                               fort_id=result.fort_id or fort_id)


# --- answers to a command, and CHECK_STATUS ---------------------------------------------------

def settled(result: ApsResult) -> None:
    """Raise for anything but SUCCESS / PENDING (see `provider.py`'s module doc)."""
    outcome = result.outcome
    if outcome in (Outcome.SUCCESS, Outcome.PENDING):
        return
    c = result.classification
    if outcome is Outcome.UNCERTAIN:
        raise error("transient", f"APS {result.command} is uncertain ({c.reason}): resumed "
                    "under the same maintenance reference", c.response_code)
    if outcome in (Outcome.UNKNOWN, Outcome.DUPLICATE_REFERENCE, Outcome.ON_HOLD):
        raise error("unknown", f"APS {result.command} answered {c.response_code}: "
                    f"{c.reason}", c.response_code)
    raise c.error()


def paid(reference: str, truth: TransactionStatus) -> TransactionStatus:
    """`truth` when CHECK_STATUS shows the buyer's payment on APS's page went through; else the
    refusal that says why not (not paid yet, declined, waiting on 3-D Secure, uncertain)."""
    t = truth.transaction
    if not truth.found or t is None:
        q = truth.query
        if q.kind == "not_found":
            raise error("awaiting_payer", f"the buyer has not paid {reference} on APS's "
                        "page yet", q.response_code)
        raise q.error()
    if t.outcome is Outcome.DECLINED:
        raise error("declined", f"APS declined {reference}: {t.reason}", t.response_code)
    if t.outcome is Outcome.ON_HOLD:
        raise error("awaiting_payer", f"{reference} waits for the buyer's 3-D Secure "
                    "check", t.response_code)
    if t.outcome is Outcome.UNCERTAIN:
        raise error("transient", f"APS reports {reference} as uncertain ({t.reason}); "
                    "asking again later", t.response_code)
    if t.outcome in (Outcome.UNKNOWN, Outcome.ERROR, Outcome.DUPLICATE_REFERENCE):
        raise error("unknown", f"APS answered {t.response_code} for {reference}: "
                    f"{t.reason}", t.response_code)
    return truth


def not_in_flight(command: str, reference: str, truth: TransactionStatus) -> TransactionStatus:
    """`truth`, unless its last operation is `command` still pending or uncertain: `transient`,
    so a CAPTURE / VOID_AUTHORIZATION (no reference of their own) is never sent twice."""
    t = truth.transaction
    if truth.found and t is not None and t.command == command and t.outcome in (
            Outcome.PENDING, Outcome.UNCERTAIN, Outcome.ON_HOLD):
        raise error("transient", f"APS has a {command} of {reference} in flight "
                    f"({t.reason}); asking again later", t.response_code)
    return truth


def order_state(order: Order, truth: TransactionStatus) -> ProviderOrderState:
    """The order's state from CHECK_STATUS of its current attempt (`attempt` set, so a DENIED
    ends only that attempt); a transaction not settled yet is `transient`."""
    status = truth.order_status()
    t = truth.transaction
    code = truth.transaction_code or ""
    if status is None:
        why = t.reason if t is not None else "no transaction"
        raise error("transient", f"APS has {attempt_reference(order)} unsettled ({code}: "
                    f"{why}); asking again later", code or None)
    fort_id = truth.fort_id or ""
    captures: tuple[CaptureResult, ...] = ()
    authorizations: tuple[AuthorizationResult, ...] = ()
    if truth.captured is not None and truth.captured.minor > 0:
        captures = (CaptureResult(capture_id=fort_id, status=status, amount=truth.captured,
                                  provider_status=code, provider_order_id=order.id),)
    elif truth.authorized is not None and truth.authorized.minor > 0 and status in (
            S.AUTHORIZED, S.VOIDED):
        authorizations = (AuthorizationResult(authorization_id=fort_id, status=status,
                                              amount=truth.authorized,
                                              provider_status=code),)
    return ProviderOrderState(provider_order_id=order.id, status=status,
                              provider_status=code, amount=order.amount, captures=captures,
                              authorizations=authorizations, attempt=order.capture_attempt)
