"""PayPalClient over real HTTP against the emulator: flows, OAuth, retries, errors, leaks."""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from paywire.domain.errors import ProviderError
from paywire.domain.money import Money
from paywire.domain.order import Intent, Order, OrderLine, OrderStatus
from paywire.emulator import AppCredentials, EmulatorConfig
from paywire.providers.paypal.client import PayPalClient
from paywire.testing import EmulatorServer, free_port
from testkit import CLIENT_ID, CLIENT_SECRET, approve

S = OrderStatus
TOKEN_PATH = "/v1/oauth2/token"
ORDERS_FAULT = {"method": "POST", "path": "^/v2/checkout/orders$", "action": "error"}


class Sleeps(list[float]):
    """A `sleep` that records each delay instead of waiting."""

    async def __call__(self, delay: float) -> None:
        self.append(delay)


def make_client(url: str, sleeps: Sleeps, secret: Any = CLIENT_SECRET, **kw: Any) -> PayPalClient:
    """A client with jitter removed (identity) and sleeps recorded."""
    return PayPalClient(url, CLIENT_ID, secret, jitter=lambda d: d, sleep=sleeps, **kw)


def new_order(value: str = "10.00", currency: str = "USD",
              intent: Intent = Intent.CAPTURE) -> Order:
    """A one-line order (two units) with a fresh id."""
    line = OrderLine("MUG-1", "Mug", 2, Money.parse(value, currency))
    return Order.new(f"ord_{uuid.uuid4().hex[:12]}", intent, [line], datetime.now(UTC))


def rid() -> str:
    """A request id as paywire derives one from an operation id."""
    return f"op_{uuid.uuid4().hex}"


@pytest.fixture
def sleeps() -> Sleeps:
    """Recorded retry delays."""
    return Sleeps()


@pytest.fixture
async def client(emulator: EmulatorServer, sleeps: Sleeps) -> AsyncIterator[PayPalClient]:
    """A PayPalClient on the emulator, owning its HTTP client."""
    async with make_client(emulator.url, sleeps) as c:
        yield c


@pytest.fixture
def control(emulator: EmulatorServer) -> Iterator[httpx.Client]:
    """A plain client for the emulator's control API."""
    with httpx.Client(base_url=emulator.url, timeout=10) as c:
        yield c


def log_of(emulator: EmulatorServer, path: str, method: str = "POST") -> list[Any]:
    """Request-log entries for one method and path."""
    return [e for e in emulator.emu.request_log if e.path == path and e.method == method]


def fault(control: httpx.Client, **rule: Any) -> None:
    """Install an HTTP fault rule."""
    assert control.post("/_emulator/faults", json=rule).status_code == 201


async def paid_order(client: PayPalClient, control: httpx.Client, order: Order,
                     scenario: str = "approve") -> str:
    """Create and approve `order`; its PayPal id."""
    created = await client.create_order(order, request_id=rid())
    approve(control, created.provider_order_id, scenario)
    return created.provider_order_id


async def test_create_approve_capture_refund(client: PayPalClient, control: httpx.Client,
                                             emulator: EmulatorServer) -> None:
    """create → approve → capture (replay-safe) → partial → full refund, read back each time."""
    order = new_order()
    created = await client.create_order(order, request_id=rid(),
                                        return_url="https://shop.example/return",
                                        cancel_url="https://shop.example/cancel")
    assert created.status == "CREATED" and created.approve_url
    assert f"token={created.provider_order_id}" in created.approve_url
    approve(control, created.provider_order_id)
    assert (await client.get_order(created.provider_order_id)).status == S.APPROVED
    capture_id = rid()
    cap = await client.capture_order(created.provider_order_id, request_id=capture_id)
    assert (cap.status, cap.amount, cap.provider_order_id) == (
        S.COMPLETED, order.amount, created.provider_order_id)
    assert await client.capture_order(created.provider_order_id, request_id=capture_id) == cap
    assert len(emulator.emu.captures) == 1
    part = await client.refund_capture(cap.capture_id, Money(500, "USD"), request_id=rid(),
                                       note_to_payer="Sorry")
    assert (part.status, part.amount) == ("completed", Money(500, "USD"))
    state = await client.get_order(created.provider_order_id)
    assert (state.status, state.provider_status, state.amount) == (
        S.PARTIALLY_REFUNDED, "COMPLETED", order.amount)
    rest = await client.refund_capture(cap.capture_id, None, request_id=rid())
    assert rest.amount == Money(1500, "USD")
    assert (await client.get_capture(cap.capture_id)).status == S.REFUNDED
    assert (await client.get_refund(rest.refund_id)).provider_status == "COMPLETED"
    assert (await client.get_order(created.provider_order_id)).status == S.REFUNDED


async def test_create_without_urls_and_whole_unit_currency(client: PayPalClient,
                                                           control: httpx.Client) -> None:
    """Without URLs an order is CREATED with an approve link; HUF moves in whole forints."""
    order = new_order("1500.00", "HUF")
    created = await client.create_order(order, request_id=rid())
    assert created.status == "CREATED" and created.approve_url
    approve(control, created.provider_order_id)
    cap = await client.capture_order(created.provider_order_id, request_id=rid())
    assert cap.amount == Money(300000, "HUF") == order.amount
    refund = await client.refund_capture(cap.capture_id, Money.parse("500", "HUF"),
                                         request_id=rid())
    assert refund.amount == Money(50000, "HUF")


async def test_authorize_capture_and_void(client: PayPalClient, control: httpx.Client) -> None:
    """authorize → partial capture → void the rest; a second order authorized then voided."""
    pid = await paid_order(client, control, new_order(intent=Intent.AUTHORIZE))
    auth = await client.authorize_order(pid, request_id=rid())
    assert auth.status == S.AUTHORIZED and auth.amount == Money(2000, "USD")
    assert auth.expires_at is not None and auth.expires_at > datetime.now(UTC)
    cap = await client.capture_authorization(auth.authorization_id, Money(500, "USD"),
                                             request_id=rid(), final=False)
    assert (cap.status, cap.amount, cap.provider_order_id) == (S.COMPLETED, Money(500, "USD"),
                                                               pid)
    assert (await client.get_order(pid)).status == S.COMPLETED
    await client.void_authorization(auth.authorization_id, request_id=rid())
    assert (await client.get_authorization(auth.authorization_id)).status == S.VOIDED

    other = await paid_order(client, control, new_order(intent=Intent.AUTHORIZE))
    auth2 = await client.authorize_order(other, request_id=rid())
    await client.void_authorization(auth2.authorization_id, request_id=rid())
    state = await client.get_order(other)
    assert (state.status, state.authorizations[0].provider_status) == (S.VOIDED, "VOIDED")


async def test_cold_cache_single_flight(client: PayPalClient, emulator: EmulatorServer,
                                        control: httpx.Client) -> None:
    """64 concurrent calls on a cold cache fetch one token; after expiry, 64 more fetch one."""
    orders = await asyncio.gather(*(client.create_order(new_order(), request_id=rid())
                                    for _ in range(64)))
    assert len({o.provider_order_id for o in orders}) == 64
    assert len(log_of(emulator, TOKEN_PATH)) == 1
    control.post("/_emulator/clock/advance", json={"seconds": 32400 + 1})
    await asyncio.gather(*(client.create_order(new_order(), request_id=rid())
                           for _ in range(64)))
    assert len(log_of(emulator, TOKEN_PATH)) == 2


async def test_token_expiry_reauthenticates_once(client: PayPalClient, emulator: EmulatorServer,
                                                 control: httpx.Client) -> None:
    """A token expired at PayPal answers 401 once; the client re-authenticates and succeeds."""
    await client.create_order(new_order(), request_id=rid())
    control.post("/_emulator/clock/advance", json={"seconds": 32400 + 1})
    created = await client.create_order(new_order(), request_id=rid())
    assert created.provider_order_id
    statuses = [e.status for e in log_of(emulator, "/v2/checkout/orders")]
    assert statuses == [201, 401, 201]
    assert len(log_of(emulator, TOKEN_PATH)) == 2


async def test_token_refreshed_before_expiry_margin(emulator: EmulatorServer,
                                                    sleeps: Sleeps) -> None:
    """Past expires_in minus the margin the client fetches a new token, without a 401."""
    now = [1000.0]
    async with make_client(emulator.url, sleeps, token_margin_seconds=300,
                           monotonic=lambda: now[0]) as c:
        await c.create_order(new_order(), request_id=rid())
        now[0] += 32400 - 300 - 1
        await c.create_order(new_order(), request_id=rid())
        assert len(log_of(emulator, TOKEN_PATH)) == 1
        now[0] += 2
        await c.create_order(new_order(), request_id=rid())
    assert len(log_of(emulator, TOKEN_PATH)) == 2
    assert all(e.status == 201 for e in log_of(emulator, "/v2/checkout/orders"))


@pytest.mark.schema_exempt(reason="a fault rule answers 401 in OAuth's shape, as live PayPal may")
async def test_oauth_shaped_401_reauthenticates(client: PayPalClient, emulator: EmulatorServer,
                                                control: httpx.Client) -> None:
    """A 401 {"error":"invalid_token"} re-authenticates once; a second 401 is an auth error."""
    created = await client.create_order(new_order(), request_id=rid())
    path = f"/v2/checkout/orders/{created.provider_order_id}"
    body = {"error": "invalid_token", "error_description": "Token signature verification failed"}
    fault(control, method="GET", path=f"^{path}$", action="error", status=401, body=body,
          count=1)
    assert (await client.get_order(created.provider_order_id)).status == S.CREATED
    assert len(log_of(emulator, TOKEN_PATH)) == 2
    fault(control, method="GET", path=f"^{path}$", action="error", status=401, body=body,
          count=2)
    with pytest.raises(ProviderError) as info:
        await client.get_order(created.provider_order_id)
    assert (info.value.kind, info.value.status, info.value.name) == ("auth", 401, "invalid_token")
    assert len(log_of(emulator, TOKEN_PATH)) == 3


async def test_5xx_then_success_keeps_request_id(client: PayPalClient, emulator: EmulatorServer,
                                                 control: httpx.Client, sleeps: Sleeps) -> None:
    """Two 503s then success: backoff 0.5 s, 1 s, and one PayPal-Request-Id on all attempts."""
    fault(control, **ORDERS_FAULT, status=503, count=2)
    request_id = rid()
    created = await client.create_order(new_order(), request_id=request_id)
    assert created.provider_order_id and sleeps == [0.5, 1.0]
    attempts = log_of(emulator, "/v2/checkout/orders")
    assert [e.status for e in attempts] == [503, 503, 201]
    assert {e.request_id for e in attempts} == {request_id}


async def test_429_honours_retry_after(client: PayPalClient, emulator: EmulatorServer,
                                       control: httpx.Client, sleeps: Sleeps) -> None:
    """A 429 waits its Retry-After (1 s), not the backoff; one beyond max_retry_after raises."""
    fault(control, **ORDERS_FAULT, status=429, count=1)
    await client.create_order(new_order(), request_id=rid())
    assert sleeps == [1.0]
    assert [e.status for e in log_of(emulator, "/v2/checkout/orders")] == [429, 201]
    fault(control, **ORDERS_FAULT, status=429, count=1)
    async with make_client(emulator.url, sleeps, max_retry_after=0.5) as c:
        with pytest.raises(ProviderError) as info:
            await c.create_order(new_order(), request_id=rid())
    assert (info.value.kind, info.value.retryable, info.value.status) == ("transient", True, 429)
    assert info.value.details["retry_after"] == 1.0 and sleeps == [1.0]


async def test_retries_are_bounded_and_capped(emulator: EmulatorServer, sleeps: Sleeps,
                                              control: httpx.Client) -> None:
    """Endless 500s: max_attempts requests, backoff doubling up to the cap, then transient."""
    fault(control, **ORDERS_FAULT, status=500)
    async with make_client(emulator.url, sleeps, max_attempts=6, backoff_cap=2.0) as c:
        with pytest.raises(ProviderError) as info:
            await c.create_order(new_order(), request_id=rid())
    assert (info.value.kind, info.value.status, info.value.retryable) == ("transient", 500, True)
    assert info.value.debug_id
    assert sleeps == [0.5, 1.0, 2.0, 2.0, 2.0]
    assert len(log_of(emulator, "/v2/checkout/orders")) == 6


async def test_timeout_is_retried_with_same_request_id(emulator: EmulatorServer, sleeps: Sleeps,
                                                       control: httpx.Client) -> None:
    """A read timeout is retried under the same PayPal-Request-Id."""
    fault(control, **{**ORDERS_FAULT, "action": "timeout"}, seconds=2.5, count=1)
    request_id = rid()
    async with make_client(emulator.url, sleeps, timeout=1.0) as c:
        created = await c.create_order(new_order(), request_id=request_id)
    assert created.provider_order_id and sleeps == [0.5]
    assert sum(e.status == 201 for e in log_of(emulator, "/v2/checkout/orders")) == 1
    assert {e.request_id for e in log_of(emulator, "/v2/checkout/orders")} == {request_id}


async def test_connection_refused_is_transient(sleeps: Sleeps) -> None:
    """Nobody listening: every attempt fails to connect, then a transient ProviderError."""
    async with make_client(f"http://127.0.0.1:{free_port()}", sleeps, max_attempts=3) as c:
        with pytest.raises(ProviderError) as info:
            await c.get_order("ANY")
    assert (info.value.kind, info.value.retryable) == ("transient", True)
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert sleeps == [0.5, 1.0]


async def test_422_is_not_retried(client: PayPalClient, emulator: EmulatorServer,
                                  sleeps: Sleeps) -> None:
    """Capturing an unapproved order is ORDER_NOT_APPROVED, final after one request."""
    created = await client.create_order(new_order(), request_id=rid())
    with pytest.raises(ProviderError) as info:
        await client.capture_order(created.provider_order_id, request_id=rid())
    err = info.value
    assert (err.kind, err.issue, err.status, err.name) == (
        "not_approved", "ORDER_NOT_APPROVED", 422, "UNPROCESSABLE_ENTITY")
    assert err.debug_id and not err.retryable and sleeps == []
    assert len(log_of(emulator, f"/v2/checkout/orders/{created.provider_order_id}/capture")) == 1


@pytest.mark.parametrize(("scenario", "status", "reason"), [
    ("decline", S.DENIED, None), ("pending", S.PENDING, "PENDING_REVIEW"),
    ("instrument_declined", None, "INSTRUMENT_DECLINED"),
])
async def test_capture_scenarios(client: PayPalClient, control: httpx.Client, scenario: str,
                                 status: OrderStatus | None, reason: str | None) -> None:
    """Declined → DENIED; under review → PENDING + reason; INSTRUMENT_DECLINED → payer_action."""
    pid = await paid_order(client, control, new_order(), scenario)
    if status is None:
        with pytest.raises(ProviderError) as info:
            await client.capture_order(pid, request_id=rid())
        assert (info.value.kind, info.value.issue) == ("payer_action", reason)
        return
    cap = await client.capture_order(pid, request_id=rid())
    assert (cap.status, cap.reason) == (status, reason)
    assert (await client.get_order(pid)).status == status


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(
    apps=[AppCredentials(CLIENT_ID, CLIENT_SECRET)], record_responses=True,
    orders_idempotency_seconds=0, seed=1234)])
async def test_replay_past_retention_is_already_done(client: PayPalClient,
                                                     control: httpx.Client) -> None:
    """Past PayPal's retention a replayed capture is ORDER_ALREADY_CAPTURED: kind already_done."""
    pid = await paid_order(client, control, new_order())
    request_id = rid()
    await client.capture_order(pid, request_id=request_id)
    with pytest.raises(ProviderError) as info:
        await client.capture_order(pid, request_id=request_id)
    assert (info.value.kind, info.value.issue) == ("already_done", "ORDER_ALREADY_CAPTURED")


async def test_business_refusals(client: PayPalClient, control: httpx.Client) -> None:
    """Duplicate invoice, over-refund and unknown ids map to their kinds."""
    order = new_order()
    pid = await paid_order(client, control, order)
    cap = await client.capture_order(pid, request_id=rid())
    with pytest.raises(ProviderError) as dup:
        await client.create_order(order, request_id=rid())
    assert (dup.value.kind, dup.value.issue) == ("duplicate_invoice", "DUPLICATE_INVOICE_ID")
    with pytest.raises(ProviderError) as over:
        await client.refund_capture(cap.capture_id, Money(5000, "USD"), request_id=rid())
    assert (over.value.kind, over.value.issue) == ("over_refund", "REFUND_AMOUNT_EXCEEDED")
    for call in (client.get_order("NOPE"), client.get_capture("NOPE")):
        with pytest.raises(ProviderError) as missing:
            await call
        assert (missing.value.kind, missing.value.status) == ("not_found", 404)


async def test_bad_credentials_are_auth_and_fetched_once(emulator: EmulatorServer,
                                                         sleeps: Sleeps) -> None:
    """A refused client secret is kind auth, said plainly; 8 concurrent callers share one try."""
    async with make_client(emulator.url, sleeps, secret=SecretStr("wrong-secret")) as c:
        results = await asyncio.gather(*(c.get_order("ANY") for _ in range(8)),
                                       return_exceptions=True)
    assert all(isinstance(r, ProviderError) and r.kind == "auth" for r in results)
    assert "client id/secret" in str(results[0]) and "wrong-secret" not in str(results[0])
    assert sleeps == []
    assert len(log_of(emulator, TOKEN_PATH)) == 1


async def test_injected_http_client_headers_and_ownership(emulator: EmulatorServer,
                                                          control: httpx.Client,
                                                          sleeps: Sleeps) -> None:
    """Mutating calls send Request-Id, Prefer and JSON type; an injected client stays open."""
    seen: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request)

    async with httpx.AsyncClient(event_hooks={"request": [record]}) as http:
        c = make_client(emulator.url, sleeps, http=http)
        pid = await paid_order(c, control, new_order())
        await c.capture_order(pid, request_id="op_capture_1")
        await c.aclose()
        assert not http.is_closed
    posts = [r for r in seen if r.url.path.startswith("/v2/")]
    assert all(r.headers["prefer"] == "return=representation" for r in posts)
    assert all(r.headers["content-type"] == "application/json" for r in posts)
    assert posts[-1].headers["paypal-request-id"] == "op_capture_1"


async def test_secrets_never_leak(emulator: EmulatorServer, control: httpx.Client,
                                  sleeps: Sleeps, caplog: pytest.LogCaptureFixture) -> None:
    """The secret, Basic credentials and tokens are in no repr, exception or DEBUG log line."""
    caplog.set_level(logging.DEBUG)
    errors: list[ProviderError] = []
    async with make_client(emulator.url, sleeps, secret=SecretStr(CLIENT_SECRET)) as c:
        pid = await paid_order(c, control, new_order())
        with pytest.raises(ProviderError) as early:
            await c.capture_order("NOPE", request_id=rid())
        errors.append(early.value)
        await c.capture_order(pid, request_id=rid())
        control.post("/_emulator/clock/advance", json={"seconds": 32401})
        await c.create_order(new_order(), request_id=rid())  # re-authenticates
        text = repr(c)
    async with make_client(emulator.url, sleeps, secret="wrong-secret") as bad:
        with pytest.raises(ProviderError) as refused:
            await bad.get_order(pid)
        errors.append(refused.value)
        text += repr(bad)
    tokens = list(emulator.emu.tokens)
    assert len(tokens) == 2
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    texts = [text, caplog.text, *(str(e) for e in errors), *(repr(e.details) for e in errors),
             *(str(r.args) for r in caplog.records)]
    for secret in (CLIENT_SECRET, "wrong-secret", basic, *tokens):
        assert not any(secret in t for t in texts)
    assert "paypal POST /v2/checkout/orders -> 201" in caplog.text
