"""One DynamoDB table through boto3's low-level client: typed calls, errors mapped to paywire's.

boto3 is synchronous, so every call runs in a worker thread (`asyncio.to_thread`). Reads are
strongly consistent (`ConsistentRead`) on the table; index queries (always eventually
consistent in DynamoDB) only return keys, and the items are then read from the table.

Nothing here deletes: a removal is a put of a tombstone (`dynamo.items.tombstone`), and every
read of items answers as if a tombstone were not there (tombstones carry no index attributes,
so index queries never meet one). So the store needs no dynamodb:DeleteItem permission.

Errors: a failed condition is an answer (the caller decides: False, or `ConflictError`); a
cancelled transaction is mapped reason by reason, by index, back to the action that caused it;
throttling, server errors and an unreachable endpoint are `StorageError` (transient). Messages
carry the error code and DynamoDB's text, never the request or credentials.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from paywire.domain.errors import ConflictError, PaywireError, StorageError
from paywire.store.dynamo.expr import Cond, Expr
from paywire.store.dynamo.items import Item, Key, is_live

MAX_TRANSACTION_ITEMS = 100
_BATCH_GET = 100
_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()
_URL_USERINFO = re.compile(r"//[^/@\s]*@")
# Cancellation reason codes that mean "another writer got there first".
_CONFLICTS = {"ConditionalCheckFailed", "TransactionConflict"}


def to_wire(item: Item) -> dict[str, Any]:
    """A plain item as DynamoDB typed JSON."""
    return {k: _SERIALIZER.serialize(v) for k, v in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        if value != value.to_integral_value():
            raise TypeError(f"paywire stores whole numbers only, read {value}")
        return int(value)
    if isinstance(value, Binary):
        return bytes(value.value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def from_wire(item: dict[str, Any]) -> Item:
    """A plain item from DynamoDB typed JSON (numbers as int, binary as bytes)."""
    return {k: _plain(_DESERIALIZER.deserialize(v)) for k, v in item.items()}


def key_of(item: Item) -> Key:
    """An item's primary key."""
    return item["pk"], item["sk"]


def _wire_key(key: Key) -> dict[str, Any]:
    return {"pk": {"S": key[0]}, "sk": {"S": key[1]}}


@dataclass
class Action:
    """One write of a unit of work: `item` to put (a removal puts a tombstone), or None when
    only `cond` remains to check (an item written and removed again in one unit); `cond` must
    hold on the stored item. `what` names it in a ConflictError, `kind` says what it is."""

    key: Key
    item: Item | None
    cond: Cond | None
    what: str
    kind: str


def redact(text: str) -> str:
    """`text` with any user:password@ of a URL removed (endpoint URLs may carry one)."""
    return _URL_USERINFO.sub("//***@", text)


def translate(exc: Exception, table: str) -> PaywireError:
    """A boto error as paywire's: StorageError (transient or setup), ConflictError (a
    transaction conflict). Condition failures are handled by the callers, not here."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        message = redact(str(error.get("Message", "")))[:300]
        if code in ("TransactionConflictException", "TransactionConflict"):
            return ConflictError(f"DynamoDB: a concurrent transaction holds an item ({message})",
                                 details={"code": code})
        if code == "ResourceNotFoundException":
            return StorageError(f"DynamoDB table {table!r} not found: create it with "
                                f"`paywire migrate` ({message})", details={"code": code})
        return StorageError(f"DynamoDB {code}: {message}", details={"code": code})
    return StorageError(f"DynamoDB unreachable: {type(exc).__name__}: {redact(str(exc))[:300]}",
                        details={"code": type(exc).__name__})


class DynamoTable:
    """Async, typed access to one table (a thin layer over the boto3 client)."""

    def __init__(self, client: Any, name: str, *, page_size: int = 100) -> None:
        self.client = client
        self.name = name
        self.page_size = page_size

    async def call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """Run one client operation in a thread; boto errors become paywire's."""
        method = getattr(self.client, operation)
        try:
            result: dict[str, Any] = await asyncio.to_thread(method, **kwargs)
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                raise
            if _code(exc) == "TransactionCanceledException":
                raise
            raise translate(exc, self.name) from exc
        except BotoCoreError as exc:
            raise translate(exc, self.name) from exc
        return result

    def reading(self) -> DynamoTable:
        """This table for a snapshot: the same reads, and every write refused (StorageError)
        before it is sent."""
        return _ReadOnlyTable(self.client, self.name, page_size=self.page_size)

    # --- reads -------------------------------------------------------------------------------

    async def get(self, key: Key) -> Item | None:
        """The item at `key` (strongly consistent), or None (also for a tombstone)."""
        answer = await self.call("get_item", TableName=self.name, Key=_wire_key(key),
                                 ConsistentRead=True)
        found = answer.get("Item")
        item = from_wire(found) if found else None
        return item if item is not None and is_live(item) else None

    async def get_many(self, keys: Iterable[Key]) -> dict[Key, Item]:
        """The items that exist among `keys` (strongly consistent; tombstones left out), by
        key."""
        wanted = list(dict.fromkeys(keys))
        found: dict[Key, Item] = {}
        for start in range(0, len(wanted), _BATCH_GET):
            request: dict[str, Any] = {self.name: {
                "Keys": [_wire_key(k) for k in wanted[start:start + _BATCH_GET]],
                "ConsistentRead": True}}
            for attempt in range(10):
                answer = await self.call("batch_get_item", RequestItems=request)
                for raw in answer.get("Responses", {}).get(self.name, []):
                    item = from_wire(raw)
                    if is_live(item):
                        found[key_of(item)] = item
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
                await asyncio.sleep(min(0.05 * 2 ** attempt, 1.0))  # throttled: back off
            if request:
                raise StorageError("DynamoDB kept keys of a BatchGetItem unprocessed "
                                   "(throttled); try again", details={"code": "Unprocessed"})
        return found

    async def partition(self, pk: str, prefix: str) -> list[Item]:
        """Every item of partition `pk` whose sort key starts with `prefix`, in sort order
        (strongly consistent; tombstones left out)."""
        items: list[Item] = []
        start: dict[str, Any] | None = None
        while True:
            e = Expr()
            kwargs: dict[str, Any] = {
                "TableName": self.name, "ConsistentRead": True,
                "KeyConditionExpression": f"{e.name('pk')} = {e.value(pk)} AND "
                                          f"begins_with({e.name('sk')}, {e.value(prefix)})"}
            answer = await self.call("query", **kwargs, **_names_values(e),
                                     **({"ExclusiveStartKey": start} if start else {}))
            items.extend(item for raw in answer.get("Items", [])
                         if is_live(item := from_wire(raw)))
            start = answer.get("LastEvaluatedKey")
            if not start:
                return items

    async def index_keys(self, index: tuple[str, str, str], partition: str, *,
                         below: str | None, ascending: bool, limit: int,
                         start: dict[str, Any] | None = None
                         ) -> tuple[list[Key], dict[str, Any] | None]:
        """One page of an index partition (sort keys below `below`, if given): the table keys
        in index order, and where the next page starts (None: no more)."""
        name, pk_attr, sk_attr = index
        e = Expr()
        condition = f"{e.name(pk_attr)} = {e.value(partition)}"
        if below is not None:
            condition += f" AND {e.name(sk_attr)} < {e.value(below)}"
        answer = await self.call(
            "query", TableName=self.name, IndexName=name, KeyConditionExpression=condition,
            ScanIndexForward=ascending, Limit=max(1, min(limit, self.page_size)),
            **_names_values(e), **({"ExclusiveStartKey": start} if start else {}))
        keys = [(raw["pk"]["S"], raw["sk"]["S"]) for raw in answer.get("Items", [])]
        return keys, answer.get("LastEvaluatedKey")

    async def walk_keys(self, index: tuple[str, str, str], partition: str, *,
                        ascending: bool, prefix: str = "",
                        at_least: str | None = None) -> list[tuple[Key, str]]:
        """Every entry of an index partition (whose sort key starts with `prefix`, or is at
        least `at_least`) in index order: (table key, index sort key)."""
        name, pk_attr, sk_attr = index
        found: list[tuple[Key, str]] = []
        start: dict[str, Any] | None = None
        while True:
            e = Expr()
            condition = f"{e.name(pk_attr)} = {e.value(partition)}"
            if prefix:
                condition += f" AND begins_with({e.name(sk_attr)}, {e.value(prefix)})"
            elif at_least is not None:
                condition += f" AND {e.name(sk_attr)} >= {e.value(at_least)}"
            answer = await self.call(
                "query", TableName=self.name, IndexName=name, ScanIndexForward=ascending,
                KeyConditionExpression=condition,
                **_names_values(e), **({"ExclusiveStartKey": start} if start else {}))
            found.extend(((raw["pk"]["S"], raw["sk"]["S"]), raw[sk_attr]["S"])
                         for raw in answer.get("Items", []))
            start = answer.get("LastEvaluatedKey")
            if not start:
                return found

    async def count(self, index: tuple[str, str, str], partition: str, *,
                    at_least: str | None = None, below: str | None = None) -> int:
        """How many entries an index partition holds (Select=COUNT, every page), or those whose
        sort key is at least `at_least` or below `below` (one bound: the health readings')."""
        name, pk_attr, sk_attr = index
        total, start = 0, None
        while True:
            e = Expr()
            condition = f"{e.name(pk_attr)} = {e.value(partition)}"
            if at_least is not None:
                condition += f" AND {e.name(sk_attr)} >= {e.value(at_least)}"
            elif below is not None:
                condition += f" AND {e.name(sk_attr)} < {e.value(below)}"
            answer = await self.call(
                "query", TableName=self.name, IndexName=name, Select="COUNT",
                KeyConditionExpression=condition,
                **_names_values(e), **({"ExclusiveStartKey": start} if start else {}))
            total += int(answer.get("Count", 0))
            start = answer.get("LastEvaluatedKey")
            if not start:
                return total

    async def scan(self, keep: Cond, attributes: Sequence[str], *, page: int = 1000
                   ) -> AsyncIterator[tuple[list[Item], int]]:
        """The whole table, one page at a time (at most `page` items examined per Scan call, so
        memory is one page): each page's items that `keep` holds on (a FilterExpression), read
        with only `attributes` (a ProjectionExpression; tombstones left out), and how many
        items the page examined. Eventually consistent, as every Scan."""
        start: dict[str, Any] | None = None
        while True:
            e = Expr()
            kwargs: dict[str, Any] = {
                "TableName": self.name, "Limit": max(1, page), "FilterExpression": keep(e),
                "ProjectionExpression": ", ".join(e.name(a) for a in attributes)}
            answer = await self.call("scan", **kwargs, **_names_values(e),
                                     **({"ExclusiveStartKey": start} if start else {}))
            yield ([item for raw in answer.get("Items", []) if is_live(item := from_wire(raw))],
                   int(answer.get("ScannedCount", 0)))
            start = answer.get("LastEvaluatedKey")
            if not start:
                return

    # --- single conditional writes ---------------------------------------------------------------

    async def put_if(self, item: Item, cond: Cond) -> bool:
        """Put `item` if `cond` holds; False if it did not."""
        e = Expr()
        condition = cond(e)
        try:
            await self.call("put_item", TableName=self.name, Item=to_wire(item),
                            ConditionExpression=condition, **_names_values(e))
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return False
            raise translate(exc, self.name) from exc
        return True

    async def update_if(self, key: Key, cond: Cond, *, set_: Item | None = None,
                        remove: Sequence[str] = (), add: dict[str, int] | None = None
                        ) -> Item | None:
        """Update the item at `key` if `cond` holds (it must demand that the item exists);
        the item as written, or None if the condition failed."""
        e = Expr()
        clauses = []
        sets = [f"{e.name(k)} = {e.value(v)}" for k, v in (set_ or {}).items() if v is not None]
        removes = [e.name(k) for k in remove]
        removes += [e.name(k) for k, v in (set_ or {}).items() if v is None]
        adds = [f"{e.name(k)} {e.value(n)}" for k, n in (add or {}).items()]
        if sets:
            clauses.append("SET " + ", ".join(sets))
        if removes:
            clauses.append("REMOVE " + ", ".join(removes))
        if adds:
            clauses.append("ADD " + ", ".join(adds))
        condition = cond(e)
        try:
            answer = await self.call(
                "update_item", TableName=self.name, Key=_wire_key(key),
                UpdateExpression=" ".join(clauses), ConditionExpression=condition,
                ReturnValues="ALL_NEW", **_names_values(e))
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return None
            raise translate(exc, self.name) from exc
        return from_wire(answer["Attributes"])

    # --- a unit of work's writes -----------------------------------------------------------------

    async def write(self, actions: Sequence[Action]) -> None:
        """Apply `actions` all together or not at all: one TransactWriteItems (one plain
        conditional write when there is only one). A failed condition is a ConflictError
        naming the action it belongs to."""
        if all(a.item is None for a in actions):
            return  # only items written and removed again: nothing to write
        live = list(actions)
        if len(live) > MAX_TRANSACTION_ITEMS:
            raise ValueError(too_many(len(live)))
        if len(live) == 1 and (item := live[0].item) is not None:
            await self._put_one(live[0], item)
            return
        try:
            # The token makes a retried call (after a timeout) idempotent for ten minutes:
            # without it a transaction that did commit would fail its own conditions.
            await self.call("transact_write_items", ClientRequestToken=str(uuid.uuid4()),
                            TransactItems=[self._transact_item(a) for a in live])
        except ClientError as exc:
            raise self._cancelled(exc, live) from exc

    async def _put_one(self, action: Action, item: Item) -> None:
        e = Expr()
        condition = {"ConditionExpression": action.cond(e)} if action.cond else {}
        try:
            await self.call("put_item", TableName=self.name, Item=to_wire(item),
                            **condition, **_names_values(e))
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                raise _conflict(action) from exc
            raise translate(exc, self.name) from exc

    def _transact_item(self, action: Action) -> dict[str, Any]:
        e = Expr()
        body: dict[str, Any] = {"TableName": self.name}
        if action.cond is not None:
            body["ConditionExpression"] = action.cond(e)
            body.update(_names_values(e))
        if action.item is None:
            return {"ConditionCheck": {**body, "Key": _wire_key(action.key)}}
        return {"Put": {**body, "Item": to_wire(action.item)}}

    def _cancelled(self, exc: ClientError, actions: Sequence[Action]) -> PaywireError:
        """The error a cancelled transaction means, from its reasons (one per action, in
        the order the actions were sent)."""
        if _code(exc) != "TransactionCanceledException":
            return translate(exc, self.name)
        reasons = exc.response.get("CancellationReasons") or _reasons_from_message(exc)
        codes = [str((r or {}).get("Code") or "None") for r in reasons]
        for action, code in zip(actions, codes, strict=False):
            if code == "ConditionalCheckFailed":
                return _conflict(action)
        if "TransactionConflict" in codes:
            index = codes.index("TransactionConflict")
            what = actions[index].what if index < len(actions) else "an item"
            return ConflictError(f"{what}: a concurrent transaction changed it",
                                 details={"item": what, "code": "TransactionConflict"})
        failed = sorted({c for c in codes if c not in ("None", *_CONFLICTS)})
        return StorageError(f"DynamoDB cancelled the transaction: {', '.join(failed) or 'unknown'}",
                            details={"code": "TransactionCanceled", "reasons": codes})


def too_many(count: int) -> str:
    """Why a unit of work that writes `count` items cannot commit."""
    return (f"a DynamoDB unit of work writes at most {MAX_TRANSACTION_ITEMS} items in its one "
            f"TransactWriteItems; this one needs {count}: split the work into several units")


def _conflict(action: Action) -> ConflictError:
    return ConflictError(f"{action.what}: {_MEANING.get(action.kind, 'changed concurrently')}",
                         details={"item": action.what, "kind": action.kind,
                                  "code": "ConditionalCheckFailed"})


_MEANING = {
    "created": "already written by a concurrent unit of work",
    "version": "its version changed (a concurrent update won)",
    "changed": "changed by a concurrent unit of work",
}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _names_values(e: Expr) -> dict[str, Any]:
    """ExpressionAttributeNames/Values for the placeholders `e` handed out (typed JSON)."""
    out: dict[str, Any] = {}
    if e.names:
        out["ExpressionAttributeNames"] = dict(e.names)
    if e.values:
        out["ExpressionAttributeValues"] = {p: _SERIALIZER.serialize(v)
                                            for p, v in e.values.items()}
    return out


def _reasons_from_message(exc: ClientError) -> list[dict[str, Any]]:
    """Reasons parsed from the message ("... reasons [None, ConditionalCheckFailed]"), for
    endpoints that send them only there."""
    message = str(exc.response.get("Error", {}).get("Message", ""))
    found = re.search(r"reasons \[(.*)\]", message)
    if not found:
        return []
    return [{"Code": code.strip()} for code in found.group(1).split(",")]


_WRITES = frozenset({"put_item", "update_item", "delete_item", "transact_write_items",
                     "batch_write_item"})


class _ReadOnlyTable(DynamoTable):
    """A table a snapshot reads through (`DynamoTable.reading`)."""

    async def call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """The client operation, unless it writes."""
        if operation in _WRITES:
            raise StorageError("a snapshot only reads: write in a transaction")
        return await super().call(operation, **kwargs)
