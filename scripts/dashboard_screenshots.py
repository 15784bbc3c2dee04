"""Screenshots of the operator dashboard for the docs (docs/img/dashboard-*.png).

Not part of the test suite: run it by hand after changing the dashboard's pages, and commit the
PNGs it writes (each kept under 200 KB):

    PYTHONPATH=src:tests .venv/bin/python scripts/dashboard_screenshots.py [--out docs/img]

It starts the emulator and paywire (SQLite in a temporary directory, `tests/dashkit.py`'s
stack), makes a small day of orders — paid, refunded, pending, a stuck one flagged by a
reconciliation pass, one whose announcement died — and drives Debian's Chromium through the
pages: the needs-attention queue with the health strip, the orders search, one order's
timeline, and the outbox.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from apikit import API_KEY, approve  # noqa: E402
from dashkit import DashStack, dashboard_stack  # noqa: E402
from paywire.domain.facts import Announcement  # noqa: E402
from paywire.emulator import AppCredentials, EmulatorConfig  # noqa: E402
from paywire.store.sql import SqlStore  # noqa: E402
from paywire.testing import EmulatorServer  # noqa: E402
from testkit import CLIENT_ID, CLIENT_SECRET  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run"]
MAX_BYTES = 200_000


async def day_of_orders(stack: DashStack) -> dict[str, Any]:
    """Orders in several states; the stuck one's id."""
    admin = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:
        for n, (items, scenario, refund) in enumerate([
                ([{"sku": "mug", "quantity": 1}], "approve", None),
                ([{"sku": "tee", "quantity": 2}], "approve", "5.00"),
                ([{"sku": "mug", "quantity": 3}], "approve", None),
                ([{"sku": "stickers", "quantity": 4}], None, None),
                ([{"sku": "tee", "quantity": 1}], "approve", "all")]):
            made = (await client.post("/v1/checkout/orders", json={"items": items})).json()
            if scenario is not None:
                await approve(stack.emulator, made["provider_order_id"], scenario)
                await client.post(f"/v1/checkout/orders/{made['id']}/capture")
            if refund is not None:
                await client.post(f"/v1/orders/{made['id']}/refunds", headers=admin,
                                  json={} if refund == "all" else {"amount": refund})
            stack.clock.advance(minutes=17 + n)
    stuck = await stack.stuck_order()
    stack.clock.advance(minutes=3)
    store = SqlStore(stack.settings.database_url)
    try:
        async with store.transaction() as uow:
            now = stack.clock.now()
            await uow.add_announcement(Announcement(f"shot-{stuck['id']}", "order.completed",
                                                    stuck["id"], {"order_id": stuck["id"]}),
                                       "msg_4f0c1a9e3b2d", now)
            for message in await uow.claim_outbox("worker-1", now, now + timedelta(minutes=1),
                                                  50):
                dead = message.id == "msg_4f0c1a9e3b2d"  # the shop refuses it for good
                await uow.finish_outbox(
                    message.id, "worker-1", status="dead" if dead else "delivered",
                    attempts=12 if dead else 1, next_attempt_at=None, now=now,
                    last_error="http: 410 from https://shop.example/hooks" if dead else None)
    finally:
        await store.close()
    return stuck


def shoot(stack: DashStack, stuck: dict[str, Any], out: Path) -> list[Path]:
    """The four pages as PNGs in `out`."""
    shots: list[Path] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        page.goto(f"{stack.admin}/")
        page.get_by_label("API key or password").fill(API_KEY)
        page.get_by_label("Your name, for the audit log").fill("Dana")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_selector("h1")

        def snap(name: str, path: str, full: bool = False) -> None:
            page.goto(f"{stack.admin}{path}")
            page.wait_for_selector("h1")
            target = out / f"dashboard-{name}.png"
            page.screenshot(path=str(target), full_page=full)
            shots.append(target)

        snap("attention", "/")
        snap("orders", "/orders")
        page.goto(f"{stack.admin}/orders/{stuck['id']}")
        page.get_by_role("button", name="Reconcile now").click()
        page.wait_for_selector(".flash")
        snap("order", f"/orders/{stuck['id']}")
        snap("outbox", "/outbox")
        browser.close()
    return shots


def main() -> None:
    """Write the screenshots."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    out: Path = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    emulator = EmulatorServer(EmulatorConfig(apps=[AppCredentials(CLIENT_ID, CLIENT_SECRET)]))
    emulator.start()
    try:
        with tempfile.TemporaryDirectory() as tmp, dashboard_stack(emulator, Path(tmp)) as stack:
            with ThreadPoolExecutor(1) as pool:
                stuck = pool.submit(asyncio.run, day_of_orders(stack)).result()
            for shot in shoot(stack, stuck, out):
                size = shot.stat().st_size
                print(f"{shot} {size // 1024} KB")
                if size > MAX_BYTES:
                    raise SystemExit(f"{shot} is over {MAX_BYTES // 1000} KB")
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
