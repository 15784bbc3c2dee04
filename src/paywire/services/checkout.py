"""Checkout use cases: create, capture, authorize, capture/void an authorization.

Every mutating provider call runs under an operation key written before the call
(`operations.py`); every fact it learns is applied through `apply_fact` in the same unit of work
that records the call's outcome, so a crash or retry at any point converges. Refunds are their
own service (`refunds.py`); both reach providers through the registry the composition root
injects, and read orders through the same `OrderQueries`.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any, Protocol

from paywire.domain import trace
from paywire.domain.errors import IllegalTransition, ProviderError
from paywire.domain.facts import AttemptOver, Created, Fact
from paywire.domain.money import Money
from paywire.domain.order import Intent, Order, OrderLine, OrderStatus, Verdict
from paywire.ports import (
    CheckoutForm,
    CheckoutUnit,
    Clock,
    HistoryEntry,
    IdempotencyKeys,
    Transactions,
)
from paywire.services.common import RESUMABLE, error_json, new_id, stored_error
from paywire.services.operations import OperationDone, OperationRunner, retry_on_conflict
from paywire.services.orders import OrderQueries, flag_if_asked, must_order
from paywire.services.provider_truth import TruthApplier, authorization_fact, capture_fact
from paywire.services.registry import ProviderRegistry
from paywire.services.transitions import apply_fact, apply_fact_as_read, flag_attention

S = OrderStatus


class Alongside(Protocol):
    """A caller's own writes in a new order's units of work (the API's Idempotency-Key record),
    so they cost no transactions of their own; what they write is the caller's business."""

    async def opened(self, uow: IdempotencyKeys) -> None:
        """First in the unit that records the new order; raising abandons it (nothing of the
        order is written). Returning vouches that the order id it came with is new (minted
        for the caller's record, just written), so the unit reads no order under it."""
        ...

    async def answered(self, uow: IdempotencyKeys, order: Order) -> None:
        """In the unit that records the provider's answer, with the order as it then stands."""
        ...


class Checkout:
    """Orders from priced lines to money, each through the provider it was created at."""

    def __init__(self, store: Transactions[CheckoutUnit], providers: ProviderRegistry,
                 clock: Clock, *, orders: OrderQueries | None = None,
                 truth: TruthApplier | None = None,
                 runner: OperationRunner | None = None, return_url: str | None = None,
                 cancel_url: str | None = None,
                 approval_window: timedelta = timedelta(hours=3)) -> None:
        self.store = store
        self.providers = providers
        self.clock = clock
        self.orders = orders or OrderQueries(store, providers)
        self.truth = truth or TruthApplier(store, clock)
        self.ops = runner or OperationRunner(store, clock)
        self.return_url = return_url
        self.cancel_url = cancel_url
        # PayPal voids an order not approved (and captured) within this window; what a GET of
        # such an order answers is undocumented (404 is common), so only an order older than
        # the window reads a 404 as expiry.
        self.approval_window = approval_window

    # --- create --------------------------------------------------------------------------

    async def create_order(self, lines: list[OrderLine], intent: Intent, *,
                           order_id: str | None = None, provider: str | None = None,
                           metadata: dict[str, str] | None = None,
                           alongside: Alongside | None = None) -> Order:
        """Record the order, then create it at the provider under `<order id>:create`.

        `order_id`: the id an Idempotency-Key stands for (new with an `alongside`; without
        one, a retry's, which resumes that order);
        `provider` names one of this shop's providers (default: the first configured);
        `metadata` is kept with the order (APS needs the buyer's `customer_email`);
        `alongside` writes in the order's first and last units of work (`Alongside`).

        The order, its first history line and the claim on `<order id>:create` are one unit of
        work (the key is still written before the call), so a new order costs two transactions:
        this one and the one that records the provider's answer."""
        # A fresh id names no order yet: nothing to read. Nor does an id an `alongside` came
        # with once its `opened` returns (a retry under a recorded key comes without one).
        resumable = order_id is not None and alongside is None
        order_id = order_id or new_id("ord")
        at = self.providers.named(provider) if provider else self.providers.default
        order = Order.new(order_id, intent, lines, self.clock.now(), provider=at.name,
                          trace_id=trace.current_id())
        if metadata:
            order = dataclasses.replace(order, metadata=dict(metadata))
        for line in lines:
            at.check_amount(line.unit_price)
        at.check_amount(order.amount)
        key = f"{order.id}:create"
        async with self.store.transaction() as uow:
            if alongside is not None:
                await alongside.opened(uow)
            existing = await uow.get_order(order_id) if resumable else None
            if existing is None:
                await uow.insert_order(order)
                await uow.append_history(HistoryEntry(
                    order_id=order.id, at=order.created_at, source="api", verdict="APPLY",
                    from_status=S.CREATED, to_status=S.CREATED,
                    detail={"amount": order.amount.to_decimal(),
                            "currency": order.amount.currency}, trace_id=order.trace_id))
            else:
                order = existing  # a retried Idempotency-Key resumes its own order
            trace.follow(order.trace_id, order_id=order.id, provider=order.provider)
            if existing is not None and order.provider_order_id is not None:
                return order
            found = await self.ops.claim_in(uow, key, order.id, "create")
        try:  # only a resumed order's key can be held by another request, or finished
            await self.ops.hold(found)
        except OperationDone as done:
            return await self._after_done(order, done)
        try:
            created = await self.providers.of(order).create_order(order, request_id=key,
                                                       return_url=self.return_url,
                                                       cancel_url=self.cancel_url)
        except ProviderError as exc:
            if exc.kind in RESUMABLE:
                await self.ops.release(key, exc)
            else:
                await self._fail_order(order.id, key, exc)
            raise
        fact = Created(created.provider_order_id, created.approve_url)
        return await self._settle(order, key, fact, {
            "provider_order_id": created.provider_order_id,
            "approve_url": created.approve_url, "status": created.status}, alongside)

    async def _fail_order(self, order_id: str, key: str, exc: ProviderError) -> None:
        async def commit() -> None:
            now = self.clock.now()
            async with self.store.transaction() as uow:
                cur = await must_order(uow, order_id)
                fact = Fact(S.FAILED, "api", reason=exc.issue or exc.kind)
                await apply_fact(uow, cur, fact, now)
                await uow.finish_operation(key, "failed", None, error_json(exc), now)

        await retry_on_conflict(commit)

    # --- capture / authorize -------------------------------------------------------------

    async def capture(self, ref: str, *, token: str | None = None) -> Order:
        """Capture an approved CAPTURE order; a repeat answers the order as it now stands.
        `token`: the buyer's payment token, for providers that pay with one (APS)."""
        return await self._pay(ref, Intent.CAPTURE, token)

    async def authorize(self, ref: str, *, token: str | None = None) -> Order:
        """Authorize an approved AUTHORIZE order; a repeat answers the order as it now stands."""
        return await self._pay(ref, Intent.AUTHORIZE, token)

    async def pay(self, ref: str, *, token: str | None = None) -> Order:
        """Capture or authorize, as the order's intent says."""
        order = await self.orders.get(ref)
        return await self._pay(order.id, order.intent, token)

    async def _pay(self, ref: str, intent: Intent, token: str | None = None) -> Order:
        kind = "capture" if intent is Intent.CAPTURE else "authorize"
        # The order's read and the claim on this attempt's key are one unit of work.
        async with self.store.transaction() as uow:
            order = await self.orders.read(uow, ref)
            if order.intent is not intent:
                verb = "capture" if order.intent is Intent.CAPTURE else "authorize"
                raise IllegalTransition(f"order {order.id} is a {order.intent} order: {verb} it")
            if order.status not in (S.CREATED, S.APPROVED):
                return order
            provider_id = self._provider_id(order)
            key = f"{order.id}:{kind}:{order.capture_attempt}"
            found = await self.ops.claim_in(uow, key, order.id, kind)
        try:
            await self.ops.hold(found)
        except OperationDone as done:
            return await self._after_done(order, done)
        fact: Fact
        try:
            if intent is Intent.CAPTURE:
                captured = await self.providers.of(order).capture_order(
                    provider_id, request_id=key, order=order, token=token)
                fact, result = capture_fact(captured, "api"), _result_json(captured)
            else:
                authorized = await self.providers.of(order).authorize_order(
                    provider_id, request_id=key, order=order, token=token)
                fact, result = authorization_fact(authorized, "api"), _result_json(authorized)
        except ProviderError as exc:
            return await self._call_failed(order, key, exc)
        return await self._settle(order, key, fact, result)

    async def capture_authorization(self, ref: str) -> Order:
        """Capture an authorized order in full (admin)."""
        order = await self.orders.get(ref)
        if order.status is not S.AUTHORIZED or order.authorization_id is None:
            if order.intent is Intent.AUTHORIZE and order.status in (S.PENDING, *S_PAID):
                return order
            raise IllegalTransition(f"order {order.id} is {order.status}, not AUTHORIZED")
        key = f"{order.id}:capture_authorization:{order.capture_attempt}"
        try:
            await self.ops.claim(key, order.id, "capture_authorization")
        except OperationDone as done:
            return await self._after_done(order, done)
        try:
            result = await self.providers.of(order).capture_authorization(
                order.authorization_id, None, request_id=key, final=True, order=order)
        except ProviderError as exc:
            return await self._call_failed(order, key, exc)
        return await self._settle(order, key, capture_fact(result, "api"), result)

    async def void(self, ref: str) -> Order:
        """Void an authorized order's authorization (admin)."""
        order = await self.orders.get(ref)
        if order.status is S.VOIDED:
            return order
        if order.status is not S.AUTHORIZED or order.authorization_id is None:
            raise IllegalTransition(f"order {order.id} is {order.status}; only AUTHORIZED voids")
        key = f"{order.id}:void"
        try:
            await self.ops.claim(key, order.id, "void")
        except OperationDone as done:
            return await self._after_done(order, done)
        try:
            await self.providers.of(order).void_authorization(order.authorization_id,
                                                              request_id=key, order=order)
        except ProviderError as exc:
            return await self._call_failed(order, key, exc)
        fact = Fact(S.VOIDED, "api", authorization_id=order.authorization_id)
        return await self._settle(order, key, fact, {"voided": order.authorization_id})

    def _provider_id(self, order: Order) -> str:
        if order.provider_order_id is None:
            raise IllegalTransition(f"order {order.id} was never created at {order.provider}")
        return order.provider_order_id

    async def _after_done(self, order: Order, done: OperationDone) -> Order:
        # Another caller made this call: answer what it led to (or the refusal it got).
        if done.op.status == "failed":
            raise stored_error(done.op.error, order.provider)
        return await self.orders.get(order.id)

    def checkout_form(self, order: Order) -> CheckoutForm | None:
        """The signed form the buyer posts to pay `order`'s current attempt, while it is
        unpaid, for providers that take the card on their own page (None otherwise)."""
        if order.status not in (S.CREATED, S.APPROVED) or order.provider_order_id is None:
            return None
        return self.providers.of(order).checkout_form(order)

    async def _settle(self, order: Order, key: str, fact: Fact | Created, result: object,
                      alongside: Alongside | None = None) -> Order:
        """Apply what the call under `key` learnt and record its outcome, in one unit of work
        (with `alongside`'s last writes). `order` is as this request read it before the call:
        the first attempt writes over it without reading it again (a compare-and-set,
        `apply_fact_as_read`), a retry after a conflict reads it afresh."""
        read: Order | None = order

        async def commit() -> Order:
            nonlocal read
            now = self.clock.now()
            trusted, read = read, None  # only the first attempt trusts the earlier read
            async with self.store.transaction() as uow:
                cur, moved, done = await apply_fact_as_read(uow, order.id, trusted, fact, now)
                if (isinstance(fact, Fact) and done.verdict is Verdict.CONFLICT
                        and moved.needs_attention is None):
                    # The provider's own answer contradicts the order: asking again would
                    # only repeat it, so a person looks.
                    moved = await flag_attention(uow, moved, f"conflict:{fact.target}", now,
                                                 source=fact.source, status=str(cur.status))
                await uow.finish_operation(key, "succeeded", _result_json(result), None, now)
                if alongside is not None:
                    await alongside.answered(uow, moved)
                return moved

        return await retry_on_conflict(commit)

    async def _call_failed(self, order: Order, key: str, exc: ProviderError) -> Order:
        await flag_if_asked(self.store, self.clock, order.id, exc)
        if exc.kind in ("already_done", "duplicate_invoice") and order.provider_order_id:
            # The money already moved (e.g. a replay past the provider's key retention):
            # fetch the provider's truth and apply it instead of reporting a failure.
            state = await self.providers.of(order).get_order(order.provider_order_id,
                                                             order=order)
            return await self.truth.apply(order.id, state, source="api", key=key)
        if exc.kind in RESUMABLE:
            await self.ops.release(key, exc)
            raise exc
        if exc.kind == "not_found" and self.clock.now() - order.created_at > self.approval_window:
            return await self._expired(order.id, key, exc)

        async def commit() -> None:
            # This attempt is over (declined, not approved...): the next one gets a new key.
            now = self.clock.now()
            async with self.store.transaction() as uow:
                cur = await must_order(uow, order.id)
                await apply_fact(uow, cur, AttemptOver(order.capture_attempt, "api",
                                                       error_json(exc)), now)
                await uow.finish_operation(key, "failed", None, error_json(exc), now)

        await retry_on_conflict(commit)
        raise exc

    async def _expired(self, order_id: str, key: str, exc: ProviderError) -> Order:
        async def commit() -> Order:
            now = self.clock.now()
            async with self.store.transaction() as uow:
                cur = await must_order(uow, order_id)
                fact = Fact(S.EXPIRED, "api", reason="provider_not_found_after_window")
                moved, _ = await apply_fact(uow, cur, fact, now)
                await uow.finish_operation(key, "failed", None, error_json(exc), now)
                return moved

        return await retry_on_conflict(commit)


S_PAID = (S.COMPLETED, S.PARTIALLY_REFUNDED, S.REFUNDED)


def _result_json(result: object) -> dict[str, Any]:
    if isinstance(result, dict):
        return result
    fields = getattr(result, "__dataclass_fields__", {})
    out: dict[str, Any] = {}
    for name in fields:
        value = getattr(result, name)
        out[name] = str(value) if isinstance(value, Money | OrderStatus) or (
            value is not None and not isinstance(value, str | int | float | bool)) else value
    return out
