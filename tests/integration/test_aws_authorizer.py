"""API Gateway's Lambda authorizer for the admin routes, driven with the HTTP API's REQUEST
authorizer events (payload format 2.0) against the stage's app secret on a moto server process:
listed keys allowed (named as the app names them), anything else denied, the decision the same
as the HTTP function's own for every header, rotated keys taking effect after the loader's TTL,
an unreadable secret failing the invocation (API Gateway's 500) with an ERROR line that holds
no key, and exactly one AWS call per read: GetSecretValue on the app secret, never the PayPal
secret or SSM (recorded by a proxy in front of moto; access denied by moto's own IAM)."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from awskit import STAGE_API_KEYS as API_KEYS
from awskit import Clock, Stage
from awstemplatekit import AwsRecorder
from paywire.aws.api_keys import StageApiKeys
from paywire.aws.authorizer import Authorizer
from paywire.aws.config import AwsConfig
from paywire.aws.events import LocalContext, authorizer_event, http_answer, http_event
from paywire.aws.http import HttpApi
from paywire.aws.secrets import StageSecrets
from paywire.domain.errors import ConfigError
from paywire.testing import MotoServer, run_moto

pytestmark = pytest.mark.usefixtures("powertools_logging")

ADMIN_ROUTE = "GET /v1/orders"
ROTATED_KEY = "stage-rotated-key-cccccccccccc"
TTL = 300.0  # PAYWIRE_SECRETS_TTL_SECONDS' default


def authorizer(clock: Clock | None = None) -> Authorizer:
    """A fresh authorizer (a cold execution environment) on `clock`, its AWS clients made from
    the environment as in Lambda."""
    return Authorizer(StageApiKeys(clock=clock or Clock()))


def request(header: str | None, method: str = "GET", path: str = "/v1/orders"
            ) -> dict[str, Any]:
    """The HTTP API event of an admin request carrying `header` as its Authorization."""
    return http_event(method, path, headers={"authorization": header} if header is not None
                      else {})


def decide(fn: Authorizer, header: str | None, route: str = ADMIN_ROUTE,
           method: str = "GET", path: str = "/v1/orders") -> dict[str, Any]:
    """The authorizer's answer to the event API Gateway sends for such a request."""
    event = authorizer_event(request(header, method, path), route)
    assert event is not None, "API Gateway would have answered 401 itself"
    answer: dict[str, Any] = fn(event, LocalContext(function_name="paywire-authorizer"))
    return answer


def caller_id(key: str) -> str:
    """The id the app gives a key's holder (a SHA-256 prefix), computed here independently."""
    return "key_" + hashlib.sha256(key.encode()).hexdigest()[:16]


def log_lines(out: str) -> list[dict[str, Any]]:
    """The JSON log lines a handler printed (what CloudWatch would hold)."""
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_a_listed_key_is_allowed_and_named_as_the_app_names_it(stage: Stage) -> None:
    """Each configured key is allowed (scheme in any case, white space around the key) on every
    admin route, with the app's caller id as context and nothing secret in the answer."""
    stage.put_app(api_keys=API_KEYS)
    fn = authorizer()
    for key in API_KEYS:
        for header in (f"Bearer {key}", f"bearer   {key}  ", f"BEARER {key}"):
            answer = decide(fn, header)
            assert answer == {"isAuthorized": True, "context": {"caller": caller_id(key)}}
    refund = decide(fn, f"Bearer {API_KEYS[0]}", "POST /v1/orders/{id}/refunds", "POST",
                    "/v1/orders/ord_123/refunds")
    assert refund["isAuthorized"] is True
    assert not any(key in json.dumps(refund) for key in API_KEYS)
    assert API_KEYS[0] not in repr(fn) and API_KEYS[0] not in repr(fn.keys)


@pytest.mark.parametrize("header", [
    "Bearer stage-admin-key-aaaaaaaaaaaX",  # a wrong key
    "Basic c3RhZ2UtYWRtaW4ta2V5LWFhYWFhYWFhYWFhYTo=",  # another scheme
    "Bearer",  # no key
    "Bearer    ",
    "stage-admin-key-aaaaaaaaaaaa",  # a key without its scheme
    "Token stage-admin-key-aaaaaaaaaaaa",
    "Bearer stage-admin-key-aaaaaaaaaaaa,Bearer stage-server-key-bbbbbbbbbbb",  # two headers
])
def test_anything_but_a_listed_bearer_key_is_denied(stage: Stage, header: str) -> None:
    """A wrong key, another scheme, no key, a bare key and repeated headers are denied."""
    stage.put_app(api_keys=API_KEYS)
    assert decide(authorizer(), header) == {"isAuthorized": False}


def test_a_missing_header_never_reaches_the_authorizer_and_is_denied_if_it_does(
        stage: Stage) -> None:
    """API Gateway answers 401 itself when the identity source is missing or empty; invoked
    without the header anyway (an authorizer without an identity source), it denies."""
    stage.put_app(api_keys=API_KEYS)
    assert authorizer_event(request(None), ADMIN_ROUTE) is None
    assert authorizer_event(request(""), ADMIN_ROUTE) is None
    event = authorizer_event(request(f"Bearer {API_KEYS[0]}"), ADMIN_ROUTE)
    assert event is not None
    event["headers"].pop("authorization")
    assert authorizer()(event, LocalContext()) == {"isAuthorized": False}


def test_an_empty_key_list_denies_everything_with_a_warning(
        stage: Stage, capsys: pytest.CaptureFixture[str]) -> None:
    """No keys in the secret (none, an empty list, blanks): every key is denied, and the first
    read says why."""
    for value in ([], "", [" "], None):
        stage.put_app(api_keys=value)
        fn = authorizer()
        capsys.readouterr()
        assert decide(fn, f"Bearer {API_KEYS[0]}") == {"isAuthorized": False}
        warnings = [line for line in log_lines(capsys.readouterr().out)
                    if line["level"] == "WARNING"]
        assert len(warnings) == 1 and "no api_keys" in warnings[0]["message"]


def test_the_authorizer_and_the_http_function_agree_on_every_header(
        stage: Stage, tmp_path: Path) -> None:
    """The same request, sent to the authorizer (as API Gateway's authorizer event) and to the
    HTTP function (as its HTTP API event), both reading the same app secret: allowed exactly
    when the function answers 200, and the function's caller is the authorizer's context."""
    stage.put_paypal(environment="emulator")
    stage.put_app(api_keys=API_KEYS, database_url=f"sqlite+aiosqlite:///{tmp_path / 'p.db'}")
    fn = authorizer()
    http = HttpApi(settings_factory=StageSecrets(check_credentials=False).settings,
                   config_factory=AwsConfig)
    headers = [f"Bearer {API_KEYS[0]}", f"bearer  {API_KEYS[1]} ", f"Bearer {API_KEYS[0]}x",
               "Basic abc", "Bearer", "Bearer ", f"Bearer\t{API_KEYS[0]}", API_KEYS[0],
               f"Bearer {API_KEYS[0]},Bearer {API_KEYS[1]}", f"Bearer {API_KEYS[0][:-1]}"]
    try:
        for header in headers:
            event = authorizer_event(request(header), ADMIN_ROUTE)
            allowed = event is not None and fn(event, LocalContext())["isAuthorized"]
            answer = http_answer(http(request(header), LocalContext()))
            assert answer.status == (200 if allowed else 401), (header, answer.body)
    finally:
        http.close()


def test_rotated_keys_take_effect_after_the_loaders_ttl(stage: Stage) -> None:
    """A key added to the secret is denied until the TTL has run, then allowed; a key removed
    keeps working until then, then is denied."""
    stage.put_app(api_keys=API_KEYS)
    clock = Clock()
    fn = authorizer(clock)
    assert decide(fn, f"Bearer {API_KEYS[0]}")["isAuthorized"] is True
    stage.put_app(api_keys=[ROTATED_KEY, API_KEYS[1]])
    clock.now += TTL - 1
    assert decide(fn, f"Bearer {API_KEYS[0]}")["isAuthorized"] is True
    assert decide(fn, f"Bearer {ROTATED_KEY}")["isAuthorized"] is False
    clock.now += 1
    assert decide(fn, f"Bearer {API_KEYS[0]}")["isAuthorized"] is False
    assert decide(fn, f"Bearer {ROTATED_KEY}") == {
        "isAuthorized": True, "context": {"caller": caller_id(ROTATED_KEY)}}
    assert decide(fn, f"Bearer {API_KEYS[1]}")["isAuthorized"] is True


def test_a_failed_re_read_serves_the_keys_read_before_within_the_grace_period(
        stage: Stage, capsys: pytest.CaptureFixture[str]) -> None:
    """The secret deleted after a read: the keys read before keep working through the grace
    period (a WARNING), then the invocation fails."""
    stage.put_app(api_keys=API_KEYS)
    clock = Clock()
    fn = authorizer(clock)
    assert decide(fn, f"Bearer {API_KEYS[0]}")["isAuthorized"] is True
    stage.sm.delete_secret(SecretId=stage.app_id, ForceDeleteWithoutRecovery=True)
    clock.now += TTL
    capsys.readouterr()
    assert decide(fn, f"Bearer {API_KEYS[0]}")["isAuthorized"] is True
    warning = [line for line in log_lines(capsys.readouterr().out)
               if line["level"] == "WARNING"]
    assert len(warning) == 1 and "API keys not refreshed" in warning[0]["message"]
    clock.now += 900  # PAYWIRE_SECRETS_STALE_GRACE_SECONDS' default
    with pytest.raises(ConfigError):
        decide(fn, f"Bearer {API_KEYS[0]}")


def unreadable(fn: Authorizer, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """Invoke `fn` with a valid-looking key where the keys cannot be read: the invocation must
    fail (API Gateway answers 500); its error message and the log lines it printed."""
    capsys.readouterr()
    with pytest.raises(ConfigError) as info:
        decide(fn, f"Bearer {API_KEYS[0]}")
    return info.value.message, capsys.readouterr().out


def test_a_missing_secret_fails_the_invocation_naming_it_and_no_key(
        stage: Stage, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    """No app secret: the invocation fails (never an allow), with one ERROR line naming the
    secret and AWS's error code; no key anywhere in the output, the error or the records."""
    stage.put_paypal()  # the PayPal secret exists; the authorizer must not care
    caplog.set_level(logging.DEBUG)  # botocore's payload lines included
    message, out = unreadable(authorizer(), capsys)
    assert stage.app_id in message and "ResourceNotFoundException" in message
    errors = [line for line in log_lines(out) if line["level"] == "ERROR"]
    assert len(errors) == 1
    assert stage.app_id in errors[0]["message"] and "500" in errors[0]["message"]
    for key in API_KEYS:
        assert key not in out and key not in message and key not in caplog.text


def test_a_malformed_secret_fails_the_invocation(stage: Stage,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Keys the app would refuse to start with (not strings, too short), or a secret that is
    not a JSON object, fail the invocation naming the secret, never quoting it."""
    short = "short-key-9"
    for value in ({"api_keys": [API_KEYS[0], 7]}, {"api_keys": [API_KEYS[0], short]}):
        stage.put_app(**value)
        message, out = unreadable(authorizer(), capsys)
        assert stage.app_id in message and API_KEYS[0] not in out + message
        assert short not in out + message
    stage.sm.put_secret_value(SecretId=stage.app_id, SecretString=f"api_keys={API_KEYS[0]}")
    message, out = unreadable(authorizer(), capsys)
    assert "not a JSON object" in message and API_KEYS[0] not in out + message


def test_access_denied_by_iam_fails_the_invocation(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    """On a moto server of its own enforcing IAM: a role granted the app secret reads the keys;
    one granted only the PayPal secret is refused by AWS, and the invocation fails naming the
    secret and the refusal."""
    monkeypatch.chdir(tmp_path)
    name = "iam" + uuid.uuid4().hex[:10]
    with run_moto() as moto:
        for var, value in moto.env.items():
            monkeypatch.setenv(var, value)
        monkeypatch.setenv("PAYWIRE_STAGE", name)
        sm, iam = moto.client("secretsmanager"), moto.client("iam")
        arns = {which: sm.create_secret(Name=f"paywire/{name}/{which}", SecretString=json.dumps(
            {"api_keys": API_KEYS} if which == "app" else {"environment": "sandbox"}))["ARN"]
            for which in ("app", "paypal")}
        # moto checks a Secrets Manager request against the resource `*` (and cannot parse
        # the template's `-??????` suffix): the allowed user is granted `*`, the refused one
        # only the PayPal secret.
        users = {"allowed": _user(iam, f"{name}-allowed", "*"),
                 "refused": _user(iam, f"{name}-refused",
                                  arns["paypal"].rsplit("-", 1)[0] + "-*")}
        _enforce_iam(moto)
        for var, value in users["allowed"].items():
            monkeypatch.setenv(var, value)
        assert decide(authorizer(), f"Bearer {API_KEYS[0]}")["isAuthorized"] is True
        for var, value in users["refused"].items():
            monkeypatch.setenv(var, value)
        message, out = unreadable(authorizer(), capsys)
    # AWS answers AccessDeniedException; moto's refusal is an XML body botocore cannot read
    # for a JSON service, so the code it reports is the HTTP status.
    assert f"paywire/{name}/app" in message
    assert "AccessDenied" in message or "Secrets Manager: 403;" in message
    assert all(key not in out + message for key in API_KEYS)


def _user(iam: Any, user: str, resource: str) -> dict[str, str]:
    """An IAM user allowed GetSecretValue on `resource` alone; its credentials as env vars."""
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="secret", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
            "Resource": resource}]}))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


def _enforce_iam(moto: MotoServer) -> None:
    """From now on the server authenticates and authorizes every request (moto's reset-auth)."""
    import httpx

    answer = httpx.post(f"{moto.endpoint_url}/moto-api/reset-auth", content=b"0", timeout=10)
    assert answer.status_code == 200, answer.text


@pytest.fixture
def recorded(stage: Stage, moto_server: MotoServer,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsRecorder]:
    """Every AWS request the code under test makes, recorded on its way to moto."""
    recorder = AwsRecorder(moto_server.endpoint_url)
    recorder.server.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", recorder.url)
    try:
        yield recorder
    finally:
        recorder.server.stop()


def test_the_only_aws_call_is_get_secret_value_on_the_app_secret(
        stage: Stage, recorded: AwsRecorder) -> None:
    """Allowed, denied, re-read after the TTL: one GetSecretValue on the app secret per read
    and nothing else (no PayPal secret, no SSM, no table)."""
    stage.put_paypal()
    stage.put_app(api_keys=API_KEYS)
    clock = Clock()
    fn = authorizer(clock)
    assert decide(fn, f"Bearer {API_KEYS[0]}")["isAuthorized"] is True
    assert decide(fn, "Bearer not-a-key-at-all-000000")["isAuthorized"] is False
    assert decide(fn, "Basic abc")["isAuthorized"] is False
    clock.now += TTL
    assert decide(fn, f"Bearer {API_KEYS[1]}")["isAuthorized"] is True
    assert [(c.action, c.params) for c in recorded.calls] == [
        ("secretsmanager:GetSecretValue", {"SecretId": stage.app_id})] * 2


def test_a_payload_1_0_event_fails_the_invocation(stage: Stage) -> None:
    """An authorizer wired for payload 1.0 (or IAM policy answers) fails loudly, never allows."""
    stage.put_app(api_keys=API_KEYS)
    event = authorizer_event(request(f"Bearer {API_KEYS[0]}"), ADMIN_ROUTE)
    assert event is not None
    event["version"] = "1.0"
    with pytest.raises(ConfigError, match=r"payload format 2\.0"):
        authorizer()(event, LocalContext())


def test_the_authorizer_imports_no_web_framework_nor_store() -> None:
    """A cold start imports neither FastAPI/Starlette/Mangum nor the store or the app."""
    probe = ("import sys, paywire.aws.authorizer\n"
             "heavy = ('fastapi', 'starlette', 'mangum', 'sqlalchemy', 'paywire.store', "
             "'paywire.bootstrap', 'paywire.api.auth', 'paywire.api.app', 'paywire.providers')\n"
             "print(sorted(m for m in sys.modules if m.startswith(heavy)))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,  # noqa: S603
                          check=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stdout
