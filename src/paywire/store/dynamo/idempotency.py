"""Client Idempotency-Keys on DynamoDB: items that expire (TTL), an expired one reading and
writing as absent until DynamoDB deletes it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from paywire.domain.errors import NotFoundError
from paywire.ports import (
    IdempotencyRecord,
)
from paywire.store.dynamo import expr as dx
from paywire.store.dynamo import items as di
from paywire.store.dynamo import records as dr
from paywire.store.dynamo.base import DynamoUnit


class DynamoIdempotencyKeys(DynamoUnit):
    """Put-if-absent, take-over, answer and forget of Idempotency-Key records."""

    async def put_idempotency(self, record: IdempotencyRecord) -> bool:
        """Insert unless (scope, key) exists unexpired at `record.created_at`; True if written.
        As a unit's first write it is made at once (the API acts on the answer)."""
        item = dr.idempotency_item(record)
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
        return dr.idempotency_from(item)

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
        record = dr.idempotency_from(stored)
        done = IdempotencyRecord(scope=scope, key=key, request_hash=record.request_hash,
                                 status="done", created_at=record.created_at,
                                 expires_at=record.expires_at, locked_until=None,
                                 resource_id=resource_id, response_status=status,
                                 response_body=body)
        self._write(ikey, dr.idempotency_item(done), base=stored, cond=dx.exists,
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
