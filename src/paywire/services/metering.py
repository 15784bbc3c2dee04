"""paywire's metrics, counted: the wrappers that count and time them at the composition root's
seams, and the helpers that turn outcomes and reports into counts.

The names are the contract, defined once in `paywire.ports.metrics.CATALOGUE` (re-exported
here): CloudWatch (EMF, `paywire.aws.metrics`) publishes them as they are, Prometheus
(`paywire.prometheus`) as `paywire_<name>`. docs/metrics.md explains each one and the alarms on
them. Dimensions are low-cardinality labels — a provider, an outcome, a check, a reason's kind —
never an order, event or message id.

Counting happens at the seams, so the use cases stay as they are:

- `MeteredStore` wraps the store: a needs-attention flag (an `order.needs_attention`
  announcement written), an outbox delivery's recorded result and a message marked dead are
  counted once their unit of work commits, whichever use case did it;
- `MeteredProvider` wraps a payment provider: every call is counted by operation and outcome
  and timed; a call that failed (not a refusal such as a decline: the provider was
  unreachable, timed out, refused our credentials or answered something unreadable) is also
  counted as a failure with its kind;
- `count_delivery` and `count_reconcile` turn a webhook ingest's outcome and a reconcile pass's
  report into counts (called by the webhook route, the reconciler function and the serving
  process's reconciler).
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

from paywire.domain.errors import PaywireError, ProviderError
from paywire.domain.facts import Announcement
from paywire.domain.money import Money
from paywire.domain.order import Order
from paywire.ports import (
    Announcements,
    AuditLog,
    AuthorizationResult,
    CaptureResult,
    CheckoutForm,
    DeliveryLog,
    DisputeResult,
    HealthReadings,
    History,
    IdempotencyKeys,
    Inbox,
    Metrics,
    Operations,
    OperatorReads,
    OpsUnitOfWork,
    Orders,
    Outbox,
    PaymentProvider,
    ProviderOrder,
    ProviderOrderState,
    Reconciliation,
    RefundResult,
    Refunds,
    Rejections,
    Store,
    TruthQueue,
)
from paywire.ports.metrics import (
    CATALOGUE,
    IDEMPOTENCY_REPLAYS,
    NEEDS_ATTENTION_FLAGGED,
    OUTBOX_DELIVERIES,
    OUTBOX_MESSAGES_DEAD,
    PROVIDER_CALL_FAILURES,
    PROVIDER_CALL_SECONDS,
    PROVIDER_CALLS,
    RECONCILE_ERRORS,
    RECONCILE_ORDERS,
    RECONCILE_PASSES,
    WEBHOOK_DELIVERIES,
    WEBHOOK_INGEST_SECONDS,
    WEBHOOK_REJECTIONS,
    WEBHOOK_VERIFY_SECONDS,
)
from paywire.services.reconcile import ReconcileReport
from paywire.services.webhooks import Disposition, IngestOutcome

__all__ = ["IDEMPOTENCY_REPLAYS", "METRICS", "NEEDS_ATTENTION_FLAGGED", "OUTBOX_DELIVERIES",
           "OUTBOX_MESSAGES_DEAD", "PROVIDER_CALLS", "PROVIDER_CALL_FAILURES",
           "PROVIDER_CALL_SECONDS", "RECONCILE_ERRORS", "RECONCILE_ORDERS", "RECONCILE_PASSES",
           "WEBHOOK_DELIVERIES", "WEBHOOK_INGEST_SECONDS", "WEBHOOK_REJECTIONS",
           "WEBHOOK_VERIFY_SECONDS", "MeteredProvider", "MeteredStore", "count_delivery",
           "count_reconcile", "label"]

T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")

# name -> the dimensions it carries, every metric of the catalogue (docs/metrics.md lists the
# same; a test compares them).
METRICS: dict[str, tuple[str, ...]] = {m.name: m.labels for m in CATALOGUE}

# A webhook delivery the ingest could not take now (storage down, the certificate host or
# postback unreachable; its outcome is `unavailable`, answered 503): the provider retries it.
UNAVAILABLE = "unavailable"
# ProviderError kinds that mean the call failed, not that the provider answered "no".
FAILURE_KINDS = frozenset({"transient", "auth", "bad_signature", "unknown"})
UNEXPECTED = "unexpected"  # an exception that is not a ProviderError (a bug, most likely)

_LABEL_MAX = 40
_NOT_LABEL = re.compile(r"[^a-z_]+")


def label(value: str | None) -> str:
    """`value` as a low-cardinality dimension value: the part before any `:` (which is where
    paywire's reasons put an id: `refund_mismatch:<refund id>`), lower-case letters and `_`
    only, at most 40 characters; `none` when nothing is left."""
    kind = (value or "").split(":", 1)[0].lower()
    cleaned = _NOT_LABEL.sub("_", kind).strip("_")[:_LABEL_MAX]
    return cleaned or "none"


def count_delivery(metrics: Metrics, provider: str, outcome: IngestOutcome) -> None:
    """Count one webhook delivery by its outcome (a transient one: `unavailable`), and a
    rejection by the check it failed."""
    name = (UNAVAILABLE if outcome.disposition is Disposition.TRANSIENT
            else label(outcome.outcome))
    metrics.count(WEBHOOK_DELIVERIES, provider=label(provider), outcome=name)
    if outcome.disposition is Disposition.REFUSE:
        metrics.count(WEBHOOK_REJECTIONS, provider=label(provider), check=label(outcome.check))


# What `count_reconcile` counts of a report, as `reconcile_orders_total{result}`.
RECONCILE_RESULTS = ("checked", "settled", "expired", "flagged", "errors", "refunds_checked",
                     "refunds_completed", "truth_processed")


def count_reconcile(metrics: Metrics, report: ReconcileReport) -> None:
    """Count a reconcile pass: the pass by outcome (`errors` if any check failed, else
    `flagged` if it flagged an order, else `clean`), what it did by result, and its errors
    (orders or refunds it could not check this time)."""
    outcome = "errors" if report.errors else "flagged" if report.flagged else "clean"
    metrics.count(RECONCILE_PASSES, outcome=outcome)
    for result in RECONCILE_RESULTS:
        if n := getattr(report, result):
            metrics.count(RECONCILE_ORDERS, n, result=result)
    if report.errors:
        metrics.count(RECONCILE_ERRORS, report.errors)


def time_ingest(metrics: Metrics, provider: str, started: float) -> None:
    """Observe a webhook ingest that began at `started` (`time.perf_counter()`)."""
    metrics.observe(WEBHOOK_INGEST_SECONDS, time.perf_counter() - started,
                    provider=label(provider))


# --- the store --------------------------------------------------------------------------------


class _Pending:
    """Counts made inside one unit of work, sent only if it commits."""

    def __init__(self) -> None:
        self.counts: list[tuple[str, dict[str, str]]] = []

    def attempt(self, status: str) -> None:
        """An outbox delivery's result recorded (`pending` again is a retry); a dead one is
        also a dead message."""
        self.counts.append((OUTBOX_DELIVERIES,
                            {"result": "retry" if status == "pending" else label(status)}))
        if status == "dead":
            self.counts.append((OUTBOX_MESSAGES_DEAD, {}))


def _forward(method: Callable[Concatenate[OpsUnitOfWork, P], R]
             ) -> Callable[Concatenate[_MeteredUnitOfWork, P], R]:
    """The port method `method`, called on the wrapped unit of work. Typed as the port declares
    it, so mypy checks `_MeteredUnitOfWork` against `OpsUnitOfWork` (a catch-all `__getattr__`
    would need a cast) and a port method added without a line below fails the type check."""
    name = method.__name__

    def forward(self: _MeteredUnitOfWork, /, *args: P.args, **kwargs: P.kwargs) -> R:
        call: Callable[P, R] = getattr(self._uow, name)
        return call(*args, **kwargs)

    forward.__name__, forward.__qualname__ = name, f"_MeteredUnitOfWork.{name}"
    return forward


class _MeteredUnitOfWork:
    """A unit of work that notes the flags, outbox results and dead messages written through it;
    every other
    port method goes to the store's own unit of work unchanged."""

    def __init__(self, uow: OpsUnitOfWork, pending: _Pending) -> None:
        self._uow = uow
        self._pending = pending

    # Every port method but the three counted below, port by port.
    get_order = _forward(Orders.get_order)
    find_order_by_provider_id = _forward(Orders.find_order_by_provider_id)
    find_order_by_capture_id = _forward(Orders.find_order_by_capture_id)
    insert_order = _forward(Orders.insert_order)
    update_order = _forward(Orders.update_order)
    list_orders = _forward(Orders.list_orders)
    insert_refund = _forward(Refunds.insert_refund)
    update_refund = _forward(Refunds.update_refund)
    get_refund = _forward(Refunds.get_refund)
    refunds_for_order = _forward(Refunds.refunds_for_order)
    find_refund_by_provider_id = _forward(Refunds.find_refund_by_provider_id)
    pending_refunds = _forward(Refunds.pending_refunds)
    append_history = _forward(History.append_history)
    history = _forward(History.history)
    outbox_for_order = _forward(Announcements.outbox_for_order)
    put_operation = _forward(Operations.put_operation)
    get_operation = _forward(Operations.get_operation)
    claim_operation = _forward(Operations.claim_operation)
    finish_operation = _forward(Operations.finish_operation)
    put_idempotency = _forward(IdempotencyKeys.put_idempotency)
    get_idempotency = _forward(IdempotencyKeys.get_idempotency)
    lock_idempotency = _forward(IdempotencyKeys.lock_idempotency)
    complete_idempotency = _forward(IdempotencyKeys.complete_idempotency)
    delete_idempotency = _forward(IdempotencyKeys.delete_idempotency)
    put_inbox_event = _forward(Inbox.put_inbox_event)
    get_inbox_event = _forward(Inbox.get_inbox_event)
    list_inbox = _forward(Inbox.list_inbox)
    record_rejection = _forward(Rejections.record_rejection)
    list_rejections = _forward(Rejections.list_rejections)
    enqueue_truth = _forward(TruthQueue.enqueue_truth)
    claim_truth_tasks = _forward(TruthQueue.claim_truth_tasks)
    claim_truth_task = _forward(TruthQueue.claim_truth_task)
    finish_truth_task = _forward(TruthQueue.finish_truth_task)
    list_truth_tasks = _forward(TruthQueue.list_truth_tasks)
    claim_outbox = _forward(Outbox.claim_outbox)
    get_outbox = _forward(Outbox.get_outbox)
    list_outbox = _forward(Outbox.list_outbox)
    revive_outbox = _forward(Outbox.revive_outbox)
    outbox_counts = _forward(Outbox.outbox_counts)
    reconcile_candidates = _forward(Reconciliation.reconcile_candidates)
    save_reconcile_state = _forward(Reconciliation.save_reconcile_state)
    clear_reconcile_state = _forward(Reconciliation.clear_reconcile_state)
    search_orders = _forward(OperatorReads.search_orders)
    operations_for_order = _forward(OperatorReads.operations_for_order)
    inbox_for_order = _forward(OperatorReads.inbox_for_order)
    record_audit = _forward(AuditLog.record_audit)
    audit_for_order = _forward(AuditLog.audit_for_order)
    list_audit = _forward(AuditLog.list_audit)
    record_delivery_attempts = _forward(DeliveryLog.record_delivery_attempts)
    delivery_attempts = _forward(DeliveryLog.delivery_attempts)
    outbox_due = _forward(HealthReadings.outbox_due)
    outbox_dead_count = _forward(HealthReadings.outbox_dead_count)
    truth_queue_depth = _forward(HealthReadings.truth_queue_depth)
    needs_attention_count = _forward(HealthReadings.needs_attention_count)
    orders_in_status_since = _forward(HealthReadings.orders_in_status_since)
    webhooks_received_since = _forward(HealthReadings.webhooks_received_since)
    webhook_rejections_since = _forward(HealthReadings.webhook_rejections_since)

    async def add_announcement(self, announcement: Announcement, message_id: str,
                               now: datetime, trace_id: str | None = None) -> bool:
        """The store's `add_announcement`; a written `order.needs_attention` is a flag."""
        written = await self._uow.add_announcement(announcement, message_id, now, trace_id)
        if written and announcement.type == "order.needs_attention":
            reason = announcement.payload.get("reason")
            self._pending.counts.append(
                (NEEDS_ATTENTION_FLAGGED, {"reason": label(reason if isinstance(reason, str)
                                                           else None)}))
        return written

    async def finish_outbox(self, message_id: str, owner: str, *, status: str, attempts: int,
                            next_attempt_at: datetime | None, last_error: str | None,
                            now: datetime) -> bool:
        """The store's `finish_outbox`; a recorded `dead` is a dead message."""
        recorded = await self._uow.finish_outbox(
            message_id, owner, status=status, attempts=attempts,
            next_attempt_at=next_attempt_at, last_error=last_error, now=now)
        if recorded:
            self._pending.attempt(status)
        return recorded

    async def finish_outbox_many(self, message_ids: Sequence[str], owner: str, *, status: str,
                                 attempts: int, next_attempt_at: datetime | None,
                                 last_error: str | None, now: datetime) -> set[str]:
        """The store's `finish_outbox_many`; each recorded `dead` is a dead message."""
        recorded = await self._uow.finish_outbox_many(
            message_ids, owner, status=status, attempts=attempts,
            next_attempt_at=next_attempt_at, last_error=last_error, now=now)
        for _ in recorded:
            self._pending.attempt(status)
        return recorded

    async def settle_outbox(self, message_id: str, *, status: str, last_error: str | None,
                            now: datetime) -> bool:
        """The store's `settle_outbox`; a recorded `dead` is a dead message."""
        recorded = await self._uow.settle_outbox(message_id, status=status,
                                                 last_error=last_error, now=now)
        if recorded:
            self._pending.attempt(status)
        return recorded


class MeteredStore:
    """`store`, counting the needs-attention flags, outbox results and dead messages of each
    committed unit of work (nothing for one rolled back)."""

    def __init__(self, store: Store, metrics: Metrics) -> None:
        self.store = store
        self.metrics = metrics

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[OpsUnitOfWork]:
        """The store's unit of work; its counts go out once it has committed."""
        pending = _Pending()
        async with self.store.transaction() as uow:
            yield _MeteredUnitOfWork(uow, pending)
        for name, dimensions in pending.counts:
            self.metrics.count(name, **dimensions)

    def snapshot(self) -> AbstractAsyncContextManager[OpsUnitOfWork]:
        """The store's read-only unit of work (it writes nothing, so it counts nothing)."""
        return self.store.snapshot()

    async def close(self) -> None:
        """Release the store's connections."""
        await self.store.close()


# --- the providers ----------------------------------------------------------------------------


class MeteredProvider:
    """`provider`, counting and timing every call by operation and outcome (`ok`, `refused`:
    the provider said no, or a failure's kind), and the calls that failed (`FAILURE_KINDS`, or
    an unexpected exception) by operation and kind. A call the client retried counts once."""

    def __init__(self, provider: PaymentProvider, metrics: Metrics) -> None:
        self.provider = provider
        self.metrics = metrics
        self.name = provider.name

    def __getattr__(self, name: str) -> Any:
        return getattr(self.provider, name)

    async def _call(self, operation: str, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        outcome = "ok"
        try:
            return await call
        except ProviderError as exc:
            outcome = exc.kind if exc.kind in FAILURE_KINDS else "refused"
            if exc.kind in FAILURE_KINDS:
                self._failed(operation, exc.kind)
            raise
        except PaywireError:
            outcome = "refused"
            raise
        except Exception:
            outcome = UNEXPECTED
            self._failed(operation, UNEXPECTED)
            raise
        finally:
            provider = label(self.name)
            self.metrics.count(PROVIDER_CALLS, provider=provider, operation=operation,
                               outcome=outcome)
            self.metrics.observe(PROVIDER_CALL_SECONDS, time.perf_counter() - started,
                                 provider=provider, operation=operation)

    def _failed(self, operation: str, kind: str) -> None:
        self.metrics.count(PROVIDER_CALL_FAILURES, provider=label(self.name),
                           operation=operation, kind=kind)

    def check_amount(self, amount: Money) -> None:
        """The provider's own check."""
        self.provider.check_amount(amount)

    def checkout_form(self, order: Order) -> CheckoutForm | None:
        """The provider's own form (no call is made)."""
        return self.provider.checkout_form(order)

    async def create_order(self, order: Order, *, request_id: str, return_url: str | None = None,
                           cancel_url: str | None = None) -> ProviderOrder:
        """Counted `create_order`."""
        return await self._call("create_order", self.provider.create_order(
            order, request_id=request_id, return_url=return_url, cancel_url=cancel_url))

    async def capture_order(self, provider_order_id: str, *, request_id: str,
                            order: Order | None = None,
                            token: str | None = None) -> CaptureResult:
        """Counted `capture_order`."""
        return await self._call("capture_order", self.provider.capture_order(
            provider_order_id, request_id=request_id, order=order, token=token))

    async def authorize_order(self, provider_order_id: str, *, request_id: str,
                              order: Order | None = None,
                              token: str | None = None) -> AuthorizationResult:
        """Counted `authorize_order`."""
        return await self._call("authorize_order", self.provider.authorize_order(
            provider_order_id, request_id=request_id, order=order, token=token))

    async def capture_authorization(self, authorization_id: str, amount: Money | None, *,
                                    request_id: str, final: bool = True,
                                    order: Order | None = None) -> CaptureResult:
        """Counted `capture_authorization`."""
        return await self._call("capture_authorization", self.provider.capture_authorization(
            authorization_id, amount, request_id=request_id, final=final, order=order))

    async def void_authorization(self, authorization_id: str, *, request_id: str,
                                 order: Order | None = None) -> None:
        """Counted `void_authorization`."""
        await self._call("void_authorization", self.provider.void_authorization(
            authorization_id, request_id=request_id, order=order))

    async def refund_capture(self, capture_id: str, amount: Money | None, *, request_id: str,
                             invoice_id: str | None = None,
                             order: Order | None = None) -> RefundResult:
        """Counted `refund_capture`."""
        return await self._call("refund_capture", self.provider.refund_capture(
            capture_id, amount, request_id=request_id, invoice_id=invoice_id, order=order))

    async def get_order(self, provider_order_id: str, *,
                        order: Order | None = None) -> ProviderOrderState:
        """Counted `get_order`."""
        return await self._call("get_order",
                                self.provider.get_order(provider_order_id, order=order))

    async def get_capture(self, capture_id: str) -> CaptureResult:
        """Counted `get_capture`."""
        return await self._call("get_capture", self.provider.get_capture(capture_id))

    async def get_refund(self, refund_id: str) -> RefundResult:
        """Counted `get_refund`."""
        return await self._call("get_refund", self.provider.get_refund(refund_id))

    async def get_dispute(self, dispute_id: str) -> DisputeResult:
        """Counted `get_dispute`."""
        return await self._call("get_dispute", self.provider.get_dispute(dispute_id))

    async def aclose(self) -> None:
        """Release the provider's connections."""
        await self.provider.aclose()

