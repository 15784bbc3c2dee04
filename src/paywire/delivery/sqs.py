"""SQS as an outbox target: due messages handed to a queue whose consumer delivers them.

Each outbox message becomes one SQS message whose body is a JSON envelope::

    {"id": <message id>, "key": <fact key>, "type": "order.completed", "order_id": ...,
     "payload": {...}, "created_at": <ISO 8601, UTC>}

with the message id (and type) also as message attributes, so a queue's tools can see them
without parsing the body, and the message's W3C `traceparent` (`paywire.domain.trace`) as a
`traceparent` attribute, for a shop that reads the queue itself (paywire's own consumer takes
the trace from the outbox row). On a FIFO queue (its name ends `.fifo`) the order id is the
`MessageGroupId` (one order's announcements stay in order) and the message id is the
`MessageDeduplicationId`. FIFO deduplication lasts five minutes only, so the consumer still
deduplicates on the message id (the outbox row says whether it was delivered).

By default the target `hands_off`: the row becomes `queued` and the consumer marks it
`delivered` (`paywire.services.queue_delivery`). A shop that reads the queue itself builds it
with `hands_off=False`, and an accepted message is then `delivered`.

boto3 is synchronous: every call runs in a worker thread (`asyncio.to_thread`). Throttling,
5xx answers and connection failures are retryable; a missing queue, a denied access or a
refused message are not (they will not succeed by retrying). Errors name the AWS error code
and status only, never a request's signature or credentials.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from paywire.domain import trace
from paywire.domain.errors import ConfigError, DeliveryError, ValidationError
from paywire.ports import OutboxMessage

# AWS error codes that a retry may get past (besides any 5xx and 429).
RETRYABLE_CODES = frozenset({
    "Throttling", "ThrottlingException", "RequestThrottled", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException",
    "ServiceUnavailable", "InternalError", "InternalFailure", "RequestTimeout",
    "RequestTimeoutException", "KmsThrottled", "KMS.ThrottlingException",
})
ENVELOPE_FIELDS = ("id", "key", "type", "order_id", "payload", "created_at")
MAX_BODY_BYTES = 256 * 1024  # SQS's message size limit
# The SQS client's timeouts and retries (as the DynamoDB store's client: `store.dynamo`).
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 10.0
MAX_ATTEMPTS = 3


def is_fifo(queue_url: str) -> bool:
    """True for a FIFO queue (AWS requires its name to end in `.fifo`)."""
    return queue_url.rstrip("/").endswith(".fifo")


def envelope(message: OutboxMessage) -> str:
    """The SQS message body for `message` (stable across attempts: sorted, compact JSON)."""
    body = {"id": message.id, "key": message.key, "type": message.type,
            "order_id": message.order_id, "payload": message.payload,
            "created_at": message.created_at.astimezone(UTC).isoformat()}
    return json.dumps(body, separators=(",", ":"), sort_keys=True, default=str)


@dataclass(frozen=True, slots=True)
class Envelope:
    """An outbox message as read back from a queue message's body."""

    id: str
    key: str
    type: str
    order_id: str
    payload: dict[str, Any]
    created_at: datetime


def read_envelope(body: str) -> Envelope:
    """Parse a queue message body written by `envelope`; ValidationError if it is not one."""
    try:
        raw = json.loads(body)
    except (TypeError, ValueError) as exc:
        raise ValidationError("the queue message body is not JSON", field="body") from exc
    if not isinstance(raw, dict):
        raise ValidationError("the queue message body is not a JSON object", field="body")
    missing = [f for f in ENVELOPE_FIELDS if f not in raw]
    if missing:
        raise ValidationError(f"the queue message body lacks {', '.join(missing)}", field="body")
    for name in ("id", "key", "type", "order_id"):
        if not isinstance(raw[name], str) or not raw[name]:
            raise ValidationError(f"the queue message's {name} is not a non-empty string",
                                  field=name)
    if not isinstance(raw["payload"], dict):
        raise ValidationError("the queue message's payload is not an object", field="payload")
    try:
        created = datetime.fromisoformat(str(raw["created_at"]))
    except ValueError as exc:
        raise ValidationError("the queue message's created_at is not an ISO 8601 time",
                              field="created_at") from exc
    if created.tzinfo is None:
        raise ValidationError("the queue message's created_at has no time zone",
                              field="created_at")
    return Envelope(id=raw["id"], key=raw["key"], type=raw["type"], order_id=raw["order_id"],
                    payload=raw["payload"], created_at=created)


def send_kwargs(queue_url: str, message: OutboxMessage) -> dict[str, Any]:
    """The `SendMessage` arguments for `message` on `queue_url`."""
    body = envelope(message)
    if len(body.encode()) > MAX_BODY_BYTES:
        raise DeliveryError(f"message {message.id} is over SQS's 256 KiB limit", target="sqs",
                            retryable=False)
    kwargs: dict[str, Any] = {
        "QueueUrl": queue_url, "MessageBody": body,
        "MessageAttributes": {
            "message_id": {"DataType": "String", "StringValue": message.id},
            "type": {"DataType": "String", "StringValue": message.type},
        },
    }
    traceparent = trace.header_for(message.trace_id)
    if traceparent is not None:
        kwargs["MessageAttributes"][trace.TRACEPARENT] = {"DataType": "String",
                                                          "StringValue": traceparent}
    if is_fifo(queue_url):
        kwargs["MessageGroupId"] = message.order_id
        kwargs["MessageDeduplicationId"] = message.id
    return kwargs


def sqs_client(*, connect_timeout: float = CONNECT_TIMEOUT, read_timeout: float = READ_TIMEOUT,
               max_attempts: int = MAX_ATTEMPTS) -> Any:
    """A boto3 SQS client from the standard AWS environment (region, endpoint, credentials),
    configured as paywire's other AWS clients are: short connect and read timeouts and
    botocore's standard retry mode (throttling, 5xx, connection errors), bounded attempts;
    ConfigError with the install line if boto3 is missing."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:
        raise ConfigError("the SQS target needs boto3: pip install 'paywire[aws]'") from exc
    config = Config(connect_timeout=connect_timeout, read_timeout=read_timeout,
                    retries={"mode": "standard", "max_attempts": max_attempts})
    return boto3.client("sqs", config=config)


def delivery_error(exc: Exception, *, target: str, queue_url: str) -> DeliveryError:
    """A botocore failure as a DeliveryError: retryable if throttled, 5xx or a connection
    failure; not for a missing queue, a denied access or a refused message."""
    from botocore.exceptions import BotoCoreError, ClientError

    details = {"queue_url": queue_url}
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "Unknown")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        status = status if isinstance(status, int) else None
        retryable = code in RETRYABLE_CODES or status is None or status >= 500 or status == 429
        return DeliveryError(f"SQS refused the message: {code}"
                             + (f" (HTTP {status})" if status else ""),
                             target=target, retryable=retryable, status=status,
                             details={**details, "code": code})
    if isinstance(exc, BotoCoreError):
        return DeliveryError(f"cannot reach SQS: {type(exc).__name__}", target=target,
                             details=details)
    return DeliveryError(f"SQS send failed: {type(exc).__name__}", target=target,
                         details=details)


class SqsTarget:
    """Sends each outbox message to one SQS queue (standard or FIFO)."""

    def __init__(self, queue_url: str, *, client: Any = None, hands_off: bool = True,
                 name: str = "sqs") -> None:
        if not queue_url.startswith(("https://", "http://")):
            raise ConfigError("the SQS queue URL must be an http(s):// URL "
                              "(PAYWIRE_SQS_QUEUE_URL)")
        self.queue_url = queue_url
        self.fifo = is_fifo(queue_url)
        self.hands_off = hands_off
        self.name = name
        self._own_client = client is None
        self._client = client if client is not None else sqs_client()

    def __repr__(self) -> str:
        return f"SqsTarget(queue_url={self.queue_url!r}, fifo={self.fifo})"

    async def deliver(self, message: OutboxMessage) -> None:
        """Send the message; DeliveryError unless SQS accepted it."""
        kwargs = send_kwargs(self.queue_url, message)
        try:
            await asyncio.to_thread(self._client.send_message, **kwargs)
        except Exception as exc:
            raise delivery_error(exc, target=self.name, queue_url=self.queue_url) from exc

    async def aclose(self) -> None:
        """Close the boto3 client if this target made it."""
        if self._own_client:
            await asyncio.to_thread(self._client.close)
