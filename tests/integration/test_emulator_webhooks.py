"""The emulator's webhooks over real HTTP: signed delivery, retries, faults, API, postback."""

from __future__ import annotations

import base64
import json
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from paywire.emulator.faults import FaultRule
from paywire.emulator.paypal import events
from paywire.emulator.paypal.signing import verify
from paywire.testing import EmulatorServer, ServerThread
from testkit import CLIENT_ID


@dataclass
class Received:
    """One request the receiver got, byte for byte."""

    path: str
    body: bytes
    headers: dict[str, str]


class Receiver:
    """A loopback webhook endpoint that records raw requests and answers scripted statuses."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.statuses: list[int] = []  # popped per request; 200 once empty
        self._lock = threading.Lock()
        self.server = ServerThread(Starlette(routes=[
            Route("/{name}", self._endpoint, methods=["POST"])]))

    async def _endpoint(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            self.requests.append(Received(request.url.path, body, dict(request.headers)))
            status = self.statuses.pop(0) if self.statuses else 200
        return Response(status_code=status)

    def url(self, name: str = "hook") -> str:
        """The URL of endpoint `name`."""
        return f"{self.server.url}/{name}"

    def wait(self, count: int, timeout: float = 5.0) -> list[Received]:
        """Block until `count` requests have arrived."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"got {len(self.requests)} of {count} deliveries")
            time.sleep(0.01)
        return list(self.requests)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running webhook receiver."""
    rx = Receiver()
    rx.server.start()
    try:
        yield rx
    finally:
        rx.server.stop()


def subscribe(paypal: httpx.Client, url: str, *types: str) -> str:
    """Create a webhook and return its id."""
    r = paypal.post("/v1/notifications/webhooks",
                    json={"url": url, "event_types": [{"name": t} for t in types or ("*",)]})
    assert r.status_code == 201, r.text
    webhook_id: str = r.json()["id"]
    return webhook_id


def publish(emulator: EmulatorServer, event_type: str = "PAYMENT.CAPTURE.COMPLETED",
            resource_id: str = "CAP1") -> dict[str, Any]:
    """Emit a real (stored, verifiable) event for the test app."""
    resource = {"id": resource_id, "status": "COMPLETED",
                "amount": {"currency_code": "EUR", "value": "9.99"}, "note": "crème brûlée"}
    return events.publish(emulator.emu, CLIENT_ID, event_type, "capture", resource, emulator.url)


def add_fault(emulator: EmulatorServer, rule: dict[str, Any]) -> None:
    """Add a fault rule through the control API, or directly while that API is absent."""
    r = httpx.post(f"{emulator.url}/_emulator/faults", json=rule)
    if r.status_code == 404:
        emulator.emu.faults.add(FaultRule.from_json(rule))
    else:
        assert r.status_code < 300, r.text


def postback(paypal: httpx.Client, got: Received, webhook_id: str,
             event_bytes: bytes | None = None, **override: str) -> str:
    """Ask verify-webhook-signature about a delivery, splicing the event bytes in raw."""
    fields = {
        "auth_algo": got.headers["paypal-auth-algo"], "cert_url": got.headers["paypal-cert-url"],
        "transmission_id": got.headers["paypal-transmission-id"],
        "transmission_sig": got.headers["paypal-transmission-sig"],
        "transmission_time": got.headers["paypal-transmission-time"],
        "webhook_id": webhook_id, **override}
    head = json.dumps(fields)[:-1].encode()
    body = head + b', "webhook_event": ' + (got.body if event_bytes is None else event_bytes) + b"}"
    r = paypal.post("/v1/notifications/verify-webhook-signature", content=body,
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    status: str = r.json()["verification_status"]
    return status


def test_delivery_signature_verifies_against_the_emulator_ca(
        emulator: EmulatorServer, paypal: httpx.Client, receiver: Receiver) -> None:
    """A delivery's signature verifies with the cert from PAYPAL-CERT-URL, chained to the CA."""
    webhook_id = subscribe(paypal, receiver.url(), "PAYMENT.CAPTURE.COMPLETED")
    event = publish(emulator)
    got = receiver.wait(1)[0]
    h = got.headers
    assert json.loads(got.body) == event
    assert h["paypal-auth-algo"] == "SHA256withRSA" and h["paypal-auth-version"] == "v2"
    assert h["content-type"] == "application/json" and h["user-agent"].startswith("PayPal/")
    assert h["paypal-transmission-time"].endswith("Z")
    leaf = x509.load_pem_x509_certificate(httpx.get(h["paypal-cert-url"]).content)
    ca = x509.load_pem_x509_certificate(httpx.get(f"{emulator.url}/_emulator/ca.pem").content)
    leaf.verify_directly_issued_by(ca)
    now = datetime.now(UTC)
    assert leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert leaf.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    crc = zlib.crc32(got.body) & 0xFFFFFFFF
    message = (f"{h['paypal-transmission-id']}|{h['paypal-transmission-time']}|"
               f"{webhook_id}|{crc}").encode()
    public_key = leaf.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(base64.b64decode(h["paypal-transmission-sig"]), message,
                      padding.PKCS1v15(), hashes.SHA256())
    cert_pem = httpx.get(h["paypal-cert-url"]).content
    assert verify(cert_pem, h["paypal-transmission-id"], h["paypal-transmission-time"],
                  webhook_id, got.body, h["paypal-transmission-sig"])
    assert not verify(cert_pem, h["paypal-transmission-id"], h["paypal-transmission-time"],
                      webhook_id, got.body + b" ", h["paypal-transmission-sig"])


def test_failed_delivery_is_retried_with_the_same_transmission(
        emulator: EmulatorServer, paypal: httpx.Client, receiver: Receiver) -> None:
    """Non-2xx answers are retried on the (compressed) schedule with identical bytes and headers."""
    receiver.statuses = [500, 503]
    subscribe(paypal, receiver.url())
    event = publish(emulator)
    first, second, third = receiver.wait(3)
    assert first.body == second.body == third.body
    assert len({r.headers["paypal-transmission-id"] for r in (first, second, third)}) == 1
    assert len({r.headers["paypal-transmission-sig"] for r in (first, second, third)}) == 1
    deadline = time.monotonic() + 5
    while paypal.get(f"/v1/notifications/webhooks-events/{event['id']}").json().get(
            "status") != "SUCCESS":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    log = paypal.get("/_emulator/deliveries").json()["deliveries"]
    assert [(d["attempt"], d["status"]) for d in log] == [(1, 500), (2, 503), (3, 200)]
    assert base64.b64decode(log[0]["body_base64"]) == first.body
    assert log[0]["headers"]["paypal-transmission-id"] == first.headers["paypal-transmission-id"]
    assert paypal.delete("/_emulator/deliveries").status_code == 204
    assert paypal.get("/_emulator/deliveries").json()["deliveries"] == []


def test_duplicate_fault_delivers_the_same_transmission_twice(
        emulator: EmulatorServer, paypal: httpx.Client, receiver: Receiver) -> None:
    """A `duplicate` rule sends one attempt twice, byte-identical."""
    add_fault(emulator, {"target": "webhook", "action": "duplicate", "count": 1})
    subscribe(paypal, receiver.url())
    publish(emulator)
    a, b = receiver.wait(2)
    time.sleep(0.1)
    assert len(receiver.requests) == 2
    assert a.body == b.body and a.headers == b.headers


def test_reorder_fault_holds_a_delivery_behind_the_next(
        emulator: EmulatorServer, paypal: httpx.Client, receiver: Receiver) -> None:
    """A `reorder` rule holds the first event until the next one to that URL has been sent."""
    add_fault(emulator, {"target": "webhook", "action": "reorder", "count": 1,
                         "event_type": "CHECKOUT.ORDER.APPROVED"})
    subscribe(paypal, receiver.url())
    first = publish(emulator, "CHECKOUT.ORDER.APPROVED", "ORDER1")
    time.sleep(0.1)
    assert receiver.requests == []
    second = publish(emulator, "PAYMENT.CAPTURE.COMPLETED", "CAP1")
    got = receiver.wait(2)
    assert [json.loads(r.body)["id"] for r in got] == [second["id"], first["id"]]


def test_drop_fault_loses_the_delivery_until_resent(
        emulator: EmulatorServer, paypal: httpx.Client, receiver: Receiver) -> None:
    """A `drop` rule loses the transmission for good; a resend recovers it."""
    add_fault(emulator, {"target": "webhook", "action": "drop", "count": 1})
    subscribe(paypal, receiver.url())
    event = publish(emulator)
    time.sleep(0.2)
    assert receiver.requests == []
    log = paypal.get("/_emulator/deliveries").json()["deliveries"]
    assert [(d["fault"], d["status"]) for d in log] == [("drop", None)]
    r = paypal.post(f"/v1/notifications/webhooks-events/{event['id']}/resend", json={})
    assert r.status_code == 202, r.text
    assert json.loads(receiver.wait(1)[0].body)["id"] == event["id"]


def test_webhook_management_crud_and_limits(paypal: httpx.Client) -> None:
    """Create, list, get, patch, delete; duplicate URL, 10-webhook limit and bad types refused."""
    base = "/v1/notifications/webhooks"
    webhook_id = subscribe(paypal, "http://127.0.0.1:9/a", "PAYMENT.CAPTURE.COMPLETED")
    got = paypal.get(f"{base}/{webhook_id}").json()
    assert got["url"] == "http://127.0.0.1:9/a"
    assert [t["name"] for t in got["event_types"]] == ["PAYMENT.CAPTURE.COMPLETED"]
    dup = paypal.post(base, json={"url": "http://127.0.0.1:9/a", "event_types": [{"name": "*"}]})
    assert (dup.status_code, dup.json()["name"]) == (400, "WEBHOOK_URL_ALREADY_EXISTS")
    bad = paypal.post(base, json={"url": "http://127.0.0.1:9/b",
                                  "event_types": [{"name": "NOT.A.TYPE"}]})
    assert (bad.status_code, bad.json()["name"]) == (400, "VALIDATION_ERROR")
    bad_url = paypal.post(base, json={"url": "ftp://x", "event_types": [{"name": "*"}]})
    assert bad_url.json()["details"][0]["field"] == "url"
    patch = paypal.patch(f"{base}/{webhook_id}", json=[
        {"op": "replace", "path": "/url", "value": "http://127.0.0.1:9/z"},
        {"op": "replace", "path": "/event_types", "value": [{"name": "*"}]}])
    assert patch.status_code == 200 and patch.json()["url"] == "http://127.0.0.1:9/z"
    assert paypal.patch(f"{base}/{webhook_id}", json=[
        {"op": "add", "path": "/url", "value": "http://x"}]).status_code == 400
    types = paypal.get(f"{base}/{webhook_id}/event-types").json()["event_types"]
    assert types == [{"name": "*", "description": "ALL", "status": "ENABLED"}]
    for i in range(9):
        subscribe(paypal, f"http://127.0.0.1:9/n{i}")
    assert len(paypal.get(base).json()["webhooks"]) == 10
    over = paypal.post(base, json={"url": "http://127.0.0.1:9/x", "event_types": [{"name": "*"}]})
    assert (over.status_code, over.json()["name"]) == (400, "WEBHOOK_NUMBER_LIMIT_EXCEEDED")
    assert paypal.delete(f"{base}/{webhook_id}").status_code == 204
    gone = paypal.get(f"{base}/{webhook_id}")
    assert (gone.status_code, gone.json()["name"]) == (404, "INVALID_RESOURCE_ID")
    available = paypal.get("/v1/notifications/webhooks-event-types").json()["event_types"]
    assert {"name": "PAYMENT.CAPTURE.REFUNDED", "status": "ENABLED"}.items() <= next(
        t for t in available if t["name"] == "PAYMENT.CAPTURE.REFUNDED").items()


def test_events_list_get_and_resend(
        emulator: EmulatorServer, paypal: httpx.Client, receiver: Receiver) -> None:
    """Events list newest first with filters and paging; get one; resend is a new transmission."""
    subscribe(paypal, receiver.url())
    older = publish(emulator, "CHECKOUT.ORDER.APPROVED", "O1")
    newer = publish(emulator, "PAYMENT.CAPTURE.COMPLETED", "C1")
    first_two = receiver.wait(2)
    listed = paypal.get("/v1/notifications/webhooks-events").json()
    assert [e["id"] for e in listed["events"]] == [newer["id"], older["id"]]
    page = paypal.get("/v1/notifications/webhooks-events", params={"page_size": 1}).json()
    assert [e["id"] for e in page["events"]] == [newer["id"]]
    rest = paypal.get(next(lk["href"] for lk in page["links"] if lk["rel"] == "next")).json()
    assert [e["id"] for e in rest["events"]] == [older["id"]]
    only = paypal.get("/v1/notifications/webhooks-events",
                      params={"event_type": "CHECKOUT.ORDER.APPROVED"}).json()
    assert [e["id"] for e in only["events"]] == [older["id"]]
    future = paypal.get("/v1/notifications/webhooks-events",
                        params={"start_time": "2999-01-01T00:00:00Z"}).json()
    assert future["events"] == []
    one = paypal.get(f"/v1/notifications/webhooks-events/{older['id']}").json()
    assert one["event_type"] == "CHECKOUT.ORDER.APPROVED" and one["transmissions"]
    missing = paypal.get("/v1/notifications/webhooks-events/WH-NOPE")
    assert missing.status_code == 404
    r = paypal.post(f"/v1/notifications/webhooks-events/{older['id']}/resend", json={})
    assert r.status_code == 202 and r.json()["id"] == older["id"]
    again = receiver.wait(3)[2]
    original = next(g for g in first_two if json.loads(g.body)["id"] == older["id"])
    assert again.body == original.body
    assert again.headers["paypal-transmission-id"] != original.headers["paypal-transmission-id"]


def test_simulated_event_is_delivered_but_never_verifiable(
        emulator: EmulatorServer, paypal: httpx.Client, receiver: Receiver) -> None:
    """simulate-event delivers a mock event that is not stored and fails postback verification."""
    webhook_id = subscribe(paypal, receiver.url(), "CHECKOUT.ORDER.APPROVED")
    r = paypal.post("/v1/notifications/simulate-event",
                    json={"webhook_id": webhook_id, "event_type": "PAYMENT.CAPTURE.REFUNDED",
                          "resource_version": "2.0"})
    assert r.status_code == 202, r.text
    mock = r.json()
    assert mock["resource_type"] == "refund" and mock["resource_version"] == "2.0"
    got = receiver.wait(1)[0]
    assert json.loads(got.body) == mock
    assert paypal.get(f"/v1/notifications/webhooks-events/{mock['id']}").status_code == 404
    assert postback(paypal, got, webhook_id) == "FAILURE"
    by_url = paypal.post("/v1/notifications/simulate-event",
                         json={"url": receiver.url("other"), "event_type": "CHECKOUT.ORDER.VOIDED"})
    assert by_url.status_code == 202
    assert receiver.wait(2)[1].path == "/other"


def test_postback_verification(
        emulator: EmulatorServer, paypal: httpx.Client, receiver: Receiver) -> None:
    """verify-webhook-signature: SUCCESS for the raw genuine bytes, FAILURE for any tampering."""
    webhook_id = subscribe(paypal, receiver.url())
    other_id = subscribe(paypal, receiver.url("other"), "CUSTOMER.DISPUTE.CREATED")
    publish(emulator)
    got = receiver.wait(1)[0]
    assert postback(paypal, got, webhook_id) == "SUCCESS"
    tampered = got.body.replace(b"9.99", b"0.01")
    assert postback(paypal, got, webhook_id, tampered) == "FAILURE"
    reserialized = json.dumps(json.loads(got.body), indent=1).encode()
    assert postback(paypal, got, webhook_id, reserialized) == "FAILURE"
    assert postback(paypal, got, other_id) == "FAILURE"
    assert postback(paypal, got, "NOTAWEBHOOK1234") == "FAILURE"
    foreign = "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-x"
    assert postback(paypal, got, webhook_id, cert_url=foreign) == "FAILURE"
    missing = paypal.post("/v1/notifications/verify-webhook-signature",
                          json={"webhook_id": webhook_id})
    assert missing.status_code == 400
