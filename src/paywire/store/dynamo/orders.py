"""Orders on DynamoDB: one item per order (its lines inside), updates conditional on `version`.

Each write reads the item first (consistently, through the overlay) so that what can be known
at once is answered at once — a duplicate id, a stale version — and then buffers a conditional
put: `version = :expected` for an update, `attribute_not_exists` for an insert. A race lost
between the read and the commit fails that condition at commit, and the whole unit is a
`ConflictError`.

(provider, provider order id) -> order is unique, kept in a lookup item written in the same
transaction (a second order claiming it is a ConflictError, as the SQL unique key); payment ids
(capture, authorization) point at the first order that claimed them, which is also the one the
SQL store answers with.
"""

from __future__ import annotations

from datetime import datetime

from paywire.domain.errors import ConflictError
from paywire.domain.order import Order, OrderStatus
from paywire.store.dynamo import expr as dx
from paywire.store.dynamo import items as di
from paywire.store.dynamo.base import DynamoUnit
from paywire.store.dynamo.items import Item, Key


class DynamoOrders(DynamoUnit):
    """Orders by id, by the provider's ids, and newest first."""

    async def get_order(self, order_id: str) -> Order | None:
        """The order, or None."""
        item = await self._read(di.order_key(order_id))
        return di.order_from(item) if item is not None else None

    async def find_order_by_provider_id(self, provider: str,
                                        provider_order_id: str) -> Order | None:
        """The order the provider knows by `provider_order_id`, or None."""
        order = await self._via(di.lookup_key("PPID", provider, provider_order_id))
        if order is None or (order.provider, order.provider_order_id) != (provider,
                                                                          provider_order_id):
            return None
        return order

    async def find_order_by_capture_id(self, provider: str, capture_id: str) -> Order | None:
        """The order whose capture (or authorization) the provider knows by this id."""
        order = await self._via(di.lookup_key("PAYID", provider, capture_id))
        if order is None or order.provider != provider or (
                capture_id not in di.payment_ids(order)):
            return None
        return order

    async def insert_order(self, order: Order) -> None:
        """Insert a new order with its lines (ConflictError if the id or provider id exists)."""
        item = di.order_item(order)
        if await self._read(di.order_key(order.id)) is not None:
            raise ConflictError(f"order {order.id} already exists")
        await self._claim_names(None, order)
        self._create(item, f"order {order.id}", dx.absent)

    async def update_order(self, order: Order, expected_version: int) -> None:
        """Write `order` if the stored version is still `expected_version`, else ConflictError
        (at once when this read shows it, else at commit)."""
        if order.version != expected_version + 1:
            raise ValueError(f"order version {order.version} must be expected_version + 1 "
                             f"({expected_version + 1})")
        item = di.order_item(order)
        key = di.order_key(order.id)
        stored = await self._read(key)
        if stored is None or stored["version"] != expected_version:
            raise ConflictError(f"order {order.id} is no longer at version {expected_version}",
                                details={"order_id": order.id,
                                         "expected_version": expected_version})
        current = di.order_from(stored)
        # Identity and creation time never change (as in SQL, which never updates them).
        item.update(created_at=stored["created_at"], tsk=stored["tsk"], ssk=di.sort_key(
            stored["created_at"], order.id))
        await self._claim_names(current, order)
        self._write(key, item, base=stored, what=f"order {order.id} (version {expected_version})",
                    cond=dx.compare("version", "=", expected_version), kind="version")

    async def _claim_names(self, old: Order | None, new: Order) -> None:
        """Write the lookup items of `new`'s provider ids, drop `old`'s that it no longer has."""
        old_ppid = old.provider_order_id if old is not None else None
        if new.provider_order_id and new.provider_order_id != old_ppid:
            key = di.lookup_key("PPID", new.provider, new.provider_order_id)
            owner = await self._read(key)
            if owner is not None and owner["target"] != new.id:
                raise ConflictError(f"provider order id {new.provider}/{new.provider_order_id} "
                                    f"already belongs to order {owner['target']}")
            if owner is None:
                self._create(di.lookup_item(key, new.id),
                             f"provider order id {new.provider_order_id}", dx.absent)
        if old is not None and old_ppid and old_ppid != new.provider_order_id:
            await self._release(di.lookup_key("PPID", old.provider, old_ppid), old.id)
        for pay_id in di.payment_ids(new) - di.payment_ids(old):
            await self._first_claim(di.lookup_key("PAYID", new.provider, pay_id), new.id,
                                    f"payment id {pay_id}")
        if old is not None:
            for pay_id in di.payment_ids(old) - di.payment_ids(new):
                await self._release(di.lookup_key("PAYID", old.provider, pay_id), old.id)

    async def _via(self, key: Key) -> Order | None:
        """The order a lookup item points at."""
        pointer = await self._read(key)
        return None if pointer is None else await self.get_order(pointer["target"])

    async def list_orders(self, *, status: OrderStatus | None = None, limit: int = 50,
                          before: tuple[datetime, str] | None = None) -> list[Order]:
        """Orders newest first (ties by id); `before` = (created_at, id) of the last one seen."""
        self._require_limit(limit)
        wanted = None if status is None else str(status)
        after = None if before is None else (di.ts(before[0]), before[1])

        def accept(item: Item) -> bool:
            return item["kind"] == "order" and (wanted is None or item["status"] == wanted) and (
                after is None or (item["created_at"], item["id"]) < after)

        index, partition = ((di.BY_TIME, "ORDER") if wanted is None
                            else (di.BY_STATUS, f"ORDER#{wanted}"))
        found = await self._collect(index, partition, ascending=False, limit=limit,
                                    bound=None if before is None else di.below(*before),
                                    kinds=("order",), accept=accept)
        found.sort(key=lambda i: (i["created_at"], i["id"]), reverse=True)
        return [di.order_from(i) for i in found[:limit]]
