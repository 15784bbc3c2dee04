"""Helpers for the dashboard's suites: paywire served over loopback on a clock the test moves,
against the emulator, and the story of a stuck order.

The story: an order is paid with a capture PayPal holds PENDING; eight days later (paywire's
clock moved, PayPal's not) a reconciliation pass finds it past PENDING's maximum age and flags
it `stuck:PENDING`; then PayPal completes the capture without telling paywire (no webhook
subscription), so "reconcile now" is what brings the order to COMPLETED.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from apikit import API_KEY, approve, control, settings_for, sqlite_url
from paywire.bootstrap import build, create_app
from paywire.settings import Settings
from paywire.testing import EmulatorServer, ServerThread
from testkit import MovingClock

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
REFUND_ID = re.compile(r'name="refund_id" value="([^"]+)"')
PASSWORD = "correct horse battery staple"
SESSION_SECRET = "the-dashboard-suites-session-secret-0123456789"
T = TypeVar("T")


def run(work: Coroutine[Any, Any, T]) -> T:
    """`work` run to its end on a loop of its own thread (for sync tests, whose thread may
    hold a loop already: Playwright's sync API does)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()


@dataclass
class DashStack:
    """paywire with its dashboard, its settings, its clock and the emulator."""

    url: str
    settings: Settings
    clock: MovingClock
    emulator: EmulatorServer

    @property
    def admin(self) -> str:
        """The dashboard's address."""
        return f"{self.url}/admin"

    async def reconcile_pass(self) -> None:
        """One reconciliation pass, as the background job makes it, on the same clock."""
        container = await build(self.settings, clock=self.clock)
        try:
            await container.reconciler.run_once()
        finally:
            await container.aclose()

    async def stuck_order(self) -> dict[str, Any]:
        """An order left PENDING at PayPal and flagged `stuck:PENDING` (the story above)."""
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            created = await client.post("/v1/checkout/orders", json={
                "items": [{"sku": "mug", "quantity": 2}]})
            assert created.status_code == 201, created.text
            order: dict[str, Any] = created.json()
            await approve(self.emulator, order["provider_order_id"], "pending")
            captured = await client.post(f"/v1/checkout/orders/{order['id']}/capture")
            assert captured.json()["status"] == "PENDING", captured.text
        self.clock.advance(days=8)
        await self.reconcile_pass()
        return order

    async def complete_at_paypal(self, order_id: str) -> None:
        """PayPal completes the order's pending capture (no webhook reaches paywire)."""
        async with httpx.AsyncClient(base_url=self.url, timeout=30,
                                     headers={"Authorization": f"Bearer {API_KEY}"}) as client:
            order = (await client.get(f"/v1/orders/{order_id}")).json()
        await control(self.emulator, f"captures/{order['capture_id']}/complete", {})


@contextmanager
def dashboard_stack(emulator: EmulatorServer, tmp_path: Path, *,
                    database_url: str | None = None, **overrides: Any) -> Iterator[DashStack]:
    """paywire on `database_url` (default: SQLite in `tmp_path`), signing in with the suites'
    API key or `PASSWORD`, its background jobs off (the tests run what they need), until the
    block ends."""
    from paywire.admin.auth import hash_password

    clock = MovingClock()
    values: dict[str, Any] = {
        "reconcile_enabled": False, "truth_fetch_enabled": False,
        "admin_password_hash": hash_password(PASSWORD, n=2**10),
        "admin_session_secret": SESSION_SECRET, **overrides}
    settings = settings_for(emulator, database_url or sqlite_url(tmp_path), tmp_path, **values)
    server = ServerThread(create_app(settings, clock=clock), port=None)
    server.start(timeout=30)
    try:
        yield DashStack(server.url, settings, clock, emulator)
    finally:
        server.stop()


def csrf_of(html: str) -> str:
    """The CSRF token a dashboard page's forms carry."""
    found = CSRF.search(html)
    assert found is not None, html[:500]
    return found.group(1)


def refund_id_of(html: str) -> str:
    """The refund id an order page's refund form carries (fresh each time it is read)."""
    found = REFUND_ID.search(html)
    assert found is not None, html[:500]
    return found.group(1)


def sign_in(client: httpx.Client, secret: str, *, name: str = "") -> httpx.Response:
    """Sign in through the form (the pre-session cookie and its token, as a browser would)."""
    form = client.get("/admin/login")
    assert form.status_code == 200, form.text
    return client.post("/admin/login", data={"csrf": csrf_of(form.text), "secret": secret,
                                             "name": name, "next": "/admin/"})
