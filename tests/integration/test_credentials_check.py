"""The start-up credentials check against the emulator serving a sandbox app and a live app:
each host takes only its own environment's app, and a refusal is explained as the likely
sandbox/live mix-up, at a stage's start-up (secrets in a moto server) as well as on its own."""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from paywire.aws.secrets import StageSecrets
from paywire.bootstrap.credentials import check_credentials
from paywire.domain.errors import ConfigError
from paywire.emulator import AppCredentials, EmulatorConfig
from paywire.settings import DEMO_CATALOG, Settings
from paywire.testing import EmulatorServer, MotoServer, free_port

SANDBOX_APP = AppCredentials("sandbox-app-id", "sandbox-app-secret-5e1f", environment="sandbox")
LIVE_APP = AppCredentials("live-app-id", "live-app-secret-9b7c", environment="live")
SANDBOX_HOST = "https://api-m.sandbox.paypal.com"
LIVE_HOST = "https://api-m.paypal.com"


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """The emulator serves one sandbox app and one live app."""
    return EmulatorConfig(apps=[SANDBOX_APP, LIVE_APP], record_responses=True, seed=7)


class ToEmulator(httpx.BaseTransport):
    """Sends requests for PayPal's hosts to the emulator on loopback with their Host header
    kept (what a DNS override would do), so the emulator knows which host was asked."""

    def __init__(self, emulator_url: str) -> None:
        self.target = httpx.URL(emulator_url)
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Forward to the emulator; the Host header still names PayPal's host."""
        assert request.url.host in ("api-m.paypal.com", "api-m.sandbox.paypal.com")
        request.url = request.url.copy_with(scheme=self.target.scheme, host=self.target.host,
                                            port=self.target.port)
        return self.inner.handle_request(request)

    def close(self) -> None:
        """Close the forwarding transport."""
        self.inner.close()


@pytest.fixture
def via_emulator(emulator: EmulatorServer) -> Iterator[httpx.Client]:
    """An httpx client whose calls to PayPal's hosts reach the emulator."""
    with httpx.Client(transport=ToEmulator(emulator.url), timeout=10) as client:
        yield client


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No .env and no PAYWIRE_* of the developer's."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("PAYWIRE_")]:
        monkeypatch.delenv(name)


def settings(env: str, app: AppCredentials, **extra: Any) -> Settings:
    """Settings for `env` with `app`'s credentials."""
    return Settings.load(_env_file=None, paypal_env=env, paypal_client_id=app.client_id,
                         paypal_client_secret=app.client_secret, paypal_webhook_id="WH-1",
                         catalog_path=DEMO_CATALOG, **extra)


def token_requests(emulator: EmulatorServer) -> list[int]:
    """The status of every token request the emulator answered."""
    return [e.status for e in emulator.emu.request_log if e.path == "/v1/oauth2/token"]


def test_each_host_takes_only_its_own_environment_s_app(emulator: EmulatorServer,
                                                         via_emulator: httpx.Client) -> None:
    """Sandbox app at the sandbox host and live app at the live host get tokens; loopback
    (no PayPal host named) serves both, as before."""
    assert check_credentials(settings("sandbox", SANDBOX_APP), http=via_emulator).outcome == "ok"
    assert check_credentials(settings("live", LIVE_APP), http=via_emulator).outcome == "ok"
    for app in (SANDBOX_APP, LIVE_APP):
        local = settings("emulator", app, paypal_base_url=emulator.url)
        assert check_credentials(local).outcome == "ok"
    assert token_requests(emulator) == [200, 200, 200, 200]


def test_live_credentials_at_the_sandbox_host_are_explained(emulator: EmulatorServer,
                                                             via_emulator: httpx.Client) -> None:
    """The live app's credentials sent to the sandbox host: refused (401 invalid_client) and
    explained as a likely mix-up naming the host asked, never the secret."""
    verdict = check_credentials(settings("sandbox", LIVE_APP), http=via_emulator)
    assert verdict.outcome == "refused"
    assert f"refused by the sandbox host {SANDBOX_HOST}" in verdict.detail
    assert "a live app's credentials?" in verdict.detail
    assert "PAYWIRE_PAYPAL_ENV is sandbox" in verdict.detail
    assert LIVE_APP.client_secret not in verdict.detail
    assert token_requests(emulator) == [401]


def test_sandbox_credentials_at_the_live_host_are_explained(emulator: EmulatorServer,
                                                             via_emulator: httpx.Client) -> None:
    """The sandbox app's credentials sent to the live host: 'a sandbox app's credentials?'."""
    verdict = check_credentials(settings("live", SANDBOX_APP), http=via_emulator)
    assert verdict.outcome == "refused"
    assert f"these credentials were refused by the live host {LIVE_HOST}" in verdict.detail
    assert "a sandbox app's credentials?" in verdict.detail
    assert SANDBOX_APP.client_secret not in verdict.detail


@pytest.fixture
def secrets_manager(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A Secrets Manager client on the moto server; the process environment pointed at it."""
    for name, value in moto_server.env.items():
        monkeypatch.setenv(name, value)
    client = moto_server.client("secretsmanager")
    yield client
    client.close()


def stage_with(sm: Any, monkeypatch: pytest.MonkeyPatch, environment: str,
               app: AppCredentials) -> str:
    """A fresh stage whose PayPal secret claims `environment` and holds `app`'s credentials."""
    name = "c" + uuid.uuid4().hex[:12]
    sm.create_secret(Name=f"paywire/{name}/paypal", SecretString=json.dumps({
        "environment": environment, "client_id": app.client_id,
        "client_secret": app.client_secret, "webhook_id": "WH-1"}))
    sm.create_secret(Name=f"paywire/{name}/app", SecretString=json.dumps({"api_keys": []}))
    monkeypatch.setenv("PAYWIRE_STAGE", name)
    monkeypatch.setenv("PAYWIRE_CATALOG_PATH", str(DEMO_CATALOG))
    return name


class Clock:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        """The current reading."""
        return self.now


def test_a_live_stage_holding_sandbox_credentials_fails_start_up_explained(
        emulator: EmulatorServer, via_emulator: httpx.Client, secrets_manager: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A live stage's secret with the sandbox app's credentials: start-up asks the live host,
    is refused, and fails naming the host and the secret; once the secret holds the live app
    the next read starts, and unchanged credentials are not asked about again."""
    name = stage_with(secrets_manager, monkeypatch, "live", SANDBOX_APP)
    clock = Clock()
    secrets = StageSecrets(clock=clock, http=via_emulator)
    with pytest.raises(ConfigError) as info:
        secrets.settings()
    message = info.value.message
    assert f"refused by the live host {LIVE_HOST}" in message
    assert "a sandbox app's credentials?" in message
    assert f"the stage secret paywire/{name}/paypal claims environment live" in message
    assert SANDBOX_APP.client_secret not in message
    secrets_manager.put_secret_value(SecretId=f"paywire/{name}/paypal", SecretString=json.dumps({
        "environment": "live", "client_id": LIVE_APP.client_id,
        "client_secret": LIVE_APP.client_secret, "webhook_id": "WH-1"}))
    started = secrets.settings()
    assert started.paypal.env == "live" and started.paypal.client_id == LIVE_APP.client_id
    clock.now += 301  # past the TTL: re-read, same values, no second token request
    assert secrets.settings() is started
    assert token_requests(emulator) == [401, 200]


def test_an_unreachable_paypal_does_not_stop_start_up(
        secrets_manager: Any, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """PayPal unreachable at start-up: a WARNING naming the host, and the settings load."""
    stage_with(secrets_manager, monkeypatch, "sandbox", SANDBOX_APP)
    down = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("PAYWIRE_PAYPAL_BASE_URL", down)
    loaded = StageSecrets().settings()
    assert loaded.paypal.url == down
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("credentials check" in w and down in w for w in warnings), warnings
