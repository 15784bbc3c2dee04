"""The Lambda handlers run locally the way AWS runs them (tests, `paywire dev --aws`).

- `ApiGateway`: an ASGI app standing where API Gateway stands: each HTTP request becomes an
  HTTP API event (`paywire.aws.events.http_event`, bodies base64-encoded if asked), the HTTP
  handler answers it in a worker thread, and its answer goes back as the HTTP response. PayPal's
  (the emulator's) webhooks can be delivered to it like to the real API; given the webhook
  function's handler, it sends the webhook paths there, as the template's routes do.
- `poll_queue`: one poll of Lambda's SQS event source mapping: `ReceiveMessage` (all
  attributes), the event built from that answer, the consumer invoked, the messages it did not
  report failed deleted (the failed ones come back after the visibility timeout; after
  `maxReceiveCount` receives the queue moves them to its dead-letter queue).
- `invoke`: every local invocation goes through it, one at a time per process. Lambda runs one
  invocation at a time in an execution environment, and the handlers' log context (function
  name, request id: Powertools keeps it process-wide) relies on that; run side by side in one
  process (`paywire dev --aws`), invocations would stamp each other's names on their lines.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Receive, Scope, Send

from paywire.api.webhooks import RAW_BODY_PATHS as WEBHOOK_PATHS
from paywire.aws.events import LocalContext, http_answer, http_event, sqs_event

Handler = Callable[[dict[str, Any], Any], Any]
_ONE_AT_A_TIME = threading.Lock()


def invoke(handler: Handler, event: dict[str, Any], context: Any) -> Any:
    """`handler(event, context)`, alone in this process (see the module doc)."""
    with _ONE_AT_A_TIME:
        return handler(event, context)


class ApiGateway:
    """An ASGI front for an HTTP API Lambda handler."""

    def __init__(self, handler: Handler, *, base64_bodies: bool | None = None,
                 function_name: str = "paywire-http", timeout_seconds: float = 30.0,
                 webhooks: Handler | None = None,
                 webhooks_function_name: str = "paywire-webhooks") -> None:
        self.handler = handler
        self.webhooks = webhooks
        self.webhooks_function_name = webhooks_function_name
        self.base64_bodies = base64_bodies
        self.function_name = function_name
        self.timeout_seconds = timeout_seconds
        self.invocations = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request through the handler (lifespan messages are acknowledged)."""
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        client = scope.get("client") or ("127.0.0.1", 0)
        raw_path = scope.get("raw_path")
        path = raw_path.decode("latin-1") if raw_path else scope["path"]
        event = http_event(scope["method"], path,
                           query=scope.get("query_string", b"").decode("latin-1"),
                           headers=headers, body=b"".join(chunks),
                           base64_body=self.base64_bodies, source_ip=client[0])
        handler, name = self.handler, self.function_name
        if self.webhooks is not None and scope["method"] == "POST" and (
                scope["path"] in WEBHOOK_PATHS):
            handler, name = self.webhooks, self.webhooks_function_name
        context = LocalContext(function_name=name, timeout_seconds=self.timeout_seconds)
        self.invocations += 1
        answer = http_answer(await asyncio.to_thread(invoke, handler, event, context))
        out_headers = [(k.encode("latin-1"), v.encode("latin-1"))
                       for k, v in answer.headers.items() if k != "content-length"]
        out_headers += [(b"set-cookie", c.encode("latin-1")) for c in answer.cookies]
        out_headers.append((b"content-length", str(len(answer.body)).encode()))
        await send({"type": "http.response.start", "status": answer.status,
                    "headers": out_headers})
        await send({"type": "http.response.body", "body": answer.body})


def queue_arn(client: Any, queue_url: str) -> str:
    """The ARN of the queue at `queue_url`."""
    answer = client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    return str(answer["Attributes"]["QueueArn"])


@dataclass
class Poll:
    """What one poll did: the event sent, the handler's answer, the messages deleted."""

    event: dict[str, Any]
    answer: Any = None
    deleted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def received(self) -> int:
        """How many messages the poll received."""
        return len(self.event["Records"])


def poll_queue(client: Any, queue_url: str, handler: Handler, *, arn: str | None = None,
               max_messages: int = 10, wait_seconds: int = 0,
               visibility_timeout: int | None = None,
               context: LocalContext | None = None) -> Poll:
    """Receive one batch, invoke `handler` with it, delete what it did not report failed.

    `visibility_timeout` overrides the queue's for this receive (0: a failed message is
    visible again at once). A handler that raises fails the whole batch (nothing deleted), as
    in Lambda.
    """
    options: dict[str, Any] = {}
    if visibility_timeout is not None:
        options["VisibilityTimeout"] = visibility_timeout
    answer = client.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=max_messages,
                                    WaitTimeSeconds=wait_seconds, AttributeNames=["All"],
                                    MessageAttributeNames=["All"], **options)
    event = sqs_event(answer, arn or queue_arn(client, queue_url))
    poll = Poll(event)
    if not poll.received:
        return poll
    poll.answer = invoke(handler, event, context or LocalContext(function_name="paywire-sqs"))
    failures = (poll.answer or {}).get("batchItemFailures", [])
    poll.failed = [str(f["itemIdentifier"]) for f in failures]
    done = [r for r in event["Records"] if r["messageId"] not in poll.failed]
    if done:
        client.delete_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(done)])
        poll.deleted = [r["messageId"] for r in done]
    return poll
