"""Constants and small helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from paywire.emulator import AppCredentials, EmulatorConfig
from paywire.testing import EmulatorServer

CLIENT_ID = "test-client-id"
CLIENT_SECRET = "test-client-secret"
OTHER_ID, OTHER_SECRET = "other-client-id", "other-client-secret"


def get_token(base_url: str, client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> str:
    """A bearer token from the emulator's OAuth endpoint."""
    r = httpx.post(f"{base_url}/v1/oauth2/token", auth=(client_id, secret),
                   data={"grant_type": "client_credentials"})
    r.raise_for_status()
    token: str = r.json()["access_token"]
    return token


def auth_headers(base_url: str) -> dict[str, str]:
    """Authorization header with a fresh token."""
    return {"Authorization": f"Bearer {get_token(base_url)}"}


def order_body(value: str = "10.00", currency: str = "USD", **unit: object) -> dict[str, object]:
    """A valid one-unit CAPTURE order body with one item line making up the total."""
    pu: dict[str, object] = {
        "amount": {"currency_code": currency, "value": value,
                   "breakdown": {"item_total": {"currency_code": currency, "value": value}}},
        "items": [{"name": "Mug", "quantity": "1",
                   "unit_amount": {"currency_code": currency, "value": value}}],
    }
    pu.update(unit)
    return {"intent": "CAPTURE", "purchase_units": [pu]}


def approve(client: httpx.Client, order_id: str, scenario: str = "approve") -> dict[str, object]:
    """Approve as the test buyer through the control API."""
    r = client.post(f"/_emulator/orders/{order_id}/approve", json={"scenario": scenario})
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def two_app_config() -> EmulatorConfig:
    """The test app plus a second one, for "another app's resource" checks."""
    return EmulatorConfig(apps=[AppCredentials(CLIENT_ID, CLIENT_SECRET),
                                AppCredentials(OTHER_ID, OTHER_SECRET)],
                          record_responses=True, webhook_time_scale=0.001, seed=1234)


def usd(value: str) -> dict[str, str]:
    """A USD money object."""
    return {"currency_code": "USD", "value": value}


def events(emulator: EmulatorServer, event_type: str) -> list[dict[str, Any]]:
    """Webhook events of one type the emulator published, oldest first."""
    return [e for e in emulator.emu.events.values() if e["event_type"] == event_type]

# Whether the suite runs under CI (`.ci/run` sets CI=true): derandomized, nothing skipped.
IN_CI = os.environ.get("CI") == "true"


def self_signed(tmp: Path) -> tuple[Path, Path, bytes]:
    """A self-signed certificate for 127.0.0.1: (cert file, key file, cert PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(IPv4Address(
                "127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_file, key_file = tmp / "cert.pem", tmp / "key.pem"
    cert_file.write_bytes(pem)
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file, pem


@contextmanager
def tls_server(tmp: Path, body: bytes | None = None) -> Iterator[tuple[int, bytes]]:
    """A loopback HTTPS server with a self-signed certificate for 127.0.0.1, answering `body`
    (200) or 404 to anything: (port, its certificate PEM)."""
    cert_file, key_file, pem = self_signed(tmp)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.settimeout(2)
                    tls.recv(65536)
                    status = b"200 OK" if body is not None else b"404 Not Found"
                    content = body or b""
                    tls.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Length: "
                                + str(len(content)).encode() + b"\r\nConnection: close\r\n\r\n"
                                + content)
            except (ssl.SSLError, OSError):
                pass  # the client refused our certificate: that is the point

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], pem
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


class MovingClock:
    """paywire's clock, frozen until a test moves it (read from the server's thread too)."""

    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def now(self) -> datetime:
        """The frozen instant."""
        return self.at

    def advance(self, **delta: float) -> None:
        """Move forward."""
        self.at += timedelta(**delta)


class StoppedClock:
    """A clock that always answers the same instant."""

    def __init__(self, instant: datetime) -> None:
        self.instant = instant

    def now(self) -> datetime:
        """The instant."""
        return self.instant
