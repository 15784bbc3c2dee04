"""Refunds on DynamoDB: one item each; the provider's refund id points at the first refund that
claimed it (a lookup item), and the by-order and by-status indexes list them."""

from __future__ import annotations

from datetime import datetime

from paywire.domain.errors import ConflictError, NotFoundError
from paywire.ports import (
    Refund,
)
from paywire.store.dynamo import expr as dx
from paywire.store.dynamo import items as di
from paywire.store.dynamo import records as dr
from paywire.store.dynamo.base import DynamoUnit
from paywire.store.dynamo.items import Item


class DynamoRefunds(DynamoUnit):
    """Refunds by id, by order, by the provider's refund id, and pending."""

    async def insert_refund(self, refund: Refund) -> None:
        """Insert a refund (ConflictError if the id exists)."""
        item = dr.refund_item(refund)
        if await self._read(di.refund_key(refund.id)) is not None:
            raise ConflictError(f"refund {refund.id} already exists")
        self._create(item, f"refund {refund.id}", dx.absent)
        if refund.provider_refund_id:
            await self._first_claim(di.lookup_key("RFID", refund.provider_refund_id), refund.id,
                                    f"provider refund id {refund.provider_refund_id}")

    async def update_refund(self, refund: Refund) -> None:
        """Write a refund's status, provider id, reason and amount (NotFoundError if absent)."""
        key = di.refund_key(refund.id)
        stored = await self._read(key)
        if stored is None:
            raise NotFoundError(f"no refund {refund.id!r}")
        old = dr.refund_from(stored)
        fixed = Refund(id=old.id, order_id=old.order_id, amount=refund.amount,
                       status=refund.status, operation_key=old.operation_key,
                       created_at=old.created_at, updated_at=refund.updated_at,
                       provider_refund_id=refund.provider_refund_id, reason=refund.reason)
        new_prid, old_prid = refund.provider_refund_id, old.provider_refund_id
        if new_prid and new_prid != old_prid:
            await self._first_claim(di.lookup_key("RFID", new_prid), refund.id,
                                    f"provider refund id {new_prid}")
        if old_prid and old_prid != new_prid:
            await self._release(di.lookup_key("RFID", old_prid), refund.id)
        self._write(key, dr.refund_item(fixed), base=stored, cond=dx.exists,
                    what=f"refund {refund.id}")

    async def get_refund(self, refund_id: str) -> Refund | None:
        """The refund, or None."""
        item = await self._read(di.refund_key(refund_id))
        return dr.refund_from(item) if item is not None else None

    async def refunds_for_order(self, order_id: str) -> list[Refund]:
        """The order's refunds, oldest first."""
        items = await self._of_order(order_id, "R#", "refund")
        items.sort(key=lambda i: (i["created_at"], i["id"]))
        return [dr.refund_from(i) for i in items]

    async def find_refund_by_provider_id(self, provider_refund_id: str) -> Refund | None:
        """Our record of a provider refund, or None."""
        pointer = await self._read(di.lookup_key("RFID", provider_refund_id))
        if pointer is None:
            return None
        refund = await self.get_refund(pointer["target"])
        if refund is None or refund.provider_refund_id != provider_refund_id:
            return None
        return refund

    async def pending_refunds(self, updated_before: datetime, limit: int) -> list[Refund]:
        """Refunds still pending last updated before the cut-off, oldest update first."""
        self._require_limit(limit)
        cutoff = di.ts(updated_before)

        def accept(item: Item) -> bool:
            return bool(item["kind"] == "refund" and item["status"] == "pending"
                        and item["updated_at"] < cutoff)

        found = await self._collect(di.BY_STATUS, "REFUND#pending", bound=cutoff,
                                    ascending=True, limit=limit, kinds=("refund",),
                                    accept=accept)
        found.sort(key=lambda i: (i["updated_at"], i["id"]))
        return [dr.refund_from(i) for i in found[:limit]]
