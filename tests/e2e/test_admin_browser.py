"""The operator's dashboard in headless Chromium: sign in, find the stuck order in the
needs-attention queue, read its timeline, reconcile it, refund it, mark it resolved and see the
audit lines (the story of `dashkit`); and under `paywire dev`, the banner's dashboard link and
its dev password leading to an order bought through the demo API.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from dashkit import DashStack, dashboard_stack, run
from paywire.dev.runner import running
from paywire.dev.stack import DEV_ADMIN_PASSWORD, DevOptions, DevStack
from paywire.testing import EmulatorServer

pytestmark = pytest.mark.browser
API_KEY = "test-admin-key-0123456789"


@pytest.fixture
def stack(emulator: EmulatorServer, tmp_path: Path) -> Iterator[DashStack]:
    """paywire with its dashboard, on a clock the test moves."""
    with dashboard_stack(emulator, tmp_path) as s:
        yield s


def sign_in(page: Page, url: str, secret: str, name: str = "") -> None:
    """Open `url`, get sent to the sign-in form, sign in, and land back on `url`."""
    page.goto(url)
    expect(page).to_have_url(re.compile(r"/admin/login\?next="))
    page.get_by_label("API key or password").fill(secret)
    if name:
        page.get_by_label("Your name, for the audit log").fill(name)
    page.get_by_role("button", name="Sign in").click()


def test_an_operator_settles_a_stuck_order(page: Page, stack: DashStack) -> None:
    """Log in, find the stuck order, read its timeline, reconcile it, refund it (an
    over-refund refused first), mark it resolved, and see each action's audit line."""
    order = run(stack.stuck_order())
    sign_in(page, f"{stack.admin}/", API_KEY, name="Dana")
    expect(page.get_by_role("heading", name="Needs attention")).to_be_visible()
    health = page.get_by_label("health")
    expect(health).to_contain_text("Needs attention")
    expect(health).to_contain_text("Stuck orders")
    row = page.get_by_role("row").filter(has_text=order["id"])
    expect(row).to_contain_text("stuck:PENDING")
    expect(row).to_contain_text("PENDING")
    row.get_by_role("link", name=order["id"]).click()

    expect(page.get_by_role("heading", name=re.compile(order["id"]))).to_contain_text(
        "needs attention: stuck:PENDING")
    timeline = page.locator("table.timeline")
    expect(timeline).to_contain_text("create at the provider")
    expect(timeline).to_contain_text("capture at the provider")
    expect(timeline).to_contain_text("CREATED → PENDING")
    expect(timeline).to_contain_text("announced order.needs_attention")
    first_call = timeline.locator("tr.k-provider_call details").first
    first_call.locator("summary").click()
    expect(first_call).to_contain_text("operation key (request id)")

    run(stack.complete_at_paypal(order["id"]))
    page.get_by_role("button", name="Reconcile now").click()
    expect(page.get_by_role("status")).to_contain_text("moved PENDING → COMPLETED")
    expect(page.locator("h1 .status")).to_have_text("COMPLETED")

    page.get_by_label("Amount (USD)").fill("99.00")
    page.get_by_role("button", name="Refund this amount").click()
    expect(page.get_by_role("status")).to_contain_text("exceeds the 25.00 USD left to refund")
    page.get_by_label("Amount (USD)").fill("5.00")
    page.get_by_label("Reason").fill("chipped mug")
    page.get_by_role("button", name="Refund this amount").click()
    expect(page.get_by_role("status")).to_contain_text("completed; the order is "
                                                      "PARTIALLY_REFUNDED")

    page.get_by_label("Note").fill("capture cleared at PayPal; 5.00 back for the chipped mug")
    page.get_by_role("button", name="Mark resolved").click()
    expect(page.get_by_role("status")).to_contain_text("resolved (stuck:PENDING)")
    expect(page.get_by_role("heading", name=re.compile(order["id"]))).not_to_contain_text(
        "needs attention")

    audit = page.locator("table.audit")
    for action in ("reconcile", "refund", "resolve"):
        expect(audit.get_by_role("row").filter(has_text=action).first).to_contain_text(
            "Dana (key_")
    expect(audit.get_by_role("row").filter(has_text="refused")).to_contain_text("refund")
    expect(timeline).to_contain_text("capture cleared at PayPal")  # the note, in history

    page.get_by_role("link", name="Needs attention").click()
    expect(page.get_by_text("Nothing needs attention.")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/admin/login"))
    page.goto(f"{stack.admin}/orders/{order['id']}")
    expect(page).to_have_url(re.compile(r"/admin/login\?next="))


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    """`paywire dev` on free loopback ports, SQLite in a temp dir."""
    options = DevOptions(port=0, emulator_port=0, log_level="warning",
                         data_dir=tmp_path_factory.mktemp("paywire-dev"))
    with running(options) as started:
        yield started


def test_paywire_dev_links_its_dashboard(page: Page, dev: DevStack) -> None:
    """`paywire dev`'s banner names the dashboard and its dev password; an order bought
    through the demo API is found there by its PayPal id, refunded in full, and audited."""
    line = next(text for text in dev.banner() if "dashboard" in text)
    url = re.search(r"http://\S+/admin/", line)
    assert url is not None and DEV_ADMIN_PASSWORD in line

    async def buy() -> dict[str, str]:
        async with httpx.AsyncClient(base_url=dev.url, timeout=30) as client:
            made = (await client.post("/v1/checkout/orders", json={
                "items": [{"sku": "mug", "quantity": 1}]})).json()
            async with httpx.AsyncClient(base_url=dev.emulator_url, timeout=30) as emulator:
                approved = await emulator.post(
                    f"/_emulator/orders/{made['provider_order_id']}/approve",
                    json={"scenario": "approve"})
                assert approved.status_code == 200, approved.text
            paid = await client.post(f"/v1/checkout/orders/{made['id']}/capture")
            assert paid.json()["status"] == "COMPLETED", paid.text
            return {"id": made["id"], "paypal": made["provider_order_id"]}

    order = run(buy())
    sign_in(page, url.group(0), DEV_ADMIN_PASSWORD)
    page.get_by_role("link", name="Orders", exact=True).click()
    page.get_by_role("searchbox", name="Id").fill(order["paypal"])
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=order["id"]).click()
    page.get_by_role("button", name="Refund all that is left").click()
    expect(page.get_by_role("status")).to_contain_text("the order is REFUNDED")
    expect(page.locator("table.audit")).to_contain_text("refund")
    expect(page.locator("table.audit")).to_contain_text("admin")
