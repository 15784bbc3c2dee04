"""paywire's metrics as the Lambda functions publish them: CloudWatch EMF lines on stdout.

The handlers run in-process as Lambda would run them (the HTTP function on API Gateway events,
PayPal's side the emulator whose genuine signed deliveries a recorder keeps until the test
replays them; the SQS consumer on events built from real `ReceiveMessage` answers of the moto
server), each with an `EmfMetrics` of the test's own namespace. What they print is parsed as
CloudWatch would parse it: the directive's namespace, dimension sets and metric units, the
values at the root. The store is a migrated SQLite file.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from apikit import approve, settings_for
from awskit import SHOP_SECRET, client, make_queue, running_shop
from paywire.aws.config import AwsConfig
from paywire.aws.events import LocalContext, http_answer, http_event
from paywire.aws.http import HttpApi
from paywire.aws.local import poll_queue
from paywire.aws.metrics import EmfMetrics
from paywire.aws.reconciler import ReconcilerFunction
from paywire.aws.sqs_consumer import SqsConsumer
from paywire.bootstrap import paypal_client
from paywire.delivery.sqs import SqsTarget
from paywire.domain.errors import ProviderError
from paywire.domain.facts import Announcement
from paywire.domain.money import Money
from paywire.domain.order import Intent, Order, OrderLine
from paywire.ports.metrics import DEFINITIONS
from paywire.services import metering
from paywire.settings import Settings
from paywire.store import migrate
from paywire.store.sql import SqlStore
from paywire.testing import EmulatorServer, MotoServer, free_port
from testkit import CLIENT_ID, CLIENT_SECRET
from webhookkit import PayPal, Recorder, delivery, quiet, transmissions

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "paywire/metrics-test"
Key = tuple[str, frozenset[tuple[str, str]]]


pytestmark = pytest.mark.usefixtures("powertools_logging", "aws_env")


def emf_counts(out: str) -> Counter[Key]:
    """The EMF lines in `out`, summed per (metric, its own dimensions: none for the `service`
    rollup); each line checked as CloudWatch reads it: the test's namespace, Count units (or
    Seconds, for the catalogue's latencies, left out of the sums), one dimension set that has
    `service=paywire`."""
    counts: Counter[Key] = Counter()
    for line in out.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        blob = json.loads(line)
        [directive] = blob["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == NAMESPACE
        [dimensions] = directive["Dimensions"]
        assert "service" in dimensions and blob["service"] == "paywire"
        own = frozenset((name, blob[name]) for name in dimensions if name != "service")
        for metric in directive["Metrics"]:
            if metric["Unit"] == "Seconds":
                assert DEFINITIONS[metric["Name"]].kind == "histogram", metric
                assert all(v >= 0 for v in latencies(blob[metric["Name"]]))
                continue
            assert metric["Unit"] == "Count"
            value = blob[metric["Name"]]
            counts[(metric["Name"], own)] += int(sum(value) if isinstance(value, list)
                                                 else value)
    return counts


def latencies(value: Any) -> list[float]:
    """An EMF value: one number, or a list of them."""
    return [float(v) for v in (value if isinstance(value, list) else [value])]


def with_rollup(counts: Counter[Key]) -> Counter[Key]:
    """`counts` plus each metric's total at `service` alone (what the alarms watch)."""
    total = Counter(counts)
    for (name, dimensions), value in counts.items():
        if dimensions:
            total[key(name)] += value
    return total


def emf_lines(out: str) -> str:
    """Only the EMF lines of `out`."""
    return "\n".join(line for line in out.splitlines() if '"_aws"' in line)


def key(name: str, **dimensions: str) -> Key:
    """A metric at its dimensions, as `emf_counts` keys it."""
    return name, frozenset(dimensions.items())


async def test_webhook_deliveries_are_counted_by_outcome_and_rejections_by_check(
        emulator: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """PayPal's genuine deliveries for an order paywire has captured, replayed to the HTTP
    handler, are counted per the outcome each answer names (the events, stale by now, are
    `applied` as history; a repeat is `duplicate`); a delivery without its signature and one
    with a doctored body count as rejections by the check each answer names; no order id is
    in a metric."""
    recorder = Recorder()
    recorder.server.start()
    metrics = EmfMetrics(namespace=NAMESPACE)
    try:
        paypal = PayPal(emulator, CLIENT_ID, CLIENT_SECRET)
        hook = f"{recorder.url}/hook"
        webhook_id = await paypal.subscribe(hook)
        url = f"sqlite+aiosqlite:///{tmp_path / 'paywire.db'}"
        settings = settings_for(emulator, url, tmp_path, paypal_webhook_id=webhook_id)
        http = HttpApi(settings_factory=lambda: settings, config_factory=AwsConfig,
                       metrics=metrics)
        try:
            created = await call(http, "POST", "/v1/checkout/orders",
                                 {"items": [{"sku": "mug", "quantity": 1}]})
            assert created.status == 201, created.body
            order = created.json()
            await approve(emulator, order["provider_order_id"])
            captured = await call(http, "POST", f"/v1/checkout/orders/{order['id']}/capture")
            assert captured.status == 200, captured.body
            await quiet(emulator, timeout=20)
            sent = [delivery(t) for t in sorted(transmissions(emulator, hook),
                                                key=lambda t: t.first_time)]
            ours = [d for d in sent if order["provider_order_id"] in d.body.decode()]
            assert ours, [d.event_type for d in sent]
            capsys.readouterr()  # what the checkout printed is not under test

            outcomes: Counter[str] = Counter()
            for d in [*ours, ours[0]]:
                answer = await webhook(http, d.body, d.headers)
                assert answer.status == 200, answer.body
                outcomes[answer.json()["outcome"]] += 1
            checks: Counter[str] = Counter()
            unsigned = {k: v for k, v in ours[0].headers.items()
                        if k.upper() != "PAYPAL-TRANSMISSION-SIG"}
            doctored = ours[0].body.replace(b'"id"', b'"id" ', 1)
            for body, headers in ((ours[0].body, unsigned), (doctored, ours[0].headers)):
                answer = await webhook(http, body, headers)
                assert answer.status == 400, answer.body
                checks[answer.json()["error"]["details"]["check"]] += 1
            out = capsys.readouterr().out
        finally:
            http.close()
    finally:
        recorder.server.stop()

    assert outcomes["applied"] >= 1 and outcomes["duplicate"] >= 1, outcomes
    assert len(checks) == 2, checks
    counts = emf_counts(out)
    expected: Counter[Key] = Counter()
    for outcome, n in outcomes.items():
        expected[key(metering.WEBHOOK_DELIVERIES, provider="paypal", outcome=outcome)] = n
    expected[key(metering.WEBHOOK_DELIVERIES, provider="paypal", outcome="rejected")] = 2
    for check, n in checks.items():
        expected[key(metering.WEBHOOK_REJECTIONS, provider="paypal", check=check)] = n
    webhook_counts = Counter({k: v for k, v in counts.items()
                              if k[0].startswith("webhook_")})
    assert webhook_counts == with_rollup(expected)
    emitted = emf_lines(out)
    assert order["id"] not in emitted and order["provider_order_id"] not in emitted


async def call(http: HttpApi, method: str, path: str, body: Any = None) -> Any:
    """One API request through the HTTP handler as an API Gateway event."""
    raw = json.dumps(body).encode() if body is not None else b""
    event = http_event(method, path, body=raw,
                       headers={"content-type": "application/json"} if raw else {})
    return http_answer(await asyncio.to_thread(http, event, LocalContext()))


async def webhook(http: HttpApi, body: bytes, headers: dict[str, str]) -> Any:
    """A webhook delivery to the HTTP handler, its body base64-encoded as API Gateway may."""
    event = http_event("POST", "/webhooks/paypal", headers=headers, body=body,
                       base64_body=True)
    return http_answer(await asyncio.to_thread(http, event, LocalContext()))


async def test_a_dead_message_and_its_flag_are_counted_once(
        moto_server: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The shop answers 410 to an announcement: the SQS consumer's invocation prints one
    `outbox_messages_dead_total` and one `needs_attention_flagged_total` (reason `undelivered`,
    the order's reason without what follows its colon); a second invocation that delivers
    nothing prints no metric at all."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'paywire.db'}"
    migrate.upgrade(url)
    sqs = client(moto_server, "sqs")
    queue = make_queue(sqs, max_receives=2)
    metrics = EmfMetrics(namespace=NAMESPACE)
    with running_shop() as shop:
        settings = Settings.load(_env_file=None, paypal_env="emulator",
                                 paypal_base_url=f"http://127.0.0.1:{free_port()}",
                                 paypal_client_id="client", paypal_client_secret="secret-1",
                                 database_url=url, data_dir=tmp_path, fulfilment_url=shop.url,
                                 fulfilment_secret=SHOP_SECRET)
        consumer = SqsConsumer(settings_factory=lambda: settings,
                               config_factory=lambda: AwsConfig(sqs_max_receives=2),
                               metrics=metrics)
        store = SqlStore(url)
        try:
            message_id, order_id = await seed(store)
            shop.gone.add(message_id)
            target = SqsTarget(queue.url)
            try:
                async with store.transaction() as uow:
                    message = await uow.get_outbox(message_id)
                assert message is not None
                await target.deliver(message)
            finally:
                await target.aclose()
            capsys.readouterr()
            polled = await asyncio.to_thread(poll_queue, sqs, queue.url, consumer,
                                             arn=queue.arn)
            assert polled.failed == [] and len(polled.deleted) == 1
            first = capsys.readouterr().out
            await asyncio.to_thread(consumer, {"Records": []}, LocalContext())
            second = capsys.readouterr().out
            async with store.transaction() as uow:
                order = await uow.get_order(order_id)
        finally:
            consumer.close()
            await store.close()
            sqs.close()
    assert order is not None and order.needs_attention == "undelivered:order.completed"
    assert emf_counts(first) == with_rollup(Counter({
        key(metering.OUTBOX_MESSAGES_DEAD): 1,
        key(metering.OUTBOX_DELIVERIES, result="dead"): 1,
        key(metering.NEEDS_ATTENTION_FLAGGED, reason="undelivered"): 1}))
    assert emf_counts(second) == Counter()
    assert order_id not in emf_lines(first) and message_id not in emf_lines(first)


async def seed(store: SqlStore) -> tuple[str, str]:
    """An order with one order.completed announcement; (message id, order id)."""
    tag = secrets.token_hex(4)
    now = datetime.now(UTC)
    order_id, message_id = f"ord_{tag}", f"msg_{tag}"
    async with store.transaction() as uow:
        line = OrderLine("mug", "Mug", 1, Money.parse("12.50", "USD"))
        await uow.insert_order(Order.new(order_id, Intent.CAPTURE, [line], now))
        assert await uow.add_announcement(
            Announcement(f"order.completed:{order_id}", "order.completed", order_id,
                         {"type": "order.completed", "order_id": order_id}), message_id, now)
    return message_id, order_id


async def test_a_reconcile_pass_that_cannot_reach_paypal_counts_errors_and_failures(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """PayPal unreachable: the reconciler function's pass over a due order prints one
    `reconcile_errors_total` and one `provider_call_failures_total` (paypal, get_order,
    transient), the same count the pass's report gives."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'paywire.db'}"
    migrate.upgrade(url)
    settings = Settings.load(_env_file=None, paypal_env="emulator",
                             paypal_base_url=f"http://127.0.0.1:{free_port()}",
                             paypal_client_id="client", paypal_client_secret="secret-1",
                             paypal_retry_backoff_seconds=0.01, database_url=url,
                             data_dir=tmp_path, reconcile_created_after_seconds=0)
    store = SqlStore(url)
    try:
        now = datetime.now(UTC)
        line = OrderLine("mug", "Mug", 1, Money.parse("12.50", "USD"))
        order = Order.new(f"ord_{secrets.token_hex(4)}", Intent.CAPTURE, [line], now)
        async with store.transaction() as uow:
            await uow.insert_order(order.evolve(now, provider_order_id="5O190127TN364715T"))
    finally:
        await store.close()
    reconciler = ReconcilerFunction(settings_factory=lambda: settings, config_factory=AwsConfig,
                                    metrics=EmfMetrics(namespace=NAMESPACE))
    try:
        capsys.readouterr()
        report = await asyncio.to_thread(reconciler, {"source": "aws.events"}, LocalContext())
        out = capsys.readouterr().out
    finally:
        reconciler.close()
    assert report["errors"] == 1, report
    assert emf_counts(out) == with_rollup(Counter({
        key(metering.RECONCILE_ERRORS): 1,
        key(metering.RECONCILE_PASSES, outcome="errors"): 1,
        key(metering.RECONCILE_ORDERS, result="checked"): 1,
        key(metering.RECONCILE_ORDERS, result="errors"): 1,
        key(metering.PROVIDER_CALLS, provider="paypal", operation="get_order",
            outcome="transient"): 1,
        key(metering.PROVIDER_CALL_FAILURES, provider="paypal", operation="get_order",
            kind="transient"): 1}))


class Collected:
    """A `Metrics` that keeps every count and latency (the port's simplest implementation)."""

    def __init__(self) -> None:
        self.counts: Counter[Key] = Counter()
        self.latencies: dict[Key, list[float]] = {}

    def count(self, name: str, value: int = 1, /, **dimensions: str) -> None:
        """Keep the count."""
        self.counts[key(name, **dimensions)] += value

    def observe(self, name: str, seconds: float, /, **dimensions: str) -> None:
        """Keep the latency."""
        self.latencies.setdefault(key(name, **dimensions), []).append(seconds)


async def test_a_rolled_back_flag_counts_nothing(tmp_path: Path) -> None:
    """Through `MeteredStore`, a needs-attention announcement counts once its unit of work
    commits, and not at all when the unit of work rolls back."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'paywire.db'}"
    migrate.upgrade(url)
    collected = Collected()
    store = metering.MeteredStore(SqlStore(url), collected)
    now = datetime.now(UTC)

    def flag(n: int) -> Announcement:
        return Announcement(f"needs_attention:ord_{n}:refund_mismatch:REF{n}",
                            "order.needs_attention", f"ord_{n}",
                            {"type": "order.needs_attention", "order_id": f"ord_{n}",
                             "reason": f"refund_mismatch:REF{n}"})

    try:
        with pytest.raises(RuntimeError):
            async with store.transaction() as uow:
                assert await uow.add_announcement(flag(1), "msg_rolled_back", now)
                raise RuntimeError("abandon the unit of work")
        assert collected.counts == Counter()
        async with store.transaction() as uow:
            assert await uow.add_announcement(flag(2), "msg_kept", now)
            assert not await uow.add_announcement(flag(2), "msg_again", now)  # not written
            assert collected.counts == Counter()  # not before the commit
    finally:
        await store.close()
    assert collected.counts == Counter({
        key(metering.NEEDS_ATTENTION_FLAGGED, reason="refund_mismatch"): 1})


async def test_a_failed_provider_call_is_counted_by_operation_and_kind(tmp_path: Path) -> None:
    """PayPal unreachable: `get_order` through `MeteredProvider` raises the client's transient
    ProviderError, counts one call (outcome `transient`) and one failure (provider, operation,
    kind), and times the call once."""
    settings = Settings.load(_env_file=None, paypal_env="emulator",
                             paypal_base_url=f"http://127.0.0.1:{free_port()}",
                             paypal_client_id="client", paypal_client_secret="secret-1",
                             paypal_retry_backoff_seconds=0.01, data_dir=tmp_path)
    collected = Collected()
    provider = metering.MeteredProvider(paypal_client(settings), collected)
    try:
        with pytest.raises(ProviderError) as raised:
            await provider.get_order("5O190127TN364715T")
        assert raised.value.kind == "transient"
    finally:
        await provider.aclose()
    assert collected.counts == Counter({
        key(metering.PROVIDER_CALLS, provider="paypal", operation="get_order",
            outcome="transient"): 1,
        key(metering.PROVIDER_CALL_FAILURES, provider="paypal", operation="get_order",
            kind="transient"): 1})
    [[seconds]] = collected.latencies.values()
    assert set(collected.latencies) == {key(metering.PROVIDER_CALL_SECONDS, provider="paypal",
                                            operation="get_order")} and seconds >= 0


def test_the_docs_list_every_metric_with_its_dimensions() -> None:
    """docs/metrics.md has a row for each metric of the catalogue, naming exactly its
    dimensions and its kind, lists each histogram's buckets, and the README links it."""
    text = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    rows = {m.group(1): (m.group(2), m.group(3).strip()) for m in re.finditer(
        r"^\| `([a-z_]+)` \| ([^|]*) \| ([a-z]+) \|", text, re.MULTILINE)}
    assert set(rows) == set(metering.METRICS) == set(DEFINITIONS)
    for name, dimensions in metering.METRICS.items():
        assert set(re.findall(r"`([a-z_]+)`", rows[name][0])) == set(dimensions), name
        assert rows[name][1] == DEFINITIONS[name].kind, name
    for metric in DEFINITIONS.values():
        if metric.kind == "histogram":
            listed = re.search(rf"^- [^\n]*`{metric.name}`[^:]*: ([0-9., ]+)$", text,
                               re.MULTILINE)
            assert listed is not None, metric.name
            assert tuple(float(b) for b in listed.group(1).split(", ")) == metric.buckets
    assert "docs/metrics.md" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/metrics.md" in (ROOT / "deploy" / "aws" / "README.md").read_text(
        encoding="utf-8")
