"""A buyer pays in headless Chromium through `paywire dev`'s demo shop; `paywire dev` itself."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Page, Request, expect

from paywire.dev.runner import running
from paywire.dev.stack import DevOptions, DevStack
from paywire.testing import free_port, free_ports

BASKET = {"mug": 2, "stickers": 1}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    """The dev stack (emulator, paywire, shop) on free loopback ports, SQLite in a temp dir."""
    options = DevOptions(port=0, emulator_port=0, log_level="warning",
                         data_dir=tmp_path_factory.mktemp("paywire-dev"))
    with running(options) as started:
        yield started


def fill_basket(page: Page, stack: DevStack) -> None:
    """Open the shop and set the basket's quantities once the catalog is listed."""
    page.goto(stack.shop_url)
    for sku, quantity in BASKET.items():
        page.fill(f"tr[data-sku={sku}] input.qty", str(quantity))
    expect(page.locator("button.paypal-button")).to_be_visible()


def expected_total(stack: DevStack) -> dict[str, str]:
    """The basket's total at the server's catalog prices."""
    catalog = httpx.get(f"{stack.url}/v1/catalog").json()
    prices = {p["sku"]: p["unit_amount"] for p in catalog["products"]}
    total = sum(Decimal(prices[sku]["value"]) * qty for sku, qty in BASKET.items())
    currency = {prices[sku]["currency_code"] for sku in BASKET}.pop()
    return {"currency_code": currency, "value": f"{total:.2f}"}


@pytest.mark.browser
def test_buyer_pays_through_sdk_buttons(page: Page, stack: DevStack) -> None:
    """Approving in the SDK popup lands on a COMPLETED receipt, priced by the server."""
    sent: list[Any] = []

    def record(request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/v1/checkout/orders"):
            sent.append(request.post_data_json)

    page.on("request", record)
    fill_basket(page, stack)
    with page.expect_popup() as popup_info:
        page.click("button.paypal-button")
    popup = popup_info.value
    popup.wait_for_url("**/checkoutnow?**")
    [paypal_id] = parse_qs(urlsplit(popup.url).query)["token"]  # the SDK's createOrder answer
    total = expected_total(stack)
    assert popup.locator(".amount").inner_text().split() == [total["value"],
                                                             total["currency_code"]]
    popup.click("#approve")
    page.wait_for_url("**/shop/receipt/**")
    expect(page.locator("#order-status")).to_have_text("COMPLETED")

    assert sent == [{"items": [{"sku": s, "quantity": q} for s, q in BASKET.items()],
                     "intent": "CAPTURE"}]
    order = httpx.get(f"{stack.url}/v1/orders/{page.inner_text('#order-id')}").json()
    assert (order["status"], order["amount"], order["approve_url"]) == ("COMPLETED", total, None)
    assert "provider_order_id" not in order and "capture_id" not in order  # the buyer's view
    with httpx.Client(base_url=stack.emulator_url, timeout=10) as paypal:
        token = paypal.post("/v1/oauth2/token", data={"grant_type": "client_credentials"},
                            auth=(stack.credentials.client_id,
                                  stack.credentials.client_secret)).json()["access_token"]
        at_paypal = paypal.get(f"/v2/checkout/orders/{paypal_id}",
                               headers={"Authorization": f"Bearer {token}"}).json()
    capture = at_paypal["purchase_units"][0]["payments"]["captures"][0]
    assert (at_paypal["status"], capture["amount"]) == ("COMPLETED", total)


@pytest.mark.browser
def test_buyer_cancels_in_popup(page: Page, stack: DevStack) -> None:
    """Cancelling in the popup tells the buyer nothing was charged; no receipt is shown."""
    fill_basket(page, stack)
    with page.expect_popup() as popup_info:
        page.click("button.paypal-button")
    popup = popup_info.value
    popup.wait_for_url("**/checkoutnow?**")
    popup.click("#cancel")
    expect(page.locator("#status")).to_contain_text("cancelled")
    assert "/receipt/" not in page.url


@pytest.mark.browser
def test_buyer_without_sdk_returns_to_shop(page: Page, stack: DevStack) -> None:
    """A buyer sent to approve_url comes back to the shop's return page, which captures."""
    created = httpx.post(f"{stack.url}/v1/checkout/orders",
                         json={"items": [{"sku": "mug", "quantity": 1}]})
    assert created.status_code == 201, created.text
    page.goto(created.json()["approve_url"])
    page.click("#approve")
    page.wait_for_url("**/shop/receipt/**")
    expect(page.locator("#order-status")).to_have_text("COMPLETED")
    assert page.inner_text("#order-id") == created.json()["id"]
    # paywire's outbox worker (on in `paywire dev`) sends the signed order.completed callback;
    # the shop verifies it with paywire.verify_delivery and shows the order as fulfilled.
    expect(page.locator("#fulfilment")).to_have_text("fulfilled", timeout=15_000)


@pytest.mark.browser
def test_empty_basket_opens_no_popup(page: Page, stack: DevStack) -> None:
    """Clicking the button with no quantities asks for one and creates no order."""
    page.goto(stack.shop_url)
    page.click("button.paypal-button")
    expect(page.locator("#status")).to_contain_text("at least one product")
    assert len(page.context.pages) == 1


def dev_command(tmp_path: Path, port: int, emulator_port: int) -> subprocess.Popen[str]:
    """`paywire dev` as a child process, away from the repository's `.env`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYWIRE_")}
    argv = [sys.executable, "-c", "from paywire.cli import main; main()", "dev",
            "--port", str(port), "--emulator-port", str(emulator_port),
            "--data-dir", str(tmp_path / "data")]
    return subprocess.Popen(argv, cwd=tmp_path, env=env, text=True,  # noqa: S603 - fixed argv
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_healthy(proc: subprocess.Popen[str], url: str, timeout: float = 30.0) -> None:
    """Poll `url`/healthz until it answers 200 (or the process dies)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"paywire dev exited with {proc.returncode}:\n{out}\n{err}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"paywire dev did not answer {url}/healthz within {timeout:.0f} s")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_dev_command_serves_and_stops_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    """`paywire dev` serves /healthz, the shop and the emulator, and exits 0 on a signal."""
    port, emulator_port = free_ports(2)
    url = f"http://127.0.0.1:{port}"
    proc = dev_command(tmp_path, port, emulator_port)
    try:
        wait_healthy(proc, url)
        shop = httpx.get(f"{url}/", follow_redirects=True)
        assert shop.status_code == 200 and 'id="paypal-buttons"' in shop.text
        assert f"http://127.0.0.1:{emulator_port}/sdk/js?client-id=" in shop.text
        sdk = httpx.get(f"http://127.0.0.1:{emulator_port}/sdk/js",
                        params={"client-id": "paywire-dev-client-id"})
        assert sdk.status_code == 200
        started = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert time.monotonic() - started < 5
    assert "Traceback" not in err, err
    assert f"{url}/shop/" in out and "paywire dev: stopped." in out
    assert (tmp_path / "data" / "paywire.db").exists()


def test_dev_command_reports_a_busy_port(tmp_path: Path) -> None:
    """A port in use is a one-line error naming the option, exit code 1, no traceback."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = dev_command(tmp_path, port, free_port())
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert f"--port {port}" in err and "Traceback" not in err, err


def test_dev_command_refuses_one_port_for_both(tmp_path: Path) -> None:
    """--port equal to --emulator-port is refused at once, naming --port: nothing starts."""
    port = free_port()
    proc = dev_command(tmp_path, port, port)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert f"--port {port}" in err and "Traceback" not in err, err
    assert "oauth2" not in out + err  # the emulator never served a call
