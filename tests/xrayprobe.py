"""A purchase through the Lambda handlers in an interpreter of its own, traced as in Lambda.

Run by tests/integration/test_aws_tracing.py with Lambda's environment (`LAMBDA_TASK_ROOT`,
`AWS_XRAY_DAEMON_ADDRESS` on the test's UDP socket, the stage's settings) and one argument, the
JSON of {"emulator": url, "queue_url": url, "api_key": key}. Each invocation runs under a trace
header of its own (`_X_AMZN_TRACE_ID`, sampled), as Lambda sets it; the probe's own calls (the
buyer's approval, reading the queue) run under an unsampled one, so they send nothing. Prints
one JSON line: each invocation's trace id and what it answered.

Patching botocore and httpx cannot be undone in a process, hence an interpreter of its own.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from typing import Any

import boto3
import httpx

from paywire.aws.drainer import handler as drainer
from paywire.aws.events import LocalContext, http_answer, http_event, sqs_event
from paywire.aws.http import handler as http
from paywire.aws.local import queue_arn
from paywire.aws.sqs_consumer import handler as consumer


def trace_header(sampled: bool) -> tuple[str, str]:
    """A fresh Lambda trace header (and its root trace id)."""
    root = f"1-{secrets.token_hex(4)}-{secrets.token_hex(12)}"
    return root, f"Root={root};Parent={secrets.token_hex(8)};Sampled={int(sampled)}"


def untraced() -> None:
    """An unsampled header: what the probe itself does is not recorded."""
    os.environ["_X_AMZN_TRACE_ID"] = trace_header(sampled=False)[1]


def invoke(traces: dict[str, str], name: str, handler: Any, event: dict[str, Any],
           function: str) -> Any:
    """One invocation under a sampled trace header of its own."""
    root, os.environ["_X_AMZN_TRACE_ID"] = trace_header(sampled=True)
    traces[name] = root
    try:
        return handler(event, LocalContext(function_name=function))
    finally:
        untraced()


def main() -> None:
    """Create, approve, capture and read an order, drain the outbox, deliver a batch; then an
    event the HTTP handler cannot take (it raises)."""
    given = json.loads(sys.argv[1])
    traces: dict[str, str] = {}
    untraced()
    body = json.dumps({"items": [{"sku": "mug", "quantity": 1}]}).encode()
    created = http_answer(invoke(traces, "create", http, http_event(
        "POST", "/v1/checkout/orders", body=body,
        headers={"content-type": "application/json"}), "paywire-http"))
    assert created.status == 201, created.body
    order = created.json()
    with httpx.Client(base_url=given["emulator"], timeout=10) as emulator:
        approved = emulator.post(f"/_emulator/orders/{order['provider_order_id']}/approve",
                                 json={"scenario": "approve"})
        assert approved.status_code == 200, approved.text
    captured = http_answer(invoke(traces, "capture", http, http_event(
        "POST", f"/v1/checkout/orders/{order['id']}/capture"), "paywire-http"))
    assert captured.status == 200, captured.body
    read = http_answer(invoke(traces, "read", http, http_event(
        "GET", f"/v1/orders/{order['id']}",
        headers={"authorization": f"Bearer {given['api_key']}"}), "paywire-http"))
    assert read.status == 200, read.body
    drained = invoke(traces, "drain", drainer, {"source": "aws.events"}, "paywire-drainer")
    sqs = boto3.client("sqs")
    answer = sqs.receive_message(QueueUrl=given["queue_url"], MaxNumberOfMessages=10,
                                 AttributeNames=["All"], MessageAttributeNames=["All"])
    event = sqs_event(answer, queue_arn(sqs, given["queue_url"]))
    delivered = invoke(traces, "deliver", consumer, event, "paywire-sqs")
    try:
        invoke(traces, "broken", http, {"not": "an API Gateway event"}, "paywire-http")
    except Exception as exc:  # noqa: BLE001 - the failure is the point; the test reads it
        failed = type(exc).__name__
    else:
        raise AssertionError("Mangum took an event that is not API Gateway's")
    print(json.dumps({"traces": traces, "order_id": order["id"], "drained": drained,
                      "messages": [r["messageId"] for r in event["Records"]],
                      "delivered": delivered, "failed": failed}))


if __name__ == "__main__":
    main()
