"""`paywire doctor`'s certificate check over real loopback TLS: the trust model in use, and an
unreachable host told apart from one whose TLS does not verify, quickly."""

from __future__ import annotations

import ssl
import time
from pathlib import Path
from typing import Any

from paywire.cli.doctor.paypal import certs_check, probe_cert_host
from paywire.settings import DEMO_CATALOG, Settings
from paywire.testing import free_port
from testkit import tls_server


def sandbox(**values: Any) -> Settings:
    """Sandbox settings (no .env) with these overrides."""
    return Settings.load(_env_file=None, paypal_env="sandbox", paypal_client_id="client-id",
                         paypal_client_secret="client-secret-value", catalog_path=DEMO_CATALOG,
                         paypal_webhook_id="WH-SANDBOX", **values)


async def test_probe_tells_tls_failure_from_unreachable(tmp_path: Path) -> None:
    """Self-signed TLS -> 'TLS verification failed'; trusting its certificate -> reachable;
    a closed port or an unresolvable name -> 'unreachable', each within the deadline."""
    with tls_server(tmp_path) as (port, pem):
        url = f"https://127.0.0.1:{port}/v1/notifications/certs/"
        problem = await probe_cert_host(url, 3)
        assert problem is not None and problem.startswith("TLS verification failed"), problem
        trusting = ssl.create_default_context(cadata=pem.decode())
        assert await probe_cert_host(url, 3, verify=trusting) is None
    started = time.monotonic()
    closed = await probe_cert_host(f"https://127.0.0.1:{free_port()}/", 3)
    nowhere = await probe_cert_host("https://certs.paywire-test.invalid/", 3)
    assert closed is not None and closed.startswith("unreachable: "), closed
    assert nowhere is not None and nowhere.startswith("unreachable: "), nowhere
    assert time.monotonic() - started < 7


async def test_certs_check_reports_the_trust_model_and_tls(tmp_path: Path) -> None:
    """The doctor's `certs` check names the trust model (fetched by default, bundle with a CA
    bundle) and fails with a hint on a host whose TLS does not verify or that is offline
    (fetched trust takes PayPal's hosts only: this machine reaches none of them)."""
    fetched = await certs_check(sandbox())
    assert fetched.status == "fail" and "trust fetched" in fetched.detail
    assert "unreachable" in fetched.detail and "api.sandbox.paypal.com" in fetched.detail
    bundle = tmp_path / "bundle.pem"
    with tls_server(tmp_path) as (port, _):
        bundle.write_bytes((tmp_path / "cert.pem").read_bytes())
        check = await certs_check(sandbox(webhook_cert_hosts=f"127.0.0.1:{port}",
                                          webhook_ca_bundle=str(bundle)))
    assert check.status == "fail" and "trust bundle" in check.detail
    assert "TLS verification failed" in check.detail and "proxy" in check.fix
    offline = await certs_check(sandbox(webhook_cert_hosts=f"127.0.0.1:{free_port()}",
                                        webhook_ca_bundle=str(bundle)))
    assert offline.status == "fail" and "trust bundle" in offline.detail
    assert "PAYWIRE_WEBHOOK_CA_BUNDLE" in offline.detail and "unreachable" in offline.detail
    assert "allow outbound DNS and HTTPS" in offline.fix


async def test_emulator_mode_reports_its_ca() -> None:
    """Emulator mode: bundle trust through the emulator's CA; a stopped emulator is named."""
    port = free_port()
    check = await certs_check(Settings.load(_env_file=None, paypal_env="emulator",
                                            paypal_base_url=f"http://127.0.0.1:{port}"))
    assert check.status == "fail" and "trust bundle: the emulator's CA" in check.detail
    assert "start the emulator" in check.fix
