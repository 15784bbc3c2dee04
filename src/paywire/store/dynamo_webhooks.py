"""The DynamoDB unit of work's webhook half: the inbox, the rejection log, the truth-fetch queue,
and the lookups webhook events need (an order by capture or authorization id, a refund by the
provider's id).

The inbox is a put-if-absent on (provider, event id) in the unit's one transaction, beside the
transition it causes: a concurrent duplicate fails that condition at commit, the whole unit is
a ConflictError, and the service's retry reads the stored event and answers "duplicate".
A transmission id points at the first event stored from it (a lookup item).

Rejections expire (TTL) after the store's `rejection_ttl`; until DynamoDB deletes them, an
expired one reads as absent. The log is trimmed to `max_rows` by a walk of its time index:
this unit reads the trimmed log at once, and the rows are tombstoned after the commit (a put
of `dynamo_items.tombstone`, which leaves the index and which TTL deletes: the store never
deletes), each on its own, so trimming never makes a rejection's unit fail. Two rejections
recorded concurrently each count without the other's uncommitted row, so the log may hold one
row per concurrent recorder beyond `max_rows` (and, since index reads lag on AWS, a row just
committed elsewhere), until the next rejection trims it.
"""

from __future__ import annotations

from datetime import datetime

from paywire.domain.order import Order
from paywire.ports import InboxEvent, Refund, TruthTask, WebhookRejection
from paywire.store import dynamo_expr as dx
from paywire.store import dynamo_items as di
from paywire.store import dynamo_webhook_items as dw
from paywire.store.dynamo_items import Item
from paywire.store.dynamo_uow import DynamoUnitOfWork

TRUTH_STATUSES = frozenset({"pending", "done", "failed"})
_CLOSED = ("done", "failed")


class DynamoWebhookUnitOfWork(DynamoUnitOfWork):
    """`DynamoUnitOfWork` plus the webhook inbox, rejection log and truth-fetch queue."""

    # --- lookups by the provider's payment ids ---------------------------------------------------

    async def find_order_by_capture_id(self, provider: str, capture_id: str) -> Order | None:
        """The order whose capture (or authorization) the provider knows by this id."""
        order = await self._via(di.lookup_key("PAYID", provider, capture_id))
        if order is None or order.provider != provider or (
                capture_id not in di.payment_ids(order)):
            return None
        return order

    async def find_refund_by_provider_id(self, provider_refund_id: str) -> Refund | None:
        """Our record of a provider refund, or None."""
        pointer = await self._read(di.lookup_key("RFID", provider_refund_id))
        if pointer is None:
            return None
        refund = await self.get_refund(pointer["target"])
        if refund is None or refund.provider_refund_id != provider_refund_id:
            return None
        return refund

    # --- inbox ---------------------------------------------------------------------------------

    async def put_inbox_event(self, event: InboxEvent) -> bool:
        """Store the event unless (provider, event_id) exists; True if written (a concurrent
        duplicate that commits first makes this unit's commit a ConflictError)."""
        item = dw.inbox_item(event)
        if await self._read(di.inbox_key(event.provider, event.event_id)) is not None:
            return False
        self._create(item, f"inbox event {event.provider}/{event.event_id}", dx.absent)
        return True

    async def get_inbox_event(self, provider: str, event_id: str) -> InboxEvent | None:
        """The stored event, or None."""
        item = await self._read(di.inbox_key(provider, event_id))
        return dw.inbox_from(item) if item is not None else None

    # --- rejection log ---------------------------------------------------------------------------

    async def record_rejection(self, rejection: WebhookRejection, max_rows: int) -> bool:
        """Record unless (provider, transmission_id) exists unexpired, then trim the log to
        the newest `max_rows` (latest `received_at`, ties by transmission id). True if written."""
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        key = di.rejection_key(rejection.provider, rejection.transmission_id)
        received = di.ts(rejection.received_at)
        stored = await self._read(key)
        if stored is not None and stored["expires_at"] > received:
            return False
        item = dw.rejection_item(rejection, rejection.received_at + self._ctx.rejection_ttl)
        self._create(item, f"rejection of transmission {rejection.transmission_id}",
                     dx.absent_or_expired(rejection.received_at), base=stored)
        await self._trim_rejections(max_rows)
        return True

    async def _trim_rejections(self, max_rows: int) -> None:
        """Hide (and after commit tombstone) every rejection beyond the newest `max_rows`."""
        stored = await self._table.walk_keys(di.BY_TIME, "REJECTION", ascending=False)
        order = {key: tsk for key, tsk in stored
                 if key not in self._pruned and key not in self._dirty}
        order.update({(i["pk"], i["sk"]): i["tsk"] for i in self._written(["rejection"])})
        newest_first = sorted(order, key=lambda k: order[k], reverse=True)
        for key in newest_first[max_rows:]:
            entry = self._dirty.pop(key, None)
            if entry is None:
                self._pruned[key] = order[key]
            elif entry.base is not None:  # written over a stored (expired) one: prune that
                self._pruned[key] = entry.base["tsk"]

    async def list_rejections(self, *, limit: int = 50,
                              before: tuple[datetime, str] | None = None) -> list[WebhookRejection]:
        """Unexpired rejections newest first; `before` = (received_at, transmission_id)."""
        self._require_limit(limit)
        now = di.ts(self._ctx.clock.now())
        after = None if before is None else (di.ts(before[0]), before[1])

        def accept(item: Item) -> bool:
            return item["kind"] == "rejection" and item["expires_at"] > now and (
                after is None or (item["received_at"], item["transmission_id"]) < after)

        found = await self._collect(di.BY_TIME, "REJECTION", ascending=False, limit=limit,
                                    bound=None if before is None else di.below(*before),
                                    kinds=("rejection",), accept=accept)
        found.sort(key=lambda i: (i["received_at"], i["transmission_id"], i["provider"]),
                   reverse=True)
        return [dw.rejection_from(i) for i in found[:limit]]

    # --- truth-fetch queue -----------------------------------------------------------------------

    async def enqueue_truth(self, task: TruthTask) -> bool:
        """Queue the task unless a pending one with its id exists; a done or failed one is
        re-opened (pending, this task's reason and due time, no attempts, no lease, no error).
        True if queued or re-opened."""
        if task.status != "pending" or task.lease_owner is not None:
            raise ValueError("enqueue a pending task without a lease")
        item = dw.truth_item(task)
        key = di.truth_key(task.id)
        stored = await self._read(key)
        what = f"truth task {task.id}"
        if stored is None:
            self._create(item, what, dx.absent)
            return True
        if stored["status"] not in _CLOSED:
            return False
        old = dw.truth_from(stored)
        reopened = TruthTask(id=old.id, provider=old.provider, kind=old.kind,
                             resource_id=old.resource_id, reason=task.reason,
                             created_at=old.created_at, next_attempt_at=task.next_attempt_at,
                             order_id=task.order_id or old.order_id)
        self._write(key, dw.truth_item(reopened), base=stored, what=what,
                    cond=dx.one_of("status", _CLOSED))
        return True

    async def claim_truth_tasks(self, owner: str, now: datetime, lease_until: datetime,
                                limit: int) -> list[TruthTask]:
        """Claim up to `limit` pending tasks due by `now` whose lease is free or lapsed, by due
        time; only the tasks this call won."""
        won = await self._claim("DUE#TRUTH", owner, now, lease_until, limit)
        tasks = [dw.truth_from(item) for item in won]
        return sorted(tasks, key=lambda task: (task.next_attempt_at, task.id))

    async def claim_truth_task(self, task_id: str, owner: str, now: datetime,
                               lease_until: datetime) -> TruthTask | None:
        """Claim one pending task by id if it is due and its lease is free or lapsed (one
        conditional update); the task as leased, or None (taken, backing off, closed or
        absent)."""
        self._check_open()
        await self._flush()
        until = di.ts(lease_until)
        key = di.truth_key(task_id)
        won = await self._table.update_if(
            key, dx.all_of(dx.exists, dx.compare("status", "=", "pending"),
                           dx.compare("next_attempt_at", "<=", di.ts(now)), dx.lease_free(now)),
            set_={"lease_owner": owner, "lease_until": until,
                  "dsk": f"{until}#{key[0].split('#', 1)[1]}"})
        return None if won is None else dw.truth_from(won)

    async def finish_truth_task(self, task_id: str, owner: str, *, status: str, attempts: int,
                                next_attempt_at: datetime, last_error: str | None,
                                now: datetime) -> bool:
        """Record an attempt's outcome and release the lease if `owner` still holds it
        (ownership alone decides, as in SQL: a lapsed owner may report until re-claimed)."""
        if status not in TRUTH_STATUSES:
            raise ValueError(f"truth task status must be one of {sorted(TRUTH_STATUSES)}")
        self._check_open()
        await self._flush()
        fields: Item = {"id": task_id, "status": status, "next_attempt_at": di.ts(next_attempt_at)}
        indexes = dw.truth_indexes(fields)
        done = await self._table.update_if(
            di.truth_key(task_id), dx.all_of(dx.exists, dx.compare("lease_owner", "=", owner)),
            set_={"status": status, "attempts": attempts, "last_error": last_error,
                  "next_attempt_at": fields["next_attempt_at"], **indexes},
            remove=["lease_owner", "lease_until", *(("dpk", "dsk") if status != "pending"
                                                    else ())])
        return done is not None

    async def list_truth_tasks(self, *, status: str | None = None,
                               limit: int = 50) -> list[TruthTask]:
        """Tasks by due time (ties by id), optionally of one status."""
        self._require_limit(limit)

        def accept(item: Item) -> bool:
            return item["kind"] == "truth" and (status is None or item["status"] == status)

        index, partition = ((di.BY_TIME, "TRUTH") if status is None
                            else (di.BY_STATUS, f"TRUTH#{status}"))
        found = await self._collect(index, partition, ascending=True, limit=limit, bound=None,
                                    kinds=("truth",), accept=accept)
        found.sort(key=lambda i: (i["next_attempt_at"], i["id"]))
        return [dw.truth_from(i) for i in found[:limit]]
