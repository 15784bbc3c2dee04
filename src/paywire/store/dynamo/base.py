"""The machinery under every DynamoDB unit of work: an overlay of buffered writes, reads that see
it, index walks that merge it, the one-transaction commit, and leased claims.

Reads go to the table (`ConsistentRead`) except for items this unit has written, which read as
written. Writes are buffered per item: several writes to one item coalesce into one action
(DynamoDB refuses two actions on one key in a transaction) that keeps the condition of the
first — the one that holds against the stored item — and the latest state. `commit` sends them
as one TransactWriteItems. A removal is buffered as None and committed as a put of a
tombstone (`dynamo.items.tombstone`): the store never deletes, and reads never see tombstones.

Immediate operations (claims, leases) write at once with a conditional UpdateItem and answer
truthfully. One that finds this unit holding buffered writes first commits those (`flush`), so
it sees them: from then on only the writes after it stay undone by an exception. No service
mixes the two in one unit; the contract suite does, and reads the same results as on SQL.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from paywire.domain.errors import StorageError, ValidationError
from paywire.ports import Clock, SystemClock
from paywire.store.dynamo.expr import Cond, absent, all_of, compare, exists, lease_free
from paywire.store.dynamo.items import (
    BY_DUE,
    BY_ORDER,
    Item,
    Key,
    below,
    lookup_item,
    order_key,
    tombstone,
    ts,
)
from paywire.store.dynamo.table import MAX_TRANSACTION_ITEMS, Action, DynamoTable, too_many

log = logging.getLogger("paywire.store.dynamo")
Refine = Callable[[list[Item]], Awaitable[list[Item]]]
# A claim reads at most this many pages of due candidates before it answers with what it won.
CLAIM_PAGES = 10


@dataclass
class StoreContext:
    """What a store hands each of its units of work: the table, a clock, settings, and the
    source of history sequence numbers."""

    table: DynamoTable
    clock: Clock = field(default_factory=SystemClock)
    rejection_ttl: timedelta = timedelta(days=90)
    _last_seq: int = 0

    def next_seq(self) -> str:
        """A sort-key suffix that grows with every call (insertion order among equal times
        in this process), made unique across processes by a random tail."""
        self._last_seq = max(self._last_seq + 1, time.time_ns())
        return f"{self._last_seq:020d}{os.urandom(4).hex()}"


@dataclass
class _Entry:
    """One item this unit writes: the stored state it started from and its state now."""

    base: Item | None  # the stored item when first written here (None: absent)
    base_known: bool  # False for blind writes (an upsert, a removal) that never read it
    item: Item | None  # what this unit has made of it (None: removed)
    cond: Cond | None  # must hold on the stored item at commit
    what: str
    kind: str  # created | version | changed: what a failed condition means


class DynamoUnit:
    """A unit of work's overlay, reads, buffered writes, commit and claims."""

    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx
        self._table = ctx.table
        self._dirty: dict[Key, _Entry] = {}
        # Rejections `record_rejection` trimmed, by key, with the index sort key they had:
        # hidden from this unit at once, tombstoned after commit (best effort).
        self._pruned: dict[Key, str] = {}
        self._open = True

    # --- life cycle --------------------------------------------------------------------------

    def end(self) -> None:
        """Refuse further use: the transaction is over."""
        self._open = False

    def buffered(self) -> bool:
        """Whether this unit has writes waiting for its commit."""
        return bool(self._dirty)

    def _check_open(self) -> None:
        if not self._open:
            raise RuntimeError("this unit of work has ended; open a new transaction")

    async def commit(self) -> None:
        """Write everything buffered, all or nothing."""
        self._check_open()
        await self._flush()

    async def after_commit(self) -> None:
        """Best-effort clean-up once committed: tombstone what `record_rejection` pruned.

        Each is a put conditional on the rejection still being the one pruned (its index sort
        key), so nothing is written where TTL or another pruning got there first, and a row
        recorded again since is kept."""
        removed = self._ctx.clock.now()
        for key, tsk in sorted(self._pruned.items()):
            try:
                await self._table.put_if(tombstone(key, removed), compare("tsk", "=", tsk))
            except StorageError as exc:  # the next pruning removes it
                log.warning("could not prune %s from the rejection log: %s", key[0], exc)
        self._pruned.clear()

    async def _flush(self) -> None:
        if not self._dirty:
            return
        actions = []
        removed = self._ctx.clock.now()
        for key, entry in self._dirty.items():
            created_here = entry.base_known and entry.base is None
            if entry.item is None and created_here:
                if entry.cond is None:
                    continue
                # Written and removed again here: only its condition is left to check.
                actions.append(Action(key, None, entry.cond, entry.what, entry.kind))
            else:
                item = entry.item if entry.item is not None else tombstone(key, removed)
                actions.append(Action(key, item, entry.cond, entry.what, entry.kind))
        await self._table.write(actions)
        self._dirty.clear()

    # --- reads through the overlay -----------------------------------------------------------

    async def _read(self, key: Key) -> Item | None:
        self._check_open()
        if key in self._pruned:
            return None
        entry = self._dirty.get(key)
        if entry is not None:
            return entry.item
        return await self._table.get(key)

    async def _read_many(self, keys: Iterable[Key]) -> dict[Key, Item | None]:
        self._check_open()
        wanted = list(dict.fromkeys(keys))
        stored = await self._table.get_many(
            k for k in wanted if k not in self._dirty and k not in self._pruned)
        found: dict[Key, Item | None] = {}
        for key in wanted:
            if key in self._pruned:
                found[key] = None
            elif key in self._dirty:
                found[key] = self._dirty[key].item
            else:
                found[key] = stored.get(key)
        return found

    def _written(self, kinds: Iterable[str]) -> list[Item]:
        """Items of these kinds as this unit wrote them (not yet committed)."""
        wanted = set(kinds)
        return [e.item for e in self._dirty.values()
                if e.item is not None and e.item.get("kind") in wanted]

    # --- buffered writes -----------------------------------------------------------------------

    def _write(self, key: Key, item: Item | None, *, base: Item | None, cond: Cond | None,
               what: str, kind: str = "changed", base_known: bool = True) -> None:
        """Buffer `item` (None: remove) at `key`. The first write of an item sets the
        condition (checked against the stored `base`); later ones only change the state."""
        self._check_open()
        entry = self._dirty.get(key)
        if entry is not None:
            entry.item = item
            return
        if len(self._dirty) >= MAX_TRANSACTION_ITEMS:
            raise ValueError(too_many(len(self._dirty) + 1))
        self._dirty[key] = _Entry(base, base_known, item, cond, what, kind)

    def _create(self, item: Item, what: str, cond: Cond, base: Item | None = None) -> None:
        """Buffer a put-if-absent (`cond` says what "absent" means, e.g. expired)."""
        self._write((item["pk"], item["sk"]), item, base=base, cond=cond, what=what,
                    kind="created")

    async def _put_now_if_first(self, item: Item, cond: Cond, what: str,
                                base: Item | None = None) -> bool:
        """A put-if-absent a caller acts on before its unit ends (a key, a lease): written at
        once when it is the unit's first write, so the answer is the truth; otherwise
        buffered like any write (a race lost at commit is then a ConflictError)."""
        if self._dirty:
            self._create(item, what, cond, base)
            return True
        return await self._table.put_if(item, cond)

    # --- index walks -----------------------------------------------------------------------------

    async def _collect(self, index: tuple[str, str, str], partition: str, *,
                       bound: str | None, ascending: bool, limit: int, kinds: tuple[str, ...],
                       accept: Callable[[Item], bool], refine: Refine | None = None,
                       min_page: int = 1) -> list[Item]:
        """Items of an index partition (sort keys below `bound`) that `accept` (and `refine`)
        keep, read from the table through this unit's overlay, plus the items this unit wrote
        that qualify. Unordered: the caller sorts and cuts to `limit`.

        The walk stops once `limit` items qualified: every later index entry sorts after them,
        and the items this unit changed were judged as changed, so the first `limit` of the
        merged set are exact (up to what the index has not yet caught up with: index reads are
        eventually consistent in DynamoDB, the items are not)."""
        found: dict[Key, Item] = {}
        start: dict[str, Any] | None = None
        while True:
            keys, start = await self._table.index_keys(index, partition, below=bound,
                                                       ascending=ascending,
                                                       limit=max(limit - len(found), min_page),
                                                       start=start)
            items = await self._read_many(keys)
            page = [item for key in keys if (item := items[key]) is not None and accept(item)]
            if refine is not None and page:
                page = await refine(page)
            found.update(((i["pk"], i["sk"]), i) for i in page)
            if len(found) >= limit or start is None:
                break
        mine = [i for i in self._written(kinds) if accept(i) and (i["pk"], i["sk"]) not in found]
        if refine is not None and mine:
            mine = await refine(mine)
        found.update(((i["pk"], i["sk"]), i) for i in mine)
        return list(found.values())

    # --- claims ----------------------------------------------------------------------------------

    async def _claim(self, partition: str, owner: str, now: datetime, lease_until: datetime,
                     limit: int) -> list[Item]:
        """Lease up to `limit` due items of a due-index partition, oldest due first, each by a
        conditional UpdateItem (pending, due by `now`, lease free or lapsed): concurrent
        claimers never win the same item. The items this call won, as written.

        A leased item's due-index key becomes its lease's end, so live leases drop out of the
        candidates and a lapsed one comes back on its own (`dynamo.items.outbox_indexes`)."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._check_open()
        await self._flush()
        claimable = all_of(exists, compare("status", "=", "pending"),
                           compare("next_attempt_at", "<=", ts(now)), lease_free(now))
        until = ts(lease_until)
        won: list[Item] = []
        start: dict[str, Any] | None = None
        for _ in range(CLAIM_PAGES):
            keys, start = await self._table.index_keys(
                BY_DUE, partition, below=below(now), ascending=True,
                limit=max(2 * limit, 25), start=start)
            while keys and len(won) < limit:
                # As many attempts at once as there are items still wanted, so a claim never
                # wins more than `limit`; the losers' places go to the next candidates.
                batch, keys = keys[:limit - len(won)], keys[limit - len(won):]
                results = await asyncio.gather(*(self._table.update_if(
                    key, claimable, set_={"lease_owner": owner, "lease_until": until,
                                          "dsk": f"{until}#{key[0].split('#', 1)[1]}"})
                    for key in batch))
                won.extend(item for item in results if item is not None)
            if len(won) >= limit or start is None:
                break
        return won

    # --- lookup items and an order's children, shared by several aggregates ---------------

    async def _first_claim(self, key: Key, target: str, what: str, **extra: str) -> None:
        """Point the lookup `key` at `target` unless something already holds it."""
        if await self._read(key) is None:
            self._create(lookup_item(key, target, **extra), what, absent)

    async def _release(self, key: Key, target: str) -> None:
        """Remove the lookup `key` (tombstone it at commit) if it points at `target`."""
        held = await self._read(key)
        if held is not None and held["target"] == target:
            self._write(key, None, base=held, cond=compare("target", "=", target),
                        what=f"lookup {key[0]}")

    async def _of_order(self, order_id: str, prefix: str, kind: str) -> list[Item]:
        """The order's items of `kind` in the by-order index (sort keys starting `prefix`),
        read from the table through the overlay, with this unit's own."""
        self._check_open()
        opk = order_key(order_id)[0]
        entries = await self._table.walk_keys(BY_ORDER, opk, ascending=True, prefix=prefix)
        found = await self._read_many(key for key, _ in entries)
        items = {k: i for k, i in found.items() if i is not None and i.get("opk") == opk}
        items.update({(i["pk"], i["sk"]): i for i in self._written([kind])
                      if i.get("opk") == opk})
        return list(items.values())

    def _require_limit(self, limit: int) -> None:
        if limit < 1:
            raise ValidationError("limit must be at least 1", field="limit")
