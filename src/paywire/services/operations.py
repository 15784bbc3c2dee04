"""Running a mutating provider call exactly once per idempotency key, across crashes and races.

Timeline of one key (`<order>:capture:1`), two callers A and B, and a crash:

    A: put op(pending, lease=t+30s) ── call provider ──────── commit(result + transition)
    B:   put op → exists, lease live ── wait ... sees op finished ── reads the order
    A': (A crashed after the call)     put op → exists, lease lapsed ── claim ── call again
                                        with the SAME key → provider replays ── commit

The key is written before the call, so every retry carries it; the lease only decides who
calls, and lapses on its own if its holder dies — no database lock is held across the call.
Under a request deadline (`paywire.domain.deadline`) the lease ends with the deadline (plus a
little grace), so a killed request's retry is not held off for the whole lease, and a caller
waiting for another's lease gives up (`DeadlineExceeded`) before its own deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from paywire.domain import deadline, trace
from paywire.domain.errors import ConflictError, DeadlineExceeded, ProviderError
from paywire.ports import Clock, Operations, ProviderOperation, Transactions
from paywire.services.common import error_json

T = TypeVar("T")


class OperationDone(Exception):
    """The operation was finished by another caller; its outcome is in the store."""

    def __init__(self, op: ProviderOperation) -> None:
        super().__init__(f"operation {op.key} finished as {op.status}")
        self.op = op


class OperationRunner:
    """Claims an operation key, then lets exactly one caller make the provider call."""

    def __init__(self, store: Transactions[Operations], clock: Clock, *,
                 lease: timedelta = timedelta(seconds=30), poll_seconds: float = 0.05) -> None:
        self.store = store
        self.clock = clock
        self.lease = lease
        self.poll_seconds = poll_seconds

    async def claim(self, key: str, order_id: str, kind: str) -> None:
        """Return once this caller holds `key`; raise OperationDone if someone finished it."""
        while True:
            async with self.store.transaction() as uow:
                found = await self.claim_in(uow, key, order_id, kind)
            if found is None:
                return
            if found.status != "pending":
                raise OperationDone(found)
            # Someone else holds a live lease: wait for their outcome or for the lease to lapse.
            if deadline.exhausted():
                raise DeadlineExceeded(f"operation {key} is still held by another request",
                                       provider="paywire")
            await asyncio.sleep(self.poll_seconds)

    async def claim_in(self, uow: Operations, key: str, order_id: str,
                       kind: str) -> ProviderOperation | None:
        """Try to take `key` in the caller's own unit of work, beside its other writes (the
        order a checkout creates, or the read a capture starts from), so a request pays for one
        transaction instead of two. None if this caller holds it once the unit commits; else
        the operation as found (finished, or pending under another's live lease), for `hold`
        once the unit has ended."""
        now = self.clock.now()
        until = now + timedelta(seconds=deadline.lease(self.lease.total_seconds()))
        fresh = ProviderOperation(key=key, order_id=order_id, kind=kind, status="pending",
                                  created_at=now, updated_at=now, lease_until=until,
                                  trace_id=trace.current_id())
        if await uow.put_operation(fresh):
            return None
        op = await uow.get_operation(key)
        if op is None:
            return fresh  # raced with a delete that never happens: `hold` reads again
        if op.status == "pending" and await uow.claim_operation(key, now, until):
            return None
        return op

    async def hold(self, found: ProviderOperation | None) -> None:
        """After the unit of work that ran `claim_in`: return if it took the key, raise
        OperationDone if it found the operation finished, else wait for the key (`claim`)."""
        if found is None:
            return
        if found.status != "pending":
            raise OperationDone(found)
        await self.claim(found.key, found.order_id, found.kind)

    async def release(self, key: str, error: ProviderError) -> None:
        """Give the key back still pending (the call may or may not have happened)."""
        async with self.store.transaction() as uow:
            await uow.finish_operation(key, "pending", None, error_json(error),
                                       self.clock.now())

    async def fail(self, key: str, error: ProviderError) -> None:
        """Record that the call was refused for good under this key."""
        async with self.store.transaction() as uow:
            await uow.finish_operation(key, "failed", None, error_json(error), self.clock.now())


async def retry_on_conflict(fn: Callable[[], Awaitable[T]], attempts: int = 8) -> T:
    """Run a read-modify-write unit of work again when a concurrent writer won the CAS."""
    for attempt in range(attempts):
        try:
            return await fn()
        except ConflictError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.005 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover
