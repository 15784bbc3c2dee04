"""The operator's dashboard: what its pages read and what its buttons do, over the store port.

Reads run in snapshots (`Transactions.snapshot`): a page never waits for writers and never
writes. An order's page is one `Timeline`: every line of its history (each transition and its
verdict), every provider call paywire made for it (the operation key is the request id the
provider saw), every provider event stored for it, every announcement and each attempt to
deliver it, its refunds and what operators did to it, in time order, each with the trace it
was written in (`docs/tracing.md`: one id finds the story in the logs too).

The actions are the services the API and the CLI already use — `Reconciler.reconcile_now`,
`Refunds.refund` (the over-refund check before any provider call), the outbox's revive — plus
`resolve` (the `Resolved` fact: the flag cleared, the note in the order's history). Each is
written to the audit log (who, what, when, how it ended), whether it succeeded or not.

Nothing a page shows carries a secret: provider answers, event bodies and notes, the outbox's
and the truth queue's errors and the shop's answers pass `redact`, which hides credential-like
fields (access codes, signatures, tokens, secrets) and masks any run of 13 to 19 digits (a card
number) to its last four.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from paywire.domain import trace
from paywire.domain.errors import NotFoundError, PaywireError, ValidationError
from paywire.domain.facts import Resolved
from paywire.domain.money import Money
from paywire.domain.order import Order, OrderStatus
from paywire.ports import (
    AuditEntry,
    Clock,
    OpsUnitOfWork,
    OrderFilter,
    OrderPage,
    OutboxMessage,
    Transactions,
    TruthTask,
    WebhookRejection,
)
from paywire.services.common import new_id
from paywire.services.operations import retry_on_conflict
from paywire.services.orders import must_order
from paywire.services.reconcile import Reconciler
from paywire.services.refunds import Refunds
from paywire.services.registry import ProviderRegistry
from paywire.services.transitions import apply_fact

log = logging.getLogger("paywire.dashboard")

MAX_NOTE = 2000
# A refund's id as `new_refund_id` (and the API, `services.common.new_id("ref")`) makes it.
REFUND_ID = re.compile(r"ref_[0-9a-f]{24}")
HIDDEN = "••••"
_SECRET_KEY = re.compile(
    r"(secret|password|passphrase|phrase|signature|token|access_code|merchant_identifier|"
    r"authorization|card_security_code|cvv|expiry|api_key)", re.IGNORECASE)
_CARD = re.compile(r"(?<!\d)(\d[ -]?){9,15}(\d{4})(?!\d)")


def new_refund_id() -> str:
    """A fresh refund id for a refund form (the id the API's refunds get too)."""
    return new_id("ref")


def redact(value: Any) -> Any:
    """`value` (JSON-like) with credential-like fields hidden and card-number-like digit runs
    masked to their last four; other values as they are."""
    if isinstance(value, Mapping):
        return {k: HIDDEN if _SECRET_KEY.search(str(k)) and v not in (None, "") else redact(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _CARD.sub(lambda m: "•••• " + m.group(2), value)
    return value


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One thing that happened to an order, for its page."""

    at: datetime
    kind: str  # transition | provider_call | event | announcement | delivery | refund | audit
    title: str
    verdict: str | None = None  # APPLY | STALE | CONFLICT | NOTE, ok | failed, ...
    detail: dict[str, Any] = field(default_factory=dict)
    trace_id: str | None = None


@dataclass(frozen=True, slots=True)
class Timeline:
    """An order and everything known about it, oldest first."""

    order: Order
    entries: list[TimelineEntry]
    audit: list[AuditEntry]
    outbox: list[OutboxMessage]
    max_age: timedelta | None  # how long its status may last before it is stuck
    age: timedelta  # since its last change

    @property
    def stuck(self) -> bool:
        """Past its status's maximum age."""
        return self.max_age is not None and self.age > self.max_age

    @property
    def trace_ids(self) -> list[str]:
        """Every trace its story was written in, first seen first."""
        seen = [self.order.trace_id, *(e.trace_id for e in self.entries)]
        return list(dict.fromkeys(t for t in seen if t))


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What an operator's action did, in words for the page."""

    ok: bool
    message: str
    order: Order | None = None
    order_id: str | None = None  # the order it concerned, when known


_RANK = {"provider_call": 0, "event": 1, "transition": 2, "refund": 3, "announcement": 4,
         "delivery": 5, "audit": 6}


def _body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return {"raw": raw[:200].decode(errors="replace")}


class Dashboard:
    """The dashboard's reads and the operator's actions, each action audited."""

    def __init__(self, store: Transactions[OpsUnitOfWork], providers: ProviderRegistry,
                 clock: Clock, refunds: Refunds, reconciler: Reconciler) -> None:
        self.store = store
        self.providers = providers
        self.clock = clock
        self.refunds = refunds
        self.reconciler = reconciler

    # --- reads -------------------------------------------------------------------------------

    async def search(self, where: OrderFilter, *, query: str | None = None, limit: int = 50,
                     before: tuple[datetime, str] | None = None) -> OrderPage:
        """Orders by filters, newest first; `query` (an id: ours, a provider's order id, a
        capture or authorization id) finds that one order, the filters aside."""
        query = (query or "").strip()
        async with self.store.snapshot() as uow:
            if query:
                found = await uow.get_order(query)
                for name in self.providers.names():
                    found = found or await uow.find_order_by_provider_id(name, query)
                    found = found or await uow.find_order_by_capture_id(name, query)
                return OrderPage([found] if found is not None else [], None)
            return await uow.search_orders(where, limit=limit, before=before)

    def max_age(self, status: OrderStatus) -> timedelta | None:
        """How long an order may stay in `status` before the reconciler flags it stuck."""
        return self.reconciler.max_age.get(status)

    async def timeline(self, order_id: str) -> Timeline:
        """The order's page: it, and everything known about it in time order."""
        async with self.store.snapshot() as uow:
            order = await must_order(uow, order_id)
            history = await uow.history(order.id)
            operations = await uow.operations_for_order(order.id)
            events = await uow.inbox_for_order(order.id)
            outbox = [replace(m, last_error=redact(m.last_error))
                      for m in await uow.outbox_for_order(order.id)]
            attempts = await uow.delivery_attempts(order.id)
            refunds = await uow.refunds_for_order(order.id)
            audit = await uow.audit_for_order(order.id)
        entries: list[TimelineEntry] = []
        for h in history:
            moved = h.from_status != h.to_status
            title = (f"{h.from_status} → {h.to_status}" if moved else str(h.to_status))
            entries.append(TimelineEntry(h.at, "transition", f"{h.source}: {title}", h.verdict,
                                         redact(dict(h.detail)), h.trace_id))
        for op in operations:
            answer = op.result if op.status == "succeeded" else op.error
            entries.append(TimelineEntry(
                op.created_at, "provider_call", f"{op.kind} at the provider", op.status,
                {"operation key (request id)": op.key, "answer": redact(answer or {}),
                 "answered at": op.updated_at.isoformat() if op.status != "pending" else None},
                op.trace_id))
        for ev in events:
            entries.append(TimelineEntry(
                ev.received_at, "event", f"{ev.provider} {ev.event_type} received (verified)",
                ev.status, {"event id": ev.event_id, "transmission id": ev.transmission_id,
                            "note": redact(ev.note), "body": redact(_body(ev.body))}))
        for m in outbox:
            entries.append(TimelineEntry(
                m.created_at, "announcement", f"announced {m.type}", m.status,
                {"message id": m.id, "attempts": m.attempts, "last error": redact(m.last_error),
                 "payload": redact(m.payload)}, m.trace_id))
        for a in attempts:
            entries.append(TimelineEntry(
                a.at, "delivery", f"delivery #{a.attempt} of {a.message_type or a.message_id}",
                a.outcome, {"message id": a.message_id,
                            "shop's answer": redact(a.error) if a.error else "accepted"},
                a.trace_id))
        for r in refunds:
            entries.append(TimelineEntry(
                r.created_at, "refund", f"refund {r.amount} ({r.id})", r.status,
                {"provider refund id": r.provider_refund_id, "reason": r.reason,
                 "operation key": r.operation_key}))
        for e in audit:
            entries.append(TimelineEntry(e.at, "audit", f"{e.actor}: {e.action}", e.outcome,
                                         redact(dict(e.detail)), e.trace_id))
        # At one instant, the cause before what it caused: a provider call or an event, then
        # the transition it made, then what was announced and delivered (a stable sort keeps
        # each kind's own order).
        entries.sort(key=lambda e: (e.at, _RANK.get(e.kind, 9)))
        return Timeline(order, entries, audit, outbox, self.max_age(order.status),
                        self.clock.now() - order.updated_at)

    async def rejections(self, *, limit: int = 50, before: tuple[datetime, str] | None = None
                         ) -> list[WebhookRejection]:
        """Webhook deliveries refused for good, newest first."""
        async with self.store.snapshot() as uow:
            return await uow.list_rejections(limit=limit, before=before)

    async def truth_tasks(self, *, status: str | None = None, limit: int = 100
                          ) -> list[TruthTask]:
        """The truth queue by due time."""
        async with self.store.snapshot() as uow:
            rows = await uow.list_truth_tasks(status=status, limit=limit)
        return [replace(t, last_error=redact(t.last_error)) for t in rows]

    async def outbox(self, *, status: str | None = None, limit: int = 50,
                     before: tuple[datetime, str] | None = None) -> list[OutboxMessage]:
        """Outbox messages newest first."""
        async with self.store.snapshot() as uow:
            rows = await uow.list_outbox(status=status, limit=limit, before=before)
        return [replace(m, last_error=redact(m.last_error)) for m in rows]

    async def audit_log(self, *, limit: int = 100,
                        before: tuple[datetime, str] | None = None) -> list[AuditEntry]:
        """What operators did, newest first."""
        async with self.store.snapshot() as uow:
            return await uow.list_audit(limit=limit, before=before)

    # --- actions -----------------------------------------------------------------------------

    async def record(self, actor: str, action: str, *, order_id: str | None = None,
                     outcome: str = "ok", **detail: Any) -> None:
        """Write one audit entry (sign-ins, and every action below)."""
        entry = AuditEntry(id="aud_" + uuid.uuid4().hex, at=self.clock.now(), actor=actor,
                           action=action, order_id=order_id, outcome=outcome,
                           detail=redact(detail), trace_id=trace.current_id())
        async with self.store.transaction() as uow:
            await uow.record_audit(entry)
        log.info("operator %s: %s %s", actor, action, outcome,
                 extra={"actor": actor, "action": action, "order_id": order_id,
                        "outcome": outcome})

    async def _audited(self, actor: str, action: str, order_id: str | None,
                       work: Callable[[], Awaitable[ActionResult]],
                       **detail: Any) -> ActionResult:
        try:
            done = await work()
        except NotFoundError as exc:
            await self.record(actor, action, order_id=None, outcome="refused",
                              error=exc.message, target=order_id, **detail)
            return ActionResult(False, exc.message)
        except PaywireError as exc:
            await self.record(actor, action, order_id=order_id, outcome="refused",
                              error=exc.message, **detail)
            return ActionResult(False, exc.message)
        except Exception as exc:  # a bug or an outage: audited, then the caller's to report
            await self.record(actor, action, order_id=order_id, outcome="error",
                              error=type(exc).__name__, **detail)
            raise
        await self.record(actor, action, order_id=order_id,
                          outcome="ok" if done.ok else "error", result=done.message, **detail)
        return done

    async def reconcile(self, actor: str, order_id: str) -> ActionResult:
        """Ask the order's provider for the truth now, and apply it."""

        async def work() -> ActionResult:
            before = await self._order(order_id)
            after, report = await self.reconciler.reconcile_now(order_id)
            if report.errors:
                return ActionResult(False, "the provider could not be asked (see the logs); "
                                    f"the order is still {after.status}", after)
            moved = (f"moved {before.status} → {after.status}"
                     if after.status != before.status else f"still {after.status}")
            flagged = f"; flagged: {after.needs_attention}" if report.flagged else ""
            return ActionResult(True, f"reconciled with {after.provider}: {moved}{flagged}",
                                after)

        return await self._audited(actor, "reconcile", order_id, work)

    async def refund(self, actor: str, order_id: str, amount: str | None,
                     reason: str | None, *, refund_id: str) -> ActionResult:
        """Refund all that is left (no `amount`) or `amount` (decimal text in the order's
        currency); refused before the provider if it exceeds what is left.

        `refund_id` is the id the order's page put in its refund form (`new_refund_id`): a
        form sent twice (a double click, a resubmit, a retry) names the same refund, which
        `Refunds.refund` resumes or reports instead of making a second one."""
        reason = (reason or "").strip()[:MAX_NOTE] or None
        text = (amount or "").strip() or None

        async def work() -> ActionResult:
            if not REFUND_ID.fullmatch(refund_id):
                raise ValidationError("the refund form carries no refund id this dashboard "
                                      "made: reload the order's page", field="refund_id")
            order = await self._order(order_id)
            async with self.store.snapshot() as uow:
                earlier = await uow.get_refund(refund_id)
            if earlier is not None and earlier.order_id != order.id:
                raise ValidationError(f"refund {refund_id} is another order's: reload the "
                                      "order's page", field="refund_id")
            money = Money.parse(text, order.amount.currency) if text is not None else None
            after, made = await self.refunds.refund(order.id, money, refund_id=refund_id,
                                                    reason=reason)
            again = "this form was already sent: " if earlier is not None else ""
            return ActionResult(made.status != "failed",
                                f"{again}refund {made.id} of {made.amount}: {made.status}; the "
                                f"order is {after.status}", after)

        return await self._audited(actor, "refund", order_id, work, amount=text or "all left",
                                   reason=reason, refund_id=refund_id)

    async def resolve(self, actor: str, order_id: str, note: str) -> ActionResult:
        """Clear the order's needs-attention flag with a note (kept in its history)."""
        note = note.strip()[:MAX_NOTE]

        async def work() -> ActionResult:
            if not note:
                raise ValidationError("a note is required: say what was done", field="note")

            async def commit() -> tuple[Order, str | None]:
                async with self.store.transaction() as uow:
                    cur = await must_order(uow, order_id)
                    moved, _ = await apply_fact(uow, cur, Resolved(note, actor), self.clock.now())
                    return moved, cur.needs_attention

            after, was = await retry_on_conflict(commit)
            if was is None:
                return ActionResult(True, "the order was not flagged; the note is kept", after)
            return ActionResult(True, f"resolved ({was}); the note is in its history", after)

        return await self._audited(actor, "resolve", order_id, work, note=note)

    async def retry_outbox(self, actor: str, message_id: str) -> ActionResult:
        """Revive a dead (or queued) message: pending again, due now, attempts reset."""

        async def work() -> tuple[ActionResult, str | None]:
            async with self.store.transaction() as uow:
                found = await uow.get_outbox(message_id)
                if found is None:
                    raise NotFoundError(f"no outbox message {message_id}")
                if not await uow.revive_outbox(message_id, self.clock.now()):
                    return ActionResult(False, f"message {message_id} is {found.status}, not "
                                        "dead or queued: nothing to retry",
                                        order_id=found.order_id), found.order_id
            return ActionResult(True, f"message {message_id} is pending again: the worker "
                                "delivers it next", order_id=found.order_id), found.order_id

        order_id: str | None = None

        async def audited() -> ActionResult:
            nonlocal order_id
            done, order_id = await work()
            return done

        try:
            done = await audited()
        except PaywireError as exc:
            await self.record(actor, "outbox_retry", outcome="refused", error=exc.message,
                              message_id=message_id)
            return ActionResult(False, exc.message)
        except Exception as exc:
            await self.record(actor, "outbox_retry", outcome="error",
                              error=type(exc).__name__, message_id=message_id)
            raise
        await self.record(actor, "outbox_retry", order_id=order_id,
                          outcome="ok" if done.ok else "refused", message_id=message_id,
                          result=done.message)
        return done

    async def _order(self, order_id: str) -> Order:
        async with self.store.snapshot() as uow:
            order = await must_order(uow, order_id)
        trace.follow(order.trace_id, order_id=order.id, provider=order.provider)
        return order
