"""The checkout lane (`paywire.api.lane`): what it serves answers as the framework's route does,
and what it cannot read reaches the framework byte for byte."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from apikit import ADMIN, Paywire, approve, serve, sqlite_url
from paywire.api.lane import CheckoutLane
from paywire.testing import EmulatorServer

CREATE = "/v1/checkout/orders"
MUG = {"items": [{"sku": "mug", "quantity": 1}], "intent": "CAPTURE"}


@pytest.fixture
def paywire(emulator: EmulatorServer, tmp_path: Path) -> Iterator[Paywire]:
    """paywire on SQLite in the test's directory, against the emulator."""
    with serve(emulator, sqlite_url(tmp_path), tmp_path) as pw:
        yield pw


@pytest.fixture
async def client(paywire: Paywire) -> AsyncIterator[httpx.AsyncClient]:
    """A client for paywire."""
    async with httpx.AsyncClient(base_url=paywire.url, timeout=30) as c:
        yield c


def _shape(answer: dict[str, Any]) -> dict[str, Any]:
    """An order's answer without what differs between two orders (ids, times, URLs)."""
    varying = {"id", "provider_order_id", "approve_url", "created_at", "updated_at"}
    return {k: v for k, v in answer.items() if k not in varying}


async def test_a_served_create_answers_as_the_framework_does(
        client: httpx.AsyncClient, emulator: EmulatorServer) -> None:
    """A create the lane serves (`application/json`) and one it leaves to the framework (a
    `+json` type, which the framework also reads as JSON) answer alike, and both capture."""
    body = json.dumps(MUG).encode()
    served = await client.post(CREATE, content=body,
                               headers={"Content-Type": "application/json; charset=utf-8"})
    framework = await client.post(CREATE, content=body,
                                  headers={"Content-Type": "application/merge-patch+json"})
    assert served.status_code == framework.status_code == 201, (served.text, framework.text)
    assert served.headers.keys() == framework.headers.keys()
    assert served.headers["content-type"] == framework.headers["content-type"]
    assert _shape(served.json()) == _shape(framework.json())
    for created in (served.json(), framework.json()):
        await approve(emulator, created["provider_order_id"])
        captured = await client.post(f"{CREATE}/{created['id']}/capture", headers=ADMIN)
        assert captured.status_code == 200 and captured.json()["status"] == "COMPLETED"


async def test_refusals_are_the_frameworks(client: httpx.AsyncClient) -> None:
    """A body that does not validate gets the framework's 422 naming the field (the body the
    lane read was replayed to it); a bad key the 401; a malformed id the path's 422."""
    bad = await client.post(CREATE, json={"items": [{"sku": "mug", "quantity": 0}]})
    assert bad.status_code == 422, bad.text
    fields = [e["field"] for e in bad.json()["error"]["details"]["errors"]]
    assert "body.items.0.quantity" in fields
    unauthorized = await client.post(CREATE, json=MUG, headers={"Authorization": "Bearer no"})
    assert unauthorized.status_code == 401
    assert unauthorized.headers["www-authenticate"] == "Bearer"
    malformed = await client.post(f"{CREATE}/not%20an%20id/capture")
    assert malformed.status_code == 422, malformed.text
    unknown = await client.post(f"{CREATE}/ord_missing/capture")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["request_id"] == unknown.headers["x-request-id"]


# --- what the lane leaves to the framework, as ASGI -------------------------------------------


class Framework:
    """The app behind the lane: records what reaches it."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        self.bodies.append(message.get("body", b""))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def _through_lane(path: str, body: bytes, headers: list[tuple[bytes, bytes]], *,
                        started: bool = True) -> Framework:
    framework = Framework()
    app = SimpleNamespace(state=SimpleNamespace(container=object()) if started else
                          SimpleNamespace())
    scope: Scope = {"type": "http", "method": "POST", "path": path, "root_path": "",
                    "headers": headers, "query_string": b"", "app": app}
    messages: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        pass

    await CheckoutLane(framework)(scope, receive, send)
    return framework


JSON = [(b"content-type", b"application/json")]


@pytest.mark.parametrize(("path", "body", "headers"), [
    (CREATE, b'{"items": []}', JSON),  # does not validate
    (CREATE, b'{"items": [', JSON),  # not JSON
    (CREATE, json.dumps(MUG).encode(), [(b"content-type", b"text/plain")]),
    (CREATE, json.dumps(MUG).encode(), [(b"content-type", b"application/merge-patch+json")]),
    (CREATE, json.dumps(MUG).encode(), []),  # no Content-Type
    (CREATE, json.dumps(MUG).encode(), [*JSON, (b"idempotency-key", b"a"),
                                        (b"idempotency-key", b"b")]),
    (CREATE, b"[" * 100_000 + b"]" * 100_000, JSON),  # nested past json's depth
    (f"{CREATE}/bad id/capture", b"", []),
    (f"{CREATE}/ord_1\n/capture", b"", []),  # `$` in Python's re matches before a newline
    (f"{CREATE}/ord_1/authorize", b"", []),
    (f"{CREATE}/", json.dumps(MUG).encode(), JSON),
])
async def test_what_the_lane_cannot_read_reaches_the_framework_intact(
        path: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    """Anything but a readable create or a well-formed capture goes on, its body unchanged."""
    framework = await _through_lane(path, body, headers)
    assert framework.bodies == [body]


async def test_an_app_not_started_is_left_to_the_framework() -> None:
    """Without the container (no lifespan yet) even a valid create goes the framework's way."""
    framework = await _through_lane(CREATE, json.dumps(MUG).encode(), JSON, started=False)
    assert framework.bodies == [json.dumps(MUG).encode()]
