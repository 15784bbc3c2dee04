"""Operator commands: orders, refunds, stored events, rejections and the outbox.

Every listing takes `--json` (one object with stable keys on stdout); exit codes are 0 (done),
1 (something is wrong or not found) and 2 (usage or configuration). `paywire.cli` hangs these
groups and `refund` on the `paywire` app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from paywire.cli.common import (
    console,
    emit_json,
    fail,
    moment,
    record_json,
    with_container,
    with_store,
)
from paywire.domain.errors import NotFoundError, PaywireError
from paywire.domain.money import Money
from paywire.domain.order import OrderStatus

if TYPE_CHECKING:
    from paywire.bootstrap import Container
    from paywire.domain.order import Order
    from paywire.ports import OpsUnitOfWork
    from paywire.services.webhooks import IngestOutcome, WebhookIngest

orders_app = typer.Typer(help="Orders as paywire records them.", no_args_is_help=True)
events_app = typer.Typer(help="Stored (verified) provider webhook events.", no_args_is_help=True)
rejections_app = typer.Typer(help="Webhook deliveries refused for good.", no_args_is_help=True)
outbox_app = typer.Typer(help="Announcements to the shop.", no_args_is_help=True)
Json = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
Limit = Annotated[int, typer.Option(min=1, max=10_000, help="How many, newest first.")]


def order_json(order: Order) -> dict[str, object]:
    """An order in the API's wire form."""
    from paywire.api.schemas import OrderOut

    return OrderOut.of(order).model_dump(mode="json")


# --- orders ------------------------------------------------------------------------------------


@orders_app.command("list")
def orders_list(
    status: Annotated[str | None, typer.Option(help="Only orders in this status.")] = None,
    limit: Limit = 50, as_json: Json = False,
) -> None:
    """List orders, newest first."""
    wanted: OrderStatus | None = None
    if status is not None:
        try:
            wanted = OrderStatus(status.upper())
        except ValueError:
            raise typer.BadParameter(f"not a status: {status} (one of "
                                     f"{', '.join(s.value for s in OrderStatus)})",
                                     param_hint="--status") from None

    async def read(uow: OpsUnitOfWork) -> list[dict[str, object]]:
        return [order_json(o) for o in await uow.list_orders(status=wanted, limit=limit)]

    rows = with_store(read)
    if as_json:
        emit_json({"data": rows})
        return
    if not rows:
        console.print("no orders")
        return
    table = Table(title=f"orders (newest first, {len(rows)} shown)")
    for col in ("id", "status", "amount", "refunded", "PayPal order", "created (UTC)",
                "attention"):
        table.add_column(col, no_wrap=col != "attention")
    for o in rows:
        amount, refunded = o["amount"], o["refunded"]
        table.add_row(str(o["id"]), str(o["status"]), _money(amount), _money(refunded),
                      str(o["provider_order_id"] or ""), moment(o["created_at"]),
                      str(o["needs_attention"] or ""))
    console.print(table, highlight=False)


def _money(value: object) -> str:
    if not isinstance(value, dict):
        return ""
    return f"{value['value']} {value['currency_code']}"


@orders_app.command("show")
def orders_show(order_id: Annotated[str, typer.Argument(help="paywire order id.")],
                as_json: Json = False) -> None:
    """One order: lines, history, outbox messages and refunds."""

    async def read(uow: OpsUnitOfWork) -> dict[str, object] | None:
        order = await uow.get_order(order_id)
        if order is None:
            return None
        return {"order": order_json(order),
                "history": [record_json(h) for h in await uow.history(order.id)],
                "outbox": [record_json(m) for m in await uow.outbox_for_order(order.id)],
                "refunds": [record_json(r) for r in await uow.refunds_for_order(order.id)]}

    data = with_store(read)
    if data is None:
        fail(f"no order {order_id}")
    if as_json:
        emit_json(data)
        return
    order = data["order"]
    assert isinstance(order, dict)  # noqa: S101 - typing aid
    console.print(f"[bold]{order['id']}[/] {order['status']} {_money(order['amount'])} "
                  f"(captured {_money(order['captured']) or '-'}, refunded "
                  f"{_money(order['refunded']) or '-'}); PayPal {order['provider_order_id']}"
                  + (f"; [red]needs attention:[/] {order['needs_attention']}"
                     if order["needs_attention"] else ""), highlight=False)
    _print_rows("lines", order["lines"], ["sku", "name", "quantity", "unit_amount"])
    _print_rows("history", data["history"], ["at", "source", "verdict", "from_status",
                                             "to_status", "detail"])
    _print_rows("outbox", data["outbox"], ["id", "type", "status", "attempts", "last_error"])
    _print_rows("refunds", data["refunds"], ["id", "amount", "status", "provider_refund_id",
                                             "reason"])


def _print_rows(title: str, rows: object, columns: list[str]) -> None:
    assert isinstance(rows, list)  # noqa: S101 - typing aid
    table = Table(title=f"{title} ({len(rows)})")
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    console.print(table, highlight=False)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dict) and set(value) == {"currency_code", "value"}:
        return _money(value)
    return moment(value) if isinstance(value, str) else str(value)


def refund(
    order_id: Annotated[str, typer.Argument(help="paywire order id.")],
    amount: Annotated[str | None, typer.Option(help="Decimal amount; default all left.")] = None,
    reason: Annotated[str | None, typer.Option(help="Why (kept with the refund).")] = None,
    as_json: Json = False,
) -> None:
    """Refund (part of) a paid order through PayPal."""

    async def run(c: Container) -> dict[str, object]:
        order = await c.orders.get(order_id)
        money = Money.parse(amount, order.amount.currency) if amount is not None else None
        after, made = await c.refunds.refund(order.id, money, reason=reason)
        return {"refund": record_json(made), "order": order_json(after)}

    data = with_container(run)
    if as_json:
        emit_json(data)
        return
    made, after = data["refund"], data["order"]
    assert isinstance(made, dict) and isinstance(after, dict)  # noqa: S101 - typing aid
    console.print(f"refund {made['id']}: {_money(made['amount'])} {made['status']} (PayPal "
                  f"{made['provider_refund_id'] or '-'}); order {after['id']} is now "
                  f"{after['status']}", highlight=False)


# --- stored events ------------------------------------------------------------------------------


def _event_json(event: object, *, body: bool = False) -> dict[str, object]:
    import json

    data = record_json(event)
    raw = data.pop("body", b"")
    if body:
        try:
            data["body"] = json.loads(raw) if isinstance(raw, bytes | str) else None
        except ValueError:
            data["body"] = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    return data


@events_app.command("list")
def events_list(limit: Limit = 50, as_json: Json = False) -> None:
    """List stored webhook events, newest first."""

    async def read(uow: OpsUnitOfWork) -> list[dict[str, object]]:
        return [_event_json(e) for e in await uow.list_inbox(limit=limit)]

    rows = with_store(read)
    if as_json:
        emit_json({"data": rows})
        return
    if not rows:
        console.print("no stored webhook events")
        return
    table = Table(title=f"webhook events (newest first, {len(rows)} shown)")
    for col in ("received (UTC)", "event id", "type", "status", "order", "note"):
        table.add_column(col, no_wrap=col != "note")
    for e in rows:
        table.add_row(moment(e["received_at"]), str(e["event_id"]), str(e["event_type"]),
                      str(e["status"]), str(e["order_id"] or ""), str(e["note"] or ""))
    console.print(table, highlight=False)


@events_app.command("show")
def events_show(event_id: Annotated[str, typer.Argument(help="PayPal event id (WH-...).")],
                as_json: Json = False) -> None:
    """One stored event, with its body."""

    async def read(uow: OpsUnitOfWork) -> dict[str, object] | None:
        event = await uow.get_inbox_event("paypal", event_id)
        return None if event is None else _event_json(event, body=True)

    data = with_store(read)
    if data is None:
        fail(f"no stored event {event_id}")
    if as_json:
        emit_json(data)
        return
    import json

    for key in ("event_id", "event_type", "status", "order_id", "transmission_id",
                "received_at", "note"):
        console.print(f"{key}: {data.get(key) or ''}", highlight=False, markup=False)
    console.print_json(json.dumps(data.get("body")))


@events_app.command("replay")
def events_replay(
    event_ids: Annotated[list[str], typer.Argument(help="Stored event id(s) to re-apply.")],
    as_json: Json = False,
) -> None:
    """Re-apply stored events (idempotent: facts already known are not announced again)."""

    async def run(c: Container) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        with Progress(console=console, transient=True, disable=len(event_ids) < 2 or as_json
                      ) as bar:
            task = bar.add_task("replaying", total=len(event_ids))
            ingests = list(c.webhook_ingests.values())
            for event_id in event_ids:
                try:
                    done = await replay_any(ingests, event_id)
                    note = done.reason
                    if done.confirm_task is not None:
                        # A PayPal claim: confirmed with PayPal now, not left to the queue.
                        ran = await c.truth.confirm_now(done.confirm_task)
                        note = (f"{note}; confirmed with the provider" if ran else
                                f"{note}; another worker is confirming it")
                    out.append({"event_id": event_id, "outcome": done.outcome,
                                "order_id": done.order_id, "note": note})
                except PaywireError as exc:
                    out.append({"event_id": event_id, "outcome": "error", "order_id": None,
                                "note": exc.message})
                bar.advance(task)
        return out

    rows = with_container(run)
    if as_json:
        emit_json({"data": rows})
    else:
        for r in rows:
            console.print(f"{r['event_id']}: {r['outcome']}"
                          + (f" (order {r['order_id']})" if r["order_id"] else "")
                          + (f": {r['note']}" if r["note"] else ""), highlight=False)
    if any(r["outcome"] == "error" for r in rows):
        raise typer.Exit(code=1)


# --- rejections and the outbox -----------------------------------------------------------------


@rejections_app.command("list")
def rejections_list(limit: Limit = 50, as_json: Json = False) -> None:
    """Webhook deliveries refused for good, newest first, with their likely cause."""

    async def read(uow: OpsUnitOfWork) -> list[dict[str, object]]:
        return [record_json(r) for r in await uow.list_rejections(limit=limit)]

    rows = with_store(read)
    if as_json:
        emit_json({"data": rows})
        return
    if not rows:
        console.print("no webhook deliveries have been refused")
        return
    table = Table(title=f"webhook rejections (newest first, {len(rows)} shown)")
    for col in ("time (UTC)", "transmission id", "check", "reason", "likely cause"):
        table.add_column(col, no_wrap=col in ("time (UTC)", "transmission id", "check"))
    for r in rows:
        table.add_row(moment(r["received_at"]), str(r["transmission_id"]), str(r["check"]),
                      str(r["reason"]), str(r["likely_cause"] or ""))
    console.print(table, highlight=False)


@outbox_app.command("list")
def outbox_list(
    status: Annotated[str | None, typer.Option(
        help="pending | queued | delivered | dead.")] = None,
    limit: Limit = 50, as_json: Json = False,
) -> None:
    """Outbox messages, newest first (`queued`: handed to SQS, not yet delivered)."""
    if status is not None and status not in ("pending", "queued", "delivered", "dead"):
        raise typer.BadParameter(f"not a status: {status} (pending, queued, delivered or "
                                 "dead)", param_hint="--status")

    async def read(uow: OpsUnitOfWork) -> list[dict[str, object]]:
        return [record_json(m) for m in await uow.list_outbox(status=status, limit=limit)]

    rows = with_store(read)
    if as_json:
        emit_json({"data": rows})
        return
    if not rows:
        console.print("no outbox messages" + (f" {status}" if status else ""))
        return
    table = Table(title=f"outbox (newest first, {len(rows)} shown)")
    for col in ("message id", "type", "order", "status", "attempts", "next attempt", "error"):
        table.add_column(col, no_wrap=col != "error")
    for m in rows:
        table.add_row(str(m["id"]), str(m["type"]), str(m["order_id"]), str(m["status"]),
                      str(m["attempts"]), moment(m["next_attempt_at"]), str(m["last_error"] or ""))
    console.print(table, highlight=False)


@outbox_app.command("retry")
def outbox_retry(message_id: Annotated[str, typer.Argument(
        help="A dead or queued message's id.")]) -> None:
    """Revive a dead message, or send a queued one again (its queue message lost, in the
    dead-letter queue, or not trusted): pending again, due now, attempts reset. The consumer
    delivers a message once whatever copies of it the queue holds."""
    from paywire.ports import SystemClock

    async def run(uow: OpsUnitOfWork) -> str | None:
        if await uow.revive_outbox(message_id, SystemClock().now()):
            return None
        found = await uow.get_outbox(message_id)
        if found is None:
            return f"no outbox message {message_id}"
        return f"message {message_id} is {found.status}, not dead or queued: nothing to retry"

    problem = with_store(run)
    if problem:
        fail(problem)
    console.print(f"message {message_id} revived: the worker delivers it next", highlight=False)


async def replay_any(ingests: list[WebhookIngest], event_id: str) -> IngestOutcome:
    """Replay the stored event `event_id` with the ingest of the provider that stored it."""
    for ingest in ingests[:-1]:
        try:
            return await ingest.replay(event_id)
        except NotFoundError:
            continue
    if not ingests:
        raise NotFoundError(f"no stored event {event_id}")
    return await ingests[-1].replay(event_id)
