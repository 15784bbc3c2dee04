"""Confirming a webhook's claim with the provider's API before anything moves.

PayPal signs only a CRC-32 of a webhook body, and a CRC-32 can be matched with four chosen
bytes: whoever holds one genuine delivery paywire has not stored yet can send another body that
passes every signature check. So a PayPal event that would change money state or announce
something is never applied from its body. The ingest stores it and queues a confirmation (a
truth task, in the same transaction), answers 200, and the confirmation reads the order, refund
or dispute with paywire's own client and applies what PayPal answers: one GET per claim. A body
PayPal's answer contradicts changes nothing and leaves a CONTRADICTED history line with the
reason. APS signs every parameter with the merchant's phrase, so its feedback is applied as sent.

The claim travels in the task's `reason` (`confirm <event type> <event id> <claim> <id>`), so a
confirmation needs nothing but its task, whichever process or function runs it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from paywire.domain import trace
from paywire.domain.order import Order, OrderStatus, Verdict, decide
from paywire.ports import History, HistoryEntry, TruthTask

PREFIX = "confirm"
DISPUTED = "DISPUTED"  # the claim of a dispute opened (no order status of its own)
_NONE = "-"


@dataclass(frozen=True, slots=True)
class Claim:
    """What one webhook body claims, to be checked against the provider's answer."""

    event_id: str
    event_type: str
    target: str  # an OrderStatus value, or DISPUTED
    resource_id: str | None = None  # the capture, refund or dispute the body names

    def reason(self) -> str:
        """The claim as a truth task's reason."""
        return " ".join((PREFIX, self.event_type, self.event_id, self.target,
                         self.resource_id or _NONE))

    @classmethod
    def of(cls, task: TruthTask) -> Claim | None:
        """The claim a confirmation task carries; None for any other truth task."""
        parts = task.reason.split(" ")
        if len(parts) != 5 or parts[0] != PREFIX:
            return None
        _, event_type, event_id, target, resource = parts
        return cls(event_id, event_type, target, None if resource == _NONE else resource)

    def contradiction(self, truth: OrderStatus, payments: set[str]) -> str | None:
        """Why the provider's answer (what its order's status means for ours, and the capture
        and authorization ids it holds) contradicts a status claim; None if it agrees: at the
        claimed status or past it, holding the claimed payment."""
        try:
            target = OrderStatus(self.target)
        except ValueError:
            return None
        if truth != target and decide(truth, target) is not Verdict.STALE:
            return f"the event says {target}; PayPal's order says {truth}"
        if self.resource_id and target in (OrderStatus.COMPLETED, OrderStatus.PENDING,
                                           OrderStatus.DENIED, OrderStatus.AUTHORIZED) and (
                self.resource_id not in payments):
            return (f"the event names payment {self.resource_id}; PayPal's order holds "
                    f"{', '.join(sorted(payments)) or 'none'}")
        return None


def confirm_task(provider: str, claim: Claim, kind: str, resource_id: str, body: bytes,
                 order_id: str, now: datetime) -> TruthTask:
    """The confirmation of one delivered body: one task per (event id, body), so a second,
    different body under the same event id is confirmed on its own instead of being taken for
    a duplicate."""
    digest = hashlib.sha256(body).hexdigest()[:16]
    return TruthTask(id=f"{provider}:{PREFIX}:{claim.event_id}:{digest}", provider=provider,
                     kind=kind, resource_id=resource_id, reason=claim.reason(),
                     created_at=now, next_attempt_at=now, order_id=order_id)


async def record_contradiction(uow: History, order: Order, claim: Claim | None, why: str,
                               now: datetime, **detail: Any) -> None:
    """The history line of a body the provider's answer contradicts (nothing else moves);
    `claim` None for a truth fetch of something a body named that the provider does not know."""
    about = {} if claim is None else {"event_id": claim.event_id,
                                      "event_type": claim.event_type, "claimed": claim.target}
    await uow.append_history(HistoryEntry(
        order_id=order.id, at=now, source="webhook", verdict="CONTRADICTED",
        from_status=order.status, to_status=order.status,
        detail={**about, "reason": why, **detail}, trace_id=trace.current_id()))
