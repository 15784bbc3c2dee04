"""The ports services need: a store (unit of work), a payment provider, a clock.

The store port is shaped so SQL and DynamoDB can both implement it (architecture.md, "The store
port must fit DynamoDB too"): orders carry a version and every update is a compare-and-set on
it; inbox, announcements, provider operations and idempotency keys are put-if-absent; claims are
conditional updates with a lease, never a lock held across a network call.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from paywire.domain.events import ProviderEvent
from paywire.domain.facts import Announcement
from paywire.domain.money import Money
from paywire.domain.order import Order, OrderStatus


class Clock(Protocol):
    """Where services get the time (tests inject a frozen one)."""

    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...


# --- records the store keeps beside orders -------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProviderOperation:
    """A mutating provider call, written (with its idempotency key) before the call is made.

    `key` is what the provider sees (PayPal-Request-Id), derived from our own ids, so a retry
    after a crash repeats the call under the same key. `lease_until` marks a caller working on
    it; others wait for the outcome rather than call the provider a second time.
    """

    key: str
    order_id: str
    kind: str  # create | capture | authorize | refund | void | capture_authorization
    status: str  # pending | succeeded | failed
    created_at: datetime
    updated_at: datetime
    lease_until: datetime | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Refund:
    """A refund of (part of) an order's capture."""

    id: str
    order_id: str
    amount: Money
    status: str  # pending | completed | failed
    operation_key: str
    created_at: datetime
    updated_at: datetime
    provider_refund_id: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One line of an order's append-only history: what was learned, and what it did."""

    order_id: str
    at: datetime
    source: str  # api | webhook | reconcile | operator
    verdict: str  # APPLY | STALE | CONFLICT | NOTE | CONTRADICTED
    from_status: OrderStatus
    to_status: OrderStatus
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """An announcement waiting for delivery; `id` is the stable message id the shop sees."""

    id: str
    key: str
    type: str
    order_id: str
    payload: dict[str, Any]
    created_at: datetime
    status: str = "pending"  # pending | queued (handed to a queue, e.g. SQS) | delivered | dead
    attempts: int = 0
    next_attempt_at: datetime | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ReconcileState:
    """Where an order's reconciliation checks stand (their backoff), kept per order."""

    order_id: str
    attempts: int
    next_check_at: datetime
    first_checked_at: datetime
    last_checked_at: datetime


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """A client's Idempotency-Key: in flight until `locked_until`, then its stored answer."""

    scope: str  # caller + endpoint
    key: str
    request_hash: str
    status: str  # in_flight | done
    created_at: datetime
    expires_at: datetime
    locked_until: datetime | None = None
    resource_id: str | None = None
    response_status: int | None = None
    response_body: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class InboxEvent:
    """A verified provider event, stored once by (provider, event_id) with its exact bytes."""

    provider: str
    event_id: str
    event_type: str
    received_at: datetime
    body: bytes
    transmission_id: str | None = None
    status: str = "applied"  # applied | queued (truth fetch) | ignored (type not acted on)
    order_id: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class WebhookRejection:
    """A delivery refused for good: recorded once per transmission id, with the explanation."""

    provider: str
    transmission_id: str
    received_at: datetime
    check: str
    reason: str
    likely_cause: str | None = None
    event_id: str | None = None
    event_type: str | None = None
    cert_url: str | None = None
    body_sha256: str | None = None


@dataclass(frozen=True, slots=True)
class TruthTask:
    """A queued "ask the provider": GET `kind`/`resource_id` and apply the answer.

    `id` is `<provider>:<kind>:<resource_id>`, so one resource is queued once however many
    ambiguous events point at it.
    """

    id: str
    provider: str
    kind: str  # order | capture | refund | authorization | dispute
    resource_id: str
    reason: str
    created_at: datetime
    next_attempt_at: datetime
    status: str = "pending"  # pending | done | failed
    attempts: int = 0
    order_id: str | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None
    last_error: str | None = None


# --- the store -------------------------------------------------------------------------------


class UnitOfWork(Protocol):
    """One transaction: everything written through it commits together or not at all."""

    # orders
    async def get_order(self, order_id: str) -> Order | None:
        """The order, or None."""
        ...

    async def find_order_by_provider_id(self, provider: str,
                                        provider_order_id: str) -> Order | None:
        """The order the provider knows by `provider_order_id`, or None."""
        ...

    async def insert_order(self, order: Order) -> None:
        """Insert a new order with its lines (ConflictError if the id exists)."""
        ...

    async def update_order(self, order: Order, expected_version: int) -> None:
        """Write `order` if the stored version is still `expected_version`, else ConflictError.

        `order.version` must be `expected_version + 1`.
        """
        ...

    async def list_orders(self, *, status: OrderStatus | None = None, limit: int = 50,
                          before: tuple[datetime, str] | None = None) -> list[Order]:
        """Orders newest first; `before` = (created_at, id) of the last one seen (keyset)."""
        ...

    # history and announcements
    async def append_history(self, entry: HistoryEntry) -> None:
        """Append to the order's history."""
        ...

    async def history(self, order_id: str) -> list[HistoryEntry]:
        """The order's history, oldest first."""
        ...

    async def add_announcement(self, announcement: Announcement, message_id: str,
                               now: datetime) -> bool:
        """Put the announcement in the outbox unless its key exists; True if written."""
        ...

    async def outbox_for_order(self, order_id: str) -> list[OutboxMessage]:
        """The order's outbox messages, oldest first."""
        ...

    # provider operations
    async def put_operation(self, op: ProviderOperation) -> bool:
        """Insert unless the key exists; True if written."""
        ...

    async def get_operation(self, key: str) -> ProviderOperation | None:
        """The operation, or None."""
        ...

    async def claim_operation(self, key: str, now: datetime, lease_until: datetime) -> bool:
        """Take a pending operation whose lease has lapsed (or never was); True if taken."""
        ...

    async def finish_operation(self, key: str, status: str, result: dict[str, Any] | None,
                               error: dict[str, Any] | None, now: datetime) -> None:
        """Record the outcome (succeeded/failed) and release the lease."""
        ...

    # refunds
    async def insert_refund(self, refund: Refund) -> None:
        """Insert a refund (ConflictError if the id exists)."""
        ...

    async def update_refund(self, refund: Refund) -> None:
        """Write a refund's new status / provider id."""
        ...

    async def get_refund(self, refund_id: str) -> Refund | None:
        """The refund, or None."""
        ...

    async def refunds_for_order(self, order_id: str) -> list[Refund]:
        """The order's refunds, oldest first."""
        ...

    # client idempotency keys
    async def put_idempotency(self, record: IdempotencyRecord) -> bool:
        """Insert unless (scope, key) exists and has not expired; True if written."""
        ...

    async def get_idempotency(self, scope: str, key: str,
                              now: datetime) -> IdempotencyRecord | None:
        """The record unless expired (an expired record reads as absent)."""
        ...

    async def lock_idempotency(self, scope: str, key: str, now: datetime,
                               locked_until: datetime) -> bool:
        """Take over an in-flight record whose lock lapsed (its owner crashed); True if taken."""
        ...

    async def complete_idempotency(self, scope: str, key: str, resource_id: str | None,
                                   status: int, body: dict[str, Any]) -> None:
        """Store the answer and mark the record done."""
        ...

    async def delete_idempotency(self, scope: str, key: str) -> None:
        """Forget an in-flight record (its request failed before doing anything durable)."""
        ...


class WebhookUnitOfWork(UnitOfWork, Protocol):
    """The unit of work with the webhook inbox, rejection log and truth-fetch queue."""

    async def find_order_by_capture_id(self, provider: str, capture_id: str) -> Order | None:
        """The order whose capture (or authorization) the provider knows by this id."""
        ...

    async def find_refund_by_provider_id(self, provider_refund_id: str) -> Refund | None:
        """Our record of a provider refund, or None."""
        ...

    async def put_inbox_event(self, event: InboxEvent) -> bool:
        """Store the event unless (provider, event_id) exists; True if written."""
        ...

    async def get_inbox_event(self, provider: str, event_id: str) -> InboxEvent | None:
        """The stored event, or None."""
        ...

    async def record_rejection(self, rejection: WebhookRejection, max_rows: int) -> bool:
        """Record unless (provider, transmission_id) exists; keep at most `max_rows` (oldest
        go first). True if written."""
        ...

    async def list_rejections(self, *, limit: int = 50,
                              before: tuple[datetime, str] | None = None) -> list[WebhookRejection]:
        """Rejections newest first; `before` = (received_at, transmission_id) (keyset)."""
        ...

    async def enqueue_truth(self, task: TruthTask) -> bool:
        """Queue the task unless a pending one with its id exists (a done or failed one is
        re-opened with this task's reason and due time). True if queued or re-opened."""
        ...

    async def claim_truth_tasks(self, owner: str, now: datetime, lease_until: datetime,
                                limit: int) -> list[TruthTask]:
        """Claim up to `limit` pending tasks due by `now` whose lease is free or lapsed
        (conditional update per task: concurrent claimers never get the same task)."""
        ...

    async def claim_truth_task(self, task_id: str, owner: str, now: datetime,
                               lease_until: datetime) -> TruthTask | None:
        """Claim one pending task by id if it is due and its lease is free or lapsed (the
        in-process fast path of a task just queued); the task as leased, or None if taken,
        backing off, closed or absent."""
        ...

    async def finish_truth_task(self, task_id: str, owner: str, *, status: str, attempts: int,
                                next_attempt_at: datetime, last_error: str | None,
                                now: datetime) -> bool:
        """Record an attempt's outcome if `owner` still holds the lease; releases it."""
        ...

    async def list_truth_tasks(self, *, status: str | None = None,
                               limit: int = 50) -> list[TruthTask]:
        """Tasks by due time."""
        ...


class OpsUnitOfWork(WebhookUnitOfWork, Protocol):
    """The unit of work with outbox delivery and reconciliation bookkeeping."""

    async def claim_outbox(self, owner: str, now: datetime, lease_until: datetime,
                           limit: int) -> list[OutboxMessage]:
        """Claim up to `limit` pending messages due by `now` whose lease is free or lapsed,
        oldest first; each by a conditional update, so concurrent claimers never share one."""
        ...

    async def finish_outbox(self, message_id: str, owner: str, *, status: str, attempts: int,
                            next_attempt_at: datetime | None, last_error: str | None,
                            now: datetime) -> bool:
        """Record a delivery attempt if `owner` still holds the lease (status delivered,
        queued (handed to a queue whose consumer delivers it), pending (retry at
        `next_attempt_at`) or dead); releases the lease. True if recorded."""
        ...

    async def settle_outbox(self, message_id: str, *, status: str, last_error: str | None,
                            now: datetime) -> bool:
        """Record the outcome of a delivery made outside a lease — by a queue consumer (SQS)
        for a `queued` message: `delivered` (stamps `delivered_at`, counts the attempt) or
        `dead`. A message already delivered is left alone (the consumer's duplicate check).
        True if recorded."""
        ...

    async def get_outbox(self, message_id: str) -> OutboxMessage | None:
        """One message, or None."""
        ...

    async def list_outbox(self, *, status: str | None = None, limit: int = 50,
                          before: tuple[datetime, str] | None = None) -> list[OutboxMessage]:
        """Messages newest first; `before` = (created_at, id) (keyset)."""
        ...

    async def revive_outbox(self, message_id: str, now: datetime) -> bool:
        """Make a dead or queued message pending again (attempts reset, due now); True if
        revived."""
        ...

    async def outbox_counts(self) -> dict[str, int]:
        """How many messages are in each status."""
        ...

    async def reconcile_candidates(self, updated_before: Mapping[OrderStatus, datetime],
                                   now: datetime, limit: int
                                   ) -> list[tuple[Order, ReconcileState | None]]:
        """Orders in the given statuses last updated before that status's cut-off and whose
        next check is due (or that were never checked), oldest first."""
        ...

    async def save_reconcile_state(self, state: ReconcileState) -> None:
        """Insert or replace an order's reconciliation state."""
        ...

    async def clear_reconcile_state(self, order_id: str) -> None:
        """Forget an order's reconciliation state (it reached a final state)."""
        ...

    async def pending_refunds(self, updated_before: datetime, limit: int) -> list[Refund]:
        """Refunds still pending that were last updated before the cut-off, oldest first."""
        ...

    async def list_inbox(self, *, limit: int = 50,
                         before: tuple[datetime, str] | None = None) -> list[InboxEvent]:
        """Stored events newest first; `before` = (received_at, event_id) (keyset)."""
        ...


class Store(Protocol):
    """A transactional store of orders, history, outbox, operations, refunds and keys."""

    def transaction(self) -> AbstractAsyncContextManager[OpsUnitOfWork]:
        """A unit of work: commits on normal exit, rolls back on exception.

        Transient failures raise `StorageError`; version conflicts `ConflictError`.
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


# --- the payment provider ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckoutForm:
    """A signed form the buyer's browser posts to the provider's payment page (APS's hosted
    page): post `fields` as hidden inputs to `url`. Card data goes from the browser to the
    provider, never through paywire."""

    url: str
    fields: dict[str, str]


@dataclass(frozen=True, slots=True)
class ProviderOrder:
    """An order as created at the provider.

    `approve_url` is where the buyer approves a redirect-style payment (PayPal); providers that
    take the card on a posted form (APS) answer no URL and give `PaymentProvider.checkout_form`.
    """

    provider_order_id: str
    status: str
    approve_url: str | None


@dataclass(frozen=True, slots=True)
class CaptureResult:
    """A capture as the provider reports it. `status` is mapped to the order status it means."""

    capture_id: str
    status: OrderStatus  # COMPLETED | PENDING | DENIED | FAILED | PARTIALLY_REFUNDED | REFUNDED
    amount: Money
    provider_status: str
    reason: str | None = None
    provider_order_id: str | None = None


@dataclass(frozen=True, slots=True)
class AuthorizationResult:
    """An authorization as the provider reports it."""

    authorization_id: str
    status: OrderStatus  # AUTHORIZED | PENDING | VOIDED | COMPLETED (captured) | DENIED | EXPIRED
    amount: Money
    provider_status: str
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RefundResult:
    """A refund as the provider reports it."""

    refund_id: str
    status: str  # completed | pending | failed
    amount: Money
    provider_status: str
    capture_id: str | None = None  # the capture it refunds, when the provider says
    invoice_id: str | None = None  # the merchant's reference on it (paywire's own refund id)


@dataclass(frozen=True, slots=True)
class DisputeResult:
    """A dispute as the provider reports it: open or closed, and the captures it names."""

    dispute_id: str
    open: bool  # False once the provider reports it resolved
    provider_status: str
    capture_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ProviderOrderState:
    """The provider's whole truth about an order (for settling conflicts and replays)."""

    provider_order_id: str
    status: OrderStatus  # what the provider's order status means for ours
    provider_status: str
    amount: Money | None
    captures: tuple[CaptureResult, ...] = ()
    authorizations: tuple[AuthorizationResult, ...] = ()
    # The payment attempt this truth is about (providers with a reference per attempt): a
    # DENIED then ends only that attempt (see `Fact.attempt`).
    attempt: int | None = None


class PaymentProvider(Protocol):
    """A payment provider's operations, in domain terms. Errors are `ProviderError`.

    Every call about an order also gets the `order` itself (keyword, may be None only where a
    test calls a provider directly): providers that key their calls on the merchant's own
    references (APS: `merchant_reference` = order id + attempt, the amount left to refund)
    read them from it; providers with their own order objects (PayPal) ignore it.
    """

    name: str

    def check_amount(self, amount: Money) -> None:
        """Refuse (ValidationError) a currency or amount the provider cannot take."""
        ...

    async def create_order(self, order: Order, *, request_id: str, return_url: str | None = None,
                           cancel_url: str | None = None) -> ProviderOrder:
        """Create the order at the provider."""
        ...

    def checkout_form(self, order: Order) -> CheckoutForm | None:
        """The signed form the buyer posts to pay the order's current attempt, for providers
        that take the card on their own page from a posted form; None for the others."""
        ...

    async def capture_order(self, provider_order_id: str, *, request_id: str,
                            order: Order | None = None,
                            token: str | None = None) -> CaptureResult:
        """Capture an approved CAPTURE-intent order. `token` is a payment token the buyer's
        tokenization produced (APS's tokenization form), for providers that pay with one."""
        ...

    async def authorize_order(self, provider_order_id: str, *, request_id: str,
                              order: Order | None = None,
                              token: str | None = None) -> AuthorizationResult:
        """Authorize an approved AUTHORIZE-intent order (`token` as for `capture_order`)."""
        ...

    async def capture_authorization(self, authorization_id: str, amount: Money | None, *,
                                    request_id: str, final: bool = True,
                                    order: Order | None = None) -> CaptureResult:
        """Capture (part of) an authorization."""
        ...

    async def void_authorization(self, authorization_id: str, *, request_id: str,
                                 order: Order | None = None) -> None:
        """Void an authorization."""
        ...

    async def refund_capture(self, capture_id: str, amount: Money | None, *, request_id: str,
                             invoice_id: str | None = None,
                             order: Order | None = None) -> RefundResult:
        """Refund (part of) a capture; `amount` None = all that is left."""
        ...

    async def get_order(self, provider_order_id: str, *,
                        order: Order | None = None) -> ProviderOrderState:
        """The provider's truth about an order."""
        ...

    async def get_capture(self, capture_id: str) -> CaptureResult:
        """The provider's truth about a capture (with its order id)."""
        ...

    async def get_refund(self, refund_id: str) -> RefundResult:
        """The provider's truth about a refund (with its capture id)."""
        ...

    async def get_dispute(self, dispute_id: str) -> DisputeResult:
        """The provider's truth about a dispute (ProviderError `invalid` for a provider that
        reports none through its API)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


@dataclass(frozen=True, slots=True)
class VerifiedDelivery:
    """A webhook delivery whose signature checked out, and what identifies it."""

    transmission_id: str
    transmission_time: datetime
    webhook_id: str


class WebhookVerifier(Protocol):
    """Checks a delivery against the raw bytes received, before anything is parsed.

    Raises `SignatureError` for a delivery that fails for good (forged, wrong webhook id,
    disallowed cert URL, expired chain, too old, malformed) and `ProviderError(kind="transient")`
    when the check could not be made (certificate host or postback unreachable).
    """

    async def verify(self, headers: Mapping[str, str], body: bytes) -> VerifiedDelivery:
        """Verify one delivery."""
        ...


class EventParser(Protocol):
    """Turns a verified delivery body into a normalized event (pure; ValidationError if bad)."""

    def parse(self, body: bytes) -> ProviderEvent:
        """Parse one event."""
        ...


class DeliveryTarget(Protocol):
    """Where announcements go (the shop's signed HTTP callback, a Python callable, SQS...).

    `deliver` raises `DeliveryError` (retryable or not) when the message was not accepted; a
    target must tolerate receiving one message id more than once (at-least-once delivery).

    A target may also say `hands_off = True`: it hands the message to a queue whose consumer
    delivers it to the shop (SQS in the serverless deployment), so an accepted message is
    `queued`, not `delivered` (read with `getattr(target, "hands_off", False)`; a plain target
    needs no such attribute).
    """

    name: str

    async def deliver(self, message: OutboxMessage) -> None:
        """Hand one message over."""
        ...


# --- metrics ---------------------------------------------------------------------------------


class Metrics(Protocol):
    """Where operational counters go (CloudWatch EMF on Lambda; a Prometheus endpoint later).

    `name` is one of `paywire.services.metering`'s names (snake_case, `_total` for counters);
    `dimensions` are low-cardinality labels only (provider, outcome, check, ...): never an order,
    event or message id. `count` must not raise and must not block (it is called inside request
    handling); an implementation that ships counts does so on its own flush.
    """

    def count(self, name: str, value: int = 1, /, **dimensions: str) -> None:
        """Add `value` to the counter `name` at `dimensions`."""
        ...


class NoMetrics:
    """The default `Metrics`: counts nothing (deployments without a metrics sink)."""

    def count(self, name: str, value: int = 1, /, **dimensions: str) -> None:
        """Drop the count."""


class SystemClock:
    """The default `Clock`: the system's wall clock, in UTC. The only implementation outside
    tests: adapters, services and commands take a `Clock` (defaulting to this one), so a test
    can stop or move time everywhere at once."""

    def now(self) -> datetime:
        """The current instant, aware UTC."""
        return datetime.now(UTC)
