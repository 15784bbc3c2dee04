"""Webhook ingest: verify the raw bytes, store the event once, move the order, or ask.

One delivery, one disposition chosen by what a retry can achieve (architecture.md, invariant
6): verified (new or duplicate) → acknowledge; failed verification for good → refuse, recorded
once per transmission id with the reason; anything transient on our side → transient, so the
provider sends it again. The API maps each to a status (`api.webhooks`); this module knows no
HTTP, and no provider's wire format: the verifier checks the bytes, the parser reads them and
names the labels a refusal is recorded under.

The event row, the transition (or the queued confirmation), the history line and the
announcements share one transaction, and the inbox's put-if-absent is its gate: a concurrent
duplicate rolls the whole unit back. A delivery already stored is answered from a snapshot
read before that (`Store.snapshot`), so retries never queue behind the writers. (With
`confirm`, a different body under a stored event id is not a duplicate: its claims are queued
for confirmation, and no second inbox row is written.)

With `confirm` (PayPal, whose signature covers only a CRC-32 of the body: see
`services.confirm`), a fact that would move money or announce something is not applied from
the body: the event is stored with a confirmation task, acknowledged as `confirming`, and the
truth fetcher applies what PayPal's API answers. A fact that only repeats what the order
already holds (a stale verdict, a refund already counted) is recorded without a second look.

A caller that runs a delivery's confirmation at once (`receive(..., inline=True)`: the API,
right after its answer) gets the task handed over already leased, when the composition root
gave this ingest an `InlineClaim`: queued leased to the fetcher that will run it, in the
delivery's own transaction, so that run needs no claim of its own (a transaction, 4-5 round
trips on PostgreSQL). If this process dies first, the queue takes the task once that short
lease lapses.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from paywire.domain import trace
from paywire.domain.errors import (
    ConflictError,
    NotFoundError,
    PaywireError,
    ProviderError,
    SignatureError,
    StorageError,
    ValidationError,
)
from paywire.domain.events import ProviderEvent
from paywire.domain.facts import Dispute, Fact
from paywire.domain.order import Order, OrderStatus, Verdict, decide
from paywire.ports import (
    Clock,
    EventParser,
    HistoryEntry,
    InboxEvent,
    Metrics,
    NoMetrics,
    Orders,
    Transactions,
    TruthTask,
    WebhookRejection,
    WebhookUnit,
    WebhookVerifier,
)
from paywire.ports.metrics import WEBHOOK_VERIFY_SECONDS
from paywire.services.confirm import DISPUTED, Claim, confirm_task
from paywire.services.operations import retry_on_conflict
from paywire.services.refund_facts import apply_provider_refund
from paywire.services.transitions import apply_fact, flag_attention, record

S = OrderStatus


class Disposition(StrEnum):
    """What the sender should do about a delivery: what a retry of it can achieve."""

    ACKNOWLEDGE = "acknowledge"  # verified and stored (new or not): stop sending it
    REFUSE = "refuse"  # failed verification for good: recorded; a retry is refused again
    TRANSIENT = "transient"  # something on our side failed: nothing recorded, send it again


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    """How a delivery was disposed of and why."""

    disposition: Disposition
    # applied | confirming | duplicate | queued | ignored (acknowledged), rejected (refused),
    # unavailable (transient)
    outcome: str
    event_id: str | None = None
    order_id: str | None = None
    check: str | None = None
    reason: str | None = None
    likely_cause: str | None = None
    # The confirmation queued for this delivery (outcome `confirming`): run it now, in the
    # background, or leave it to the truth fetcher.
    confirm_task: str | None = None
    # That confirmation, queued leased to the inline claim's owner (`receive(inline=True)`):
    # run it as handed, with no claim; None when it must be claimed first (`confirm_task`).
    handed: Handed | None = None
    # Why it was refused (the verifier's SignatureError) or could not be taken now (a
    # StorageError, ProviderError or ConflictError): the API renders its answer from it.
    error: PaywireError | None = None


ACK = Disposition.ACKNOWLEDGE


@dataclass(frozen=True, slots=True)
class InlineClaim:
    """Who runs a delivery's confirmation in this process right after the answer (the truth
    fetcher's `owner`), and the lease it is queued under: the queue leaves the task alone that
    long, and takes it after (this process died, or the attempt ran out of time)."""

    owner: str
    lease: timedelta


@dataclass(frozen=True, slots=True)
class Handed:
    """A confirmation queued leased to the inline claim's owner, and its order as the
    delivery's transaction read it: what the truth fetcher needs to run it with no claim."""

    task: TruthTask
    order: Order


@dataclass(frozen=True, slots=True)
class _Applied:
    status: str
    order_id: str | None = None
    note: str | None = None
    confirm_task: str | None = None
    handed: Handed | None = None


class _Duplicate(Exception):
    """A concurrent delivery of the same event won the inbox insert: undo ours."""


class _Stored(Exception):
    """The event was stored since the snapshot said it was not: undo, and run again reading
    what was stored (its body decides whether this delivery is a duplicate)."""


def truth_task(provider: str, kind: str, resource_id: str, reason: str, now: datetime,
               order_id: str | None = None) -> TruthTask:
    """A truth fetch for one provider resource."""
    return TruthTask(id=f"{provider}:{kind}:{resource_id}", provider=provider, kind=kind,
                     resource_id=resource_id, reason=reason, created_at=now,
                     next_attempt_at=now, order_id=order_id)


class WebhookIngest:
    """Receives one provider's webhook deliveries."""

    def __init__(self, store: Transactions[WebhookUnit], verifier: WebhookVerifier,
                 parser: EventParser, clock: Clock, *, provider: str, max_rejections: int = 10_000,
                 confirm: bool = False, metrics: Metrics | None = None,
                 inline: InlineClaim | None = None) -> None:
        self.store = store
        self.metrics: Metrics = metrics or NoMetrics()  # the signature check's latency
        self.verifier = verifier
        self.parser = parser
        self.clock = clock
        self.provider = provider
        self.max_rejections = max_rejections
        self.confirm = confirm
        self.inline = inline  # given when this process confirms deliveries at once

    async def receive(self, headers: Mapping[str, str], body: bytes, *,
                      inline: bool = False) -> IngestOutcome:
        """Verify, then store and apply one delivery; transient when something on our side
        (the store, the certificate host or postback, a concurrent writer) failed.

        `inline`: the caller runs the confirmation this delivery queues at once, so it is
        queued leased to this ingest's inline claim (if it has one) and handed over
        (`IngestOutcome.handed`); the caller must run it (`TruthFetcher.confirm_handed`), or
        the queue waits for the lease to lapse."""
        trace.tag(provider=self.provider)
        try:
            return await self._receive(headers, body, self.inline if inline else None)
        except (StorageError, ProviderError, ConflictError) as exc:
            # Never recorded as a rejection: the provider's retry is what we want.
            return IngestOutcome(Disposition.TRANSIENT, "unavailable", error=exc)

    async def _receive(self, headers: Mapping[str, str], body: bytes,
                       inline: InlineClaim | None) -> IngestOutcome:
        started = time.perf_counter()
        try:
            delivery = await self.verifier.verify(headers, body)
        except SignatureError as exc:
            return await self._reject(headers, body, exc)
        finally:
            self.metrics.observe(WEBHOOK_VERIFY_SECONDS, time.perf_counter() - started,
                                 provider=self.provider)
        try:
            event = self.parser.parse(body)
        except ValidationError as exc:
            if exc.field == "resource":
                # Genuine (verified) but unusable: keep it for a person, and stop the retries.
                return await self._store_unusable(headers, body, delivery.transmission_id, exc)
            bad = SignatureError(f"verified, but not a usable event: {exc.message}", check="json",
                                 likely_cause=f"the body is not {self.parser.event_name}",
                                 status=400)
            return await self._reject(headers, body, bad)

        # A delivery already stored (the provider's retries, storms of them) is answered from
        # a read, which never waits for the writers; the inbox insert below stays the
        # authority, so a duplicate racing its first delivery is still caught there.
        async with self.store.snapshot() as view:
            seen = await view.get_inbox_event(self.provider, event.event_id)
        if seen is not None and (not self.confirm or seen.body == body):
            return IngestOutcome(ACK, "duplicate", event.event_id)

        # The snapshot's "not stored" is trusted by the first attempt, which reads the inbox no
        # second time: its insert is the authority, and if the event was stored meanwhile
        # (a concurrent delivery won), the unit is undone and run again with the read.
        unread = seen is None

        async def store_and_apply() -> IngestOutcome:
            nonlocal unread
            trusted, unread = unread, False
            try:
                async with self.store.transaction() as uow:
                    now = self.clock.now()
                    seen = None if trusted else await uow.get_inbox_event(self.provider,
                                                                          event.event_id)
                    if seen is not None:
                        if not self.confirm or seen.body == body:
                            raise _Duplicate
                        # Another body under a stored event id: one of the two is not what
                        # PayPal sent (a CRC-32 collision), and which one only PayPal's API can
                        # tell. Neither is refused: this one's claims are confirmed on their own.
                        done = await self._apply(uow, event, now, body, inline)
                        return IngestOutcome(ACK, done.status, event.event_id, done.order_id,
                                             reason=f"a different body under a stored event "
                                                    f"id: {done.note or done.status}",
                                             confirm_task=done.confirm_task,
                                             handed=done.handed)
                    done = await self._apply(uow, event, now, body, inline)
                    stored = InboxEvent(provider=self.provider, event_id=event.event_id,
                                        event_type=event.event_type, received_at=now, body=body,
                                        transmission_id=delivery.transmission_id,
                                        status=done.status, order_id=done.order_id,
                                        note=done.note)
                    if not await uow.put_inbox_event(stored):
                        raise _Stored if trusted and self.confirm else _Duplicate
            except _Duplicate:
                return IngestOutcome(ACK, "duplicate", event.event_id)
            except _Stored:
                return await store_and_apply()
            return IngestOutcome(ACK, done.status, event.event_id, done.order_id,
                                 confirm_task=done.confirm_task, handed=done.handed)

        # Two events of one order arrive together (a capture's COMPLETED pair): the loser of the
        # order's compare-and-set runs again from a fresh read rather than answering 5xx.
        return await retry_on_conflict(store_and_apply)

    async def _store_unusable(self, headers: Mapping[str, str], body: bytes,
                              transmission_id: str, exc: ValidationError) -> IngestOutcome:
        marks = self.parser.marks(headers, body)
        event_id = str(exc.details.get("event_id") or marks.event_id or "")
        event_type = str(exc.details.get("event_type") or marks.event_type or "")
        if not event_id:
            return await self._reject({}, body, SignatureError(exc.message, check="json"))
        async with self.store.transaction() as uow:
            written = await uow.put_inbox_event(InboxEvent(
                provider=self.provider, event_id=event_id, event_type=event_type,
                received_at=self.clock.now(), body=body, transmission_id=transmission_id,
                status="ignored", note=f"unusable resource: {exc.message}"[:500]))
        return IngestOutcome(ACK, "ignored" if written else "duplicate", event_id)

    async def _reject(self, headers: Mapping[str, str], body: bytes,
                      exc: SignatureError) -> IngestOutcome:
        marks = self.parser.marks(headers, body)
        digest = hashlib.sha256(body).hexdigest()
        rejection = WebhookRejection(
            provider=self.provider,
            transmission_id=marks.transmission_id or f"sha256:{digest}",
            received_at=self.clock.now(), check=exc.check, reason=exc.message,
            likely_cause=exc.likely_cause, event_id=marks.event_id, event_type=marks.event_type,
            cert_url=marks.cert_url, body_sha256=digest)
        async with self.store.transaction() as uow:
            await uow.record_rejection(rejection, self.max_rejections)
        return IngestOutcome(Disposition.REFUSE, "rejected", marks.event_id, None, exc.check,
                             exc.message, exc.likely_cause, error=exc)

    async def _apply(self, uow: WebhookUnit, event: ProviderEvent, now: datetime,
                     body: bytes, inline: InlineClaim | None = None) -> _Applied:
        order = await locate(uow, self.provider, event)
        if order is not None:
            # PayPal sends no traceparent: the event's effects join the order's own trace.
            trace.follow(order.trace_id, order_id=order.id)
        if order is None:
            if event.resource_id is None or event.resource_kind == "other":
                return _Applied("ignored", None, "no order of ours and nothing to fetch")
            # Applied from the provider's answer to our own GET, never from the body.
            await uow.enqueue_truth(truth_task(self.provider, event.resource_kind,
                                               event.resource_id, "unknown_order", now))
            return _Applied("queued", None, "unknown order: truth fetch queued")
        if event.attention is not None:
            # No rule covers what the provider reported: a person looks, nothing is guessed.
            if order.needs_attention is None:
                await flag_attention(uow, order, event.attention, now, source="webhook",
                                     event_id=event.event_id, event_type=event.event_type)
            return _Applied("applied", order.id, f"needs attention: {event.attention}")
        if self.confirm:
            confirming = await self._confirm(uow, order, event, now, body, inline)
            if confirming is not None:
                return confirming
        if event.dispute_id is not None:
            await apply_fact(uow, order, Dispute(event.dispute_id, event.dispute_open, "webhook",
                                                 {"event_type": event.event_type}), now)
            return _Applied("applied", order.id)
        fact = event.fact
        if fact is None and event.resource_kind in ("order", "capture", "refund",
                                                   "authorization"):
            # A known event whose meaning the event alone cannot settle (approval reversed,
            # a status contradicting the event type, a refund not yet completed): ask.
            return await self._queue(uow, order, event, "ambiguous_event", now)
        if fact is None:
            await uow.append_history(HistoryEntry(
                order_id=order.id, at=now, source="webhook", verdict="NOTE",
                from_status=order.status, to_status=order.status,
                detail={"event_type": event.event_type, "event_id": event.event_id},
                trace_id=trace.current_id()))
            return _Applied("ignored", order.id,
                            f"{event.event_type} is recorded, not acted on")
        # The body's word, not the provider's answer: what the order cannot take as told
        # (an amount other than ours, a refund that does not fit, a contradiction) is asked.
        told = dataclasses.replace(fact, hint=True)
        if fact.target is S.REFUNDED:
            _, outcome = await apply_provider_refund(uow, order, told, now)
        else:
            _, outcome = await apply_fact(uow, order, told, now)
        if outcome.ask is not None:
            return await self._queue(uow, order, event, outcome.ask, now)
        return _Applied("applied", order.id)

    async def _confirm(self, uow: WebhookUnit, order: Order, event: ProviderEvent,
                       now: datetime, body: bytes,
                       inline: InlineClaim | None) -> _Applied | None:
        """Queue the confirmation of a claim that would change something (leased to `inline`'s
        owner, and handed over, when given); None when the event changes nothing whatever
        PayPal says (applied here as the stale record it is)."""
        fact = event.fact
        what: tuple[str, str | None]
        if event.dispute_id is not None:
            if not event.dispute_open:
                return None  # a resolution is a history line: nothing moves, nothing is sent
            claim = Claim(event.event_id, event.event_type, DISPUTED, event.dispute_id)
            what = ("dispute", event.dispute_id)
        elif fact is None:
            return None  # no claim: queued for the truth or only recorded, as without confirm
        elif fact.target is S.REFUNDED:
            known = await uow.find_refund_by_provider_id(fact.refund_id) if (
                fact.refund_id) else None
            if known is not None and known.status == "completed":
                return None  # counted already: recorded as stale
            claim = Claim(event.event_id, event.event_type, str(fact.target), fact.refund_id)
            what = ("refund", fact.refund_id)
        else:
            if fact.attempt is None and decide(order.status, fact.target) is Verdict.STALE:
                return None  # already there or past it: recorded as stale, nothing moves
            claim = Claim(event.event_id, event.event_type, str(fact.target),
                          fact.capture_id or fact.authorization_id)
            # Our own record says which PayPal order to read, not the body.
            what = (("order", order.provider_order_id) if order.provider_order_id
                    else (event.resource_kind, event.resource_id))
        kind, resource = what
        if resource is None:
            return _Applied("ignored", order.id, f"{event.event_type}: nothing to confirm")
        task = confirm_task(self.provider, claim, kind, resource, body, order.id, now)
        if inline is not None:
            task = dataclasses.replace(task, lease_owner=inline.owner,
                                       lease_until=now + inline.lease)
        # Not queued: the same body's task is pending already (this different body delivered
        # again while its first confirmation runs or backs off). Whoever holds it finishes it;
        # without a lease of our own it is not handed over, only claimed by id, as before.
        queued = await uow.enqueue_truth(task)
        handed = Handed(task, order) if queued and inline is not None else None
        await uow.append_history(HistoryEntry(
            order_id=order.id, at=now, source="webhook", verdict="NOTE",
            from_status=order.status, to_status=order.status,
            detail={"event_type": event.event_type, "event_id": event.event_id,
                    "claimed": claim.target, "confirming": f"{kind} {resource}"},
            trace_id=trace.current_id()))
        return _Applied("confirming", order.id, f"confirming with the provider: {kind} "
                        f"{resource}", task.id, handed)

    async def _queue(self, uow: WebhookUnit, order: Order, event: ProviderEvent,
                     reason: str, now: datetime) -> _Applied:
        # Not guessed at: the provider's own object decides (invariant 7).
        resource: str | None
        if event.resource_kind == "refund" and event.resource_id:
            kind, resource = "refund", event.resource_id  # the order's truth has no refunds
        elif order.provider_order_id:
            kind, resource = "order", order.provider_order_id
        else:
            kind, resource = event.resource_kind, event.resource_id
        if resource is None:
            return _Applied("ignored", order.id, f"{reason}: nothing to fetch")
        await uow.enqueue_truth(truth_task(self.provider, kind, resource, reason, now,
                                           order_id=order.id))
        fact = event.fact or Fact(order.status, "webhook")
        await record(uow, order, fact, "NOTE", now, to=order.status, queued=reason,
                     event_id=event.event_id)
        return _Applied("queued", order.id, f"{reason}: truth fetch queued")

    async def replay(self, event_id: str) -> IngestOutcome:
        """Re-apply a stored event's bytes (verified when stored): no second inbox row, and
        idempotent through the state machine and the announcements' keys (NotFoundError if
        unknown)."""

        async def again() -> IngestOutcome:
            async with self.store.transaction() as uow:
                stored = await uow.get_inbox_event(self.provider, event_id)
                if stored is None:
                    raise NotFoundError(f"no stored {self.provider} event {event_id}")
                try:
                    event = self.parser.parse(stored.body)
                except ValidationError as exc:
                    return IngestOutcome(ACK, "ignored", event_id, stored.order_id,
                                         reason=f"not a usable event: {exc.message}")
                done = await self._apply(uow, event, self.clock.now(), stored.body)
            return IngestOutcome(ACK, done.status, event_id, done.order_id, reason=done.note,
                                 confirm_task=done.confirm_task)

        return await retry_on_conflict(again)


async def locate(uow: Orders, provider: str, event: ProviderEvent) -> Order | None:
    """Our order for an event: our own id first, then the provider's order, capture or auth id."""
    if event.order_id:
        order = await uow.get_order(event.order_id)
        if order is not None and order.provider == provider:
            return order
    if event.provider_order_id:
        order = await uow.find_order_by_provider_id(provider, event.provider_order_id)
        if order is not None:
            return order
    for ref in (event.capture_id, event.fact.capture_id if event.fact else None,
                event.fact.authorization_id if event.fact else None):
        if ref:
            order = await uow.find_order_by_capture_id(provider, ref)
            if order is not None:
                return order
    return None
