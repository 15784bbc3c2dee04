"""`paywire dev --aws`: the demo shop bought from in headless Chromium, served by paywire's Lambda
handlers behind a local API Gateway, DynamoDB, SQS and Secrets Manager on a moto server process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from playwright.sync_api import Page, expect

from paywire.devserver import DevOptions, running
from paywire.devserver_aws import DLQ, QUEUE, TABLE, AwsDevStack
from paywire.testing import free_port


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsDevStack]:
    """The `dev --aws` stack on free loopback ports."""
    options = DevOptions(port=0, emulator_port=0, log_level="warning",
                         data_dir=tmp_path_factory.mktemp("paywire-dev-aws"))
    def environment() -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if k.startswith(("PAYWIRE_", "AWS_"))}

    before = environment()
    with running(options, aws=True) as started:
        assert isinstance(started, AwsDevStack)
        assert os.environ["PAYWIRE_STAGE"] == "dev"  # the handlers' configuration, as in Lambda
        yield started
    assert environment() == before, "the AWS dev stack left its environment behind"


def aws(stack: AwsDevStack, service: str) -> Any:
    """A boto3 client for the stack's moto server."""
    env = stack.moto.env
    return boto3.client(service, endpoint_url=stack.moto.endpoint_url,
                        region_name=env["AWS_DEFAULT_REGION"],
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])


@pytest.mark.browser
def test_buyer_pays_and_the_shop_is_told_through_sqs(page: Page, stack: AwsDevStack) -> None:
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
    expect(page.locator("#fulfilment")).to_have_text("fulfilled", timeout=20_000)

    order_id = page.inner_text("#order-id")
    order = httpx.get(f"{stack.url}/v1/orders/{order_id}").json()
    assert order["status"] == "COMPLETED"
    table = aws(stack, "dynamodb")
    scanned = table.scan(TableName=TABLE)["Items"]
    assert any(order_id in str(item) for item in scanned), "the order is not in DynamoDB"
    sqs = aws(stack, "sqs")
    dlq_url = sqs.get_queue_url(QueueName=DLQ)["QueueUrl"]
    dead = sqs.get_queue_attributes(
        QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    assert dead["ApproximateNumberOfMessages"] == "0"
    assert sqs.get_queue_url(QueueName=QUEUE)
    assert stack.counters["delivered"] >= 1 and stack.counters["drains"] >= 1


def test_dev_aws_command_serves_and_stops_cleanly(tmp_path: Path) -> None:
    """`paywire dev --aws` answers through the handler, prints its banner and exits 0 on SIGTERM,
    taking its moto server process with it."""
    port, emulator_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYWIRE_", "AWS_"))}
    proc = subprocess.Popen(  # noqa: S603 - fixed argv
        [sys.executable, "-c", "from paywire.cli import main; main()", "dev", "--aws",
         "--port", str(port), "--emulator-port", str(emulator_port),
         "--data-dir", str(tmp_path / "data")],
        cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "paywire dev --aws did not come up"
            time.sleep(0.2)
        catalog = httpx.get(f"{url}/v1/catalog")
        assert catalog.status_code == 200 and catalog.json()["products"]
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert time.monotonic() - started < 15
    assert "Traceback" not in err, err
    assert "paywire dev --aws" in out and "moto (AWS)" in out and "paywire dev: stopped." in out
    moto_port = out.split("moto (AWS)")[1].split("http://127.0.0.1:")[1].split()[0]
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{moto_port}/moto-api/data.json", timeout=2)
