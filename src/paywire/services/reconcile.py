"""Reconciliation: orders whose webhooks never came are settled by asking the provider.

Orders in a non-final state past that state's threshold (CREATED 30 min, APPROVED 10 min,
PENDING 1 h, AUTHORIZED 1 day by default) are GET from the provider and its truth is applied
through `TruthApplier.apply` — `apply_fact` underneath, so each fact is announced
once whichever path (API answer, webhook, reconciliation) saw it first (invariant 7).

Checks of one order back off (5 s, 10 s, 20 s … up to one hour, then hourly). An order is never
flagged by how often it was checked, only by how long it has been in its state (age = now − the
order's last change): a PENDING eCheck capture may take days. A 404 is expiry only for an order
older than PayPal's approval window; a younger 404 means paywire is asking the wrong PayPal
(sandbox/live, base URL) and is flagged as a configuration fault.

An order that never reached the provider (no provider order id) is EXPIRED once past the
CREATED maximum age: whatever the create call did, a PayPal order made then has expired
unapproved by now, so nothing can be paid on it — the shop hears `order.expired`, as for any
abandoned checkout.

An AUTHORIZED order whose authorization ran out (it reads EXPIRED, or its expiration_time has
passed: PayPal keeps showing CREATED after the 29 days) is EXPIRED, not flagged as stuck.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from paywire.domain import trace
from paywire.domain.errors import PaywireError, ProviderError
from paywire.domain.facts import Fact
from paywire.domain.order import Order, OrderStatus, Verdict
from paywire.domain.retry import Backoff
from paywire.domain.transition import Outcome
from paywire.ports import (
    AuthorizationResult,
    Clock,
    ProviderOrderState,
    ReconcileState,
    ReconcileUnit,
    Refund,
    RefundResult,
    Transactions,
)
from paywire.services import loop
from paywire.services.operations import retry_on_conflict
from paywire.services.orders import must_order
from paywire.services.provider_truth import TruthApplier
from paywire.services.refund_facts import apply_provider_refund
from paywire.services.refunds import release_reservation
from paywire.services.registry import ProviderRegistry
from paywire.services.transitions import apply_fact, flag_attention
from paywire.services.truth import TruthFetcher

log = logging.getLogger("paywire.reconcile")
S = OrderStatus

DEFAULT_THRESHOLDS: Mapping[OrderStatus, timedelta] = {
    S.CREATED: timedelta(minutes=30), S.APPROVED: timedelta(minutes=10),
    S.PENDING: timedelta(hours=1), S.AUTHORIZED: timedelta(days=1)}
# CREATED's default is the approval window plus this margin (see `Reconciler`).
CREATED_MARGIN = timedelta(hours=1)
DEFAULT_MAX_AGE: Mapping[OrderStatus, timedelta] = {
    S.APPROVED: timedelta(days=1), S.PENDING: timedelta(days=7),
    S.AUTHORIZED: timedelta(days=29)}
YOUNG_404 = "provider_404_young"


def authorization_lapsed(order: Order, truth: ProviderOrderState, now: datetime) -> bool:
    """Whether an AUTHORIZED order's authorizations can no longer be captured because they ran
    out: each one still open reads EXPIRED, or is past its expiry (PayPal keeps showing CREATED
    after the 29 days; only a capture's AUTHORIZATION_EXPIRED tells), and nothing was captured."""
    if order.status is not S.AUTHORIZED or truth.captures or not truth.authorizations:
        return False

    def lapsed(auth: AuthorizationResult) -> bool:
        return auth.status is S.EXPIRED or (auth.status is S.AUTHORIZED
                                            and auth.expires_at is not None
                                            and now >= auth.expires_at)

    open_ = [a for a in truth.authorizations if a.status in (S.AUTHORIZED, S.PENDING, S.EXPIRED)]
    return bool(open_) and all(lapsed(a) for a in open_)


@dataclass
class ReconcileReport:
    """What one reconciliation pass did."""

    checked: int = 0
    settled: int = 0  # reached a final state in this pass
    expired: int = 0
    flagged: int = 0
    errors: int = 0
    refunds_checked: int = 0
    refunds_completed: int = 0
    truth_processed: int = 0
    attention: list[tuple[str, str]] = field(default_factory=list)  # (order id, reason)

    @property
    def ok(self) -> bool:
        """Nothing was flagged and nothing failed in this pass."""
        return not (self.flagged or self.errors)

    def add(self, other: ReconcileReport) -> None:
        """Count `other`'s pass into this one."""
        for name in ("checked", "settled", "expired", "flagged", "errors", "refunds_checked",
                     "refunds_completed", "truth_processed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.attention.extend(other.attention)

    def as_json(self) -> dict[str, object]:
        """The report as plain JSON."""
        return {"checked": self.checked, "settled": self.settled, "expired": self.expired,
                "flagged": self.flagged, "errors": self.errors,
                "refunds_checked": self.refunds_checked,
                "refunds_completed": self.refunds_completed,
                "truth_processed": self.truth_processed,
                "attention": [{"order_id": o, "reason": r} for o, r in self.attention]}


class Reconciler:
    """Finds stuck orders and pending refunds, asks the provider, applies its answer.

    `approval_window` is the provider's (see `Checkout`): a 404 or a void is expiry only past it.
    """

    def __init__(self, store: Transactions[ReconcileUnit], providers: ProviderRegistry,
                 applier: TruthApplier, truth: TruthFetcher | None, clock: Clock, *,
                 approval_window: timedelta = timedelta(hours=3),
                 thresholds: Mapping[OrderStatus, timedelta] | None = None,
                 max_age: Mapping[OrderStatus, timedelta] | None = None,
                 base_delay: timedelta = timedelta(seconds=5),
                 max_delay: timedelta = timedelta(hours=1),
                 refund_pending_threshold: timedelta = timedelta(hours=1),
                 batch: int = 100) -> None:
        self.store = store
        # Told each pass's report (the composition root counts it: `metering.count_reconcile`).
        self.on_pass: Callable[[ReconcileReport], None] | None = None
        self.providers = providers
        self.applier = applier
        self.truth = truth
        self.clock = clock
        self.approval_window = approval_window
        self.thresholds = dict(thresholds or DEFAULT_THRESHOLDS)
        ages = {S.CREATED: approval_window + CREATED_MARGIN, **DEFAULT_MAX_AGE}
        self.max_age = {**ages, **(max_age or {})}
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.refund_pending_threshold = refund_pending_threshold
        self.batch = batch

    def without_truth_queue(self) -> Reconciler:
        """This reconciler minus the truth queue (for a process whose truth fetcher runs on its
        own schedule, or is switched off)."""
        twin = copy.copy(self)
        twin.truth = None
        return twin

    def delay(self, attempts: int) -> timedelta:
        """How long after its `attempts`-th check an order is checked again (the one backoff
        policy, `domain.retry.Backoff`, without jitter: doubling from `base_delay`, capped)."""
        backoff = Backoff(self.base_delay.total_seconds(), self.max_delay.total_seconds())
        return timedelta(seconds=backoff.ceiling(attempts))

    async def run_once(self) -> ReconcileReport:
        """One pass: due orders, pending refunds, then the truth-fetch queue once."""
        report = ReconcileReport()
        now = self.clock.now()
        cutoffs = {status: now - wait for status, wait in self.thresholds.items()}
        async with self.store.transaction() as uow:
            candidates = await uow.reconcile_candidates(cutoffs, now, self.batch)
        for order, state in candidates:
            report.checked += 1
            # Each order's check is work of its own in the order's trace.
            with trace.scope(trace.join(order.trace_id), order_id=order.id,
                             provider=order.provider):
                try:
                    await self._check(order, state, report)
                except PaywireError as exc:
                    report.errors += 1
                    log.warning("reconciling %s failed: %s", order.id, exc.message,
                                extra={"status": str(order.status), "outcome": "error"})
                    with contextlib.suppress(PaywireError):  # back off, never spin on one
                        await self._schedule(order.id, state, now)
        await self._refunds(report)
        if self.truth is not None:
            report.truth_processed = await self.truth.run_once()
        if self.on_pass is not None:
            self.on_pass(report)
        return report

    async def reconcile_now(self, order_id: str) -> tuple[Order, ReconcileReport]:
        """Check one order with its provider now, whatever its backoff (an operator's
        "reconcile now"): its answer applied, an expiry or a stuck flag as a pass would make
        them, the order's next check scheduled afresh. The order as it then stands, and what
        the check did (a provider failure is in `report.errors`, not raised)."""
        report = ReconcileReport(checked=1)
        async with self.store.snapshot() as uow:
            order = await must_order(uow, order_id)
        with trace.scope(trace.join(order.trace_id), order_id=order.id, provider=order.provider):
            await self._check(order, None, report)
        async with self.store.snapshot() as uow:
            return await must_order(uow, order_id), report

    async def run(self, stop: asyncio.Event, interval: float = 60.0) -> None:
        """Reconcile every `interval` seconds until `stop` is set (the background jobs' one
        loop, `paywire.services.loop`)."""

        async def round_() -> bool:
            await self.run_once()
            return False  # a pass takes all that is due: the next one waits its interval

        await loop.run(round_, stop, interval, name="reconciler", log=log)

    # --- one order -------------------------------------------------------------------------

    async def _check(self, order: Order, state: ReconcileState | None,
                     report: ReconcileReport) -> None:
        now = self.clock.now()
        if order.provider_order_id is None:
            if self._age(order, now) > self.max_age[S.CREATED]:
                order = await self._expire(order.id, "never_sent_to_provider")
                report.expired += order.status is S.EXPIRED
        else:
            order = await self._ask(order, order.provider_order_id, report)
        if order.status not in self.thresholds:
            report.settled += 1
            async with self.store.transaction() as uow:
                await uow.clear_reconcile_state(order.id)
            return
        limit = self.max_age.get(order.status)
        age = self._age(order, now)
        if limit is not None and age > limit:
            await self._flag(order, f"stuck:{order.status}", report, age=age)
        await self._schedule(order.id, state, now)

    async def _ask(self, order: Order, provider_order_id: str,
                   report: ReconcileReport) -> Order:
        now = self.clock.now()
        try:
            truth = await self.providers.of(order).get_order(provider_order_id, order=order)
        except ProviderError as exc:
            if exc.kind == "awaiting_payer":
                # Nothing at the provider yet because the buyer has not paid on its page (APS):
                # normal until the approval window passes, then the checkout expired.
                if now - order.created_at > self.approval_window:
                    moved = await self._expire(order.id, "not_paid_within_window")
                    report.expired += moved.status is S.EXPIRED
                    return moved
                return order
            if exc.kind != "not_found":
                report.errors += 1
                log.warning("provider error reconciling %s: %s", order.id, exc.message,
                            extra={"order_id": order.id, "status": str(order.status),
                                   "kind": exc.kind})
                return order
            if now - order.created_at > self.approval_window:
                moved = await self._expire(order.id, "provider_not_found_after_window")
                report.expired += moved.status is S.EXPIRED
                return moved
            await self._flag(order, YOUNG_404, report, age=now - order.created_at,
                             cause="a configuration fault: sandbox/live or base URL")
            return order
        if self._expired_by_provider(order, truth, now):
            moved = await self._expire(order.id, "provider_voided_after_window")
            report.expired += moved.status is S.EXPIRED
            return moved
        if authorization_lapsed(order, truth, now):
            moved = await self._expire(order.id, "authorization_expired")
            report.expired += moved.status is S.EXPIRED
            return moved
        seen = (truth.captures[0].status if truth.captures else
                truth.authorizations[0].status if truth.authorizations else truth.status)
        if seen is order.status:
            return order  # nothing new (still PENDING...): no history line for every check
        return await self.applier.apply(order.id, truth, source="reconcile")

    def _expired_by_provider(self, order: Order, truth: ProviderOrderState,
                             now: datetime) -> bool:
        # PayPal voids an order left unapproved (or approved, uncaptured) past its window:
        # for us that is expiry, not a void someone asked for.
        return (truth.status is S.VOIDED and not (truth.captures or truth.authorizations)
                and order.status in (S.CREATED, S.APPROVED)
                and now - order.created_at > self.approval_window)

    async def _expire(self, order_id: str, reason: str) -> Order:
        async def commit() -> Order:
            now = self.clock.now()
            async with self.store.transaction() as uow:
                cur = await must_order(uow, order_id)
                moved, _ = await apply_fact(
                    uow, cur, Fact(S.EXPIRED, "reconcile", reason=reason), now)
                return moved

        return await retry_on_conflict(commit)

    async def _flag(self, order: Order, reason: str, report: ReconcileReport, *,
                    age: timedelta, **detail: str) -> None:
        async def commit() -> bool:
            now = self.clock.now()
            async with self.store.transaction() as uow:
                cur = await must_order(uow, order.id)
                if cur.needs_attention == reason:
                    return False  # flagged once per reason
                await flag_attention(uow, cur, reason, now, source="reconcile",
                                     age_seconds=int(age.total_seconds()), **detail)
                return True

        if not await retry_on_conflict(commit):
            return
        report.flagged += 1
        report.attention.append((order.id, reason))
        log.error("order %s needs attention: %s (%s for %s)", order.id, reason, order.status,
                  age, extra={"order_id": order.id, "status": str(order.status),
                              "age_seconds": int(age.total_seconds()), "reason": reason})

    async def _schedule(self, order_id: str, state: ReconcileState | None,
                        now: datetime) -> None:
        attempts = (state.attempts if state else 0) + 1
        first = state.first_checked_at if state else now
        async with self.store.transaction() as uow:
            await uow.save_reconcile_state(ReconcileState(
                order_id=order_id, attempts=attempts, next_check_at=now + self.delay(attempts),
                first_checked_at=first, last_checked_at=now))

    @staticmethod
    def _age(order: Order, now: datetime) -> timedelta:
        return now - order.updated_at

    # --- refunds ---------------------------------------------------------------------------

    async def _refunds(self, report: ReconcileReport) -> None:
        now = self.clock.now()
        async with self.store.transaction() as uow:
            pending = await uow.pending_refunds(now - self.refund_pending_threshold, self.batch)
        for refund in pending:
            if refund.provider_refund_id is None:
                continue  # the refund call itself is still to be resumed by its operation
            report.refunds_checked += 1
            with trace.scope(trace.start(), order_id=refund.order_id, refund_id=refund.id):
                await self._refund(refund, refund.provider_refund_id, report)

    async def _refund(self, refund: Refund, provider_refund_id: str,
                      report: ReconcileReport) -> None:
        """Ask the provider about one pending refund and apply its answer."""
        try:
            async with self.store.transaction() as uow:
                order = await must_order(uow, refund.order_id)
            trace.follow(order.trace_id, provider=order.provider)
            result = await self.providers.of(order).get_refund(provider_refund_id)
            if result.status == "completed":
                report.refunds_completed += await self._refund_completed(refund, result,
                                                                         report)
            elif result.status == "failed":
                await self._refund_failed(refund)
        except PaywireError as exc:
            report.errors += 1
            log.warning("reconciling refund %s failed: %s", refund.id, exc.message,
                        extra={"order_id": refund.order_id, "refund_id": refund.id})

    async def _refund_completed(self, refund: Refund, result: RefundResult,
                                report: ReconcileReport) -> bool:
        fact = Fact(S.REFUNDED, "reconcile", refund_id=result.refund_id, amount=result.amount,
                    capture_id=result.capture_id)

        async def commit() -> tuple[Order, Outcome]:
            now = self.clock.now()
            async with self.store.transaction() as uow:
                cur = await must_order(uow, refund.order_id)
                return await apply_provider_refund(uow, cur, fact, now)

        order, outcome = await retry_on_conflict(commit)
        if outcome.verdict is not Verdict.CONFLICT:
            return True
        if outcome.attention is not None:  # the provider's answer does not fit: flagged once
            report.flagged += 1
            report.attention.append((order.id, outcome.attention))
            log.error("order %s needs attention: %s", order.id, outcome.attention,
                      extra={"order_id": order.id, "status": str(order.status),
                             "reason": outcome.attention})
        return False

    async def _refund_failed(self, refund: Refund) -> None:
        async def commit() -> None:
            now = self.clock.now()
            async with self.store.transaction() as uow:
                cur = await must_order(uow, refund.order_id)
                await release_reservation(uow, cur, refund.amount, now)
                await uow.update_refund(Refund(
                    id=refund.id, order_id=refund.order_id, amount=refund.amount,
                    status="failed", operation_key=refund.operation_key,
                    created_at=refund.created_at, updated_at=now,
                    provider_refund_id=refund.provider_refund_id, reason=refund.reason))

        await retry_on_conflict(commit)
