"""`paywire doctor`'s certificate check over real loopback TLS: the trust model in use, and an
unreachable host told apart from one whose TLS does not verify, quickly."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from paywire.cli_doctor import certs_check, probe_cert_host
from paywire.settings import DEMO_CATALOG, Settings
from paywire.testing import free_port


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
def tls_server(tmp: Path) -> Iterator[tuple[int, bytes]]:
    """A loopback HTTPS server with a self-signed certificate answering 404 to anything:
    (port, its certificate PEM)."""
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
                    tls.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                                b"Connection: close\r\n\r\n")
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
    bundle) and fails with a hint on a host whose TLS does not verify or that is offline."""
    with tls_server(tmp_path) as (port, _):
        check = await certs_check(sandbox(webhook_cert_hosts=f"127.0.0.1:{port}"))
    assert check.status == "fail" and "trust fetched" in check.detail
    assert "TLS verification failed" in check.detail and "proxy" in check.fix
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes((tmp_path / "cert.pem").read_bytes())
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
