"""`paywire dev --aws`: the demo shop bought from in headless Chromium, served by paywire's Lambda
handlers behind a local API Gateway, with DynamoDB, SQS and Secrets Manager on a moto server
process. The stack runs as a real `paywire dev --aws` process (the handlers configure logging
and the environment process-wide, as in Lambda, so never inside the test process)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from paywire.dev.aws import DLQ, QUEUE, TABLE
from paywire.testing import MotoServer, free_ports


@dataclass
class DevAws:
    """A running `paywire dev --aws` and what its banner says."""

    proc: subprocess.Popen[str]
    url: str
    emulator_url: str
    moto_url: str
    out: Path
    err: Path

    @property
    def shop_url(self) -> str:
        """The demo shop's product page."""
        return f"{self.url}/shop/"

    def aws(self, service: str) -> Any:
        """A boto3 client for the stack's moto server."""
        return MotoServer(port=int(self.moto_url.rsplit(":", 1)[1])).client(service)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> float:
        """Signal the process, wait for it; the seconds it took to exit."""
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return time.monotonic() - started


def start_dev_aws(tmp_path: Path) -> DevAws:
    """`paywire dev --aws` as a child process (output to files), up and serving."""
    port, emulator_port = free_ports(2)
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYWIRE_", "AWS_"))}
    out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, "-c", "from paywire.cli import main; main()", "dev", "--aws",
             "--port", str(port), "--emulator-port", str(emulator_port),
             "--data-dir", str(tmp_path / "data")],
            cwd=tmp_path, env=env, text=True, stdout=stdout, stderr=stderr)
    deadline = time.monotonic() + 60
    while "Press Ctrl-C to stop." not in out.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"paywire dev --aws did not start:\n{out.read_text()}\n"
                        f"{err.read_text()}")
        time.sleep(0.1)
    moto = re.search(r"moto \(AWS\)\s+(http://\S+)", out.read_text())
    assert moto is not None, out.read_text()
    return DevAws(proc, url, f"http://127.0.0.1:{emulator_port}", moto.group(1), out, err)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevAws]:
    """One `paywire dev --aws` for the module."""
    dev = start_dev_aws(tmp_path_factory.mktemp("paywire-dev-aws"))
    try:
        yield dev
    finally:
        dev.stop()


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Whether `condition()` holds within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


@pytest.mark.browser
def test_buyer_pays_and_the_shop_is_told_through_sqs(page: Page, stack: DevAws) -> None:
    """SDK buttons → approval popup → capture through the HTTP handler; the signed webhook and
    the announcement's trip (DynamoDB outbox → drainer → SQS → consumer → shop) end in a
    fulfilled receipt; the order lives in DynamoDB and nothing reached the dead-letter queue."""
    page.goto(stack.shop_url)
    page.fill("tr[data-sku=mug] input.qty", "2")
    with page.expect_popup() as popup_info:
        page.click("button.paypal-button")
    popup = popup_info.value
    popup.wait_for_url("**/checkoutnow?**")
    popup.click("#approve")
    page.wait_for_url("**/shop/receipt/**")
    expect(page.locator("#order-status")).to_have_text("COMPLETED")
    # The only way to the shop in this stack is the SQS consumer (no in-process worker runs).
    expect(page.locator("#fulfilment")).to_have_text("fulfilled", timeout=20_000)

    order_id = page.inner_text("#order-id")
    order = httpx.get(f"{stack.url}/v1/orders/{order_id}").json()
    assert order["status"] == "COMPLETED"
    scanned = stack.aws("dynamodb").scan(TableName=TABLE)["Items"]
    assert any(order_id in str(item) for item in scanned), "the order is not in DynamoDB"
    # The consumer logs its batch and the poller deletes the message after the handler returns,
    # i.e. just after the shop heard of the order (the receipt polls every second): wait.
    sqs = stack.aws("sqs")
    counts: dict[str, Any] = {}

    def queues_empty() -> bool:
        for name in (QUEUE, DLQ):
            queue_url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            counts[name] = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=[
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
        return all(set(c["Attributes"].values()) == {"0"} for c in counts.values())

    def consumer_logged() -> bool:
        return '"function_name":"paywire-consumer"' in stack.out.read_text().replace(" ", "")

    assert eventually(queues_empty), counts
    assert eventually(consumer_logged), stack.out.read_text()[-2000:]
    # Each line names the function that wrote it, though all of them run in one process.
    batches = [line.replace(" ", "") for line in stack.out.read_text().splitlines()
               if '"name": "paywire.aws.sqs"' in line or '"name":"paywire.aws.sqs"' in line]
    assert batches and all('"function_name":"paywire-consumer"' in b for b in batches), batches


def test_dev_aws_command_stops_cleanly_with_its_moto(tmp_path: Path) -> None:
    """`paywire dev --aws` answers through the handler and exits 0 on SIGTERM, taking its moto
    server process with it."""
    dev = start_dev_aws(tmp_path)
    try:
        catalog = httpx.get(f"{dev.url}/v1/catalog", timeout=30)
        assert catalog.status_code == 200 and catalog.json()["products"]
        assert httpx.get(f"{dev.moto_url}/moto-api/data.json").status_code == 200
    finally:
        took = dev.stop()
    assert dev.proc.returncode == 0, dev.err.read_text()
    assert took < 15
    err = dev.err.read_text()
    assert "Traceback" not in err, err
    assert "paywire dev: stopped." in dev.out.read_text()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{dev.moto_url}/moto-api/data.json", timeout=2)
