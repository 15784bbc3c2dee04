"""What every service shares: its ports, order/refund lookups, idempotency tickets."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from paywire.domain.errors import ConfigError, NotFoundError, ProviderError
from paywire.domain.order import Order
from paywire.ports import Clock, PaymentProvider, Refund, Store, UnitOfWork
from paywire.services.operations import OperationRunner, retry_on_conflict
from paywire.services.transitions import flag_attention

# Provider refusals that are worth retrying later under the same key (the call may have run).
RESUMABLE = ("transient", "auth", "unknown", "awaiting_payer")


def new_id(prefix: str) -> str:
    """A random, URL-safe, sortable-enough id such as `ord_3f9c…`."""
    return f"{prefix}_{secrets.token_hex(12)}"


@dataclass(frozen=True)
class IdempotencyTicket:
    """A client Idempotency-Key being served: its answer is stored with the result it reports."""

    scope: str
    key: str
    resource_id: str
    render: Callable[[Order, Refund | None], tuple[int, dict[str, Any]]]


def stored_error(op_error: dict[str, Any] | None, provider: str) -> ProviderError:
    """A ProviderError rebuilt from an operation's recorded failure."""
    e = op_error or {}
    return ProviderError(str(e.get("message") or "the provider refused this operation"),
                         provider=provider, kind=str(e.get("kind") or "unknown"),
                         status=e.get("status"), name=e.get("name"), issue=e.get("issue"),
                         debug_id=e.get("debug_id"))


class ServiceBase:
    """Ports and lookups shared by the checkout and refund use cases."""

    def __init__(self, store: Store, provider: PaymentProvider, clock: Clock, *,
                 return_url: str | None = None, cancel_url: str | None = None,
                 runner: OperationRunner | None = None,
                 approval_window: timedelta = timedelta(hours=3),
                 others: tuple[PaymentProvider, ...] = ()) -> None:
        self.store = store
        self.provider = provider  # the default: new orders go here unless they name another
        self.providers: dict[str, PaymentProvider] = {provider.name: provider}
        for other in others:
            if other.name in self.providers:
                raise ConfigError(f"payment provider {other.name!r} is configured twice")
            self.providers[other.name] = other
        self.clock = clock
        self.return_url = return_url
        self.cancel_url = cancel_url
        self.ops = runner or OperationRunner(store, clock)
        # PayPal voids an order not approved (and captured) within this window; what a GET of
        # such an order answers is undocumented (404 is common), so only an order older than
        # the window reads a 404 as expiry.
        self.approval_window = approval_window

    def provider_named(self, name: str) -> PaymentProvider:
        """The configured provider called `name` (ConfigError if this shop has none)."""
        provider = self.providers.get(name)
        if provider is None:
            raise ConfigError(f"payment provider {name!r} is not configured for this shop "
                              f"(configured: {', '.join(sorted(self.providers))})")
        return provider

    def provider_for(self, order: Order) -> PaymentProvider:
        """The provider `order` was created at."""
        return self.provider_named(order.provider)

    # --- reads ---------------------------------------------------------------------------

    async def get(self, ref: str) -> Order:
        """An order by our id or a provider's order id."""
        async with self.store.transaction() as uow:
            order = await uow.get_order(ref)
            for name in self.providers:
                if order is not None:
                    break
                order = await uow.find_order_by_provider_id(name, ref)
        if order is None:
            raise NotFoundError(f"no order {ref!r}")
        return order

    async def get_refund(self, refund_id: str) -> Refund:
        """A refund by our id."""
        async with self.store.transaction() as uow:
            refund = await uow.get_refund(refund_id)
        if refund is None:
            raise NotFoundError(f"no refund {refund_id!r}")
        return refund

    async def _complete_ticket(self, ticket: IdempotencyTicket, order: Order,
                               refund: Refund | None) -> None:
        status, body = ticket.render(order, refund)
        async with self.store.transaction() as uow:
            await uow.complete_idempotency(ticket.scope, ticket.key, ticket.resource_id, status,
                                           body)

    async def flag_if_asked(self, order_id: str, exc: ProviderError) -> None:
        """Flag the order for a person when the provider's answer asks for one (an answer no
        rule covers: `exc.details["needs_attention"]` names why); once per reason."""
        reason = exc.details.get("needs_attention")
        if not isinstance(reason, str) or not reason:
            return

        async def commit() -> None:
            now = self.clock.now()
            async with self.store.transaction() as uow:
                cur = await self._must(uow, order_id)
                if cur.needs_attention != reason:
                    await flag_attention(uow, cur, reason[:120], now, source="api",
                                         error=exc.message[:300])

        await retry_on_conflict(commit)

    @staticmethod
    async def _must(uow: UnitOfWork, order_id: str) -> Order:
        order = await uow.get_order(order_id)
        if order is None:
            raise NotFoundError(f"no order {order_id!r}")
        return order


def error_json(exc: ProviderError) -> dict[str, Any]:
    return {"kind": exc.kind, "status": exc.status, "name": exc.name, "issue": exc.issue,
            "debug_id": exc.debug_id, "message": exc.message}


def refund_fields(refund: Refund) -> dict[str, Any]:
    return {f: getattr(refund, f) for f in Refund.__dataclass_fields__}
