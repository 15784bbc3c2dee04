"""Webhook and truth-fetch settings: defaults, cross-field checks naming the setting."""

from __future__ import annotations

from typing import Any

import pytest

from paywire.domain.errors import ConfigError
from paywire.settings import DEMO_CATALOG, PAYPAL_CERT_HOSTS, Purpose, Settings

LIVE = {"paypal_env": "live", "paypal_client_id": "id", "paypal_client_secret": "s3cr3t-value",
        "catalog_path": DEMO_CATALOG}


def load(**values: Any) -> Settings:
    """Settings from `values` only (no .env file)."""
    return Settings.load(_env_file=None, **values)


def refused(**values: Any) -> str:
    """The ConfigError message for settings that must not load."""
    with pytest.raises(ConfigError) as info:
        load(**values)
    return info.value.message


def test_defaults_verify_locally_against_paypal_hosts() -> None:
    """Local verification, PayPal's four cert hosts over https, 256 KiB, 4 days, 10 000 rows;
    in emulator mode the emulator's host:port is added over http and its CA is fetched."""
    s = load()
    assert s.webhook_verification == "local" and s.webhook_max_body_bytes == 256 * 1024
    assert s.webhook_max_age_seconds == 4 * 86400 and s.max_rejections == 10_000
    assert s.cert_hosts == (list(PAYPAL_CERT_HOSTS), ["127.0.0.1:8090"])
    assert s.paypal.emulator_ca_url == "http://127.0.0.1:8090/_emulator/ca.pem"
    live = load(**LIVE, paypal_webhook_id="WH-LIVE")
    assert live.cert_hosts == (list(PAYPAL_CERT_HOSTS), []) and live.paypal.emulator_ca_url is None


@pytest.mark.parametrize("env", ["sandbox", "live"])
def test_sandbox_and_live_need_a_webhook_id(env: str) -> None:
    """Without our webhook id nothing could be verified: refused, naming the variable."""
    assert "PAYWIRE_PAYPAL_WEBHOOK_ID" in refused(**{**LIVE, "paypal_env": env})


def test_webhook_commands_load_without_the_id_they_create() -> None:
    """`paywire webhooks register` makes the webhook id, so its settings load without one (nor a
    catalog); the purpose is the load's own: the next load refuses again."""
    bare = {k: v for k, v in LIVE.items() if k != "catalog_path"}
    loaded = Settings.load(_env_file=None, purpose=Purpose.WEBHOOK_SETUP, **bare)
    assert loaded.purpose is Purpose.WEBHOOK_SETUP and isinstance(loaded, Settings)
    assert loaded.paypal.webhook_id is None and loaded.catalog_path is None
    assert "PAYWIRE_CATALOG_PATH" in refused(**bare)
    assert "PAYWIRE_PAYPAL_WEBHOOK_ID" in refused(**LIVE)


@pytest.mark.parametrize(("values", "needle"), [
    ({"webhook_cert_http_hosts": "evil.example:80"}, "PAYWIRE_WEBHOOK_CERT_HTTP_HOSTS"),
    ({"webhook_cert_hosts": "https://api.paypal.com/"}, "PAYWIRE_WEBHOOK_CERT_HOSTS"),
    ({"paypal_other_webhook_ids": "WH-A,WH-LIVE"}, "PAYWIRE_PAYPAL_OTHER_WEBHOOK_IDS"),
    ({"webhook_max_age_seconds": 3600}, "PAYWIRE_WEBHOOK_MAX_AGE_SECONDS"),
    ({"webhook_ca_bundle": "/nonexistent/ca.pem"}, "PAYWIRE_WEBHOOK_CA_BUNDLE"),
    ({"webhook_verification": "trust-me"}, "PAYWIRE_WEBHOOK_VERIFICATION"),
    ({"webhook_cert_trust": "anything"}, "PAYWIRE_WEBHOOK_CERT_TRUST"),
    ({"webhook_cert_trust": "bundle"}, "PAYWIRE_WEBHOOK_CA_BUNDLE"),
    ({"truth_fetch_lease_seconds": 5}, "PAYWIRE_TRUTH_FETCH_LEASE_SECONDS"),
    ({"truth_fetch_base_delay_seconds": 60, "truth_fetch_max_delay_seconds": 10},
     "PAYWIRE_TRUTH_FETCH_MAX_DELAY_SECONDS"),
])
def test_bad_webhook_settings_are_refused_naming_the_setting(values: dict[str, Any],
                                                              needle: str) -> None:
    """Plain-http cert hosts outside the emulator, URLs as hosts, our id among the others, an
    age under PayPal's 3-day retry horizon, an unreadable CA bundle... each names itself."""
    assert needle in refused(**{**LIVE, "paypal_webhook_id": "WH-LIVE", **values})


def test_lists_split_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Comma-separated ids and hosts from PAYWIRE_* variables become lists."""
    monkeypatch.setenv("PAYWIRE_PAYPAL_OTHER_WEBHOOK_IDS", "WH-A, WH-B")
    monkeypatch.setenv("PAYWIRE_WEBHOOK_CERT_HTTP_HOSTS", "localhost:9000")
    s = load()
    assert s.paypal.other_webhook_ids == ["WH-A", "WH-B"]
    assert s.cert_hosts[1] == ["localhost:9000", "127.0.0.1:8090"]


def test_an_https_emulator_is_allowed_over_https_only() -> None:
    """An emulator behind https (a shared dev host) joins the https allowlist, not plain http;
    the truth fetcher's knobs keep their defaults."""
    s = load(paypal_base_url="https://emulator.dev.example:8443")
    assert s.cert_hosts == ([*PAYPAL_CERT_HOSTS, "emulator.dev.example:8443"], [])
    assert s.truth_fetch_enabled and s.truth_fetch_interval_seconds == 5.0
    assert s.truth_fetch_lease_seconds >= s.paypal.timeout_seconds


def test_cert_trust_defaults_and_combinations(tmp_path: Any) -> None:
    """Sandbox/live trust the certificate as fetched over TLS unless a CA bundle is set; the
    emulator is always trusted through a CA; contradictions are refused, naming the setting."""
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    live = {**LIVE, "paypal_webhook_id": "WH-LIVE"}
    assert load(**live).cert_trust == "fetched"
    assert load(**live, webhook_cert_trust="").cert_trust == "fetched"
    assert load(**live, webhook_ca_bundle=str(bundle)).cert_trust == "bundle"
    assert load(**live, webhook_cert_trust="bundle",
                webhook_ca_bundle=str(bundle)).cert_trust == "bundle"
    assert load().cert_trust == "bundle"  # the emulator: its CA
    assert "PAYWIRE_WEBHOOK_CA_BUNDLE" in refused(**live, webhook_cert_trust="fetched",
                                                  webhook_ca_bundle=str(bundle))
    assert "PAYWIRE_WEBHOOK_CERT_TRUST" in refused(webhook_cert_trust="fetched")


def test_fetched_trust_takes_certificates_from_paypal_hosts_only(tmp_path: Any) -> None:
    """Under fetched trust the host vouches for the certificate, so a cert host outside
    paypal.com is refused, naming the setting; a PayPal host (with a port) or bundle trust may
    add others."""
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    live = {**LIVE, "paypal_webhook_id": "WH-LIVE"}
    for host in ("certs.example.com", "paypal.com.evil.example", "notpaypal.com"):
        assert "PAYWIRE_WEBHOOK_CERT_HOSTS" in refused(**live, webhook_cert_hosts=host)
    assert load(**live, webhook_cert_hosts="api.paypal.com,api.sandbox.paypal.com:443"
                ).cert_trust == "fetched"
    assert load(**live, webhook_cert_hosts="certs.example.com",
                webhook_ca_bundle=str(bundle)).cert_trust == "bundle"
