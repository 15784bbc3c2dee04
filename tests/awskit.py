"""Helpers for the AWS suites: queues and a stage's secrets on the moto server, a verifying
shop, logging hygiene, a clock that moves when told.

Everything AWS goes to the session's moto server process over HTTP; each test makes its own
queues (and stages, conftest's `stage`) under fresh names. The shop is a real HTTP server that
checks every delivery with `paywire.verify_delivery` and counts what it accepted per message id.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from paywire import verify_delivery
from paywire.aws import logs
from paywire.domain.errors import SignatureError
from paywire.testing import MotoServer, ServerThread

DEDUP_VAR = "POWERTOOLS_LOG_DEDUPLICATION_DISABLED"
SHOP_SECRET = "whsec_" + base64.b64encode(b"paywire-aws-shop-secret-0123456").decode()
TEMPLATE_MAX_RECEIVES = 200  # deploy/aws/template.yaml's MaxReceiveCount default (a test compares)
# A stage's secrets, as `Stage` writes them by default.
STAGE_CLIENT_SECRET = "pp-client-secret-7f3a9c"
STAGE_API_KEYS = ["stage-admin-key-aaaaaaaaaaaa", "stage-server-key-bbbbbbbbbbb"]
STAGE_WHSEC = "whsec_c3RhZ2UtZnVsZmlsbWVudC1zZWNyZXQtMDE="


def client(moto: MotoServer, service: str) -> Any:
    """A boto3 client for `service` on the moto server."""
    return moto.client(service)


class Clock:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        """The current reading."""
        return self.now


@dataclass
class Stage:
    """A fresh stage name with Secrets Manager and SSM clients on the moto server."""

    name: str
    sm: Any
    ssm: Any

    @property
    def paypal_id(self) -> str:
        """The stage's PayPal secret id."""
        return f"paywire/{self.name}/paypal"

    @property
    def app_id(self) -> str:
        """The stage's app secret id."""
        return f"paywire/{self.name}/app"

    def put_paypal(self, environment: str = "sandbox", secret: str = STAGE_CLIENT_SECRET,
                   **extra: Any) -> None:
        """Create (or replace the value of) the stage's PayPal secret."""
        value = json.dumps({"environment": environment, "client_id": f"id-{self.name}",
                            "client_secret": secret, "webhook_id": "WH-STAGE", **extra})
        self._put(self.paypal_id, value)

    def put_app(self, **values: Any) -> None:
        """Create (or replace the value of) the stage's app secret."""
        self._put(self.app_id, json.dumps(values or {
            "api_keys": STAGE_API_KEYS, "fulfilment_secret": STAGE_WHSEC,
            "fulfilment_url": "https://shop.example/from-secret"}))

    def _put(self, secret_id: str, value: str) -> None:
        try:
            self.sm.put_secret_value(SecretId=secret_id, SecretString=value)
        except self.sm.exceptions.ResourceNotFoundException:
            self.sm.create_secret(Name=secret_id, SecretString=value)

    def param(self, name: str, value: str, kind: str = "String") -> None:
        """An SSM parameter /paywire/<stage>/<name>."""
        self.ssm.put_parameter(Name=f"/paywire/{self.name}/{name}", Value=value, Type=kind,
                               Overwrite=True)


@dataclass(frozen=True)
class Queue:
    """A queue on the moto server (and its dead-letter queue, if it has one)."""

    url: str
    arn: str
    dlq_url: str | None = None

    @property
    def fifo(self) -> bool:
        """True for a FIFO queue."""
        return self.url.endswith(".fifo")


def make_queue(sqs: Any, *, fifo: bool = False, max_receives: int | None = None,
               visibility: int = 30) -> Queue:
    """A fresh queue (FIFO if asked; with a DLQ and that redrive `maxReceiveCount` if given)."""
    name = f"paywire-{secrets.token_hex(5)}"
    suffix = ".fifo" if fifo else ""
    base = {"VisibilityTimeout": str(visibility)}
    if fifo:
        base["FifoQueue"] = "true"
    dlq_url = None
    attributes = dict(base)
    if max_receives is not None:
        dlq_url = sqs.create_queue(QueueName=f"{name}-dlq{suffix}", Attributes=base)["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": dlq_arn,
                                                  "maxReceiveCount": max_receives})
    url = sqs.create_queue(QueueName=f"{name}{suffix}", Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    return Queue(url, arn, dlq_url)


def drain_queue(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every message visible on the queue now (received with all attributes, then deleted)."""
    found: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"],
                                  MessageAttributeNames=["All"]).get("Messages", [])
        if not got:
            return found
        found.extend(got)
        sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])


def move_messages(sqs: Any, source: Queue | str, destination: Queue) -> list[str]:
    """What `aws sqs start-message-move-task --source-arn <dlq> [--destination-arn <queue>]`
    does, by hand: the moto server (moto 5.2.5, as pinned) answers StartMessageMoveTask with a
    500, its "action has not been implemented" (a test in test_aws_sqs.py checks it still does).

    As AWS documents the move: every message of the dead-letter queue, oldest first, goes to
    the destination as a new message (a new message id and enqueue time, its retention and
    receive count starting over) with its body and message attributes unchanged (SQS neither
    filters nor modifies what it redrives), and is deleted from the dead-letter queue once
    sent. Standard queues only (the template's). The new messages' ids, in order."""
    url = source if isinstance(source, str) else (source.dlq_url or "")
    assert not destination.fifo and url, "standard queues with a dead-letter queue only"
    moved: list[str] = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"],
                                  MessageAttributeNames=["All"],
                                  VisibilityTimeout=60).get("Messages", [])
        if not got:
            return moved
        got.sort(key=lambda m: int(m["Attributes"]["SentTimestamp"]))
        for message in got:
            attributes = {name: {k: v for k, v in value.items()
                                 if k in ("DataType", "StringValue", "BinaryValue")}
                          for name, value in message.get("MessageAttributes", {}).items()}
            sent = sqs.send_message(QueueUrl=destination.url, MessageBody=message["Body"],
                                    **({"MessageAttributes": attributes} if attributes else {}))
            moved.append(str(sent["MessageId"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


@dataclass
class Shop:
    """The shop's fulfilment endpoint: verifies, counts, and refuses chosen messages."""

    accepted: Counter[str] = field(default_factory=Counter)  # message id → 2xx answers
    seen: list[str] = field(default_factory=list)  # every verified request's id, in order
    types: dict[str, str] = field(default_factory=dict)  # message id → type
    traces: dict[str, str | None] = field(default_factory=dict)  # message id → its trace id
    bad: int = 0
    refuse: set[str] = field(default_factory=set)  # answer 503 to these message ids
    gone: set[str] = field(default_factory=set)  # answer 410 to these
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.server = ServerThread(Starlette(routes=[Route("/fulfil", self.fulfil,
                                                           methods=["POST"])]))

    @property
    def url(self) -> str:
        """The endpoint's URL."""
        return f"{self.server.url}/fulfil"

    async def fulfil(self, request: Request) -> Response:
        """Verify the Standard Webhooks signature; 503/410 for refused ids, else 204."""
        body = await request.body()
        try:
            delivery = verify_delivery(body, request.headers, SHOP_SECRET)
        except SignatureError:
            with self.lock:
                self.bad += 1
            return Response(status_code=400)
        with self.lock:
            self.seen.append(delivery.id)
            self.types[delivery.id] = json.loads(body)["type"]
            self.traces[delivery.id] = delivery.trace_id
            if delivery.id in self.gone:
                return Response(status_code=410)
            if delivery.id in self.refuse:
                return Response(status_code=503)
            self.accepted[delivery.id] += 1
        return Response(status_code=204)


@contextmanager
def running_shop() -> Iterator[Shop]:
    """A shop on a free loopback port for the block."""
    shop = Shop()
    shop.server.start()
    try:
        yield shop
    finally:
        shop.server.stop()


@contextmanager
def restored_logging() -> Iterator[None]:
    """Let the handlers configure the `paywire` logger (Powertools) inside the block, and put
    it back as it was afterwards, so other suites' log capture is unaffected."""
    paywire = logging.getLogger("paywire")
    saved = (paywire.level, list(paywire.handlers), paywire.propagate, dict(vars(paywire)))
    root_filters = {h: list(h.filters) for h in logging.root.handlers}
    dedup = os.environ.get(DEDUP_VAR)
    # Powertools would filter paywire's records out of pytest's own root handlers.
    os.environ[DEDUP_VAR] = "true"
    logs.logger.cache_clear()
    try:
        yield
    finally:
        if dedup is None:
            os.environ.pop(DEDUP_VAR, None)
        else:
            os.environ[DEDUP_VAR] = dedup
        level, handlers, propagate, attributes = saved
        for name in ("init", "powertools_handler", "powertools_buffer_config",
                     "powertools_buffer_cache"):
            if name not in attributes and hasattr(paywire, name):
                delattr(paywire, name)
        paywire.setLevel(level)
        paywire.handlers = handlers
        paywire.propagate = propagate
        for handler, filters in root_filters.items():
            handler.filters = filters
        logs.logger.cache_clear()
