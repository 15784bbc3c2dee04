"""The SAM template (deploy/aws/template.yaml), as issue 9 asks: linted by cfn-lint; translated by
aws-sam-translator with every CodeUri rewritten to a zip on moto's S3; its CloudFormation checked
(routes, schedules, alarm, IAM, TTL and the table, queues, event source mappings, outputs);
created as a stack in a moto server process of this module's own (minus the event source
mappings), failing on any resource type moto skipped outside `MOTO_GAPS`; then the created
functions' configuration read back, and their handlers run in-process with exactly that
configuration on events built from real GetRecords / ReceiveMessage answers, every AWS request
they make checked against their own role."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from awskit import SHOP_SECRET, Shop, restored_logging, running_shop
from awstemplatekit import (
    ACCOUNT,
    TEMPLATE,
    AwsRecorder,
    Deployed,
    LoggedMotoServer,
    actions_of,
    as_list,
    check_calls_against_roles,
    client,
    code_zip,
    fresh_stage_cache,
    function_configurations,
    http_routes,
    load_template,
    logged_moto,
    outputs,
    resources_of_type,
    role_statements,
    route_matches,
    routed_function,
    scheduled_event,
    stream_filter_matches,
    translate,
    unsupported_types,
    with_code_uri,
)
from paywire.api.webhooks import WEBHOOK_ROUTE
from paywire.aws.events import sqs_event, stream_event
from paywire.aws.http import lambda_app, webhook_app
from paywire.aws.local import WEBHOOK_PATHS
from paywire.bootstrap.kits import kit_names
from paywire.settings import DEMO_CATALOG, Settings
from paywire.testing import EmulatorServer
from testkit import CLIENT_ID, CLIENT_SECRET

STAGE = f"tt{uuid.uuid4().hex[:8]}"
MAX_RECEIVES = 3
PARAMETERS = {"Stage": STAGE, "PayPalEnvironment": "sandbox",
              "MaxReceiveCount": MAX_RECEIVES}
CODE_BUCKET = f"paywire-code-{STAGE}"
CODE_KEY = "paywire/lambda.zip"

# Resource types moto's CloudFormation cannot create, and why that is acceptable here: the
# HTTP API (the handler is driven in-process with API Gateway v2 events instead), the alarms,
# the aliases and CodeDeploy's canaries (their definitions are asserted on the translated
# template).
MOTO_GAPS = {
    "AWS::ApiGatewayV2::Api": "HTTP API: routes asserted on the translated OpenAPI body",
    "AWS::ApiGatewayV2::Stage": "HTTP API stage ($default, auto-deployed)",
    "AWS::CloudWatch::Alarm": "alarms: asserted on the translated template",
    "AWS::Lambda::EventInvokeConfig": "no async retries: asserted on the translated template",
    "AWS::Lambda::Alias": "the `live` alias CodeDeploy shifts: asserted on the translated "
                          "template (API Gateway's permission is made on the function instead)",
    "AWS::CodeDeploy::Application": "canary deployments: asserted on the translated template",
    "AWS::CodeDeploy::DeploymentGroup": "canary deployments: asserted on the translated template",
}
# AWS services whose data paywire's functions touch: no `*` action, no `*` resource on them.
DATA_SERVICES = ("dynamodb", "sqs", "secretsmanager", "ssm", "s3", "kms")

FUNCTIONS = {
    # logical id: handler
    "HttpFunction": "paywire.aws.http.handler",
    "WebhookFunction": "paywire.aws.http.webhook_handler",
    "AuthorizerFunction": "paywire.aws.authorizer.handler",
    "OutboxConsumerFunction": "paywire.aws.sqs_consumer.handler",
    "OutboxDrainerFunction": "paywire.aws.drainer.handler",
    "ReconcilerFunction": "paywire.aws.reconciler.handler",
    "OutboxStreamFunction": "paywire.aws.stream.handler",
}
TABLE_ACTIONS = {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query",
                 "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"}
# No DeleteItem for any function: the store writes tombstones that DynamoDB's TTL deletes.
SECRET_ACTIONS = {"secretsmanager:GetSecretValue"}
PARAMETER_ACTIONS = {"ssm:GetParametersByPath"}
CONFIG_ACTIONS = SECRET_ACTIONS | PARAMETER_ACTIONS
LOG_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents"}
# X-Ray (Tracing: Active): only these two, on "*" (they take no resource-level permissions).
TRACE_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
EXPECTED_ACTIONS = {
    "HttpFunctionRole": TABLE_ACTIONS | CONFIG_ACTIONS | LOG_ACTIONS | TRACE_ACTIONS,
    "WebhookFunctionRole": TABLE_ACTIONS | CONFIG_ACTIONS | LOG_ACTIONS | TRACE_ACTIONS,
    # The admin routes' authorizer reads the app secret's API keys, nothing else.
    "AuthorizerFunctionRole": SECRET_ACTIONS | LOG_ACTIONS | TRACE_ACTIONS,
    "ReconcilerFunctionRole": TABLE_ACTIONS | CONFIG_ACTIONS | LOG_ACTIONS | TRACE_ACTIONS,
    # The drainer and the stream function read no secret (paywire.aws.runtime: `secrets`).
    "OutboxDrainerFunctionRole": TABLE_ACTIONS | PARAMETER_ACTIONS | LOG_ACTIONS | TRACE_ACTIONS
    | {"sqs:SendMessage"},
    "OutboxConsumerFunctionRole": TABLE_ACTIONS | CONFIG_ACTIONS | LOG_ACTIONS | TRACE_ACTIONS
    | {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
       "sqs:GetQueueAttributes"},
    "OutboxStreamFunctionRole": TABLE_ACTIONS | PARAMETER_ACTIONS | LOG_ACTIONS | TRACE_ACTIONS
    | {"sqs:SendMessage", "dynamodb:DescribeStream", "dynamodb:GetRecords",
       "dynamodb:GetShardIterator", "dynamodb:ListStreams"},
}
# What every function's environment holds (contracts): names only, never a secret value.
ENVIRONMENT = {"PAYWIRE_STAGE", "PAYWIRE_PAYPAL_ENV", "PAYWIRE_DATABASE_URL",
               "PAYWIRE_SQS_QUEUE_URL", "PAYWIRE_SQS_MAX_RECEIVES", "POWERTOOLS_SERVICE_NAME",
               "POWERTOOLS_LOG_LEVEL", "POWERTOOLS_METRICS_NAMESPACE"}
# ... plus, for the HTTP function alone, whether it serves /docs and /openapi.json.
HTTP_ENVIRONMENT = {"HttpFunction": {"PAYWIRE_API_DOCS"}}
# The stage secrets each role may read (the secrets each function's handler reads: a test
# below records them), by the secret's name under paywire/<stage>/.
SECRETS_READ = {"HttpFunctionRole": {"paypal", "app"}, "WebhookFunctionRole": {"paypal", "app"},
                "ReconcilerFunctionRole": {"paypal", "app"},
                "OutboxConsumerFunctionRole": {"app"}, "AuthorizerFunctionRole": {"app"},
                "OutboxDrainerFunctionRole": set(),
                "OutboxStreamFunctionRole": set()}
# Which function the HTTP API sends each route to.
WEBHOOK_ROUTES = {("POST", "/webhooks/paypal"), ("POST", "/webhooks/aps")}


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoggedMotoServer]:
    """A moto server process of this module's own, its log kept in a file."""
    yield from logged_moto(tmp_path_factory.mktemp("moto") / "moto.log")


@pytest.fixture(scope="module")
def translated(moto: LoggedMotoServer) -> dict[str, Any]:
    """The template translated to CloudFormation, its code in a zip on moto's S3."""
    s3 = client(moto, "s3")
    s3.create_bucket(Bucket=CODE_BUCKET,
                     CreateBucketConfiguration={"LocationConstraint": moto.REGION})
    s3.put_object(Bucket=CODE_BUCKET, Key=CODE_KEY, Body=code_zip())
    with pytest.MonkeyPatch.context() as mp:
        # The translator resolves AWS::Region from the environment (boto3's session).
        mp.setenv("AWS_DEFAULT_REGION", moto.REGION)
        return translate(with_code_uri(load_template(), f"s3://{CODE_BUCKET}/{CODE_KEY}"),
                         PARAMETERS)


@pytest.fixture(scope="module")
def stack(moto: LoggedMotoServer, translated: dict[str, Any]) -> dict[str, Any]:
    """The translated template created as a stack in moto, minus the event source mappings
    (moto would try to run their Lambda functions in Docker). Answers the stack description
    plus `unsupported`: the resource types moto reported it skipped."""
    template = json.loads(json.dumps(translated))
    for name in resources_of_type(template, "AWS::Lambda::EventSourceMapping"):
        del template["Resources"][name]
    # moto has no Lambda aliases: API Gateway's permission to invoke the `live` alias is made
    # on its function instead (the alias itself is skipped as an allowlisted gap).
    aliases = resources_of_type(template, "AWS::Lambda::Alias")
    for permission in resources_of_type(template, "AWS::Lambda::Permission").values():
        target = permission["Properties"]["FunctionName"]
        if isinstance(target, dict) and target.get("Ref") in aliases:
            permission["Properties"]["FunctionName"] = aliases[target["Ref"]]["Properties"][
                "FunctionName"]
    # What AWS::LanguageExtensions does before SAM's transform: resolve the policies' Fn::If.
    for resource in template["Resources"].values():
        for attribute in ("DeletionPolicy", "UpdateReplacePolicy"):
            if isinstance(resource.get(attribute), dict):
                resource[attribute] = resolved_policy(resource[attribute], template,
                                                      {k: str(v) for k, v in PARAMETERS.items()})
    offset = moto.log_size()
    cloudformation = client(moto, "cloudformation")
    cloudformation.create_stack(
        StackName=f"paywire-{STAGE}", TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": k, "ParameterValue": str(v)} for k, v in PARAMETERS.items()],
        Capabilities=["CAPABILITY_IAM"])
    description: dict[str, Any] = cloudformation.describe_stacks(
        StackName=f"paywire-{STAGE}")["Stacks"][0]
    description["unsupported"] = unsupported_types(moto.log_since(offset))
    description["resources"] = {
        r["LogicalResourceId"]: r for r in cloudformation.list_stack_resources(
            StackName=f"paywire-{STAGE}")["StackResourceSummaries"] if r["LogicalResourceId"]}
    description["expected"] = {name: r["Type"] for name, r in template["Resources"].items()}
    return description


# --- 1. lint ---------------------------------------------------------------------------------


def test_cfn_lint_passes() -> None:
    """cfn-lint (as `make lint` runs it) finds nothing in the template."""
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run([str(cfn_lint), str(TEMPLATE)], capture_output=True,  # noqa: S603
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


# --- 2 and 3. the translated CloudFormation --------------------------------------------------


def app_routes() -> list[tuple[str, str]]:
    """(METHOD, path) of every route of the HTTP function's app, plus its OpenAPI document and
    docs page (Swagger's OAuth2 redirect page is left unrouted: paywire's API takes bearer
    keys, not OAuth2 logins)."""
    app = lambda_app(Settings(_env_file=None))
    found = [("GET", "/docs"), ("GET", "/openapi.json")]
    # Every API route, those left out of the OpenAPI document (APS's return page) too.
    found.extend((method, path) for route in api_routes(app.routes)
                 for method in sorted(route.methods) for path in concrete(route.path))
    # The CORS middleware answers a browser's preflight on every API path.
    found.extend(("OPTIONS", path) for _, path in list(found) if path.startswith("/v1/"))
    found.extend(dashboard_routes(app))
    return found


def dashboard_routes(app: Any) -> list[tuple[str, str]]:
    """(METHOD, path) of the operator dashboard's pages and forms (mounted at /admin)."""
    from starlette.routing import Mount, Route

    [mount] = [r for r in app.routes if isinstance(r, Mount) and r.path == "/admin"]
    found = [(method, f"/admin{route.path}") for route in mount.routes
             if isinstance(route, Route) for method in sorted(route.methods or ())
             if method != "HEAD"]
    found += [("GET", f"/admin{r.path}/admin.css") for r in mount.routes
              if isinstance(r, Mount)]  # its stylesheet
    return found


def concrete(path: str) -> list[str]:
    """`path`, or for the one provider delivery route (`/webhooks/{provider}`) the path of each
    provider kit paywire ships (the template routes each to the webhook function)."""
    if path == WEBHOOK_ROUTE:
        return [WEBHOOK_ROUTE.format(provider=name) for name in kit_names()]
    return [path]


def api_routes(routes: list[Any]) -> Iterator[Any]:
    """The FastAPI routes among `routes`, those of included routers too (FastAPI keeps an
    included router as one entry holding the original router)."""
    from fastapi.routing import APIRoute

    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from api_routes(included.routes)


def admin_routes() -> set[tuple[str, str]]:
    """(METHOD, path) of the app's routes that need an API key whatever the request (those
    that depend on `paywire.api.auth.admin`)."""
    from paywire.api import auth

    def needs_admin(dependant: Any) -> bool:
        return any(d.call is auth.admin or needs_admin(d) for d in dependant.dependencies)

    app = lambda_app(Settings(_env_file=None))
    return {(method, route.path) for route in api_routes(app.routes)
            if needs_admin(route.dependant) for method in route.methods}


def test_http_api_routes_cover_the_app_and_nothing_else(translated: dict[str, Any]) -> None:
    """Every route of the paywire app reaches a function through the HTTP API (payload 2.0,
    Lambda proxy), and every HTTP API route leads to some app route: the providers' deliveries
    to the webhook function, whose app serves exactly those, everything else to the HTTP
    function."""
    routes = http_routes(translated)
    assert set(routes) >= WEBHOOK_ROUTES and set(app_routes()) >= WEBHOOK_ROUTES
    for method, path in app_routes():
        assert any(route_matches(r, method, path) for r in routes), (method, path)
    for route, integration in routes.items():
        assert any(route_matches(route, m, p) for m, p in app_routes()), route
        assert integration["type"] == "aws_proxy"
        assert integration["payloadFormatVersion"] == "2.0"
        # Through the `live` alias, which CodeDeploy shifts to a new version gradually.
        expected = "webhooks:live" if route in WEBHOOK_ROUTES else "http:live"
        assert routed_function(translated, integration) == expected, route
    # The authorizer guards exactly the routes whose app routes all need an API key.
    body = translated["Resources"]["HttpApi"]["Properties"]["Body"]
    [(scheme, definition)] = body["components"]["securitySchemes"].items()
    authorizer = definition["x-amazon-apigateway-authorizer"]
    assert authorizer["authorizerUri"]["Fn::Sub"][1]["__FunctionArn__"] == {
        "Fn::GetAtt": ["AuthorizerFunction", "Arn"]}
    assert (authorizer["type"], authorizer["authorizerPayloadFormatVersion"],
            authorizer["enableSimpleResponses"], authorizer["identitySource"]) == (
        "request", "2.0", True, ["$request.header.Authorization"])
    assert 0 < authorizer["authorizerResultTtlInSeconds"] <= 300
    admin_only = admin_routes()
    assert {("GET", "/v1/orders"), ("POST", "/v1/orders/{order_id}/refunds"),
            ("GET", "/v1/admin/webhook-rejections")} <= admin_only
    operations = {("ANY" if m == "x-amazon-apigateway-any-method" else m.upper(), p): o
                  for p, ops in body["paths"].items() for m, o in ops.items()}
    for (method, path), operation in operations.items():
        guarded = operation.get("security") == [{scheme: []}]
        served = [r for r in app_routes() if route_matches((method, path), *r)]
        assert served, (method, path)
        assert guarded == all(r in admin_only for r in served), (method, path, served)
    webhook_only = webhook_app(Settings(_env_file=None)).openapi()["paths"]
    assert {(m.upper(), p) for path, ops in webhook_only.items() for m in ops
            for p in concrete(path)} == WEBHOOK_ROUTES
    assert set(WEBHOOK_PATHS) == {p for _, p in WEBHOOK_ROUTES}  # `paywire dev --aws` too
    stage = resources_of_type(translated, "AWS::ApiGatewayV2::Stage")
    assert [s["Properties"]["StageName"] for s in stage.values()] == ["$default"]
    permissions = {p["Properties"]["SourceArn"]["Fn::Sub"][0].rsplit("}/", 1)[-1]
                   for p in resources_of_type(translated, "AWS::Lambda::Permission").values()
                   if p["Properties"]["Principal"] == "apigateway.amazonaws.com"
                   and p["Properties"]["FunctionName"] != {
                       "Fn::GetAtt": ["AuthorizerFunction", "Arn"]}}
    # API Gateway's source ARNs spell a path variable (greedy or not) `*`.
    assert permissions == {f"{'*' if m == 'ANY' else m}{re.sub(r'{[^/]+}', '*', p)}"
                           for m, p in routes}


def test_schedules_are_eventbridge_rules(translated: dict[str, Any]) -> None:
    """The drainer runs every minute and the reconciler every 5 minutes, as EventBridge rules
    (`Schedule`, not the Scheduler's `ScheduleV2`), each allowed to invoke its function."""
    rules = resources_of_type(translated, "AWS::Events::Rule")
    schedules = {rule["Properties"]["Targets"][0]["Arn"]["Fn::GetAtt"][0]:
                 rule["Properties"]["ScheduleExpression"] for rule in rules.values()}
    assert schedules == {"OutboxDrainerFunction": "rate(1 minute)",
                         "ReconcilerFunction": "rate(5 minutes)"}
    assert resources_of_type(translated, "AWS::Scheduler::Schedule") == {}
    invokers = {p["Properties"]["FunctionName"]["Ref"]
                for p in resources_of_type(translated, "AWS::Lambda::Permission").values()
                if p["Properties"]["Principal"] == "events.amazonaws.com"}
    assert invokers == {"OutboxDrainerFunction", "ReconcilerFunction"}


def test_dlq_alarm_fires_on_any_visible_message(translated: dict[str, Any]) -> None:
    """One alarm watches the outbox DLQ: any visible message (> 0) breaches it."""
    alarms = resources_of_type(translated, "AWS::CloudWatch::Alarm")
    dlq = [a for a in alarms.values()
           if a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"]
    assert len(dlq) == 1
    alarm = dlq[0]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == (
        "AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {
        "Fn::GetAtt": ["OutboxDeadLetterQueue", "QueueName"]}}]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
    assert alarm["TreatMissingData"] == "notBreaching"


def test_each_role_grants_only_what_its_function_needs(translated: dict[str, Any]) -> None:
    """Per function: its own role with exactly the expected actions, no AWS managed policy,
    no `*` action, no `*` resource on a data service, secrets and SSM of this stage only."""
    roles = {f["Properties"]["Role"]["Fn::GetAtt"][0]: name
             for name, f in resources_of_type(translated, "AWS::Lambda::Function").items()}
    assert set(roles.values()) == set(FUNCTIONS)
    assert set(roles) == set(EXPECTED_ACTIONS)
    for role, expected in EXPECTED_ACTIONS.items():
        statements = role_statements(translated, role)
        assert [s for s in statements if "ManagedPolicyArn" in s] == [], role
        assert actions_of(statements) == expected, role
        for statement in statements:
            assert statement["Effect"] == "Allow"
            actions = as_list(statement["Action"])
            assert all("*" not in action for action in actions), (role, actions)
            resources = as_list(statement["Resource"])
            # "*" only for the X-Ray writes, which take no resource-level permissions.
            assert "*" not in resources or set(actions) <= TRACE_ACTIONS, (role, statement)
            if any(a.split(":")[0] in DATA_SERVICES for a in actions):
                assert all(isinstance(r, dict) for r in resources), (role, resources)
            for resource in resources:
                text = json.dumps(resource)
                if "secretsmanager" in text:
                    assert any(f"secret:paywire/${{Stage}}/{name}-??????" in text
                               for name in SECRETS_READ[role]), (role, text)
                if ":ssm:" in text:
                    assert "parameter/paywire/${Stage}" in text, text
        readable = {name for statement in statements
                    for resource in as_list(statement.get("Resource", []))
                    for name in ("paypal", "app")
                    if f"secret:paywire/${{Stage}}/{name}-??????" in json.dumps(resource)}
        assert readable == SECRETS_READ[role], role


def test_table_matches_the_store(translated: dict[str, Any]) -> None:
    """The table is the store's: keys and indexes as `table_definition()` creates them, TTL on
    the store's TTL attribute, point-in-time recovery on, a NEW_IMAGE stream, kept on delete."""
    from paywire.store import dynamo

    table = translated["Resources"]["Table"]
    assert (table["DeletionPolicy"], table["UpdateReplacePolicy"]) == ("Retain", "Retain")
    props = table["Properties"]
    expected = dynamo.table_definition(props["TableName"], stream=True)

    def by_name(items: list[dict[str, Any]], key: str) -> dict[str, Any]:
        return {item[key]: item for item in items}

    assert by_name(props["AttributeDefinitions"], "AttributeName") == by_name(
        expected["AttributeDefinitions"], "AttributeName")
    assert props["KeySchema"] == expected["KeySchema"]
    assert by_name(props.get("GlobalSecondaryIndexes", []), "IndexName") == by_name(
        expected.get("GlobalSecondaryIndexes", []), "IndexName")
    assert props["BillingMode"] == expected.get("BillingMode", "PAY_PER_REQUEST")
    assert props["TimeToLiveSpecification"] == {"AttributeName": dynamo.TTL_ATTRIBUTE,
                                                "Enabled": True}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    # CloudFormation has no StreamEnabled: a StreamSpecification enables the stream.
    assert props["StreamSpecification"] == {
        "StreamViewType": expected["StreamSpecification"]["StreamViewType"]}
    assert set(props) - {"TableName"} >= set(expected) - {"TableName"}


def test_event_sources_and_queue_timing(translated: dict[str, Any]) -> None:
    """SQS feeds the consumer with partial batch failures, the table's stream feeds the stream
    function; the queue's visibility timeout is at least 6x the consumer's timeout and its
    redrive count is the one the consumer is told."""
    mappings = {m["Properties"]["FunctionName"]["Ref"]: m["Properties"] for m in
                resources_of_type(translated, "AWS::Lambda::EventSourceMapping").values()}
    assert set(mappings) == {"OutboxConsumerFunction", "OutboxStreamFunction"}
    sqs = mappings["OutboxConsumerFunction"]
    assert sqs["EventSourceArn"] == {"Fn::GetAtt": ["OutboxQueue", "Arn"]}
    assert sqs["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    stream = mappings["OutboxStreamFunction"]
    assert stream["EventSourceArn"] == {"Fn::GetAtt": ["Table", "StreamArn"]}
    assert stream["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert stream["BisectBatchOnFunctionError"] is True
    assert stream["MaximumRecordAgeInSeconds"] <= 24 * 3600  # a stream record's life
    from paywire.aws.stream import OUTBOX_SORT_KEY

    assert [json.loads(f["Pattern"]) for f in stream["FilterCriteria"]["Filters"]] == [
        {"eventName": ["INSERT"], "dynamodb": {"Keys": {"sk": {"S": [OUTBOX_SORT_KEY]}}}}]

    resources = translated["Resources"]
    queue = resources["OutboxQueue"]["Properties"]
    consumer = resources["OutboxConsumerFunction"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * consumer["Timeout"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["OutboxDeadLetterQueue", "Arn"]},
        "maxReceiveCount": {"Ref": "MaxReceiveCount"}}
    assert consumer["Environment"]["Variables"]["PAYWIRE_SQS_MAX_RECEIVES"] == {
        "Ref": "MaxReceiveCount"}


def resolved_policy(policy: Any, template: dict[str, Any], parameters: dict[str, str]) -> Any:
    """A DeletionPolicy/UpdateReplacePolicy as AWS::LanguageExtensions resolves it for these
    parameter values (a plain string, or `Fn::If` on one of the template's conditions)."""
    if not isinstance(policy, dict):
        return policy
    [(intrinsic, (condition, if_true, if_false))] = policy.items()
    assert intrinsic == "Fn::If", policy
    return if_true if evaluate(template["Conditions"][condition], parameters) else if_false


def test_dlq_and_log_groups_are_retained_on_a_live_stage(translated: dict[str, Any]) -> None:
    """The DLQ and every log group (each function's, the access log) are kept on delete and on
    replacement when PayPalEnvironment is live, deleted with a sandbox stage; the table is
    kept on every stage; the template runs AWS::LanguageExtensions first, which resolves those
    conditional policies."""
    assert load_template()["Transform"] == ["AWS::LanguageExtensions",
                                            "AWS::Serverless-2016-10-31"]
    resources = translated["Resources"]
    kept = ["OutboxDeadLetterQueue", *resources_of_type(translated, "AWS::Logs::LogGroup")]
    assert len(kept) == 1 + len(FUNCTIONS) + 1  # the DLQ, each function's, the access log
    for name in kept:
        for attribute in ("DeletionPolicy", "UpdateReplacePolicy"):
            policy = resources[name].get(attribute)
            assert resolved_policy(policy, translated, {"PayPalEnvironment": "live"}) == (
                "Retain"), (name, attribute)
            assert resolved_policy(policy, translated, {"PayPalEnvironment": "sandbox"}) == (
                "Delete"), (name, attribute)
    assert resources["Table"]["DeletionPolicy"] == "Retain"
    assert resources["Table"]["UpdateReplacePolicy"] == "Retain"


def test_every_function_is_traced_with_only_trace_writes(translated: dict[str, Any]) -> None:
    """Every function has active X-Ray tracing and its role the two X-Ray write actions, in a
    statement of their own that grants nothing else."""
    for name, function in resources_of_type(translated, "AWS::Lambda::Function").items():
        assert function["Properties"]["TracingConfig"] == {"Mode": "Active"}, name
        role = function["Properties"]["Role"]["Fn::GetAtt"][0]
        tracing = [s for s in role_statements(translated, role)
                   if any(str(a).startswith("xray:") for a in s.get("Action", []))]
        assert tracing == [{"Sid": "Traces", "Effect": "Allow",
                            "Action": sorted(TRACE_ACTIONS, reverse=True), "Resource": "*"}], name


def test_concurrency_bounds_the_blast_radius(translated: dict[str, Any]) -> None:
    """The consumer's event source starts at most ConsumerMaximumConcurrency batches (a
    parameter within SQS's 2..1000, default small); the drainer and the reconciler run one at a
    time and are never retried asynchronously; no other function gets an async retry config."""
    parameter = translated["Parameters"]["ConsumerMaximumConcurrency"]
    assert (parameter["MinValue"], parameter["MaxValue"]) == (2, 1000)
    assert 2 <= parameter["Default"] <= 10
    mappings = {m["Properties"]["FunctionName"]["Ref"]: m["Properties"] for m in
                resources_of_type(translated, "AWS::Lambda::EventSourceMapping").values()}
    assert mappings["OutboxConsumerFunction"]["ScalingConfig"] == {
        "MaximumConcurrency": {"Ref": "ConsumerMaximumConcurrency"}}
    functions = resources_of_type(translated, "AWS::Lambda::Function")
    reserved = {name: f["Properties"].get("ReservedConcurrentExecutions")
                for name, f in functions.items()}
    assert reserved["OutboxDrainerFunction"] == reserved["ReconcilerFunction"] == 1
    # The webhook function's own concurrency: reserved unless the parameter says 0.
    [(intrinsic, (condition, if_true, if_false))] = reserved["WebhookFunction"].items()
    assert intrinsic == "Fn::If" and if_true == {"Ref": "WebhookReservedConcurrency"}
    assert if_false == {"Ref": "AWS::NoValue"}
    for value, reserves in ((0, False), (10, True)):
        assert evaluate(translated["Conditions"][condition],
                        {"WebhookReservedConcurrency": str(value)}) is reserves
    assert 1 <= translated["Parameters"]["WebhookReservedConcurrency"]["Default"] <= 100
    assert {name for name, value in reserved.items() if value is not None} == {
        "OutboxDrainerFunction", "ReconcilerFunction", "WebhookFunction"}
    invoke_configs = {c["Properties"]["FunctionName"]["Ref"]: c["Properties"] for c in
                      resources_of_type(translated, "AWS::Lambda::EventInvokeConfig").values()}
    assert set(invoke_configs) == {"OutboxDrainerFunction", "ReconcilerFunction"}
    for config in invoke_configs.values():
        assert config["MaximumRetryAttempts"] == 0
        assert config["Qualifier"] == "$LATEST"  # what the schedule invokes


def test_http_api_logs_each_request_as_json_and_throttles_each_route(
        translated: dict[str, Any]) -> None:
    """The HTTP API's stage writes one JSON access-log line per request (request id, route,
    status, latencies; no header, query string or body) to a log group of its own with the
    stage's retention, and throttles each route at the ApiThrottling* parameters."""
    [stage] = resources_of_type(translated, "AWS::ApiGatewayV2::Stage").values()
    settings = stage["Properties"]["AccessLogSettings"]
    assert settings["DestinationArn"] == {"Fn::GetAtt": ["HttpApiAccessLogGroup", "Arn"]}
    line = json.loads(settings["Format"])
    assert {"requestId", "routeKey", "status", "latencyMs", "integrationError"} <= set(line)
    variables = set(re.findall(r"\$context\.[A-Za-z.]+", settings["Format"]))
    assert variables == set(line.values())  # each field is exactly one variable
    # The authorizer's caller id (a digest prefix, never the key) and its error only.
    assert {v for v in variables if "authorizer" in v} == {
        "$context.authorizer.caller", "$context.authorizer.error"}
    assert not any(word in v.lower() for v in variables
                   for word in ("header", "querystring", "body"))
    group = translated["Resources"]["HttpApiAccessLogGroup"]
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert stage["Properties"]["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": {"Ref": "ApiThrottlingBurstLimit"},
        "ThrottlingRateLimit": {"Ref": "ApiThrottlingRateLimit"}}
    for name in ("ApiThrottlingBurstLimit", "ApiThrottlingRateLimit"):
        assert translated["Parameters"][name]["MinValue"] >= 1, name


def test_docs_are_off_on_a_live_stage(translated: dict[str, Any]) -> None:
    """The HTTP function is told PAYWIRE_API_DOCS=false exactly when PayPalEnvironment is
    live, and the Lambda app so configured answers /docs and /openapi.json with paywire's 404
    (and serves them otherwise)."""
    expression = translated["Resources"]["HttpFunction"]["Properties"]["Environment"][
        "Variables"]["PAYWIRE_API_DOCS"]
    [(intrinsic, (condition, if_true, if_false))] = expression.items()
    assert intrinsic == "Fn::If"

    def docs(environment: str) -> str:
        live = evaluate(translated["Conditions"][condition], {"PayPalEnvironment": environment})
        return str(if_true if live else if_false)

    assert (docs("live"), docs("sandbox")) == ("false", "true")

    async def statuses(value: str) -> list[int]:
        settings = Settings(_env_file=None, api_docs=value)  # as pydantic reads the variable
        app = lambda_app(settings)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://api") as api:
            answers = [await api.get(path) for path in ("/docs", "/openapi.json")]
        for answer in answers:
            if answer.status_code == 404:
                assert answer.json()["error"]["code"] == "not_found"
        return [a.status_code for a in answers]

    assert asyncio.run(statuses(docs("live"))) == [404, 404]
    assert asyncio.run(statuses(docs("sandbox"))) == [200, 200]


def test_functions_environment_holds_no_secret(translated: dict[str, Any]) -> None:
    """Every function runs Python 3.11 with its contract handler and exactly the contract's
    environment: names and URLs, no credential (secrets are read at run time)."""
    functions = resources_of_type(translated, "AWS::Lambda::Function")
    assert {name: f["Properties"]["Handler"] for name, f in functions.items()} == FUNCTIONS
    for name, function in functions.items():
        props = function["Properties"]
        assert props["Runtime"] == "python3.11", name
        variables = props["Environment"]["Variables"]
        assert set(variables) == ENVIRONMENT | HTTP_ENVIRONMENT.get(name, set()), name
        assert variables["PAYWIRE_DATABASE_URL"] == {"Fn::Sub": "dynamodb://${Table}"}
        assert variables["PAYWIRE_SQS_QUEUE_URL"] == {"Ref": "OutboxQueue"}
        assert variables["PAYWIRE_STAGE"] == {"Ref": "Stage"}
        assert variables["PAYWIRE_PAYPAL_ENV"] == {"Ref": "PayPalEnvironment"}
        assert not any(word in key for key in variables
                       for word in ("SECRET", "CLIENT", "API_KEY", "PASSWORD", "TOKEN"))


def test_outputs_name_the_urls_and_resources(translated: dict[str, Any]) -> None:
    """Outputs: the API and webhook URLs, the table, the queue and its DLQ."""
    out = translated["Outputs"]
    assert out["WebhookUrl"]["Value"] == {"Fn::Sub": "https://${HttpApi}.execute-api."
                                          "${AWS::Region}.${AWS::URLSuffix}/webhooks/paypal"}
    assert out["ApiUrl"]["Value"] == {
        "Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"}
    assert out["TableName"]["Value"] == {"Ref": "Table"}
    assert out["OutboxQueueUrl"]["Value"] == {"Ref": "OutboxQueue"}
    assert out["OutboxDeadLetterQueueUrl"]["Value"] == {"Ref": "OutboxDeadLetterQueue"}


def test_parameters_constrain_stage_and_environment(translated: dict[str, Any]) -> None:
    """`Stage` admits short lower-case names only, so every name made from it is valid (the
    longest function name fits Lambda's 64 characters); `PayPalEnvironment` is sandbox or
    live, nothing else."""
    parameters = load_template()["Parameters"]
    pattern = parameters["Stage"]["AllowedPattern"]
    for good in ("dev", "prod", "eu-live2", "a" * 20):
        assert re.fullmatch(pattern, good), good
    for bad in ("", "Prod", "2dev", "dev_1", "a/b", "dev ", "a" * 21):
        assert not re.fullmatch(pattern, bad), bad
    assert parameters["PayPalEnvironment"]["AllowedValues"] == ["sandbox", "live"]
    longest = "a" * 20
    for function in resources_of_type(translated, "AWS::Lambda::Function").values():
        name = function["Properties"]["FunctionName"]["Fn::Sub"].replace("${Stage}", longest)
        assert len(name) <= 64, name
    for queue in resources_of_type(translated, "AWS::SQS::Queue").values():
        name = queue["Properties"]["QueueName"]["Fn::Sub"].replace("${Stage}", longest)
        assert len(name) <= 80, name


# --- 3b. alarms ------------------------------------------------------------------------------

NOTIFY = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}


def alarms_of(translated: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every alarm's properties, by logical id."""
    return {name: r["Properties"]
            for name, r in resources_of_type(translated, "AWS::CloudWatch::Alarm").items()}


def evaluate(expression: Any, parameters: dict[str, str]) -> Any:
    """The value of a Rules/Conditions expression (Ref, Fn::Equals, Fn::Not, Fn::And, Fn::Or)
    for these parameter values."""
    if isinstance(expression, dict):
        [(name, args)] = expression.items()
        if name == "Ref":
            return parameters[args]
        values = [evaluate(arg, parameters) for arg in args]
        if name == "Fn::Equals":
            return values[0] == values[1]
        if name == "Fn::Not":
            return not values[0]
        if name == "Fn::And":
            return all(values)
        if name == "Fn::Or":
            return any(values)
        raise AssertionError(f"unexpected intrinsic {name}")
    return expression


def test_every_function_has_errors_and_throttles_alarms(translated: dict[str, Any]) -> None:
    """Each Lambda function the template makes has an alarm on its Errors and one on its
    Throttles (AWS/Lambda, its own FunctionName, any datapoint over 0)."""
    functions = set(resources_of_type(translated, "AWS::Lambda::Function"))
    assert functions == set(FUNCTIONS)
    watched: dict[str, set[str]] = {name: set() for name in functions}
    for alarm in alarms_of(translated).values():
        if alarm.get("Namespace") != "AWS/Lambda" or len(alarm["Dimensions"]) > 1:
            continue  # the canaries' alarms watch one version: see the next test
        [dimension] = alarm["Dimensions"]
        assert dimension["Name"] == "FunctionName"
        watched[dimension["Value"]["Ref"]].add(alarm["MetricName"])
        assert (alarm["Statistic"], alarm["ComparisonOperator"], alarm["Threshold"]) == (
            "Sum", "GreaterThanThreshold", 0)
    assert watched == {name: {"Errors", "Throttles"} for name in functions}


def test_functions_behind_the_api_deploy_as_canaries_that_roll_back(
        translated: dict[str, Any]) -> None:
    """The HTTP and webhook functions publish a version per deployment behind a `live` alias
    (which the API invokes); CodeDeploy shifts the alias as DeploymentStrategy says (a canary
    by default) and rolls back on an alarm that watches the new version's own errors."""
    strategy = translated["Parameters"]["DeploymentStrategy"]
    assert strategy["Default"].startswith("Canary") and "AllAtOnce" in strategy["AllowedValues"]
    groups = resources_of_type(translated, "AWS::CodeDeploy::DeploymentGroup")
    aliases = resources_of_type(translated, "AWS::Lambda::Alias")
    alarms = alarms_of(translated)
    assert len(groups) == len(aliases) == 2
    for function in ("HttpFunction", "WebhookFunction"):
        [alias] = [a for a in aliases.values()
                   if a["Properties"]["FunctionName"] == {"Ref": function}]
        assert alias["Properties"]["Name"] == "live"
        update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
        group = groups[update["DeploymentGroupName"]["Ref"]]
        properties = group["Properties"]
        rollback = properties["AutoRollbackConfiguration"]
        assert rollback["Enabled"] is True
        assert {"DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"} <= set(rollback["Events"])
        [watched] = properties["AlarmConfiguration"]["Alarms"]
        assert properties["AlarmConfiguration"]["Enabled"] is True
        alarm = alarms[watched["Name"]["Ref"]]
        assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", "Errors")
        dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
        assert dimensions["FunctionName"] == {"Ref": function}
        assert dimensions["Resource"] == {"Fn::Sub": f"${{{function}}}:live"}
        version = dimensions["ExecutedVersion"]["Fn::GetAtt"]
        assert translated["Resources"][version[0]]["Type"] == "AWS::Lambda::Version"
        assert version[1] == "Version"
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
        config = properties["DeploymentConfigName"]["Fn::Sub"]
        assert config[0] == "CodeDeployDefault.Lambda${ConfigName}", config
        # (SAM's translator resolves the parameter: here its default.)
        assert config[1]["ConfigName"] == strategy["Default"]


def test_every_alarm_notifies_the_alarm_topic(translated: dict[str, Any]) -> None:
    """Every alarm, the DLQ's included, notifies AlarmTopicArn going into alarm and back to OK
    (whenever the stage has a topic)."""
    alarms = alarms_of(translated)
    assert len(alarms) >= 2 * len(FUNCTIONS) + 10
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == NOTIFY, name
        assert alarm["OKActions"] == NOTIFY, name
        assert alarm["AlarmName"]["Fn::Sub"].startswith("paywire-${Stage}-"), name
    condition = translated["Conditions"]["HasAlarmTopic"]
    assert evaluate(condition, {"AlarmTopicArn": ""}) is False
    assert evaluate(condition, {"AlarmTopicArn": TOPIC}) is True


TOPIC = f"arn:aws:sns:us-east-1:{ACCOUNT}:paywire-alarms"


def test_live_stage_requires_the_alarm_topic(translated: dict[str, Any]) -> None:
    """A rule refuses a live stage without AlarmTopicArn; a live stage with one, and a sandbox
    stage with or without one, pass."""
    rules = translated["Rules"]
    assert set(rules) == {"LiveStageHasAlarmTopic"}
    rule = rules["LiveStageHasAlarmTopic"]

    def accepted(environment: str, topic: str) -> bool:
        parameters = {"PayPalEnvironment": environment, "AlarmTopicArn": topic}
        if not evaluate(rule["RuleCondition"], parameters):
            return True
        return all(evaluate(a["Assert"], parameters) for a in rule["Assertions"])

    assert not accepted("live", "")
    assert accepted("live", TOPIC)
    assert accepted("sandbox", "") and accepted("sandbox", TOPIC)
    assert all(a["AssertDescription"] for a in rule["Assertions"])
    pattern = load_template()["Parameters"]["AlarmTopicArn"]["AllowedPattern"]
    assert re.fullmatch(pattern, TOPIC) and re.fullmatch(pattern, "")


def test_paywire_metric_alarms_watch_what_the_functions_emit(
        translated: dict[str, Any]) -> None:
    """The alarms on paywire's own metrics watch names `services.metering` defines, in the
    namespace the functions publish to (POWERTOOLS_METRICS_NAMESPACE), at the `service`
    rollup the EMF lines carry; each signal the issue names has one."""
    from paywire.services import metering

    functions = resources_of_type(translated, "AWS::Lambda::Function").values()
    namespaces = {json.dumps(f["Properties"]["Environment"]["Variables"][
        "POWERTOOLS_METRICS_NAMESPACE"], sort_keys=True) for f in functions}
    assert namespaces == {json.dumps({"Fn::Sub": "paywire/${Stage}"})}
    ours = {a["MetricName"]: a for a in alarms_of(translated).values()
            if a.get("Namespace") == {"Fn::Sub": "paywire/${Stage}"}}
    assert set(ours) == {metering.WEBHOOK_REJECTIONS, metering.NEEDS_ATTENTION_FLAGGED,
                         metering.OUTBOX_MESSAGES_DEAD, metering.RECONCILE_ERRORS,
                         metering.PROVIDER_CALL_FAILURES}
    assert set(ours) <= set(metering.METRICS)
    for name, alarm in ours.items():
        assert alarm["Dimensions"] == [{"Name": "service", "Value": "paywire"}], name
        assert alarm["Statistic"] == "Sum" and alarm["TreatMissingData"] == "notBreaching"
    for signal in (metering.NEEDS_ATTENTION_FLAGGED, metering.OUTBOX_MESSAGES_DEAD):
        assert (ours[signal]["ComparisonOperator"], ours[signal]["Threshold"]) == (
            "GreaterThanThreshold", 0)
    assert ours[metering.WEBHOOK_REJECTIONS]["Threshold"] == {
        "Ref": "WebhookRejectionsThreshold"}


def test_api_queue_and_table_alarms(translated: dict[str, Any]) -> None:
    """The HTTP API's 5xx count and p99 latency, the outbox queue's oldest message and every
    read and write throttle of the table and each of its indexes have alarms."""
    alarms = list(alarms_of(translated).values())
    api = {a["MetricName"]: a for a in alarms if a.get("Namespace") == "AWS/ApiGateway"}
    assert set(api) == {"5xx", "Latency"}
    for alarm in api.values():
        assert alarm["Dimensions"] == [{"Name": "ApiId", "Value": {"Ref": "HttpApi"}}]
    assert api["Latency"]["ExtendedStatistic"] == "p99"
    assert api["Latency"]["Threshold"] == {"Ref": "ApiLatencyP99Milliseconds"}
    [age] = [a for a in alarms if a.get("MetricName") == "ApproximateAgeOfOldestMessage"]
    assert age["Dimensions"] == [{"Name": "QueueName", "Value": {
        "Fn::GetAtt": ["OutboxQueue", "QueueName"]}}]
    assert age["Statistic"] == "Maximum"
    [throttles] = [a for a in alarms if "Metrics" in a]
    table = translated["Resources"]["Table"]["Properties"]
    indexes = [None] + [i["IndexName"] for i in table["GlobalSecondaryIndexes"]]
    stats = [m["MetricStat"] for m in throttles["Metrics"] if "MetricStat" in m]
    seen = set()
    for stat in stats:
        metric = stat["Metric"]
        assert metric["Namespace"] == "AWS/DynamoDB" and stat["Stat"] == "Sum"
        dims = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
        assert dims["TableName"] == {"Ref": "Table"}
        seen.add((metric["MetricName"], dims.get("GlobalSecondaryIndexName")))
    assert seen == {(m, i) for m in ("ReadThrottleEvents", "WriteThrottleEvents")
                    for i in indexes}
    [expression] = [m for m in throttles["Metrics"] if m.get("ReturnData")]
    ids = {m["Id"] for m in throttles["Metrics"] if "MetricStat" in m}
    assert set(re.findall(r"\bm\d+\b", expression["Expression"])) == ids
    assert (throttles["ComparisonOperator"], throttles["Threshold"]) == (
        "GreaterThanThreshold", 0)


# --- 4. the stack in moto --------------------------------------------------------------------


def test_moto_reports_unsupported_types(moto: LoggedMotoServer) -> None:
    """The log capture works: a stack with a type no moto supports is reported as such (so an
    empty report for the real stack means something)."""
    offset = moto.log_size()
    client(moto, "cloudformation").create_stack(
        StackName=f"canary-{STAGE}", TemplateBody=json.dumps({"Resources": {
            "Canary": {"Type": "AWS::PaywireCanary::Thing", "Properties": {}}}}))
    assert unsupported_types(moto.log_since(offset)) == {"AWS::PaywireCanary::Thing"}


def test_stack_creates_with_only_allowlisted_gaps(stack: dict[str, Any]) -> None:
    """The stack completes in moto; the only resource types moto skipped are the allowlisted
    ones, and everything else exists."""
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert stack["unsupported"] <= set(MOTO_GAPS), stack["unsupported"] - set(MOTO_GAPS)
    created = {name: r["ResourceType"] for name, r in stack["resources"].items()}
    assert created == {name: kind for name, kind in stack["expected"].items()
                       if kind not in MOTO_GAPS}
    out = outputs(stack)
    assert out["TableName"] == f"paywire-{STAGE}"
    assert out["OutboxQueueUrl"].endswith(f"/paywire-{STAGE}-outbox")
    assert out["OutboxDeadLetterQueueUrl"].endswith(f"/paywire-{STAGE}-outbox-dlq")


def test_created_queue_redrives_to_the_dlq(moto: LoggedMotoServer, stack: dict[str, Any]) -> None:
    """The created queue's redrive policy names the DLQ with the stack's MaxReceiveCount."""
    sqs = client(moto, "sqs")
    out = outputs(stack)
    attributes = sqs.get_queue_attributes(QueueUrl=out["OutboxQueueUrl"],
                                          AttributeNames=["All"])["Attributes"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=out["OutboxDeadLetterQueueUrl"],
                                       AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert json.loads(attributes["RedrivePolicy"]) == {"deadLetterTargetArn": dlq_arn,
                                                       "maxReceiveCount": MAX_RECEIVES}


# --- 5. the created functions ----------------------------------------------------------------


def test_created_functions_resolve_to_paywire_handlers(
        moto: LoggedMotoServer, stack: dict[str, Any], translated: dict[str, Any]) -> None:
    """Each created function's handler is an importable callable in `paywire.aws`, its
    environment points at this stack's table and queue, and only the drainer and the
    reconciler (1) and the webhook function (WebhookReservedConcurrency) reserve
    concurrency."""
    out = outputs(stack)
    configs = function_configurations(moto, STAGE)
    assert sorted(c["Handler"] for c in configs.values()) == sorted(FUNCTIONS.values())
    code_sha = base64.b64encode(hashlib.sha256(code_zip()).digest()).decode()
    assert {c["CodeSha256"] for c in configs.values()} == {code_sha}  # the rewritten CodeUri
    assert {c["Runtime"] for c in configs.values()} == {"python3.11"}
    for name, config in configs.items():
        module_name, _, attribute = config["Handler"].rpartition(".")
        assert module_name.startswith("paywire.aws."), name
        handler = getattr(importlib.import_module(module_name), attribute)
        assert callable(handler), name
        variables = {k: str(v) for k, v in config["Environment"]["Variables"].items()}
        assert variables == {
            "PAYWIRE_STAGE": STAGE, "PAYWIRE_PAYPAL_ENV": "sandbox",
            "PAYWIRE_DATABASE_URL": f"dynamodb://{out['TableName']}",
            "PAYWIRE_SQS_QUEUE_URL": out["OutboxQueueUrl"],
            "PAYWIRE_SQS_MAX_RECEIVES": str(MAX_RECEIVES),
            "POWERTOOLS_SERVICE_NAME": "paywire", "POWERTOOLS_LOG_LEVEL": "INFO",
            "POWERTOOLS_METRICS_NAMESPACE": f"paywire/{STAGE}",
            **({"PAYWIRE_API_DOCS": "true"} if name.endswith("-http") else {})}, name
    lam = client(moto, "lambda")
    reserved = {name: lam.get_function_concurrency(FunctionName=name).get(
        "ReservedConcurrentExecutions") for name in configs}
    default = translated["Parameters"]["WebhookReservedConcurrency"]["Default"]
    assert reserved == {name: 1 if name.endswith(("-outbox-drainer", "-reconciler")) else
                        default if name.endswith("-webhooks") else None for name in configs}


API_KEY = "template-test-admin-key-0123456789"
WEBHOOK_ID = "WH-TEMPLATE-TEST"


@pytest.fixture
def deployed(moto: LoggedMotoServer, stack: dict[str, Any], emulator: EmulatorServer,
             monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[Deployed, Shop]]:
    """The stage configured as the README's deploy section says (its two secrets, its SSM
    parameters: here PayPal's host is the emulator and the catalog the demo one), a shop
    receiving announcements, and the handlers' AWS traffic recorded on its way to moto."""
    recorder = AwsRecorder(moto.endpoint_url)
    recorder.server.start()
    monkeypatch.chdir(tmp_path)  # no developer's .env
    for name, value in moto.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", recorder.url)
    try:
        with running_shop() as shop, restored_logging():
            secrets = client(moto, "secretsmanager")
            secrets.create_secret(Name=f"paywire/{STAGE}/paypal", SecretString=json.dumps({
                "environment": "sandbox", "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET, "webhook_id": WEBHOOK_ID}))
            secrets.create_secret(Name=f"paywire/{STAGE}/app", SecretString=json.dumps({
                "api_keys": [API_KEY], "fulfilment_secret": SHOP_SECRET,
                "fulfilment_url": shop.url}))
            ssm = client(moto, "ssm")
            for name, value in {"paypal_base_url": emulator.url,
                                "catalog_path": str(DEMO_CATALOG),
                                "return_url": "https://shop.example/paid",
                                "cancel_url": "https://shop.example/cart"}.items():
                ssm.put_parameter(Name=f"/paywire/{STAGE}/{name}", Value=value, Type="String")
            deployed = Deployed(moto, STAGE, function_configurations(moto, STAGE), recorder,
                                monkeypatch)
            try:
                yield deployed, shop
            finally:
                for config in deployed.configs.values():
                    module_name, _, attribute = config["Handler"].rpartition(".")
                    handler = getattr(importlib.import_module(module_name), attribute)
                    if hasattr(handler, "close"):  # the authorizer holds no session
                        handler.close()
    finally:
        recorder.server.stop()
        fresh_stage_cache()  # its clients point at the recorder, gone now


def test_handlers_run_with_the_created_configuration(
        deployed: tuple[Deployed, Shop], translated: dict[str, Any], stack: dict[str, Any],
        emulator: EmulatorServer) -> None:
    """With the created functions' own configuration: an order is bought through the HTTP
    function, the stream function (fed a real GetRecords answer) hands its announcement to
    SQS, the drainer finds nothing left, the consumer (fed a real ReceiveMessage answer)
    delivers it to the shop once, the reconciler runs; and every AWS request each function
    made is allowed by its own role as IAM holds it."""
    fn, shop = deployed
    moto, out = fn.moto, outputs(stack)
    routes = translated

    created = fn.http("POST", "/v1/checkout/orders", routes,
                      {"items": [{"sku": "mug", "quantity": 2}]})
    assert created.status == 201, created.body
    order = created.json()
    approved = httpx.post(f"{emulator.url}/_emulator/orders/{order['provider_order_id']}/approve",
                          json={"scenario": "approve"}, timeout=10)
    assert approved.status_code == 200, approved.text
    captured = fn.http("POST", f"/v1/checkout/orders/{order['id']}/capture", routes)
    assert captured.status == 200 and captured.json()["status"] == "COMPLETED", captured.body
    shown = fn.http("GET", f"/v1/orders/{order['id']}", routes,
                    headers={"authorization": f"Bearer {API_KEY}"})
    assert shown.status == 200 and shown.json()["status"] == "COMPLETED", shown.body

    # A delivery whose certificate URL is not PayPal's reaches the webhook function, which
    # refuses it for good (400), records why, and the operator reads that through the HTTP
    # function's admin API.
    forged = fn.http("POST", "/webhooks/paypal", routes, raw=json.dumps({
        "id": "WH-FORGED-1", "event_type": "PAYMENT.CAPTURE.COMPLETED",
        "resource": {"id": "CAPTURE-1"}}).encode(), headers={
        "content-type": "application/json", "paypal-transmission-id": "forged-transmission-1",
        "paypal-transmission-time": "2026-12-07T03:00:00Z",
        "paypal-transmission-sig": base64.b64encode(b"not a signature").decode(),
        "paypal-cert-url": "https://certs.example.net/v1/notifications/certs/CERT-1",
        "paypal-auth-algo": "SHA256withRSA"})
    assert forged.status == 400 and forged.json()["error"]["code"] == "webhook_rejected", (
        forged.body)
    rejections = fn.http("GET", "/v1/admin/webhook-rejections", routes,
                         headers={"authorization": f"Bearer {API_KEY}"})
    assert rejections.status == 200, rejections.body
    assert [(r["transmission_id"], r["check"]) for r in rejections.json()["data"]] == [
        ("forged-transmission-1", "cert_url")]
    # An admin route without a key is API Gateway's 401, with a wrong one the authorizer's 403:
    # neither reaches the HTTP function.
    before = len(fn.invoked)
    for headers, status in (({}, 401), ({"authorization": "Bearer not-a-key-0123456789"}, 403)):
        assert fn.http("GET", "/v1/orders", routes, headers=headers).status == status
    assert all(name.endswith("-authorizer") for name, _ in fn.invoked[before:])
    listed = fn.http("GET", "/v1/orders", routes, headers={"authorization": f"Bearer {API_KEY}"})
    assert listed.status == 200 and [o["id"] for o in listed.json()["data"]] == [order["id"]]

    # The table's stream, read as Lambda's mapping reads it and filtered by its pattern.
    stream_arn = client(moto, "dynamodb").describe_table(
        TableName=out["TableName"])["Table"]["LatestStreamArn"]
    streams = client(moto, "dynamodbstreams")
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        records.extend(streams.get_records(ShardIterator=iterator)["Records"])
    mapping = translated["Resources"]["OutboxStreamFunctionNewOutboxItems"]["Properties"]
    pattern = json.loads(mapping["FilterCriteria"]["Filters"][0]["Pattern"])
    new_outbox = [r for r in records if stream_filter_matches(pattern, r)]
    assert len(new_outbox) == 1 and len(records) > 1  # order.completed among the order's items
    assert fn.invoke("outbox-stream", stream_event(new_outbox, stream_arn)) == {
        "batchItemFailures": []}

    rules = {r["Properties"]["Targets"][0]["Arn"]["Fn::GetAtt"][0]: name
             for name, r in resources_of_type(translated, "AWS::Events::Rule").items()}
    account, region = ACCOUNT, moto.REGION

    def schedule(function: str) -> dict[str, Any]:
        rule_arn = f"arn:aws:events:{region}:{account}:rule/{rules[function]}"
        return scheduled_event(rule_arn, region, account)

    drained = fn.invoke("outbox-drainer", schedule("OutboxDrainerFunction"))
    assert drained["claimed"] == 0, drained  # the stream function already sent it

    sqs = client(moto, "sqs")
    queue_arn = sqs.get_queue_attributes(QueueUrl=out["OutboxQueueUrl"],
                                         AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    answer = sqs.receive_message(QueueUrl=out["OutboxQueueUrl"], MaxNumberOfMessages=10,
                                 AttributeNames=["All"], MessageAttributeNames=["All"])
    assert len(answer["Messages"]) == 1
    assert fn.invoke("outbox-consumer", sqs_event(answer, queue_arn)) == {
        "batchItemFailures": []}
    assert list(shop.types.values()) == ["order.completed"] and shop.bad == 0
    assert sorted(shop.accepted.values()) == [1]

    report = fn.invoke("reconciler", schedule("ReconcilerFunction"))
    assert report["errors"] == 0, report

    seen = check_calls_against_roles(moto, fn)
    # The recording saw the traffic the assertions above rely on: every function read the
    # stage's parameters, and exactly the secrets its role grants (the roles are derived from
    # these reads: SECRETS_READ); between them they read, wrote, queried and sent.
    roles = {f["Properties"]["FunctionName"]["Fn::Sub"].replace("${Stage}", STAGE):
             f["Properties"]["Role"]["Fn::GetAtt"][0]
             for f in resources_of_type(translated, "AWS::Lambda::Function").values()}
    read: dict[str, set[str]] = {name: set() for name in seen}
    for function, calls in fn.invoked:
        read[function] |= {c.params["SecretId"].rsplit("/", 1)[-1] for c in calls
                           if c.action == "secretsmanager:GetSecretValue"}
    for function, actions in seen.items():
        reads_parameters = EXPECTED_ACTIONS[roles[function]] >= PARAMETER_ACTIONS
        assert ("ssm:GetParametersByPath" in actions) is reads_parameters, (function, actions)
        assert read[function] == SECRETS_READ[roles[function]], function
    assert {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query",
            "sqs:SendMessage"} <= set().union(*seen.values()), seen


def test_redrive_waits_for_paywires_own_max_age() -> None:
    """The default MaxReceiveCount lies above the receives the consumer's backoff takes to reach
    the outbox's default maximum age, and the queue keeps a message longer than that age, so
    SQS neither dead-letters nor drops a message paywire still retries."""
    from datetime import timedelta

    from paywire.services.queue_delivery import receives_to_max_age

    template = load_template()
    defaults = Settings.model_fields
    needed = receives_to_max_age(
        timedelta(seconds=defaults["outbox_max_age_seconds"].default),
        timedelta(seconds=defaults["outbox_base_delay_seconds"].default),
        timedelta(seconds=defaults["outbox_max_delay_seconds"].default))
    assert needed is not None and 100 < needed < 200
    max_receives = template["Parameters"]["MaxReceiveCount"]
    assert max_receives["Default"] > needed and max_receives["MaxValue"] <= 1000
    queue = template["Resources"]["OutboxQueue"]["Properties"]
    assert queue["MessageRetentionPeriod"] >= defaults["outbox_max_age_seconds"].default + 86400
    from awskit import TEMPLATE_MAX_RECEIVES
    from paywire.dev.aws import MAX_RECEIVES

    assert max_receives["Default"] == TEMPLATE_MAX_RECEIVES == MAX_RECEIVES
