"""The DynamoDB unit of work's `UnitOfWork` half: orders, history, announcements, provider
operations, refunds and client idempotency keys.

Each write reads the item first (consistently, through the overlay) so that what can be known
at once is answered at once — a duplicate id, a stale version, a missing record — and then
buffers a conditional put: `version = :expected` for an order update, `attribute_not_exists`
(or expired) for a put-if-absent. A race lost between the read and the commit fails that
condition at commit, and the whole unit is a `ConflictError`.

Unique names live in lookup items written in the same transaction: (provider, provider order
id) -> order is unique (a second order claiming it is a ConflictError, as the SQL unique key);
payment ids (capture, authorization) and provider refund ids point at the first order or refund
that claimed them, which is also the one the SQL store answers with.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from paywire.domain.errors import ConflictError, NotFoundError
from paywire.domain.facts import Announcement
from paywire.domain.order import Order, OrderStatus
from paywire.ports import HistoryEntry, IdempotencyRecord, OutboxMessage, ProviderOperation, Refund
from paywire.store import dynamo_expr as dx
from paywire.store import dynamo_items as di
from paywire.store.dynamo_items import Item, Key
from paywire.store.dynamo_unit import DynamoUnit

OPERATION_STATUSES = frozenset({"pending", "succeeded", "failed"})


class DynamoUnitOfWork(DynamoUnit):
    """Orders, history, announcements, operations, refunds and idempotency keys."""

    # --- orders -----------------------------------------------------------------------------

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

    async def _first_claim(self, key: Key, target: str, what: str, **extra: str) -> None:
        """Point the lookup `key` at `target` unless something already holds it."""
        if await self._read(key) is None:
            self._create(di.lookup_item(key, target, **extra), what, dx.absent)

    async def _release(self, key: Key, target: str) -> None:
        """Remove the lookup `key` (tombstone it at commit) if it points at `target`."""
        held = await self._read(key)
        if held is not None and held["target"] == target:
            self._write(key, None, base=held, cond=dx.compare("target", "=", target),
                        what=f"lookup {key[0]}")

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

    # --- history and announcements -------------------------------------------------------------

    async def append_history(self, entry: HistoryEntry) -> None:
        """Append to the order's history."""
        item = di.history_item(entry, self._ctx.next_seq())
        self._create(item, f"history of order {entry.order_id}", dx.absent)

    async def history(self, order_id: str) -> list[HistoryEntry]:
        """The order's history, oldest first (insertion order among equal times)."""
        items = await self._children(order_id, "H#", "history")
        return [di.history_from(i) for i in sorted(items, key=lambda i: i["sk"])]

    async def _children(self, order_id: str, prefix: str, kind: str) -> list[Item]:
        """Items under the order's partition with this sort-key prefix, as this unit sees them."""
        self._check_open()
        pk = di.order_key(order_id)[0]
        stored = {(i["pk"], i["sk"]): i for i in await self._table.partition(pk, prefix)}
        for key in [k for k in stored if k in self._dirty]:
            del stored[key]  # this unit's state of them follows
        mine = [i for i in self._written([kind]) if i["pk"] == pk]
        return [*stored.values(), *mine]

    async def add_announcement(self, announcement: Announcement, message_id: str,
                               now: datetime) -> bool:
        """Put the announcement in the outbox unless its key exists; True if written."""
        key = di.lookup_key("OUTKEY", announcement.key)
        if await self._read(key) is not None:
            return False
        item = di.outbox_item(announcement, message_id, now)
        if await self._read(di.outbox_key(message_id)) is not None:
            raise ConflictError(f"outbox message id {message_id} already exists")
        self._create(di.lookup_item(key, message_id), f"announcement {announcement.key}",
                     dx.absent)
        self._create(item, f"outbox message {message_id}", dx.absent)
        return True

    async def outbox_for_order(self, order_id: str) -> list[OutboxMessage]:
        """The order's outbox messages, oldest first."""
        items = await self._of_order(order_id, "O#", "outbox")
        items.sort(key=lambda i: (i["created_at"], i["id"]))
        return [di.outbox_from(i) for i in items]

    async def _of_order(self, order_id: str, prefix: str, kind: str) -> list[Item]:
        """The order's items of `kind` in the by-order index (sort keys starting `prefix`),
        read from the table through the overlay, with this unit's own."""
        self._check_open()
        opk = di.order_key(order_id)[0]
        entries = await self._table.walk_keys(di.BY_ORDER, opk, ascending=True, prefix=prefix)
        found = await self._read_many(key for key, _ in entries)
        items = {k: i for k, i in found.items() if i is not None and i.get("opk") == opk}
        items.update({(i["pk"], i["sk"]): i for i in self._written([kind])
                      if i.get("opk") == opk})
        return list(items.values())

    # --- provider operations -----------------------------------------------------------------

    async def put_operation(self, op: ProviderOperation) -> bool:
        """Insert unless the key exists; True if written. As a unit's first write it is made
        at once (OperationRunner acts on the answer); see `dynamo` on immediate writes."""
        item = di.operation_item(op)
        if await self._read(di.operation_key(op.key)) is not None:
            return False
        return await self._put_now_if_first(item, dx.absent, f"provider operation {op.key}")

    async def get_operation(self, key: str) -> ProviderOperation | None:
        """The operation, or None."""
        item = await self._read(di.operation_key(key))
        return di.operation_from(item) if item is not None else None

    async def claim_operation(self, key: str, now: datetime, lease_until: datetime) -> bool:
        """Take a pending operation whose lease has lapsed (or never was); True if taken."""
        self._check_open()
        await self._flush()
        claimed = await self._table.update_if(
            di.operation_key(key),
            dx.all_of(dx.exists, dx.compare("status", "=", "pending"), dx.lease_free(now)),
            set_={"lease_until": di.ts(lease_until), "updated_at": di.ts(now)})
        return claimed is not None

    async def finish_operation(self, key: str, status: str, result: dict[str, Any] | None,
                               error: dict[str, Any] | None, now: datetime) -> None:
        """Record the outcome and release the lease (status "pending" just releases it)."""
        if status not in OPERATION_STATUSES:
            raise ValueError(f"operation status must be one of {sorted(OPERATION_STATUSES)}")
        stored = await self._read(di.operation_key(key))
        if stored is None:
            raise NotFoundError(f"no provider operation {key!r}")
        op = di.operation_from(stored)
        done = ProviderOperation(key=op.key, order_id=op.order_id, kind=op.kind, status=status,
                                 created_at=op.created_at, updated_at=now, lease_until=None,
                                 result=result, error=error)
        self._write(di.operation_key(key), di.operation_item(done), base=stored, cond=dx.exists,
                    what=f"provider operation {key}")

    # --- refunds ---------------------------------------------------------------------------------

    async def insert_refund(self, refund: Refund) -> None:
        """Insert a refund (ConflictError if the id exists)."""
        item = di.refund_item(refund)
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
        old = di.refund_from(stored)
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
        self._write(key, di.refund_item(fixed), base=stored, cond=dx.exists,
                    what=f"refund {refund.id}")

    async def get_refund(self, refund_id: str) -> Refund | None:
        """The refund, or None."""
        item = await self._read(di.refund_key(refund_id))
        return di.refund_from(item) if item is not None else None

    async def refunds_for_order(self, order_id: str) -> list[Refund]:
        """The order's refunds, oldest first."""
        items = await self._of_order(order_id, "R#", "refund")
        items.sort(key=lambda i: (i["created_at"], i["id"]))
        return [di.refund_from(i) for i in items]

    # --- client idempotency keys -----------------------------------------------------------------

    async def put_idempotency(self, record: IdempotencyRecord) -> bool:
        """Insert unless (scope, key) exists unexpired at `record.created_at`; True if written.
        As a unit's first write it is made at once (the API acts on the answer)."""
        item = di.idempotency_item(record)
        key = di.idempotency_key(record.scope, record.key)
        stored = await self._read(key)
        if stored is not None and stored["expires_at"] > di.ts(record.created_at):
            return False
        return await self._put_now_if_first(
            item, dx.absent_or_expired(record.created_at),
            f"idempotency key {record.scope}/{record.key}", base=stored)

    async def get_idempotency(self, scope: str, key: str,
                              now: datetime) -> IdempotencyRecord | None:
        """The record unless expired (an expired record reads as absent, although DynamoDB's
        TTL may not have deleted it yet)."""
        moment = di.ts(now)
        item = await self._read(di.idempotency_key(scope, key))
        if item is None or item["expires_at"] <= moment:
            return None
        return di.idempotency_from(item)

    async def lock_idempotency(self, scope: str, key: str, now: datetime,
                               locked_until: datetime) -> bool:
        """Take over an unexpired in-flight record whose lock lapsed; True if taken."""
        self._check_open()
        await self._flush()
        moment = di.ts(now)
        lapsed = dx.any_of(dx.missing("locked_until"), dx.compare("locked_until", "<", moment))
        taken = await self._table.update_if(
            di.idempotency_key(scope, key),
            dx.all_of(dx.exists, dx.compare("status", "=", "in_flight"),
                      dx.compare("expires_at", ">", moment), lapsed),
            set_={"locked_until": di.ts(locked_until)})
        return taken is not None

    async def complete_idempotency(self, scope: str, key: str, resource_id: str | None,
                                   status: int, body: dict[str, Any]) -> None:
        """Store the answer and mark the record done (NotFoundError if it is gone)."""
        ikey = di.idempotency_key(scope, key)
        stored = await self._read(ikey)
        if stored is None:
            raise NotFoundError(f"no idempotency record {scope!r}/{key!r}")
        record = di.idempotency_from(stored)
        done = IdempotencyRecord(scope=scope, key=key, request_hash=record.request_hash,
                                 status="done", created_at=record.created_at,
                                 expires_at=record.expires_at, locked_until=None,
                                 resource_id=resource_id, response_status=status,
                                 response_body=body)
        self._write(ikey, di.idempotency_item(done), base=stored, cond=dx.exists,
                    what=f"idempotency key {scope}/{key}")

    async def delete_idempotency(self, scope: str, key: str) -> None:
        """Forget an in-flight record (tombstone it at commit, so a new put of the key
        succeeds); a done record (a stored answer) is kept."""
        ikey = di.idempotency_key(scope, key)
        stored = await self._read(ikey)
        if stored is None or stored["status"] != "in_flight":
            return
        self._write(ikey, None, base=stored, cond=dx.compare("status", "=", "in_flight"),
                    what=f"idempotency key {scope}/{key}")
