"""`paywire doctor`'s checks of the store: the database is reachable and its schema current
(SQL) or its table complete (DynamoDB: key schema, indexes, TTL); the outbox backlog; orders
flagged as needing attention; webhook deliveries refused in the last day, by likely cause."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from paywire.cli.doctor.aps import is_probe
from paywire.cli.doctor.checks import Check
from paywire.domain.errors import ConfigError, PaywireError

if TYPE_CHECKING:
    from paywire.ports import Clock, OpsUnitOfWork
    from paywire.settings import Settings

PENDING_BACKLOG = 1000  # pending messages beyond which the worker is probably not running
ATTENTION_SCAN = 5000  # newest orders scanned for needs-attention flags
REJECTIONS_WINDOW = timedelta(hours=24)


def database_check(settings: Settings) -> Check:
    """The database is reachable and at the code's schema (a DynamoDB table complete)."""
    if settings.is_dynamodb:
        return _dynamodb(settings)
    from sqlalchemy.exc import SQLAlchemyError

    from paywire.store import migrate

    try:
        problems = migrate.check(settings.database_url)
    except (SQLAlchemyError, PaywireError, OSError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        return Check("database", "fail", f"{settings.database_url_redacted} is unreachable: "
                     f"{type(exc).__name__}: {reason}",
                     "start the database or correct PAYWIRE_DATABASE_URL")
    if problems:
        return Check("database", "fail", "; ".join(problems),
                     "run `paywire migrate` (a deploy step; SQLite is migrated by `paywire "
                     "serve` too)")
    return Check("database", "ok", "reachable; schema at the code's revision")


def _dynamodb(settings: Settings) -> Check:
    """The table is ACTIVE with paywire's key schema and indexes, and TTL is on its attribute."""
    from botocore.exceptions import BotoCoreError, ClientError

    from paywire.aws.secret_reads import aws_error_code
    from paywire.store.dynamo import TTL_ATTRIBUTE, make_client, table_definition

    table = settings.dynamodb_table or ""
    options = {k: v[-1] for k, v in parse_qs(urlsplit(settings.database_url).query).items()}
    setup = "run `paywire migrate` (it creates the table, its indexes and TTL) or deploy the stack"
    try:
        client = make_client(endpoint_url=options.get("endpoint_url"),
                             region=options.get("region"))
    except ConfigError as exc:
        return Check("database", "fail", exc.message, "set AWS_REGION")
    try:
        described = client.describe_table(TableName=table)["Table"]
        ttl = client.describe_time_to_live(TableName=table).get("TimeToLiveDescription", {})
    except (ClientError, BotoCoreError) as exc:
        code = aws_error_code(exc)
        fix = (setup if code == "ResourceNotFoundException" else "check the AWS credentials, "
               "AWS_REGION / AWS_ENDPOINT_URL and this role's dynamodb:DescribeTable")
        return Check("database", "fail", f"DynamoDB table {table}: {code}", fix)
    finally:
        client.close()
    wanted = table_definition(table)
    problems = []
    if described.get("TableStatus") != "ACTIVE":
        problems.append(f"it is {described.get('TableStatus')}, not ACTIVE")
    if described.get("KeySchema") != wanted["KeySchema"]:
        problems.append("its key schema is not paywire's (pk, sk)")
    have = {i.get("IndexName") for i in described.get("GlobalSecondaryIndexes") or []}
    missing = sorted({i["IndexName"] for i in wanted["GlobalSecondaryIndexes"]} - have)
    if missing:
        problems.append(f"it lacks the index(es) {', '.join(missing)}")
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING") or (
            ttl.get("AttributeName") != TTL_ATTRIBUTE):
        problems.append(f"TTL is not enabled on {TTL_ATTRIBUTE} (idempotency keys and "
                        "rejections would never expire)")
    if problems:
        return Check("database", "fail", f"DynamoDB table {table}: " + "; ".join(problems),
                     setup)
    return Check("database", "ok", f"DynamoDB table {table} ACTIVE; indexes and TTL on "
                 f"{TTL_ATTRIBUTE} in place")


async def store_checks(settings: Settings, clock: Clock | None = None) -> list[Check]:
    """The outbox, flagged orders and recent rejections (up to `clock`'s now, the system
    clock's unless given), in one transaction of the store."""
    from paywire.bootstrap import store_for
    from paywire.ports import SystemClock

    now = (clock or SystemClock()).now()
    try:
        store = store_for(settings)
    except ConfigError as exc:
        return [Check("store", "fail", exc.message, "check PAYWIRE_DATABASE_URL")]
    try:
        async with store.transaction() as uow:
            return [await _outbox(uow), await _attention(uow), await _rejections(uow, now)]
    except PaywireError as exc:
        return [Check("store", "fail", exc.message, "check the database")]
    finally:
        await store.close()


async def _outbox(uow: OpsUnitOfWork) -> Check:
    counts = await uow.outbox_counts()
    dead, pending = counts.get("dead", 0), counts.get("pending", 0)
    found = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "empty"
    if dead:
        return Check("outbox", "fail", f"{dead} message(s) dead (gave up delivering): {found}",
                     "`paywire outbox list --status dead` shows why; fix the shop's endpoint, "
                     "then `paywire outbox retry ID` for each")
    if pending > PENDING_BACKLOG:
        return Check("outbox", "warn", f"{pending} messages pending: {found}",
                     "is a worker running? start `paywire worker` (or `serve --worker`)")
    return Check("outbox", "ok", found)


async def _attention(uow: OpsUnitOfWork) -> Check:
    flagged: list[str] = []
    before = None
    scanned = 0
    while scanned < ATTENTION_SCAN:
        page = await uow.list_orders(limit=500, before=before)
        if not page:
            break
        scanned += len(page)
        flagged += [f"{o.id} ({o.status}: {o.needs_attention})" for o in page
                    if o.needs_attention]
        before = (page[-1].created_at, page[-1].id)
    if flagged:
        shown = "; ".join(flagged[:5]) + (f"; and {len(flagged) - 5} more"
                                          if len(flagged) > 5 else "")
        return Check("orders", "fail", f"{len(flagged)} order(s) need attention: {shown}",
                     "look at each with `paywire orders show ID` and settle it at its "
                     "provider (PayPal or APS); `paywire reconcile` asks the provider again")
    return Check("orders", "ok", f"none of the newest {scanned} needs attention")


async def _rejections(uow: OpsUnitOfWork, now: datetime) -> Check:
    since = now - REJECTIONS_WINDOW
    recent = [r for r in await uow.list_rejections(limit=200)
              if r.received_at >= since and not is_probe(r)]
    if not recent:
        return Check("rejections", "ok", "no webhook delivery refused in the last 24 h")
    causes: dict[str, int] = {}
    for r in recent:
        key = f"{r.check}: {r.likely_cause or r.reason}"
        causes[key] = causes.get(key, 0) + 1
    found = "; ".join(f"{n}x {cause}" for cause, n in sorted(causes.items(),
                                                              key=lambda kv: -kv[1]))
    return Check("rejections", "warn", f"{len(recent)} refused in the last 24 h: {found}",
                 "fix the likely cause named; `paywire rejections list` has each one")

