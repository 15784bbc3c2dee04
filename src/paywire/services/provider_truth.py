"""Applying what a provider says about a whole order: its truth, read with our own GET.

Three paths read a provider's order and apply it: a payment call the provider says was already
made (checkout), a queued truth fetch or webhook confirmation (the truth fetcher), and a stuck
order (the reconciler). They share this one applier instead of reaching into one another, so a
truth means the same thing whichever path read it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from paywire.domain.facts import Fact
from paywire.domain.order import Order, OrderStatus, Verdict
from paywire.ports import (
    AuthorizationResult,
    CaptureResult,
    Clock,
    ProviderOrderState,
    ProviderTruthUnit,
    Transactions,
    TruthQueue,
)
from paywire.services.operations import retry_on_conflict
from paywire.services.orders import must_order
from paywire.services.transitions import apply_fact, flag_attention

S = OrderStatus


class TruthApplier:
    """Applies a provider's order state to our order, flagging what no rule can settle."""

    def __init__(self, store: Transactions[ProviderTruthUnit], clock: Clock) -> None:
        self.store = store
        self.clock = clock

    async def apply(self, order_id: str, state: ProviderOrderState, *, source: str,
                    key: str | None = None,
                    also: Callable[[TruthQueue], Awaitable[object]] | None = None) -> Order:
        """Apply what the provider says about the order (after a conflict or a replay); `key`
        is the operation whose replayed call led here (closed in the same unit of work);
        `also` runs in the same unit of work (the truth fetcher closes its task there)."""
        fact = truth_fact(state, source)

        async def commit() -> Order:
            now = self.clock.now()
            async with self.store.transaction() as uow:
                cur = await must_order(uow, order_id)
                moved, done = await apply_fact(uow, cur, fact, now)
                if key is not None and not (state.captures or state.authorizations) and (
                        moved.needs_attention is None):
                    # A replayed payment call, yet the provider shows no payment: a person looks.
                    moved = await flag_attention(uow, moved, "replay_without_payment", now,
                                                 source=source,
                                                 provider_status=state.provider_status)
                elif done.verdict is Verdict.CONFLICT and moved.needs_attention is None:
                    moved = await flag_attention(uow, moved, f"conflict:{fact.target}", now,
                                                 source=source, status=str(cur.status))
                if key is not None:
                    await uow.finish_operation(key, "succeeded", {"truth": state.provider_status},
                                               None, now)
                if also is not None:
                    await also(uow)
                return moved

        return await retry_on_conflict(commit)


def truth_fact(state: ProviderOrderState, source: str) -> Fact:
    """The fact a provider's whole truth about an order states: its first capture (refunds
    are counted as their own facts), else its first authorization, else its order status."""
    if state.captures:
        fact = capture_fact(state.captures[0], source)
        if fact.target in (S.PARTIALLY_REFUNDED, S.REFUNDED):
            fact = Fact(S.COMPLETED, source, capture_id=fact.capture_id, amount=fact.amount)
        return fact
    if state.authorizations:
        return authorization_fact(state.authorizations[0], source)
    return Fact(state.status, source, reason=state.provider_status, attempt=state.attempt)


def capture_fact(result: CaptureResult, source: str) -> Fact:
    """The fact a capture states."""
    return Fact(result.status, source, capture_id=result.capture_id, amount=result.amount,
                reason=result.reason)


def authorization_fact(result: AuthorizationResult, source: str) -> Fact:
    """The fact an authorization states."""
    return Fact(result.status, source, authorization_id=result.authorization_id,
                amount=result.amount)
