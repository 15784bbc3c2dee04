"""The doctor's pure APS helpers: the feedback URL beside the return page, which hosts APS
cannot reach, and which recorded rejection is the doctor's own probe."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from paywire.cli.doctor.aps import PROBE_BODY, feedback_url, internal_host, is_probe
from paywire.ports import WebhookRejection


@pytest.mark.parametrize(("return_url", "expected"), [
    ("https://pay.example/v1/aps/return", "https://pay.example/webhooks/aps"),
    ("https://shop.example/paywire/v1/aps/return/", "https://shop.example/paywire/webhooks/aps"),
    ("https://shop.example:8443/checkout/done?x=1", "https://shop.example:8443/webhooks/aps"),
    ("http://127.0.0.1:8000/v1/aps/return", "http://127.0.0.1:8000/webhooks/aps"),
])
def test_feedback_url_sits_beside_the_return_page(return_url: str, expected: str) -> None:
    """paywire's base is the return URL less `/v1/aps/return`; any other page: its origin."""
    assert feedback_url(return_url) == expected


@pytest.mark.parametrize(("url", "internal"), [
    ("http://127.0.0.1:8000/x", True), ("http://localhost/x", True),
    ("http://app.localhost/x", True), ("http://10.1.2.3/x", True),
    ("http://192.168.0.9/x", True), ("http://[::1]:8000/x", True),
    ("http://169.254.169.254/x", True), ("http://0.0.0.0/x", True),
    ("https://pay.example/x", False), ("https://93.184.216.34/x", False),
])
def test_internal_hosts_are_the_ones_aps_cannot_reach(url: str, internal: bool) -> None:
    """Loopback, private, link-local and unspecified addresses (and *.localhost) are internal."""
    assert internal_host(url) is internal


def _rejection(provider: str, body: bytes) -> WebhookRejection:
    return WebhookRejection(provider=provider, transmission_id="t", received_at=datetime.now(UTC),
                            check="signature", reason="r", likely_cause=None, event_id=None,
                            event_type=None, cert_url=None,
                            body_sha256=hashlib.sha256(body).hexdigest())


def test_only_the_probes_exact_bytes_are_the_probe() -> None:
    """The probe is recognised by its body's hash on the APS endpoint, nothing else."""
    assert is_probe(_rejection("aps", PROBE_BODY))
    assert not is_probe(_rejection("paypal", PROBE_BODY))
    assert not is_probe(_rejection("aps", PROBE_BODY + b" "))
