"""Fuzz: mutated and random deliveries to `POST /webhooks/paypal` are refused and change nothing.

Once per module, genuine signed deliveries are recorded from the emulator (orders made through
paywire, then approved, captured and refunded at PayPal while the subscription points at a
recorder), so paywire has never applied any of them. Each example mutates one or more of them
(bytes flipped, inserted or cut, headers swapped between deliveries, duplicated, dropped,
re-cased values, other cert URLs, transmission ids, times and algorithms, random headers) or
sends random bytes, over real HTTP to a paywire verifying locally against the emulator's
certificate. Anything not identical to a genuine delivery must be answered 4xx, and the orders
(state, version), their outboxes and the inbox must stay exactly as they were.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from apikit import serve, sqlite_url
from paywire.emulator import AppCredentials, EmulatorConfig
from testkit import CLIENT_ID, CLIENT_SECRET, IN_CI
from webhookkit import Delivery, PayPal, quiet, read, recording

SIGNED = ("paypal-transmission-id", "paypal-transmission-time", "paypal-transmission-sig",
          "paypal-cert-url", "paypal-auth-algo")
Headers = list[tuple[str, str]]


@dataclass
class Recorded:
    """The genuine deliveries, the paywire they are fuzzed against, and its orders."""

    deliveries: list[Delivery]
    url: str
    database_url: str
    orders: list[str]
    emulator_url: str


async def _act(paypal: PayPal, paywire_url: str) -> list[str]:
    """Two orders through paywire; at PayPal: both approved, one captured and part-refunded."""
    async with httpx.AsyncClient(base_url=paywire_url, timeout=30) as c:
        made = [(await c.post("/v1/checkout/orders", json={
            "items": [{"sku": "mug", "quantity": 2}], "intent": "CAPTURE"})).json()
            for _ in range(2)]
    for o in made:
        await paypal.approve(o["provider_order_id"])
    capture = await paypal.capture(made[0]["provider_order_id"])
    await paypal.refund(capture, "5.00")
    return [o["id"] for o in made]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """Genuine deliveries paywire never saw, and a paywire that verifies them locally."""
    work = tmp_path_factory.mktemp("fuzz")
    config = EmulatorConfig(apps=[AppCredentials(CLIENT_ID, CLIENT_SECRET)],
                            webhook_time_scale=0.001, seed=11)
    with recording(config) as rec:
        url = sqlite_url(work)
        with serve(rec.emulator, url, work, truth_fetch_enabled=False,
                   paypal_webhook_id=rec.webhook_id) as pw:
            orders = asyncio.run(_act(rec.paypal, pw.url))
            asyncio.run(quiet(rec.emulator))
            yield Recorded(rec.deliveries(), pw.webhook_url, url, orders, rec.emulator.url)


def _headers(d: Delivery) -> Headers:
    return list(d.headers.items())


def _canonical(body: bytes, headers: Headers) -> tuple[bytes, tuple[tuple[str, str], ...]]:
    """What makes a delivery genuine: its body and its signed headers (each once, as HTTP
    carries them: names case-insensitive, values stripped)."""
    signed = sorted((k.lower(), v.strip()) for k, v in headers if k.lower() in SIGNED)
    return body, tuple(signed)


def _set(headers: Headers, name: str, value: str) -> Headers:
    return [(k, value if k.lower() == name else v) for k, v in headers]


# Header-safe text (HTTP carries no leading or trailing blanks in a value).
text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60).map(str.strip)


@st.composite
def mutations(draw: st.DrawFn, deliveries: list[Delivery], emulator_url: str
              ) -> tuple[bytes, Headers]:
    """A genuine delivery changed by one to four mutations, or random bytes and headers."""
    if draw(st.integers(0, 9)) == 0:
        headers = draw(st.lists(st.tuples(st.sampled_from([*SIGNED, "x-random"]), text),
                                max_size=6))
        return draw(st.binary(max_size=512)), headers
    base = draw(st.sampled_from(deliveries))
    body, headers = base.body, _headers(base)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from([
            "flip", "insert", "truncate", "swap_header", "swap_body", "drop", "duplicate",
            "cert_url", "transmission_id", "time", "algo", "sig", "random_header", "recase"]))
        if kind == "flip" and body:
            i = draw(st.integers(0, len(body) - 1))
            body = body[:i] + bytes([body[i] ^ draw(st.integers(1, 255))]) + body[i + 1:]
        elif kind == "insert":
            i = draw(st.integers(0, len(body)))
            body = body[:i] + draw(st.binary(min_size=1, max_size=8)) + body[i:]
        elif kind == "truncate" and body:
            body = body[:draw(st.integers(0, len(body) - 1))]
        elif kind == "swap_header":
            other = dict(_headers(draw(st.sampled_from(deliveries))))
            name = draw(st.sampled_from(SIGNED))
            value = next(v for k, v in other.items() if k.lower() == name)
            headers = _set(headers, name, value)
        elif kind == "swap_body":
            body = draw(st.sampled_from(deliveries)).body
        elif kind == "drop":
            name = draw(st.sampled_from(SIGNED))
            headers = [(k, v) for k, v in headers if k.lower() != name]
        elif kind == "duplicate":
            name = draw(st.sampled_from(SIGNED))
            extra = (name, draw(st.sampled_from([draw(text), *(
                v for d in deliveries for k, v in d.headers.items() if k.lower() == name)])))
            headers = [extra, *headers] if draw(st.booleans()) else [*headers, extra]
        elif kind == "cert_url":
            headers = _set(headers, "paypal-cert-url", draw(st.sampled_from([
                "https://attacker.example/cert.pem", "http://127.0.0.1:9/cert.pem",
                f"{emulator_url}/v1/notifications/certs/CERT-nope",
                f"{emulator_url}/v1/notifications/certs/..%2f..%2fetc",
                f"{emulator_url}@attacker.example/cert.pem", draw(text)])))
        elif kind == "transmission_id":
            headers = _set(headers, "paypal-transmission-id", draw(text))
        elif kind == "time":
            headers = _set(headers, "paypal-transmission-time", draw(st.sampled_from([
                "2020-01-01T00:00:00Z", "2999-01-01T00:00:00Z", "not a time",
                "2026-01-01T00:00:00+99:00", draw(text)])))
        elif kind == "algo":
            headers = _set(headers, "paypal-auth-algo", draw(st.sampled_from([
                "sha256withrsa", "SHA1withRSA", "none", "SHA256withRSA,SHA1withRSA", "HS256",
                draw(text)])))
        elif kind == "sig":
            headers = _set(headers, "paypal-transmission-sig", draw(st.sampled_from([
                "", "AAAA", "not base64!", draw(text)])))
        elif kind == "random_header":
            headers = [*headers, (draw(st.sampled_from(["x-fuzz", "content-type", "x-forwarded"])),
                                  draw(text))]
        elif kind == "recase":
            headers = [(k.swapcase(), v) for k, v in headers]
    return body, headers


async def _snapshot(rec: Recorded) -> tuple[Any, ...]:
    """Every order's state and version, its outbox, and which genuine events are in the inbox."""
    async def take(uow: Any) -> tuple[Any, ...]:
        out: list[Any] = []
        for order_id in rec.orders:
            o = await uow.get_order(order_id)
            out.append((o.status, o.version, o.captured, o.refunded,
                        tuple(m.id for m in await uow.outbox_for_order(order_id))))
        for d in rec.deliveries:
            event_id = d.body.split(b'"id":"', 1)[1].split(b'"', 1)[0].decode()
            out.append(await uow.get_inbox_event("paypal", event_id) is not None)
        return tuple(out)

    return await read(rec.database_url, take)


def test_the_recording_has_the_kinds_of_delivery_mutated(recorded: Recorded) -> None:
    """The genuine deliveries cover approval, capture, completion and refund."""
    kinds = {d.event_type for d in recorded.deliveries}
    assert kinds >= {"CHECKOUT.ORDER.APPROVED", "PAYMENT.CAPTURE.COMPLETED",
                     "PAYMENT.CAPTURE.REFUNDED"}, kinds


@settings(max_examples=150, deadline=None, derandomize=IN_CI, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_no_mutated_delivery_is_accepted_or_changes_anything(recorded: Recorded,
                                                            data: st.DataObject) -> None:
    """Every delivery that is not a genuine one: a 4xx, and no order, outbox or inbox change."""
    rec = recorded
    body, headers = data.draw(mutations(rec.deliveries, rec.emulator_url), label="delivery")
    genuine = {_canonical(d.body, _headers(d)) for d in rec.deliveries}
    assume(_canonical(body, headers) not in genuine)
    before = asyncio.run(_snapshot(rec))
    with httpx.Client(timeout=30) as c:
        r = c.post(rec.url, content=body, headers=headers)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert asyncio.run(_snapshot(rec)) == before
