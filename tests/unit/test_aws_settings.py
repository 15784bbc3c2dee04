"""Stage settings without AWS: the stage model in `Settings`, `StageSource`'s names, DynamoDB
URLs, and how a refused token is explained (which host was asked, which environment claimed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from paywire.bootstrap.credentials import claimed_environment, explain_refusal
from paywire.domain.errors import ConfigError, ProviderError
from paywire.providers.paypal.oauth_probe import host_environment
from paywire.providers.paypal.refusals import error_from_response
from paywire.settings import DEMO_CATALOG, Settings, StageSource

SECRET = "stage-client-secret-never-shown"
PAYPAL = {"paypal_client_id": "client-id", "paypal_client_secret": SECRET,
          "paypal_webhook_id": "WH-STAGE", "catalog_path": DEMO_CATALOG}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No .env and no PAYWIRE_* of the developer's leak into these tests."""
    monkeypatch.chdir(tmp_path)
    for name in ("PAYWIRE_STAGE", "PAYWIRE_PAYPAL_ENV", "PAYWIRE_PAYPAL_SECRET_ID",
                 "PAYWIRE_APP_SECRET_ID", "PAYWIRE_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


def load(**values: Any) -> Settings:
    """Settings from `values` only."""
    return Settings.load(_env_file=None, **values)


def refused(**values: Any) -> str:
    """The ConfigError message for settings that must not load."""
    with pytest.raises(ConfigError) as info:
        load(**values)
    assert SECRET not in info.value.message
    return info.value.message


def test_a_stage_selects_its_secret_names_and_ssm_path() -> None:
    """The default secret ids are paywire/<stage>/paypal and /app; overrides win."""
    source = StageSource(_env_file=None, stage="prod")
    assert (source.paypal_secret, source.app_secret) == ("paywire/prod/paypal", "paywire/prod/app")
    assert source.parameters_path == "/paywire/prod"
    custom = StageSource(_env_file=None, stage="prod", paypal_secret_id="team/pp",
                         app_secret_id="team/app")
    assert (custom.paypal_secret, custom.app_secret) == ("team/pp", "team/app")
    assert StageSource(_env_file=None).stage is None
    assert StageSource(_env_file=None).secrets_ttl_seconds == 300


def test_stage_source_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """PAYWIRE_STAGE, PAYWIRE_PAYPAL_ENV and the TTL come from the environment."""
    monkeypatch.setenv("PAYWIRE_STAGE", "dev")
    monkeypatch.setenv("PAYWIRE_PAYPAL_ENV", "live")
    monkeypatch.setenv("PAYWIRE_SECRETS_TTL_SECONDS", "60")
    source = StageSource.load()
    assert (source.stage, source.paypal_env, source.secrets_ttl_seconds) == ("dev", "live", 60)


@pytest.mark.parametrize("stage", ["has space", "-lead", "a/b", "x" * 65])
def test_bad_stage_names_are_refused(stage: str) -> None:
    """A stage name must fit a secret name and an SSM path."""
    with pytest.raises(ConfigError, match="PAYWIRE_STAGE"):
        StageSource.load(_env_file=None, stage=stage)
    assert "PAYWIRE_STAGE" in refused(stage=stage)


def test_a_stage_cannot_be_loaded_from_the_environment_alone() -> None:
    """PAYWIRE_STAGE without the stage's secrets fails, pointing at stage_settings()."""
    message = refused(stage="prod")
    assert "paywire/prod/paypal" in message and "stage_settings" in message


def test_the_stage_environment_must_match_paypal_env() -> None:
    """The secret's environment and PAYWIRE_PAYPAL_ENV must agree; the message names both."""
    ok = load(stage="prod", stage_environment="live", paypal_env="live", **PAYPAL)
    assert ok.paypal.url == "https://api-m.paypal.com"
    assert ok.paypal_secret_name == "paywire/prod/paypal"
    assert ok.app_secret_name == "paywire/prod/app"
    message = refused(stage="prod", stage_environment="sandbox", paypal_env="live", **PAYPAL)
    assert "environment sandbox" in message and "PAYWIRE_PAYPAL_ENV is live" in message
    assert "paywire/prod/paypal" in message
    assert "PAYWIRE_STAGE" in refused(stage_environment="live", paypal_env="live", **PAYPAL)


def test_no_stage_means_no_secret_names() -> None:
    """Without a stage there are no secret names."""
    s = load()
    assert s.stage is None and s.paypal_secret_name is None and s.app_secret_name is None


@pytest.mark.parametrize("url,table", [("dynamodb://paywire-prod", "paywire-prod"),
                                       ("dynamodb://Pay_Wire.orders", "Pay_Wire.orders"),
                                       ("dynamodb://abc/", "abc"),
                                       ("dynamodb://t-1?region=eu-west-1", "t-1"),
                                       ("dynamodb://t-2?endpoint_url=http://127.0.0.1:5000"
                                        "&region=eu-west-1", "t-2")])
def test_dynamodb_urls_are_accepted(url: str, table: str) -> None:
    """A dynamodb://<table> store URL is accepted and its table name kept as written."""
    s = load(database_url=url)
    assert s.is_dynamodb and not s.is_sqlite and s.dynamodb_table == table
    assert s.database_url_redacted == url


@pytest.mark.parametrize("url", ["dynamodb://", "dynamodb://ab", "dynamodb://t/extra",
                                 "dynamodb://table?profile=x", "dynamodb://a b c",
                                 "dynamodb://user:pw@table", "mysql://db"])
def test_bad_database_urls_are_refused(url: str) -> None:
    """Malformed DynamoDB URLs and unknown schemes are refused naming the setting."""
    message = refused(database_url=url)
    assert "PAYWIRE_DATABASE_URL" in message and "user:pw" not in message


def test_sql_urls_are_not_dynamodb() -> None:
    """SQL stores have no DynamoDB table."""
    s = load(database_url="postgresql+psycopg://u:p@db/paywire")
    assert not s.is_dynamodb and s.dynamodb_table is None


@pytest.mark.parametrize("url,env", [("https://api-m.paypal.com", "live"),
                                     ("https://api.paypal.com/", "live"),
                                     ("https://api-m.sandbox.paypal.com", "sandbox"),
                                     ("https://api.sandbox.paypal.com", "sandbox"),
                                     ("http://127.0.0.1:8090", None),
                                     ("https://paypal.com.evil.example", None)])
def test_host_environment(url: str, env: str | None) -> None:
    """PayPal's live and sandbox hosts are told apart; any other host is neither."""
    assert host_environment(url) == env


def _refusal() -> ProviderError:
    return error_from_response(401, {"error": "invalid_client",
                                     "error_description": "Client Authentication failed"},
                               what="OAuth token")


def test_a_refusal_at_the_live_host_suggests_sandbox_credentials() -> None:
    """Refused by the live host with a live stage: 'a sandbox app's credentials?', naming the
    host and the secret, never the credentials."""
    s = load(stage="prod", stage_environment="live", paypal_env="live", **PAYPAL)
    text = explain_refusal(_refusal(), s)
    assert "refused by the live host https://api-m.paypal.com" in text
    assert "a sandbox app's credentials?" in text
    assert "the stage secret paywire/prod/paypal claims environment live" in text
    assert "invalid_client" in text
    assert SECRET not in text and "client-id" not in text


def test_a_refusal_at_the_sandbox_host_suggests_live_credentials() -> None:
    """Refused by the sandbox host without a stage: 'a live app's credentials?' and the
    PAYWIRE_* settings to fix."""
    s = load(paypal_env="sandbox", **PAYPAL)
    text = explain_refusal(_refusal(), s)
    assert "refused by the sandbox host https://api-m.sandbox.paypal.com" in text
    assert "a live app's credentials?" in text and "PAYWIRE_PAYPAL_ENV is sandbox" in text
    assert "PAYWIRE_PAYPAL_CLIENT_SECRET" in text
    assert claimed_environment(s) == "PAYWIRE_PAYPAL_ENV is sandbox"


def test_other_errors_are_not_explained_as_a_mix_up() -> None:
    """Only invalid_client is a mix-up; a 500 stays what it is."""
    error = error_from_response(500, {"name": "INTERNAL_SERVER_ERROR"}, what="OAuth token")
    assert explain_refusal(error, load()) == error.message


def test_a_stages_aps_environment_is_its_own() -> None:
    """On a stage `aps_env` follows the stage's environment when not set, and one set apart
    is refused naming both; without a stage it stays independent (default emulator)."""
    assert load(stage="prod", stage_environment="live", paypal_env="live",
                **PAYPAL).aps.env == "live"
    assert load(stage="dev", stage_environment="sandbox", paypal_env="sandbox",
                **PAYPAL).aps.env == "sandbox"
    message = refused(stage="prod", stage_environment="live", paypal_env="live",
                      aps_env="sandbox", **PAYPAL)
    assert "environment live" in message and "PAYWIRE_APS_ENV is sandbox" in message
    assert "paywire/prod/paypal" in message
    assert load(paypal_env="sandbox", aps_env="live", **PAYPAL).aps.env == "live"
    assert load(**PAYPAL).aps.env == "emulator"
