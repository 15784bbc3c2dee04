"""One trace id, followed through the whole story of an order, over real HTTP on every store.

A shop creates an order through paywire's API with a W3C `traceparent`; the buyer approves at
the emulator and the shop captures without one; PayPal's webhooks arrive; the outbox tells the
shop. The same trace id must then be found in: the answers' `traceresponse`, the requests the
emulator (PayPal) received, the order, every history line (the webhooks' too), the outbox rows,
the provider operations, the shop's callback (`traceparent` beside the Standard Webhooks headers,
read back by `verify_delivery`) and paywire's JSON log lines (access, webhook and delivery).
SQLite and PostgreSQL, and DynamoDB on the session's moto server. A card order through APS
keeps its trace through APS's feedback and a refund's call to APS.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from apikit import ADMIN, dynamodb_table, open_store, postgres_database, serve, sqlite_url
from apskit import aps_requests, card_shop, pay_on_page
from paywire.domain import trace
from paywire.ports import HistoryEntry, OutboxMessage, ProviderOperation
from paywire.testing import EmulatorServer, MotoServer, free_port
from testkit import CLIENT_ID, CLIENT_SECRET
from tracekit import WHSEC, Shop, json_lines
from webhookkit import PayPal, eventually, quiet

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{CALLER_SPAN}-01"


@pytest.fixture(params=["sqlite", "postgres", "dynamodb"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty store on each backend (DynamoDB: a table on the session's moto server, the AWS
    environment pointing there for the test)."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
    elif request.param == "postgres":
        with postgres_database() as url:
            yield url
    else:
        moto: MotoServer = request.getfixturevalue("moto_server")
        with dynamodb_table(moto, "paywire-trace") as url:
            yield url


async def _read(database_url: str, order_id: str, keys: list[str]) -> tuple[
        Any, list[HistoryEntry], list[OutboxMessage], list[ProviderOperation | None]]:
    store = open_store(database_url)
    try:
        async with store.transaction() as uow:
            order = await uow.get_order(order_id)
            history = await uow.history(order_id)
            outbox = await uow.outbox_for_order(order_id)
            ops = [await uow.get_operation(key) for key in keys]
    finally:
        await store.close()
    return order, history, outbox, ops


def _traced(header: str | None) -> tuple[str, str]:
    """(trace id, parent id) of a traceparent value, which must be valid."""
    parsed = trace.parse(header)
    assert parsed is not None, f"not a valid traceparent: {header!r}"
    return parsed.trace_id, parsed.span_id


async def test_one_trace_id_finds_the_whole_story(emulator: EmulatorServer, tmp_path: Path,
                                                  database_url: str) -> None:
    """traceparent on create → provider calls, order, history (webhooks too), operations,
    outbox rows, the shop's callback headers and the JSON log lines all carry its trace id."""
    shop = Shop()
    shop.server.start()
    paypal = PayPal(emulator, CLIENT_ID, CLIENT_SECRET)
    port = free_port()
    webhook_id = await paypal.subscribe(f"http://127.0.0.1:{port}/webhooks/paypal")
    settings = {"fulfilment_url": shop.url, "fulfilment_secret": WHSEC,
                "outbox_worker_enabled": True, "outbox_interval_seconds": 0.05,
                "paypal_webhook_id": webhook_id}
    try:
        with json_lines() as lines, serve(emulator, database_url, tmp_path, listen_port=port,
                                          **settings) as pw:
            async with httpx.AsyncClient(base_url=pw.url, timeout=30) as client:
                created = await client.post("/v1/checkout/orders", headers={
                    "traceparent": TRACEPARENT, "tracestate": "shop=checkout"},
                    json={"items": [{"sku": "mug", "quantity": 2}]})
                assert created.status_code == 201, created.text
                order = created.json()
                ours, our_span = _traced(created.headers["traceresponse"])
                assert ours == TRACE and our_span != CALLER_SPAN
                await paypal.approve(order["provider_order_id"])
                # The buyer's page captures with no traceparent: it joins the order's trace.
                captured = await client.post(f"/v1/checkout/orders/{order['id']}/capture")
                assert captured.status_code == 200, captured.text
                assert captured.json()["status"] == "COMPLETED"
                assert _traced(captured.headers["traceresponse"])[0] == TRACE
                await quiet(emulator)
                await eventually(lambda: _completed(shop), "the shop to hear of the capture")
                found = await eventually(lambda: _webhook_noted(database_url, order["id"]),
                                         "a webhook's line in the order's history")
        order_row, history, outbox, ops = found
        text = lines.getvalue()
    finally:
        shop.server.stop()

    # PayPal (the emulator) received our trace on every call made for the order, each from
    # one of paywire's own spans (never the caller's parent id, passed on unchanged).
    calls = [e for e in emulator.emu.request_log
             if e.path.startswith("/v2/checkout/orders") and e.method == "POST"]
    assert {e.path.rsplit("/", 1)[-1] for e in calls} >= {"orders", "capture"}
    for call in calls:
        trace_id, parent = _traced(call.traceparent)
        assert trace_id == TRACE and parent != CALLER_SPAN, call
    served = httpx.get(f"{emulator.url}/_emulator/requests", params={"path": "/v2/"}).json()
    assert all(r["traceparent"] and TRACE in r["traceparent"] for r in served["requests"]
               if r["path"].startswith("/v2/checkout/orders"))

    # paywire's own records: the order, every history line, the operations, the outbox.
    assert order_row.trace_id == TRACE
    assert {e.source for e in history} >= {"api", "webhook"}
    assert [(e.source, e.verdict) for e in history if e.trace_id != TRACE] == []
    assert [op.kind for op in ops if op is not None and op.trace_id == TRACE] == [
        "create", "capture"]
    assert outbox and all(m.trace_id == TRACE for m in outbox)

    # The shop's callback: signed as ever, with our trace beside the signature headers.
    [(delivery, headers)] = [d for d in shop.deliveries if d[0].type == "order.completed"]
    assert shop.refused == 0 and delivery.order_id == order["id"]
    assert delivery.trace_id == TRACE and _traced(headers["traceparent"])[0] == TRACE
    assert {"webhook-id", "webhook-timestamp", "webhook-signature"} <= set(headers)

    # The JSON log lines: one object per line; the access lines of both API calls, the
    # webhook deliveries and the outbox's delivery, each with the trace, order and outcome.
    parsed = [json.loads(line) for line in text.splitlines()]
    ours_lines = [p for p in parsed if p["trace_id"] == TRACE]
    access = [p for p in ours_lines if p["logger"] == "paywire.api.access"]
    assert {p["msg"].split(" -> ")[0] for p in access} >= {
        "POST /v1/checkout/orders", f"POST /v1/checkout/orders/{order['id']}/capture",
        "POST /webhooks/paypal"}
    assert all(p["order_id"] == order["id"] and p["outcome"] for p in access)
    assert any(p["provider"] == "paypal" for p in access)
    assert any(p["logger"] == "paywire.outbox" and p["outcome"] == "delivered"
               and p["order_id"] == order["id"] for p in ours_lines)
    assert CLIENT_SECRET not in text and WHSEC not in text


async def _completed(shop: Shop) -> bool:
    return any(d.type == "order.completed" for d, _ in shop.deliveries)


async def _webhook_noted(database_url: str, order_id: str) -> Any:
    keys = [f"{order_id}:create", f"{order_id}:capture:1"]
    found = await _read(database_url, order_id, keys)
    history = found[1]
    if not any(e.source == "webhook" for e in history):
        return None
    return found


@pytest.mark.parametrize("header", [
    None, "garbage", f"00-{'0' * 32}-{CALLER_SPAN}-01", f"00-{TRACE.upper()}-{CALLER_SPAN}-01",
    [TRACEPARENT, f"00-{'a' * 32}-{CALLER_SPAN}-01"],  # two headers are as good as none
])
async def test_a_missing_or_invalid_traceparent_starts_a_new_trace(
        emulator: EmulatorServer, tmp_path: Path, header: str | list[str] | None) -> None:
    """Never a 4xx: the order is created under a fresh trace, which the answer names and the
    order and the provider call keep."""
    with serve(emulator, sqlite_url(tmp_path), tmp_path) as pw:
        sent: list[tuple[str, str]] = []
        if isinstance(header, list):
            sent = [("traceparent", h) for h in header]
        elif header is not None:
            sent = [("traceparent", header)]
        async with httpx.AsyncClient(base_url=pw.url, timeout=30) as client:
            created = await client.post("/v1/checkout/orders", headers=sent,
                                        json={"items": [{"sku": "mug", "quantity": 1}]})
        assert created.status_code == 201, created.text
        fresh, _ = _traced(created.headers["traceresponse"])
        assert fresh != TRACE
        order, history, _, [op] = await _read(pw.database_url, created.json()["id"],
                                              [f"{created.json()['id']}:create"])
    assert order.trace_id == fresh and op is not None and op.trace_id == fresh
    assert all(e.trace_id == fresh for e in history)
    [call] = [e for e in emulator.emu.request_log
              if e.method == "POST" and e.path == "/v2/checkout/orders"]
    assert _traced(call.traceparent)[0] == fresh


async def test_a_card_order_s_feedback_and_refund_stay_in_its_trace(
        emulator: EmulatorServer, tmp_path: Path) -> None:
    """APS: created with a traceparent, paid on APS's page (its feedback arrives without one),
    refunded by an admin call without one: every history line and the REFUND call to APS are
    in the checkout's trace."""
    with card_shop(emulator, tmp_path) as pw:
        async with httpx.AsyncClient(base_url=pw.url, timeout=30) as client:
            created = await client.post("/v1/checkout/orders", headers={
                "traceparent": TRACEPARENT}, json={"items": [{"sku": "mug", "quantity": 1}],
                                                   "provider": "aps",
                                                   "customer_email": "b@example.com"})
            assert created.status_code == 201, created.text
            order = created.json()
            with httpx.Client(timeout=30) as browser:
                pay_on_page(browser, order["checkout_form"])

            async def paid() -> bool:
                got = await client.get(f"/v1/orders/{order['id']}", headers=ADMIN)
                return bool(got.json()["status"] == "COMPLETED")

            await eventually(paid, "the card payment's feedback")
            refunded = await client.post(f"/v1/orders/{order['id']}/refunds", headers=ADMIN,
                                         json={"amount": "1.00"})
            assert refunded.status_code == 201, refunded.text
            assert _traced(refunded.headers["traceresponse"])[0] == TRACE
        _, history, _, _ = await _read(pw.database_url, order["id"], [])
    assert {e.source for e in history} >= {"api", "webhook"}
    assert [(e.source, e.verdict) for e in history if e.trace_id != TRACE] == []
    [refund] = aps_requests(emulator, command="REFUND")
    assert _traced(refund.traceparent)[0] == TRACE
    served = httpx.get(f"{emulator.url}/aps/_aps/requests").json()["requests"]
    assert [_traced(r["traceparent"])[0] for r in served if r["command"] == "REFUND"] == [TRACE]
