"""Helpers for the SAM template test (tests/integration/test_aws_template.py).

- the template: load it, point its code at a zip, translate it with aws-sam-translator, read the
  statements each role gets;
- a moto server whose log is kept, so resource types moto's CloudFormation skips are seen;
- the created stack's functions run in-process (`Deployed`) behind `AwsRecorder`, a proxy that
  records every AWS request they make, and `check_calls_against_roles`, which holds each request
  against the function's role as IAM holds it (IAM wildcards, resolved ARNs).
"""

from __future__ import annotations

import ast
import importlib
import io
import json
import re
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from paywire.aws.events import (
    HttpAnswer,
    LocalContext,
    authorizer_event,
    http_answer,
    http_event,
)
from paywire.testing import MotoServer, ServerThread

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "deploy" / "aws" / "template.yaml"
ACCOUNT = "123456789012"  # moto's default account

# The two ways moto's CloudFormation says it skipped a resource type (moto/cloudformation/
# parsing.py: a logger warning on every lookup, a UserWarning on the first parse).
_UNSUPPORTED = (re.compile(r"No Moto CloudFormation support for (\S+)"),
                re.compile(r"Tried to parse (\S+) but it's not supported by moto"))


def load_template() -> dict[str, Any]:
    """The SAM template as a dict (short-form intrinsics like `!Ref` expanded)."""
    template: dict[str, Any] = yaml_parse(TEMPLATE.read_text(encoding="utf-8"))
    return template


def code_zip() -> bytes:
    """A tiny Lambda code zip, the same bytes every call: moto stores it, nothing runs from it
    (the handlers run in-process)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        entry = zipfile.ZipInfo("README.txt", date_time=(2020, 1, 1, 0, 0, 0))
        archive.writestr(entry, "paywire template test: the handlers run in-process\n")
    return buffer.getvalue()


class StaticPolicies:
    """A managed-policy loader for the SAM translator that never calls AWS: the template names
    no AWS managed policy (every role is its own), so the map is empty and any lookup of a
    policy by name would leave it unresolved, which the IAM assertions then catch."""

    def load(self) -> dict[str, str]:
        """Policy name -> ARN (none)."""
        return {}


def with_code_uri(template: dict[str, Any], code_uri: str) -> dict[str, Any]:
    """A copy of `template` whose every function (and Globals) points at `code_uri`."""
    copy = deepcopy(template)
    copy.setdefault("Globals", {}).setdefault("Function", {}).pop("CodeUri", None)
    for resource in copy["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = code_uri
    return copy


def translate(template: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """The CloudFormation the SAM transform makes of `template` (region from the environment)."""
    translated: dict[str, Any] = transform(template, dict(parameters), StaticPolicies())
    return translated


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    """Logical id -> resource, for every resource of one type."""
    return {name: resource for name, resource in template["Resources"].items()
            if resource["Type"] == resource_type}


def role_statements(template: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    """Every statement a role's permissions come from: its inline policies and the template's
    managed policies that list it in their `Roles`. Any policy ARN the role attaches itself
    (an AWS managed policy, say) comes back as `{"ManagedPolicyArn": arn}` for callers to
    refuse."""
    role = template["Resources"][role_id]["Properties"]
    statements: list[dict[str, Any]] = []
    for policy in role.get("Policies", []):
        statements.extend(as_list(policy["PolicyDocument"]["Statement"]))
    statements.extend({"ManagedPolicyArn": arn} for arn in role.get("ManagedPolicyArns", []))
    for policy in resources_of_type(template, "AWS::IAM::ManagedPolicy").values():
        if {"Ref": role_id} in policy["Properties"].get("Roles", []):
            statements.extend(as_list(policy["Properties"]["PolicyDocument"]["Statement"]))
    return statements


def actions_of(statements: list[dict[str, Any]]) -> set[str]:
    """The actions the Allow statements grant."""
    return {action for s in statements if s.get("Effect") == "Allow"
            for action in as_list(s.get("Action", []))}


def as_list(value: Any) -> list[Any]:
    """A policy field that is one value or a list of them, as a list."""
    return value if isinstance(value, list) else [value]


def unsupported_types(log_text: str) -> set[str]:
    """Resource types moto's CloudFormation reported it does not support."""
    return {match.group(1) for pattern in _UNSUPPORTED for match in pattern.finditer(log_text)}


class LoggedMotoServer(MotoServer):
    """A moto server process whose output goes to a file (the session server's goes to
    /dev/null), so its CloudFormation warnings can be read."""

    def __init__(self, log_path: Path) -> None:
        super().__init__(log_path=log_path)
        self.log: Path = log_path

    def log_since(self, offset: int) -> str:
        """What the server wrote from byte `offset` on."""
        if self._log_file is not None:
            self._log_file.flush()
        with self.log.open("rb") as fh:
            fh.seek(offset)
            return fh.read().decode("utf-8", "replace")

    def log_size(self) -> int:
        """How many bytes the server has written so far."""
        return self.log.stat().st_size


def logged_moto(log_path: Path) -> Iterator[LoggedMotoServer]:
    """Serve a LoggedMotoServer for the duration of a generator fixture."""
    server = LoggedMotoServer(log_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- what the handlers really ask of AWS, checked against their roles -------------------------


@dataclass(frozen=True)
class AwsCall:
    """One request a handler made: the IAM action it needs and its parameters."""

    service: str  # the IAM prefix: dynamodb, sqs, secretsmanager, ssm, ...
    operation: str  # GetItem, SendMessage, ...
    params: dict[str, Any]

    @property
    def action(self) -> str:
        """The IAM action (`dynamodb:GetItem`)."""
        return f"{self.service}:{self.operation}"


class AwsRecorder:
    """An HTTP proxy in front of the moto server that records every JSON-protocol request
    (`X-Amz-Target`: DynamoDB, SQS, Secrets Manager, SSM) before forwarding it unchanged.
    Point `AWS_ENDPOINT_URL` at it and the code under test cannot tell the difference."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.calls: list[AwsCall] = []
        self.server = ServerThread(Starlette(routes=[Route(
            "/{path:path}", self.forward,
            methods=["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"])]))

    @property
    def url(self) -> str:
        """Where clients send their requests."""
        return self.server.url

    async def forward(self, request: Request) -> Response:
        """Record the request's operation, then answer with the moto server's answer."""
        body = await request.body()
        target = request.headers.get("x-amz-target", "")
        scope = re.search(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/",
                          request.headers.get("authorization", ""))
        service = scope.group(1) if scope else "unknown"
        params = json.loads(body) if body and target else {}
        self.calls.append(AwsCall(service, target.rpartition(".")[2] or request.method,
                                  params))
        headers = {k: v for k, v in request.headers.items() if k not in ("host", "content-length")}
        async with httpx.AsyncClient(base_url=self.upstream, timeout=30) as upstream:
            answer = await upstream.request(request.method, request.url.path,
                                            params=request.query_params, headers=headers,
                                            content=body)
        dropped = ("content-length", "content-encoding", "transfer-encoding", "connection")
        return Response(answer.content, status_code=answer.status_code, headers={
            k: v for k, v in answer.headers.items() if k not in dropped})


def needed(call: AwsCall, *, region: str, account: str,
           secret_arn: Callable[[str], str]) -> list[tuple[str, str]]:
    """The (IAM action, resource ARN) pairs one call needs. A transaction needs each item's
    own action (`TransactWriteItems` is not an IAM action); unknown calls need `*`."""
    params = call.params

    def table(name: str, index: str | None = None) -> str:
        arn = f"arn:aws:dynamodb:{region}:{account}:table/{name}"
        return f"{arn}/index/{index}" if index else arn

    if call.service == "dynamodb":
        if call.operation == "TransactWriteItems":
            kinds = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                     "ConditionCheck": "ConditionCheckItem"}
            return [(f"dynamodb:{kinds[kind]}", table(body["TableName"]))
                    for item in params["TransactItems"] for kind, body in item.items()]
        if call.operation == "TransactGetItems":
            return [("dynamodb:GetItem", table(item["Get"]["TableName"]))
                    for item in params["TransactItems"]]
        if call.operation in ("BatchGetItem", "BatchWriteItem"):
            return [(call.action, table(name)) for name in params["RequestItems"]]
        if "TableName" in params:
            return [(call.action, table(params["TableName"], params.get("IndexName")))]
    if call.service == "sqs" and "QueueUrl" in params:
        return [(call.action, f"arn:aws:sqs:{region}:{account}:"
                 f"{params['QueueUrl'].rstrip('/').rsplit('/', 1)[-1]}")]
    if call.service == "secretsmanager" and "SecretId" in params:
        return [(call.action, secret_arn(params["SecretId"]))]
    if call.service == "ssm" and "Path" in params:
        return [(call.action, f"arn:aws:ssm:{region}:{account}:parameter{params['Path']}")]
    return [(call.action, "*")]


def role_documents(iam: Any, role_arn: str) -> list[dict[str, Any]]:
    """The policy documents of a role as IAM holds them: inline and attached."""
    name = role_arn.rsplit("/", 1)[-1]
    documents = [_document(iam.get_role_policy(RoleName=name, PolicyName=policy)
                           ["PolicyDocument"])
                 for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]]
    for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        version = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]["DefaultVersionId"]
        documents.append(_document(iam.get_policy_version(
            PolicyArn=attached["PolicyArn"], VersionId=version)["PolicyVersion"]["Document"]))
    return documents


def _document(value: Any) -> dict[str, Any]:
    """A policy document as IAM answered it: boto3 decodes IAM's URL-encoded JSON to a dict,
    but moto keeps the inline policies of CloudFormation-made roles as a Python repr."""
    if not isinstance(value, str):
        document: dict[str, Any] = value
        return document
    text = unquote(value)
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        document = ast.literal_eval(text)
    return document


def allows(documents: list[dict[str, Any]], action: str, resource: str) -> bool:
    """Whether an Allow statement grants `action` on `resource` (IAM wildcards: `*` any run of
    characters, `?` one character; actions case-insensitive) and no Deny refuses it."""
    allowed = False
    for document in documents:
        for statement in as_list(document["Statement"]):
            actions = [a.lower() for a in as_list(statement.get("Action", []))]
            resources = as_list(statement.get("Resource", []))
            if (any(fnmatchcase(action.lower(), a) for a in actions)
                    and any(fnmatchcase(resource, r) for r in resources)):
                if statement["Effect"] == "Deny":
                    return False
                allowed = True
    return allowed


def scheduled_event(rule_arn: str, region: str, account: str) -> dict[str, Any]:
    """The event an EventBridge schedule rule sends its target."""
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
            "source": "aws.events", "account": account,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "region": region,
            "resources": [rule_arn], "detail": {}}


def stream_filter_matches(pattern: dict[str, Any], record: dict[str, Any]) -> bool:
    """Whether an event-filtering pattern of exact-value lists matches a stream record (the
    subset of Lambda's filter grammar the template uses)."""
    for key, expected in pattern.items():
        value = record.get(key)
        if isinstance(expected, dict):
            if not isinstance(value, dict) or not stream_filter_matches(expected, value):
                return False
        elif value not in expected:
            return False
    return True


# --- the stack's functions, run in-process ---------------------------------------------------


def client(server: MotoServer, service: str) -> Any:
    """A boto3 client for `service` on the moto server."""
    return server.client(service)


def outputs(stack: dict[str, Any]) -> dict[str, str]:
    """The stack's outputs, key -> value."""
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def http_routes(translated: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(METHOD, path) -> API Gateway integration, from the HTTP API's OpenAPI body."""
    body = translated["Resources"]["HttpApi"]["Properties"]["Body"]
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path, operations in body["paths"].items():
        for method, operation in operations.items():
            verb = "ANY" if method == "x-amazon-apigateway-any-method" else method.upper()
            found[(verb, path)] = operation["x-amazon-apigateway-integration"]
    return found


def guarded_routes(translated: dict[str, Any]) -> set[tuple[str, str]]:
    """The HTTP API's routes behind an authorizer (their operation names a security scheme)."""
    body = translated["Resources"]["HttpApi"]["Properties"]["Body"]
    return {("ANY" if method == "x-amazon-apigateway-any-method" else method.upper(), path)
            for path, operations in body["paths"].items()
            for method, operation in operations.items() if operation.get("security")}


def best_route(routes: Iterable[tuple[str, str]], method: str, path: str) -> tuple[str, str]:
    """The route API Gateway picks for a request: an exact path before a greedy one (the
    longest greedy prefix first), a named method before ANY."""
    matching = [r for r in routes if route_matches(r, method, path)]
    assert matching, (method, path)
    return max(matching, key=lambda r: (not r[1].endswith("{proxy+}"), len(r[1]), r[0] != "ANY"))


def routed_function(translated: dict[str, Any], integration: dict[str, Any]) -> str:
    """The name (after `paywire-<stage>-`) of the function an HTTP API integration invokes,
    followed by `:<alias>` when it invokes the function through an alias."""
    uri = integration["uri"]["Fn::Sub"]
    found = re.fullmatch(r".*/functions/\$\{(\w+)(\.Arn)?\}/invocations", uri)
    assert found is not None, uri
    resource = translated["Resources"][found.group(1)]
    alias = ""
    if resource["Type"] == "AWS::Lambda::Alias":
        alias = f":{resource['Properties']['Name']}"
        resource = translated["Resources"][resource["Properties"]["FunctionName"]["Ref"]]
    name = resource["Properties"]["FunctionName"]["Fn::Sub"]
    return str(name).removeprefix("paywire-${Stage}-") + alias


def route_matches(route: tuple[str, str], method: str, path: str) -> bool:
    """Whether an HTTP API route (`{proxy+}` greedy) takes a request for method + path."""
    verb, pattern = route
    if verb not in ("ANY", method):
        return False
    if pattern.endswith("/{proxy+}"):
        return path.startswith(pattern.removesuffix("{proxy+}"))
    # A path variable ({order_id}) takes one segment.
    return re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(pattern)), path) is not None


def function_configurations(moto: MotoServer, stage: str) -> dict[str, dict[str, Any]]:
    """A stage's created Lambda functions' configurations, by function name."""
    lam = client(moto, "lambda")
    names = [f"paywire-{stage}-{suffix}" for suffix in
             ("http", "webhooks", "authorizer", "outbox-consumer", "outbox-drainer",
              "outbox-stream", "reconciler")]
    return {name: lam.get_function_configuration(FunctionName=name) for name in names}


@dataclass
class Deployed:
    """The stack's functions run in-process, as Lambda would run them with their created
    configuration, every AWS request they make recorded."""

    moto: MotoServer
    stage: str
    configs: dict[str, dict[str, Any]]
    recorder: AwsRecorder
    monkeypatch: pytest.MonkeyPatch
    invoked: list[tuple[str, list[AwsCall]]] = field(default_factory=list)
    started: set[str] = field(default_factory=set)

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        """Run one function's handler with exactly its configuration's environment (AWS
        endpoints through the recorder), in a fresh Lambda context of its name and timeout.
        Each function is a process of its own in Lambda: its first invocation starts with an
        empty stage-settings cache, so it reads the stage's secrets and SSM itself."""
        config = self.configs[f"paywire-{self.stage}-{function}"]
        if function not in self.started:
            fresh_stage_cache()
            self.started.add(function)
        for name, value in config["Environment"]["Variables"].items():
            self.monkeypatch.setenv(name, str(value))
        module_name, _, attribute = config["Handler"].rpartition(".")
        handler = getattr(importlib.import_module(module_name), attribute)
        context = LocalContext(function_name=config["FunctionName"],
                               timeout_seconds=float(config["Timeout"]),
                               memory_limit_in_mb=int(config["MemorySize"]),
                               region=self.moto.REGION)
        start = len(self.recorder.calls)
        try:
            return handler(event, context)
        finally:
            self.invoked.append((config["FunctionName"], self.recorder.calls[start:]))

    def http(self, method: str, path: str, translated: dict[str, Any],
             body: Any = None, headers: dict[str, str] | None = None,
             raw: bytes | None = None) -> HttpAnswer:
        """One request through the function the HTTP API sends it to (the template's route
        that takes it, its route key; JSON bodies, or `raw` bytes as they are)."""
        routes = http_routes(translated)
        route = best_route(routes, method, path)
        if raw is None:
            raw = json.dumps(body).encode() if body is not None else b""
            headers = {**({"content-type": "application/json"} if raw else {}),
                       **(headers or {})}
        route_key = f"{route[0]} {route[1]}"
        event = http_event(method, path, body=raw, headers=headers or {}, route_key=route_key)
        if route in guarded_routes(translated):
            # API Gateway asks the authorizer first: 401 without the identity header, 403 on
            # its "no", the route's function only on its "yes" (with its context).
            asked = authorizer_event(event, route_key)
            if asked is None:
                return HttpAnswer(401, {}, b'{"message":"Unauthorized"}')
            verdict = self.invoke("authorizer", asked)
            if verdict.get("isAuthorized") is not True:
                return HttpAnswer(403, {}, b'{"message":"Forbidden"}')
            event["requestContext"]["authorizer"] = {"lambda": verdict.get("context") or {}}
        function = routed_function(translated, routes[route]).partition(":")[0]
        return http_answer(self.invoke(function, event))


def fresh_stage_cache() -> None:
    """Forget this process's cached stage settings (`paywire.aws.secrets` keeps one cache per
    process, as a Lambda execution environment does)."""
    from paywire.aws import secrets

    secrets._process_secrets.cache_clear()


def check_calls_against_roles(moto: MotoServer, deployed: Deployed) -> dict[str, set[str]]:
    """Assert every AWS request each function made is allowed by its own role as IAM holds it
    (resolved ARNs, IAM wildcards); answer the actions seen, by function."""
    iam, secrets = client(moto, "iam"), client(moto, "secretsmanager")

    def secret_arn(secret_id: str) -> str:
        arn: str = secrets.describe_secret(SecretId=secret_id)["ARN"]
        return arn

    documents = {name: role_documents(iam, config["Role"])
                 for name, config in deployed.configs.items()}
    seen: dict[str, set[str]] = {name: set() for name in deployed.configs}
    for function, calls in deployed.invoked:
        for call in calls:
            for action, resource in needed(call, region=moto.REGION, account=ACCOUNT,
                                           secret_arn=secret_arn):
                seen[function].add(action)
                assert allows(documents[function], action, resource), (
                    function, action, resource)
    return seen
