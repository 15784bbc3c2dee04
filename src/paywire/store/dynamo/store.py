"""`DynamoStore`: the store port on one DynamoDB table (single-table design), via boto3.

URL: `dynamodb://<table>` (`PAYWIRE_DATABASE_URL`); region and endpoint from the standard AWS
environment (`AWS_REGION` / `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`), or `?region=` and
`?endpoint_url=` on the URL. `ensure_table` (= `DynamoStore.setup()`, what `paywire migrate`
runs) creates the table with its indexes if absent, waits until it is ACTIVE, enables TTL on
`TTL_ATTRIBUTE` and checks it; `setup()` then backfills the by_order keys of items written
before those keys existed (`dynamo.backfill`). `table_definition()` is the CreateTable
request, for the SAM template to mirror.

The table's design (items, indexes, units of work, removals) is described in `paywire.store.dynamo`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from paywire.domain.errors import ConfigError, StorageError

try:
    import boto3
    import botocore.loaders
    import botocore.session
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError as exc:  # pragma: no cover - the core install has no boto3
    raise ImportError("the DynamoDB store needs boto3: pip install 'paywire[aws]'") from exc

from paywire.ports import Clock, SystemClock
from paywire.store.dynamo.backfill import Backfill, backfill_order_keys
from paywire.store.dynamo.base import StoreContext
from paywire.store.dynamo.items import INDEXES, TTL_ATTRIBUTE
from paywire.store.dynamo.table import DynamoTable, translate
from paywire.store.dynamo.unit import DynamoUnitOfWork

if TYPE_CHECKING:
    from paywire.ports import OpsUnitOfWork, Store

__all__ = ["TTL_ATTRIBUTE", "DynamoStore", "ensure_table", "make_client", "table_definition"]

SCHEME = "dynamodb://"
_TABLE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


def table_definition(table_name: str, *, stream: bool = False) -> dict[str, Any]:
    """The CreateTable request of a paywire table: key schema, attribute definitions, the four
    keys-only indexes, on-demand billing; with `stream`, a stream of new images for the
    optional stream handler (`paywire.aws.stream`; the scheduled drainer needs none). TTL is
    enabled separately (`ensure_table`)."""
    attributes = ["pk", "sk", *(a for _, pk, sk in INDEXES for a in (pk, sk))]
    definition: dict[str, Any] = {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                      {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"} for a in attributes],
        "GlobalSecondaryIndexes": [
            {"IndexName": name, "Projection": {"ProjectionType": "KEYS_ONLY"},
             "KeySchema": [{"AttributeName": pk, "KeyType": "HASH"},
                           {"AttributeName": sk, "KeyType": "RANGE"}]}
            for name, pk, sk in INDEXES],
    }
    if stream:
        definition["StreamSpecification"] = {"StreamEnabled": True,
                                             "StreamViewType": "NEW_IMAGE"}
    return definition


def check_table_name(name: str) -> str:
    """`name` if DynamoDB accepts it as a table name (3-255 of [A-Za-z0-9_.-]), else ConfigError."""
    if not 3 <= len(name) <= 255 or not set(name) <= _TABLE_CHARS:
        raise ConfigError(f"{name!r} is not a DynamoDB table name (3-255 letters, digits, "
                          f"'_', '-' or '.')")
    return name


def make_client(*, endpoint_url: str | None = None, region: str | None = None,
                connect_timeout: float = 3.0, read_timeout: float = 10.0,
                max_attempts: int = 3) -> Any:
    """A DynamoDB client: region from the argument or AWS_REGION / AWS_DEFAULT_REGION,
    endpoint from the argument or AWS_ENDPOINT_URL (boto3 reads it), credentials from the
    standard chain; botocore's standard retry mode (throttling, 5xx, connection errors)."""
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise ConfigError("the DynamoDB store needs a region: set AWS_REGION (or add "
                          "?region=<region> to the dynamodb:// URL)")
    config = Config(retries={"mode": "standard", "max_attempts": max_attempts},
                    connect_timeout=connect_timeout, read_timeout=read_timeout,
                    max_pool_connections=32)
    # A session of its own (credentials resolved for this client), reading the service's
    # model through the process's one loader: parsing it is most of a new client's cost.
    core = botocore.session.get_session()
    core.register_component("data_loader", _service_models())
    session = boto3.session.Session(botocore_session=core)
    return session.client("dynamodb", region_name=region, endpoint_url=endpoint_url or None,
                          config=config)


@functools.cache
def _service_models() -> Any:
    """botocore's loader of service models, shared: it caches what it has parsed."""
    return botocore.loaders.create_loader()


class DynamoStore:
    """The store port on a DynamoDB table. Create once per process; `close()` at shutdown.

    `clock` decides which rejections have expired when listing them (the port passes no
    time there); `rejection_ttl` is how long a rejection is kept; `page_size` caps the items
    one index Query returns.
    """

    def __init__(self, table_name: str, *, client: Any = None, endpoint_url: str | None = None,
                 region: str | None = None, clock: Clock | None = None, page_size: int = 100,
                 rejection_ttl: timedelta = timedelta(days=90), connect_timeout: float = 3.0,
                 read_timeout: float = 10.0, max_attempts: int = 3) -> None:
        if page_size < 1:
            raise ConfigError("page_size must be at least 1")
        self.table_name = check_table_name(table_name)
        self._own_client = client is None
        self._client = client if client is not None else make_client(
            endpoint_url=endpoint_url, region=region, connect_timeout=connect_timeout,
            read_timeout=read_timeout, max_attempts=max_attempts)
        table = DynamoTable(self._client, table_name, page_size=page_size)
        self._ctx = StoreContext(table, clock or SystemClock(), rejection_ttl)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> DynamoStore:
        """A store for `dynamodb://<table>[?region=...&endpoint_url=...]`."""
        parts = urlsplit(url)
        if not url.startswith(SCHEME) or parts.path not in ("", "/") or parts.fragment:
            raise ConfigError("a DynamoDB store URL is dynamodb://<table> (region and endpoint "
                              "from AWS_REGION and AWS_ENDPOINT_URL)")
        query = {k: v[-1] for k, v in parse_qs(parts.query, strict_parsing=False).items()}
        unknown = sorted(set(query) - {"region", "endpoint_url"})
        if unknown:
            raise ConfigError(f"unknown dynamodb:// URL parameters: {', '.join(unknown)}")
        for name in ("region", "endpoint_url"):
            if name in query:
                options.setdefault(name, query[name])
        return cls(parts.netloc, **options)

    def __repr__(self) -> str:
        return f"DynamoStore({self.table_name!r})"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[OpsUnitOfWork]:
        """A unit of work: its writes commit together on normal exit (one TransactWriteItems);
        on an exception nothing buffered is written."""
        uow = DynamoUnitOfWork(self._ctx)
        try:
            yield uow
        except BaseException:
            uow.end()
            raise
        try:
            await uow.commit()
        finally:
            uow.end()
        await uow.after_commit()

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[OpsUnitOfWork]:
        """A read-only unit of work: strongly consistent reads of what was committed; a write
        raises StorageError (one sent at once is refused before it leaves; a buffered one, at
        the end), and nothing is written."""
        uow = DynamoUnitOfWork(dataclasses.replace(self._ctx, table=self._ctx.table.reading()))
        try:
            yield uow
        finally:
            uow.end()
        if uow.buffered():
            raise StorageError("a snapshot only reads: write in a transaction")

    async def setup(self) -> Backfill:
        """Create the table if absent, wait until it is ACTIVE, enable and check TTL; then add
        the by_order keys that items written before them lack (`dynamo.backfill`: idempotent,
        safe beside running writers). What the backfill did."""
        await ensure_table(self.table_name, client=self._client)
        return await backfill_order_keys(self._ctx.table)

    async def close(self) -> None:
        """Release the client's connections (a client passed in is the caller's to close)."""
        if self._own_client:
            await asyncio.to_thread(self._client.close)


async def ensure_table(table_name: str, *, client: Any = None, endpoint_url: str | None = None,
                       region: str | None = None, stream: bool = False,
                       wait_seconds: float = 600.0) -> None:
    """Create the table with its indexes if absent (and any index it lacks; `stream`: with a
    stream of new images), wait until it is ACTIVE, then enable TTL on `TTL_ATTRIBUTE` and
    check it: ConfigError if the table's key schema is not paywire's or its TTL is on another
    attribute. An existing table's stream is left as it is."""
    own = client is None
    client = client if client is not None else make_client(endpoint_url=endpoint_url,
                                                           region=region)
    setup = _Setup(client, check_table_name(table_name), wait_seconds, stream)
    try:
        await setup.create_if_absent()
        await setup.add_missing_indexes()
        await setup.enable_ttl()
    finally:
        if own:
            await asyncio.to_thread(client.close)


class _Setup:
    """The steps of `ensure_table`."""

    def __init__(self, client: Any, name: str, wait_seconds: float, stream: bool) -> None:
        self.client = client
        self.name = name
        self.wait_seconds = wait_seconds
        self.definition = table_definition(name, stream=stream)

    async def call(self, operation: str, *, tolerate: str = "",
                   **kwargs: Any) -> dict[str, Any] | None:
        """One client call; None if it failed with the error code `tolerate`."""
        try:
            result: dict[str, Any] = await asyncio.to_thread(getattr(self.client, operation),
                                                             **kwargs)
        except ClientError as exc:
            if tolerate and exc.response.get("Error", {}).get("Code") == tolerate:
                return None
            raise translate(exc, self.name) from exc
        except BotoCoreError as exc:
            raise translate(exc, self.name) from exc
        return result

    async def describe(self) -> dict[str, Any] | None:
        """The table's description, or None if there is no such table."""
        answer = await self.call("describe_table", tolerate="ResourceNotFoundException",
                                 TableName=self.name)
        return None if answer is None else dict(answer["Table"])

    async def create_if_absent(self) -> None:
        """Create the table unless it exists (another process creating it is fine), and
        check an existing table's key schema."""
        table = await self.describe()
        if table is None:
            await self.call("create_table", tolerate="ResourceInUseException",
                            **self.definition)
            table = await self.wait_active()
        keys = {(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]}
        if keys != {("pk", "HASH"), ("sk", "RANGE")}:
            raise ConfigError(f"DynamoDB table {self.name!r} exists with another key schema "
                              f"({sorted(keys)}); paywire needs pk (HASH) and sk (RANGE) strings")

    async def wait_active(self) -> dict[str, Any]:
        """The table description once the table and every index are ACTIVE."""
        deadline = asyncio.get_running_loop().time() + self.wait_seconds
        while True:
            table = await self.describe()
            if table is not None and table.get("TableStatus") == "ACTIVE" and all(
                    i.get("IndexStatus", "ACTIVE") == "ACTIVE"
                    for i in table.get("GlobalSecondaryIndexes", [])):
                return table
            if asyncio.get_running_loop().time() > deadline:
                raise ConfigError(f"DynamoDB table {self.name!r} is not ACTIVE after "
                                  f"{self.wait_seconds:.0f} s")
            await asyncio.sleep(1.0)

    async def add_missing_indexes(self) -> None:
        """Create each of paywire's indexes the table lacks; ConfigError for a different one."""
        table = await self.wait_active()
        present = {i["IndexName"]: i for i in table.get("GlobalSecondaryIndexes", [])}
        for wanted in self.definition["GlobalSecondaryIndexes"]:
            found = present.get(wanted["IndexName"])
            if found is not None:
                if found["KeySchema"] != wanted["KeySchema"]:
                    raise ConfigError(f"index {wanted['IndexName']!r} of table {self.name!r} "
                                      f"has another key schema than paywire's")
                continue
            # One index per UpdateTable, each waited for: DynamoDB builds them one at a time.
            names = {k["AttributeName"] for k in wanted["KeySchema"]}
            await self.call("update_table", TableName=self.name, AttributeDefinitions=[
                a for a in self.definition["AttributeDefinitions"] if a["AttributeName"] in names],
                GlobalSecondaryIndexUpdates=[{"Create": wanted}])
            await self.wait_active()

    async def enable_ttl(self) -> None:
        """Enable TTL on `TTL_ATTRIBUTE` unless it is, then check that it is."""
        state, attribute = await self.ttl()
        if state == "DISABLED":
            await self.call("update_time_to_live", TableName=self.name,
                            TimeToLiveSpecification={"Enabled": True,
                                                     "AttributeName": TTL_ATTRIBUTE})
            state, attribute = await self.ttl()
        if state == "DISABLING":
            raise ConfigError(f"TTL of DynamoDB table {self.name!r} is being disabled; it can "
                              f"be enabled again once that is done (up to an hour): retry then")
        if state not in ("ENABLED", "ENABLING") or attribute != TTL_ATTRIBUTE:
            raise ConfigError(
                f"TTL of DynamoDB table {self.name!r} is {state.lower()} on attribute "
                f"{attribute!r}; paywire expires idempotency keys and rejections by "
                f"{TTL_ATTRIBUTE!r}. A table has one TTL attribute: disable the other one "
                f"(or use another table), then run setup again")

    async def ttl(self) -> tuple[str, str | None]:
        """The table's TTL status and attribute."""
        answer = await self.call("describe_time_to_live", TableName=self.name) or {}
        description = answer.get("TimeToLiveDescription", {})
        return str(description.get("TimeToLiveStatus", "DISABLED")), description.get(
            "AttributeName")


if TYPE_CHECKING:
    def _conforms(store: DynamoStore,
                  uow: DynamoUnitOfWork) -> tuple[Store, OpsUnitOfWork]:
        return store, uow  # mypy checks DynamoStore and its unit of work against the ports
