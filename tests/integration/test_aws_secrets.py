"""A stage's settings read from Secrets Manager and SSM on a moto server process over HTTP:
precedence, the TTL cache on an injected clock, a failed refresh served stale within the grace
period, clear errors for missing or malformed secrets and a sandbox/live mismatch (PayPal's and
APS's, which follows the stage), and no secret value in any log (botocore's DEBUG included),
error or repr."""

from __future__ import annotations

import json
import logging
import os

import pytest

from awskit import STAGE_API_KEYS as API_KEYS
from awskit import STAGE_CLIENT_SECRET as CLIENT_SECRET
from awskit import STAGE_WHSEC as WHSEC
from awskit import Clock, Stage
from paywire.aws.secrets import StageSecrets, load_settings
from paywire.domain.errors import ConfigError
from paywire.settings import Settings, StageSource

ROTATED_SECRET = "pp-client-secret-rotated-41d2"
ENV_SECRET = "env-client-secret-must-be-ignored"


def loader(clock: Clock | None = None, stage: Stage | None = None) -> StageSecrets:
    """A stage loader without the start-up token request (test_credentials_check covers it):
    its own boto3 clients from the environment, or (faster) the stage's clients."""
    if stage is None:
        return StageSecrets(clock=clock or Clock(), check_credentials=False)
    made = {"secretsmanager": stage.sm, "ssm": stage.ssm}
    return StageSecrets(clock=clock or Clock(), check_credentials=False, clients=made.__getitem__)


def refusal(stage_loader: StageSecrets) -> ConfigError:
    """The ConfigError loading the stage's settings raises."""
    with pytest.raises(ConfigError) as info:
        stage_loader.settings()
    return info.value


def test_settings_come_from_secrets_then_ssm_then_the_environment(
        stage: Stage, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Secrets beat SSM, SSM beats PAYWIRE_* (paginated past one page of 10); a client secret
    in the environment is ignored with a WARNING; nothing is written into os.environ."""
    stage.put_paypal()
    stage.put_app()
    params = {"return_url": "https://shop.example/ssm-return",
              "cancel_url": "https://shop.example/ssm-cancel",
              "fulfilment_url": "https://shop.example/from-ssm", "reconcile_batch": "77",
              "outbox_batch": "33", "truth_fetch_batch": "11", "max_rejections": "5000",
              "paypal_timeout_seconds": "7", "idempotency_ttl_seconds": "7200",
              "webhook_cert_timeout_seconds": "3", "outbox_interval_seconds": "2.5"}
    for name, value in params.items():
        stage.param(name, value)
    stage.param("cors_origins", "https://a.example,https://b.example", "StringList")
    monkeypatch.setenv("PAYWIRE_RETURN_URL", "https://env.example/return")
    monkeypatch.setenv("PAYWIRE_OUTBOX_CONCURRENCY", "4")
    monkeypatch.setenv("PAYWIRE_DATABASE_URL", "dynamodb://paywire-table")
    monkeypatch.setenv("PAYWIRE_PAYPAL_CLIENT_SECRET", ENV_SECRET)
    environ_before = dict(os.environ)

    s = loader().settings()

    assert (s.stage, s.stage_environment, s.paypal.env) == (stage.name, "sandbox", "sandbox")
    assert s.paypal.url == "https://api-m.sandbox.paypal.com"
    assert s.paypal.client_id == f"id-{stage.name}" and s.paypal.webhook_id == "WH-STAGE"
    assert s.paypal.client_secret is not None
    assert s.paypal.client_secret.get_secret_value() == CLIENT_SECRET
    assert [k.get_secret_value() for k in s.api_keys] == API_KEYS
    assert s.fulfilment_secret is not None and s.fulfilment_secret.get_secret_value() == WHSEC
    assert s.fulfilment_url == "https://shop.example/from-secret"  # secret > SSM
    assert s.return_url == "https://shop.example/ssm-return"  # SSM > environment
    assert s.outbox_concurrency == 4 and s.dynamodb_table == "paywire-table"  # environment
    assert (s.reconcile_batch, s.outbox_batch, s.truth_fetch_batch) == (77, 33, 11)
    assert s.cors_origins == ["https://a.example", "https://b.example"]
    assert (s.max_rejections, s.paypal.timeout_seconds, s.outbox_interval_seconds) == (
        5000, 7, 2.5)
    assert dict(os.environ) == environ_before
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("PAYWIRE_PAYPAL_CLIENT_SECRET ignored" in w for w in warnings), warnings
    monkeypatch.setenv("PAYWIRE_STARTUP_CREDENTIALS_CHECK", "false")  # no call to PayPal
    assert load_settings().stage == stage.name  # the process-wide entry point


def test_secrets_are_cached_for_the_ttl_then_re_read(stage: Stage,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Within the TTL a rotated secret is not seen (the same object comes back); after it the
    next call reads the new value; unchanged values keep the same object."""
    monkeypatch.setenv("PAYWIRE_SECRETS_TTL_SECONDS", "60")
    stage.put_paypal()
    stage.put_app()
    clock = Clock()
    secrets = loader(clock)
    first = secrets.settings()
    stage.put_paypal(secret=ROTATED_SECRET)
    clock.now += 59
    assert secrets.settings() is first
    clock.now += 2
    second = secrets.settings()
    assert second is not first and second.paypal.client_secret is not None
    assert second.paypal.client_secret.get_secret_value() == ROTATED_SECRET
    clock.now += 61
    assert secrets.settings() is second
    overridden = secrets.settings(reconcile_batch=5)
    assert overridden.reconcile_batch == 5 and overridden.paypal.client_secret is not None
    assert overridden.paypal.client_secret.get_secret_value() == ROTATED_SECRET


def test_a_failed_refresh_serves_stale_values_within_the_grace_period(
        stage: Stage, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A secret gone at refresh: the cached values keep serving for the grace period with a
    WARNING naming the secret and AWS's error code; after it, ConfigError; back once it is."""
    monkeypatch.setenv("PAYWIRE_SECRETS_TTL_SECONDS", "60")
    monkeypatch.setenv("PAYWIRE_SECRETS_STALE_GRACE_SECONDS", "120")
    stage.put_paypal()
    stage.put_app()
    clock = Clock()
    secrets = loader(clock)
    first = secrets.settings()
    stage.sm.delete_secret(SecretId=stage.paypal_id, ForceDeleteWithoutRecovery=True)
    clock.now += 61
    assert secrets.settings() is first
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert stage.paypal_id in warning and "ResourceNotFoundException" in warning
    clock.now += 118  # 179 s after the read: still within TTL + grace
    assert secrets.settings() is first
    clock.now += 2
    error = refusal(secrets)
    assert stage.paypal_id in error.message and "ResourceNotFoundException" in error.message
    assert error.details["aws_error_code"] == "ResourceNotFoundException"
    stage.put_paypal(secret=ROTATED_SECRET)
    recovered = secrets.settings()
    assert recovered.paypal.client_secret is not None
    assert recovered.paypal.client_secret.get_secret_value() == ROTATED_SECRET


def test_a_missing_secret_fails_the_first_read_naming_it(stage: Stage) -> None:
    """No PayPal secret, then no app secret: ConfigError naming the id, the code and the fix."""
    error = refusal(loader(stage=stage))
    assert stage.paypal_id in error.message and "ResourceNotFoundException" in error.message
    assert "PAYWIRE_PAYPAL_SECRET_ID" in error.message
    stage.put_paypal()
    error = refusal(loader(stage=stage))
    assert stage.app_id in error.message and "ResourceNotFoundException" in error.message


def test_a_function_reads_only_the_secrets_it_names(
        stage: Stage, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no PayPal secret at all: a loader reading only the app secret (the SQS consumer)
    gets the shop's URL and signing secret, one reading none (drainer, stream function) the
    SSM values; both take the stage's environment from PAYWIRE_PAYPAL_ENV (ConfigError
    without it) and load as outbox-only settings (no PayPal credentials or webhook id needed,
    none present). The full loader still refuses the missing PayPal secret."""
    stage.put_app()
    stage.param("outbox_batch", "21")
    made = {"secretsmanager": stage.sm, "ssm": stage.ssm}

    def reading(*names: str) -> StageSecrets:
        return StageSecrets(reads=frozenset(names), clock=Clock(), check_credentials=False,
                            clients=made.__getitem__)

    error = refusal(reading("app"))
    assert "reads no PayPal secret" in error.message and "PAYWIRE_PAYPAL_ENV" in error.message
    monkeypatch.setenv("PAYWIRE_PAYPAL_ENV", "sandbox")
    consumer = reading("app").settings()
    assert (consumer.stage_environment, consumer.paypal.env) == ("sandbox", "sandbox")
    assert consumer.fulfilment_secret is not None
    assert consumer.fulfilment_secret.get_secret_value() == WHSEC
    assert consumer.paypal.client_id is None and consumer.paypal.client_secret is None
    assert consumer.outbox_batch == 21
    drainer = reading().settings()
    assert drainer.outbox_batch == 21 and drainer.fulfilment_secret is None
    assert drainer.api_keys == [] and drainer.paypal.webhook_id is None
    assert repr(reading("app")) == "StageSecrets(stage=None, reads=['app'])"
    error = refusal(loader(stage=stage))
    assert stage.paypal_id in error.message and "ResourceNotFoundException" in error.message
    with pytest.raises(ValueError, match="unknown stage secrets: other"):
        StageSecrets(reads=frozenset({"other"}))


def test_secret_ids_can_be_overridden(stage: Stage, monkeypatch: pytest.MonkeyPatch) -> None:
    """PAYWIRE_PAYPAL_SECRET_ID / PAYWIRE_APP_SECRET_ID name other secrets."""
    stage.put_paypal()
    stage.put_app()
    other = Stage(stage.name + "x", stage.sm, stage.ssm)
    other.put_paypal(environment="live", secret=ROTATED_SECRET)
    monkeypatch.setenv("PAYWIRE_PAYPAL_SECRET_ID", other.paypal_id)
    s = loader(stage=stage).settings()
    assert s.paypal.env == "live" and s.paypal_secret_name == other.paypal_id
    assert s.paypal.client_secret is not None
    assert s.paypal.client_secret.get_secret_value() == ROTATED_SECRET


def test_the_secret_environment_must_agree_with_paypal_env(
        stage: Stage, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sandbox secret with PAYWIRE_PAYPAL_ENV=live fails naming both, never a value; the
    same for an override; agreeing values load."""
    stage.put_paypal(environment="sandbox")
    stage.put_app()
    monkeypatch.setenv("PAYWIRE_PAYPAL_ENV", "live")
    error = refusal(loader(stage=stage))
    assert "environment sandbox" in error.message and "PAYWIRE_PAYPAL_ENV is live" in error.message
    assert stage.paypal_id in error.message and CLIENT_SECRET not in error.message
    monkeypatch.setenv("PAYWIRE_PAYPAL_ENV", "sandbox")
    assert loader(stage=stage).settings().paypal.env == "sandbox"
    with pytest.raises(ConfigError, match="PAYWIRE_PAYPAL_ENV is live"):
        loader(stage=stage).settings(paypal_env="live")


def test_malformed_secrets_and_parameters_are_refused_by_name(stage: Stage) -> None:
    """Not JSON, unknown keys, no environment, a secret in SSM, an unknown parameter: each
    fails naming the secret or parameter and never quoting a value."""
    stage.put_app()
    stage._put(stage.paypal_id, f"client_secret={CLIENT_SECRET}")
    error = refusal(loader(stage=stage))
    assert "is not a JSON object" in error.message and CLIENT_SECRET not in str(error.details)
    stage.put_paypal(client_secert=CLIENT_SECRET)
    assert "unknown keys: client_secert" in refusal(loader(stage=stage)).message
    stage._put(stage.paypal_id, json.dumps({"client_id": "x", "client_secret": CLIENT_SECRET}))
    assert "must record \"environment\"" in refusal(loader(stage=stage)).message
    stage.put_paypal()
    stage.param("api_keys", API_KEYS[0])
    error = refusal(loader(stage=stage))
    assert f"/paywire/{stage.name}/api_keys holds a secret" in error.message
    stage.ssm.delete_parameter(Name=f"/paywire/{stage.name}/api_keys")
    stage.param("retrun_url", "https://typo.example")
    assert "retrun_url is not a setting" in refusal(loader(stage=stage)).message
    stage.ssm.delete_parameter(Name=f"/paywire/{stage.name}/retrun_url")
    stage.put_app(api_keys=["short-key-7c1"], fulfilment_secret=WHSEC)
    error = refusal(loader(stage=stage))
    assert "PAYWIRE_API_KEYS: key #1 is shorter" in error.message
    assert "short-key-7c1" not in error.message and WHSEC not in error.message


def test_no_secret_value_reaches_logs_errors_or_reprs(
        stage: Stage, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        capfd: pytest.CaptureFixture[str]) -> None:
    """Every logger at DEBUG (botocore's payload logs included) through a load, a rotation, a
    failed refresh and a failed first read: no secret value in any log, output, error or repr."""
    monkeypatch.setenv("PAYWIRE_SECRETS_TTL_SECONDS", "10")
    stage.put_paypal()
    stage.put_app()
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)
    clock = Clock()
    secrets = loader(clock)
    texts: list[str] = []
    first = secrets.settings()
    stage.put_paypal(secret=ROTATED_SECRET)
    clock.now += 11
    second = secrets.settings()
    stage.sm.delete_secret(SecretId=stage.app_id, ForceDeleteWithoutRecovery=True)
    clock.now += 11
    assert secrets.settings() is second
    failed = refusal(loader())  # a first read without the app secret
    texts += [failed.message, repr(failed), str(failed.details)]
    stage.put_app()
    values = secrets.read(StageSource.load())
    texts += [repr(first), str(first), repr(second), repr(secrets), repr(values),
              str(values), repr(first.model_dump())]
    out, err = capfd.readouterr()
    assert any(r.name.startswith("botocore") for r in caplog.records), "botocore was silent"
    places = {"logs": caplog.text, "stdout": out, "stderr": err, "errors and reprs": "\n".join(
        texts)}
    secret_values = {"client secret": CLIENT_SECRET, "rotated secret": ROTATED_SECRET,
                     "api key 0": API_KEYS[0], "api key 1": API_KEYS[1], "whsec": WHSEC}
    leaks = [f"{name} in {where}" for name, value in secret_values.items()
             for where, text in places.items() if value in text]
    assert not leaks, leaks


def test_an_emulator_stage_loads_for_offline_runs(stage: Stage) -> None:
    """A secret recording the emulator (`paywire dev --aws`) loads as an emulator stage; API
    keys may be one comma-separated string, and a null fulfilment secret is unset."""
    stage.put_paypal(environment="emulator")
    stage.put_app(api_keys=",".join(API_KEYS), fulfilment_secret=None)
    s = loader(stage=stage).settings()
    assert isinstance(s, Settings) and s.paypal.env == "emulator"
    assert [k.get_secret_value() for k in s.api_keys] == API_KEYS
    assert s.fulfilment_secret is None
    stage.put_app(api_keys=None)
    assert loader(stage=stage).settings().api_keys == []


def test_a_stage_takes_cards_through_aps_with_its_phrases_from_the_app_secret(
        stage: Stage, caplog: pytest.LogCaptureFixture) -> None:
    """APS's access code and phrases come from the app secret only (an SSM parameter for one
    is refused); the merchant identifier, URLs and the providers list are plain parameters."""
    stage.put_paypal()
    stage.put_app(api_keys=API_KEYS, aps_access_code="ACCESS-STAGE",
                  aps_request_phrase="REQ-PHRASE-STAGE", aps_response_phrase="RESP-PHRASE-STAGE")
    stage.param("providers", "paypal,aps", "StringList")
    stage.param("aps_env", "sandbox")
    stage.param("aps_merchant_identifier", "MERCH-STAGE")
    stage.param("aps_return_url", "https://pay.example/v1/aps/return")
    s = loader(stage=stage).settings()
    assert s.providers == ["paypal", "aps"] and s.aps.merchant_identifier == "MERCH-STAGE"
    assert s.aps.request_phrase is not None
    assert s.aps.request_phrase.get_secret_value() == "REQ-PHRASE-STAGE"
    assert s.aps.urls(s.paypal)[0] == "https://sbpaymentservices.payfort.com/FortAPI/paymentApi"
    for text in (repr(s), caplog.text):
        assert "PHRASE-STAGE" not in text and "ACCESS-STAGE" not in text
    stage.param("aps_response_phrase", "FROM-SSM")
    refused = refusal(loader(stage=stage))
    assert "aps_response_phrase" in refused.message and "FROM-SSM" not in refused.message


def aps_stage(stage: Stage, environment: str) -> None:
    """The stage's secrets and parameters for PayPal and APS, without `aps_env`."""
    stage.put_paypal(environment=environment)
    stage.put_app(api_keys=API_KEYS, aps_access_code="ACCESS-STAGE",
                  aps_request_phrase="REQ-PHRASE-STAGE", aps_response_phrase="RESP-PHRASE-STAGE")
    stage.param("providers", "paypal,aps", "StringList")
    stage.param("aps_merchant_identifier", "MERCH-STAGE")
    stage.param("aps_return_url", "https://pay.example/v1/aps/return")


@pytest.mark.parametrize("environment", ["sandbox", "live", "emulator"])
def test_aps_follows_the_stages_environment(stage: Stage, environment: str) -> None:
    """With no `aps_env` anywhere, APS's environment is the one the PayPal secret records: a
    sandbox stage pays on APS's test hosts, a live one on its live hosts over https, an
    emulator stage on the emulator beside PayPal's; an SSM parameter that agrees is taken."""
    aps_stage(stage, environment)
    s = loader(stage=stage).settings()
    assert (s.stage_environment, s.paypal.env, s.aps.env) == (environment, environment,
                                                              environment)
    hosts = {"sandbox": ("sbpaymentservices.payfort.com", "sbcheckout.payfort.com"),
             "live": ("paymentservices.payfort.com", "checkout.payfort.com"),
             "emulator": ("127.0.0.1:8090", "127.0.0.1:8090")}[environment]
    assert tuple(url.split("/")[2] for url in s.aps.urls(s.paypal)) == hosts
    assert s.is_live is (environment == "live")
    stage.param("aps_env", environment)
    assert loader(stage=stage).settings().aps.env == environment


@pytest.mark.parametrize("environment,other", [("live", "sandbox"), ("sandbox", "live"),
                                               ("live", "emulator")])
def test_an_aps_env_that_disagrees_with_the_stage_fails_naming_both(
        stage: Stage, monkeypatch: pytest.MonkeyPatch, environment: str, other: str) -> None:
    """`PAYWIRE_APS_ENV`, the SSM parameter `aps_env` or an override that is not the stage's
    environment fails start-up with a ConfigError naming the secret's environment and the
    setting (the parameter by its path), never a secret; the live stage never loads with APS
    test cards, nor the sandbox stage with real ones."""
    aps_stage(stage, environment)
    monkeypatch.setenv("PAYWIRE_APS_ENV", other)
    error = refusal(loader(stage=stage))
    assert f"{stage.paypal_id} records environment {environment}" in error.message
    assert f"PAYWIRE_APS_ENV is {other}" in error.message
    monkeypatch.delenv("PAYWIRE_APS_ENV")
    stage.param("aps_env", other)
    error = refusal(loader(stage=stage))
    assert f"records environment {environment}" in error.message
    assert f"SSM parameter /paywire/{stage.name}/aps_env is {other}" in error.message
    assert error.details["parameter"] == f"/paywire/{stage.name}/aps_env"
    stage.ssm.delete_parameter(Name=f"/paywire/{stage.name}/aps_env")
    with pytest.raises(ConfigError, match=f"PAYWIRE_APS_ENV is {other}") as overridden:
        loader(stage=stage).settings(aps_env=other)
    for text in (error.message, str(error.details), overridden.value.message):
        assert "PHRASE-STAGE" not in text and CLIENT_SECRET not in text
    assert loader(stage=stage).settings().aps.env == environment


def test_a_live_stage_takes_cards_on_apss_live_hosts_only(stage: Stage) -> None:
    """On a live stage the APS URLs must be APS's live hosts over https: an SSM parameter
    pointing the API or the payment page at APS's test host, at another host or at plain http
    fails naming the setting; a sandbox stage may not point at APS's live hosts."""
    aps_stage(stage, "live")
    for name, url in (("aps_api_url", "https://sbpaymentservices.payfort.com/FortAPI/paymentApi"),
                      ("aps_page_url", "https://sbcheckout.payfort.com/FortAPI/paymentPage"),
                      ("aps_api_url", "https://aps-proxy.example/FortAPI/paymentApi"),
                      ("aps_page_url", "http://checkout.payfort.com/FortAPI/paymentPage")):
        stage.param(name, url)
        error = refusal(loader(stage=stage))
        assert f"PAYWIRE_{name.upper()}" in error.message, url
        assert (f"stage {stage.name} is live" in error.message
                or "must be an https:// URL" in error.message), url
        stage.ssm.delete_parameter(Name=f"/paywire/{stage.name}/{name}")
    stage.param("aps_api_url", "https://paymentservices.payfort.com/FortAPI/paymentApi")
    loaded = loader(stage=stage).settings()
    assert loaded.aps.urls(loaded.paypal)[0] == (
        "https://paymentservices.payfort.com/FortAPI/paymentApi")
    stage.ssm.delete_parameter(Name=f"/paywire/{stage.name}/aps_api_url")
    aps_stage(stage, "sandbox")
    stage.param("aps_page_url", "https://checkout.payfort.com/FortAPI/paymentPage")
    error = refusal(loader(stage=stage))
    assert "PAYWIRE_APS_PAGE_URL is APS's live host" in error.message
    assert "sandbox stage" in error.message
