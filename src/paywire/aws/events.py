"""Lambda event payloads built from what AWS really answers, and a Lambda context to go with them.

- `sqs_event`: the event Lambda's SQS event source mapping sends, from a `ReceiveMessage`
  answer (asked with `AttributeNames=["All"]` and `MessageAttributeNames=["All"]`) and the
  queue's ARN;
- `stream_event`: the event a DynamoDB Streams mapping sends, from `GetRecords` records;
- `http_event`: an API Gateway HTTP API (payload format 2.0) event for one HTTP request, the
  body base64-encoded when API Gateway would (binary) or when asked; `http_answer` reads a
  handler's answer back; `authorizer_event`: what API Gateway sends a Lambda REQUEST
  authorizer (payload format 2.0) for such a request, or None when it answers 401 itself;
- `LocalContext`: the context object Lambda passes (request id, remaining time).

Tests use them, and so does `paywire dev --aws`, to run the handlers as AWS would.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from paywire.ports import Clock, SystemClock

ACCOUNT = "123456789012"  # moto's default account: what a local ARN names
TEXT_TYPES = ("text/", "application/json", "application/x-www-form-urlencoded",
              "application/xml", "application/javascript")


@dataclass
class LocalContext:
    """The Lambda context object, for a handler run outside Lambda."""

    function_name: str = "paywire-local"
    timeout_seconds: float = 30.0
    memory_limit_in_mb: int = 512
    region: str = "eu-west-1"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        """The function's ARN."""
        return f"arn:aws:lambda:{self.region}:{ACCOUNT}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        """Where Lambda would send the function's logs."""
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        """The log stream (one per execution environment in Lambda)."""
        return f"local/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's timeout."""
        left = self.started + self.timeout_seconds - time.monotonic()
        return max(0, int(left * 1000))


# --- SQS --------------------------------------------------------------------------------------


def region_of(arn: str) -> str:
    """The region an ARN names (`arn:aws:<service>:<region>:...`)."""
    parts = arn.split(":")
    if len(parts) < 6 or parts[0] != "arn":
        raise ValueError(f"not an ARN: {arn!r}")
    return parts[3]


def _message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    binary = value.get("BinaryValue")
    out: dict[str, Any] = {"stringListValues": [], "binaryListValues": [],
                           "dataType": value.get("DataType", "String")}
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if binary is not None:
        raw = binary if isinstance(binary, bytes) else str(binary).encode()
        out["binaryValue"] = base64.b64encode(raw).decode()
    return out


def sqs_record(message: Mapping[str, Any], queue_arn: str) -> dict[str, Any]:
    """One record of an SQS event from one message of a `ReceiveMessage` answer."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {k: str(v) for k, v in message.get("Attributes", {}).items()},
        "messageAttributes": {k: _message_attribute(v)
                              for k, v in message.get("MessageAttributes", {}).items()},
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region_of(queue_arn),
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def sqs_event(answer: Mapping[str, Any], queue_arn: str) -> dict[str, Any]:
    """The SQS event Lambda would send for the messages of a `ReceiveMessage` answer."""
    return {"Records": [sqs_record(m, queue_arn) for m in answer.get("Messages", [])]}


# --- DynamoDB Streams -------------------------------------------------------------------------


def _epoch(value: Any) -> Any:
    if isinstance(value, datetime):
        return int(value.replace(tzinfo=value.tzinfo or UTC).timestamp())
    return value


def stream_record(record: Mapping[str, Any], stream_arn: str) -> dict[str, Any]:
    """One record of a DynamoDB Streams event from one `GetRecords` record (boto3 parses the
    creation time into a datetime; Lambda sends epoch seconds)."""
    out = dict(record)
    out["dynamodb"] = {k: _epoch(v) for k, v in record.get("dynamodb", {}).items()}
    out["eventSourceARN"] = stream_arn
    out.setdefault("awsRegion", region_of(stream_arn))
    out.setdefault("eventSource", "aws:dynamodb")
    return out


def stream_event(records: Iterable[Mapping[str, Any]], stream_arn: str) -> dict[str, Any]:
    """The DynamoDB Streams event Lambda would send for `GetRecords` records."""
    return {"Records": [stream_record(r, stream_arn) for r in records]}


# --- API Gateway HTTP API (payload format 2.0) ------------------------------------------------


def is_text(content_type: str | None) -> bool:
    """Whether API Gateway passes a body of this type as text (else it base64-encodes it)."""
    kind = (content_type or "").split(";")[0].strip().lower()
    return kind.startswith(TEXT_TYPES) or kind.endswith(("+json", "+xml"))


def http_event(method: str, path: str, *, query: str = "",
               headers: Mapping[str, str] | Sequence[tuple[str, str]] = (),
               body: bytes = b"", base64_body: bool | None = None, source_ip: str = "127.0.0.1",
               domain: str = "local.execute-api.localhost", stage: str = "$default",
               route_key: str = "$default", request_id: str | None = None,
               clock: Clock | None = None) -> dict[str, Any]:
    """An API Gateway HTTP API event for one request, received at `clock`'s now (the system
    clock's unless given).

    Header names are lower-cased and repeated headers comma-joined, cookies moved to
    `cookies`, as API Gateway does. The body is base64-encoded when `base64_body` says so, or
    (None) when it is not valid UTF-8 text of a text type, as API Gateway does for binary.
    """
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in pairs:
        key = name.lower()
        if key == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    joined.setdefault("host", domain)
    if body and "content-length" not in joined:
        joined["content-length"] = str(len(body))
    encode = base64_body
    if encode is None:
        try:
            body.decode()
            encode = not is_text(joined.get("content-type"))
        except UnicodeDecodeError:
            encode = True
    now = (clock or SystemClock()).now()
    rid = request_id or secrets.token_hex(8)
    params: dict[str, str] = {}
    for part in filter(None, query.split("&")):
        name, _, value = part.partition("=")
        params[name] = f"{params[name]},{value}" if name in params else value
    event: dict[str, Any] = {
        "version": "2.0", "routeKey": route_key, "rawPath": path, "rawQueryString": query,
        "headers": joined,
        "requestContext": {
            "accountId": ACCOUNT, "apiId": domain.split(".")[0], "domainName": domain,
            "domainPrefix": domain.split(".")[0],
            "http": {"method": method.upper(), "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": source_ip, "userAgent": joined.get("user-agent", "")},
            "requestId": rid, "routeKey": route_key, "stage": stage,
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": bool(body) and encode,
    }
    if cookies:
        event["cookies"] = cookies
    if params:
        event["queryStringParameters"] = params
    if body:
        event["body"] = base64.b64encode(body).decode() if encode else body.decode()
    return event


def path_parameters(route_key: str, path: str) -> dict[str, str] | None:
    """The path variables a route key (`POST /v1/orders/{id}/refunds`, `ANY /v1/{proxy+}`)
    takes from `path`, or None when the route does not match it."""
    template = route_key.partition(" ")[2] or route_key
    wanted, parts = template.strip("/").split("/"), path.strip("/").split("/")
    found: dict[str, str] = {}
    for i, segment in enumerate(wanted):
        if segment.startswith("{") and segment.endswith("+}"):
            rest = "/".join(parts[i:])
            if not rest:
                return None
            found[segment[1:-2]] = rest
            return found
        if i >= len(parts):
            return None
        if segment.startswith("{") and segment.endswith("}"):
            if not parts[i]:
                return None
            found[segment[1:-1]] = parts[i]
        elif segment != parts[i]:
            return None
    return found if len(parts) == len(wanted) else None


def authorizer_event(request: Mapping[str, Any], route_key: str, *,
                     identity_headers: Sequence[str] = ("authorization",),
                     region: str = "eu-west-1") -> dict[str, Any] | None:
    """The event API Gateway sends a Lambda REQUEST authorizer (payload format 2.0) for the
    request `http_event` made, on the route `route_key`; None where API Gateway answers 401
    without invoking it (an identity source header missing or empty)."""
    headers: Mapping[str, str] = request.get("headers") or {}
    identity = [headers.get(name.lower(), "") for name in identity_headers]
    if not all(value.strip() for value in identity):
        return None
    context = dict(request["requestContext"], routeKey=route_key)
    method, path = context["http"]["method"], context["http"]["path"]
    params = {} if route_key == "$default" else path_parameters(route_key, path)
    if params is None:
        raise ValueError(f"the route {route_key!r} does not match {method} {path}")
    event: dict[str, Any] = {
        "version": "2.0", "type": "REQUEST",
        "routeArn": f"arn:aws:execute-api:{region}:{context['accountId']}:{context['apiId']}/"
                    f"{context['stage']}/{method}{path}",
        "identitySource": identity, "routeKey": route_key, "rawPath": request["rawPath"],
        "rawQueryString": request.get("rawQueryString", ""), "headers": dict(headers),
        "requestContext": context,
    }
    for name in ("cookies", "queryStringParameters"):
        if name in request:
            event[name] = request[name]
    if params:
        event["pathParameters"] = params
    return event


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """A handler's answer to an HTTP API event, decoded."""

    status: int
    headers: dict[str, str]
    body: bytes
    cookies: tuple[str, ...] = ()

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


def http_answer(result: Mapping[str, Any]) -> HttpAnswer:
    """Read a handler's answer (payload format 2.0), base64 bodies decoded."""
    raw = result.get("body") or ""
    body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
    headers = {str(k).lower(): str(v) for k, v in (result.get("headers") or {}).items()}
    return HttpAnswer(status=int(result["statusCode"]), headers=headers, body=body,
                      cookies=tuple(result.get("cookies") or ()))
