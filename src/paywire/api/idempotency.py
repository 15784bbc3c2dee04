"""Client `Idempotency-Key`s (IETF draft-ietf-httpapi-idempotency-key-header, as Stripe does it).

A key is scoped per caller (API key identity, or "public") and endpoint, and kept
`idempotency_ttl_seconds`. Its record holds a hash of the request (method, path and the
validated body as canonical JSON) and, once done, the answer (status + body). The gate names
the resource before the work starts (the same id on every retry, so the service resumes the
first request's order or refund), and stores the answer the route rendered from the work's
result: services return domain results and know nothing of keys, statuses or bodies.

    first request:  put(in_flight, lock=now+T, resource id R) ── work(R) ── answer stored (done)
    same key+body:  done → replay the answer (`Idempotent-Replayed: true`)
                    in flight, lock live → 409 idempotency_key_in_flight
                    in flight, lock lapsed (owner crashed) → take the lock, work(R) again: the
                    SAME resource id, so the service resumes the first request's order/refund
    other body:     422 idempotency_key_reused

A request that creates an order (`run_alongside`) makes the same moves inside the order's own
units of work (`KeyAlongside`): the first put beside the order's insert, the answer beside the
provider's answer. A put that finds the key recorded abandons that order unwritten and takes
the way above, so a keyed create costs no transactions beyond the order's two.

T is `request_timeout_seconds`, but never past the request's deadline (`paywire.domain.deadline`)
plus a little grace: a request killed at its deadline does not lock its caller's retry out.
A request refused before doing anything durable (bad input, unknown order, over-refund) forgets
its key, so the client may fix the request and send it again under the same key; one that failed
for good at the provider stores its error answer; one that failed transiently releases its lock
so a retry resumes at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel

from paywire.api.errors import ApiError, render
from paywire.domain import deadline
from paywire.domain.errors import (
    ConflictError,
    PaywireError,
    ProviderError,
    StorageError,
)
from paywire.domain.order import Order
from paywire.ports import Clock, IdempotencyKeys, IdempotencyRecord, Metrics, NoMetrics, Store
from paywire.ports.metrics import IDEMPOTENCY_REPLAYS
from paywire.services.checkout import Alongside
from paywire.services.common import RESUMABLE, new_id

HEADER = "Idempotency-Key"
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces

# The request's work, given the resource id its key stands for (None without a key): the answer
# (status, body) to send, and to store under the key.
Work = Callable[[str | None], Awaitable[tuple[int, dict[str, Any]]]]
# An order-creating request's work (`run_alongside`): the order, given the id its key stands
# for and the key's writes to make beside it; and the answer an order renders to.
Create = Callable[[str | None, Alongside | None], Awaitable[Order]]
Render = Callable[[Order], tuple[int, dict[str, Any]]]


def request_hash(method: str, path: str, body: dict[str, Any]) -> str:
    """sha256 of the request as canonical JSON (sorted keys, no whitespace)."""
    canonical = json.dumps({"method": method.upper(), "path": path, "body": body},
                           sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def fingerprint(method: str, path: str, body: BaseModel) -> str:
    """The request hash of a validated body (defaults filled in, unset optionals left out)."""
    return request_hash(method, path, body.model_dump(mode="json", exclude_none=True))


def check_key(key: str) -> str:
    """The key if well formed (1-255 printable ASCII characters), else 422."""
    if not _KEY.match(key):
        raise ApiError(422, "invalid_idempotency_key",
                       f"{HEADER} must be 1 to 255 printable ASCII characters")
    return key


@dataclass(frozen=True, slots=True)
class Claimed:
    """This request holds the key until `record.locked_until`."""

    record: IdempotencyRecord


@dataclass(frozen=True, slots=True)
class Replay:
    """The key's stored answer."""

    status: int
    body: dict[str, Any]


class IdempotencyGate:
    """Claims, replays and settles Idempotency-Keys through the store port."""

    def __init__(self, store: Store, clock: Clock, *, ttl_seconds: float,
                 lock_seconds: float, metrics: Metrics | None = None) -> None:
        self.store = store
        self.metrics: Metrics = metrics or NoMetrics()  # replays, by endpoint
        self.clock = clock
        self.ttl = timedelta(seconds=ttl_seconds)
        self.lock = timedelta(seconds=lock_seconds)

    def _lock(self) -> timedelta:
        """How long this request holds a key: the configured lock, but never past the request's
        deadline plus a little grace (a request killed at its deadline frees the key soon)."""
        return timedelta(seconds=deadline.lease(self.lock.total_seconds()))

    def _fresh(self, scope: str, key: str, digest: str, prefix: str, now: datetime,
               lock: timedelta) -> IdempotencyRecord:
        """A new in-flight record for this request, naming a new resource."""
        return IdempotencyRecord(scope=scope, key=key, request_hash=digest, status="in_flight",
                                 created_at=now, expires_at=now + self.ttl,
                                 locked_until=now + lock, resource_id=new_id(prefix))

    async def claim(self, scope: str, key: str, digest: str, prefix: str) -> Claimed | Replay:
        """Take the key for this request, or answer what it already stands for."""
        for _ in range(3):
            now = self.clock.now()
            lock = self._lock()
            fresh = self._fresh(scope, key, digest, prefix, now, lock)
            async with self.store.transaction() as uow:
                if await uow.put_idempotency(fresh):
                    return Claimed(fresh)
                seen = await uow.get_idempotency(scope, key, now)
            if seen is None:
                continue  # expired (or forgotten) since the put: try again
            if seen.request_hash != digest:
                raise ApiError(422, "idempotency_key_reused",
                               f"this {HEADER} was used with a different request")
            if seen.status == "done" and seen.response_status is not None:
                return Replay(seen.response_status, seen.response_body or {})
            if seen.locked_until is None or seen.locked_until <= now:
                until = now + lock
                async with self.store.transaction() as uow:
                    if await uow.lock_idempotency(scope, key, now, until):
                        # Its owner crashed: resume its work under the same resource id.
                        return Claimed(IdempotencyRecord(
                            scope=scope, key=key, request_hash=digest, status="in_flight",
                            created_at=seen.created_at, expires_at=seen.expires_at,
                            locked_until=until, resource_id=seen.resource_id))
            raise self._in_flight(seen, now)
        raise ApiError(409, "idempotency_key_in_flight",
                       f"a request with this {HEADER} is in progress")

    def _in_flight(self, seen: IdempotencyRecord, now: datetime) -> ApiError:
        wait = 1
        if seen.locked_until is not None:
            wait = max(1, math.ceil((seen.locked_until - now).total_seconds()))
        return ApiError(409, "idempotency_key_in_flight",
                        f"a request with this {HEADER} is in progress; retry later",
                        headers={"Retry-After": str(wait)})

    async def forget(self, record: IdempotencyRecord) -> None:
        """Drop the key: the request did nothing durable, so it may be sent again."""
        async with self.store.transaction() as uow:
            await uow.delete_idempotency(record.scope, record.key)

    async def store_answer(self, record: IdempotencyRecord, status: int,
                           body: dict[str, Any]) -> None:
        """Keep a final answer (e.g. the provider's refusal) to replay."""
        async with self.store.transaction() as uow:
            await uow.complete_idempotency(record.scope, record.key, record.resource_id, status,
                                           body)

    async def release(self, record: IdempotencyRecord) -> None:
        """Let a retry take the key over at once (the request failed transiently).

        The port's takeover is "lock a record whose lock lapsed by `now`": asked as of just
        after our own lock's end, it matches our record only while we still hold it (a takeover
        by someone else set a later lock) and leaves the lock lapsed as of the real now.
        """
        if record.locked_until is None:
            return
        async with self.store.transaction() as uow:
            await uow.lock_idempotency(record.scope, record.key,
                                       record.locked_until + timedelta(microseconds=1),
                                       self.clock.now())

    async def settle_failure(self, record: IdempotencyRecord, exc: Exception,
                             request_id: str | None) -> None:
        """Decide what a failed request leaves behind under its key."""
        if isinstance(exc, ProviderError) and exc.kind not in RESUMABLE:
            status, body = render(exc, request_id)
            await self.store_answer(record, status, body)
        elif isinstance(exc, ProviderError | StorageError | ConflictError) or not isinstance(
                exc, PaywireError):
            await self.release(record)
        else:
            await self.forget(record)

    async def run(self, *, key: str | None, scope: str, digest: str, prefix: str, work: Work,
                  request_id: str | None) -> JSONResponse:
        """Serve one request under an optional Idempotency-Key: the work's answer is stored
        under the key before it is sent (a failure to store it settles like the work's own)."""
        if key is None:
            status, body = await work(None)
            return JSONResponse(body, status_code=status)
        claim = await self.claim(scope, check_key(key), digest, prefix)
        if isinstance(claim, Replay):
            # The scope is "<caller>|<METHOD> <route template>": the endpoint is the route.
            self.metrics.count(IDEMPOTENCY_REPLAYS, endpoint=scope.rpartition("|")[2])
            return JSONResponse(claim.body, status_code=claim.status,
                                headers={"Idempotent-Replayed": "true"})
        record = claim.record
        if record.resource_id is None:  # pragma: no cover - every claim names its resource
            raise ConflictError("idempotency record without a resource id")
        try:
            status, body = await work(record.resource_id)
            await self.store_answer(record, status, body)
        except Exception as exc:
            # If settling fails too, the lock lapses on its own; the original error matters.
            with contextlib.suppress(PaywireError):
                await self.settle_failure(record, exc, request_id)
            raise
        return JSONResponse(body, status_code=status)

    async def run_alongside(self, *, key: str | None, scope: str, digest: str, prefix: str,
                            create: Create, render: Render,
                            request_id: str | None) -> JSONResponse:
        """`run` for a request that creates an order: the key's record is written in the
        order's own units of work (`KeyAlongside`), put beside its insert and answered beside
        the provider's answer, so a keyed create costs the order's two transactions and no more.
        A key already recorded (a retry, a replay, another body) takes `run`'s way."""
        if key is None:
            status, body = render(await create(None, None))
            return JSONResponse(body, status_code=status)
        record = self._fresh(scope, check_key(key), digest, prefix, self.clock.now(),
                             self._lock())
        along = KeyAlongside(record, render)
        try:
            order = await create(record.resource_id, along)
            answer = along.answer
            if answer is None:  # the order came back with no answer's unit (already created)
                answer = render(order)
                await self.store_answer(record, *answer)
        except KeyTaken:
            answer = None
        except Exception as exc:
            if along.put:  # else nothing was written under the key: nothing to settle
                with contextlib.suppress(PaywireError):
                    await self.settle_failure(record, exc, request_id)
            raise
        if answer is None:  # the key was recorded already: the order was abandoned unwritten
            async def work(resource_id: str | None) -> tuple[int, dict[str, Any]]:
                return render(await create(resource_id, None))

            return await self.run(key=key, scope=scope, digest=digest, prefix=prefix,
                                  work=work, request_id=request_id)
        return JSONResponse(answer[1], status_code=answer[0])


class KeyTaken(Exception):
    """The key is recorded already: the order this request began is abandoned unwritten."""


class KeyAlongside:
    """An Idempotency-Key record as `Alongside` writes for `Checkout.create_order`: put first
    in the unit that inserts the order (refused: `KeyTaken`, which abandons the order), and
    its answer, rendered from the order as it then stands, stored in the provider's answer's
    unit."""

    def __init__(self, record: IdempotencyRecord, render: Render) -> None:
        self.record = record
        self.render = render
        self.put = False  # the record was put (in a unit that may yet roll back)
        self.answer: tuple[int, dict[str, Any]] | None = None

    async def opened(self, uow: IdempotencyKeys) -> None:
        """Put the record, or abandon the order (`KeyTaken`)."""
        if not await uow.put_idempotency(self.record):
            raise KeyTaken(self.record.key)
        self.put = True

    async def answered(self, uow: IdempotencyKeys, order: Order) -> None:
        """Store the answer `order` renders to (the last unit's, if a conflict re-ran it)."""
        answer = self.render(order)
        r = self.record
        await uow.complete_idempotency(r.scope, r.key, r.resource_id, *answer)
        self.answer = answer
