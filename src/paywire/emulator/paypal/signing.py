"""The emulator's webhook PKI and PayPal's transmission signature: one module signs and verifies.

PayPal signs `<transmission_id>|<transmission_time>|<webhook_id>|<crc32 of the raw body>` with
SHA256withRSA (PKCS#1 v1.5) and publishes the signing certificate at `PAYPAL-CERT-URL`. The
emulator does the same with a private CA of its own, so receivers can run their real verification
code (chain, validity, key usage, signature) against the emulator; only the trust anchor differs.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

SANDBOX_CERT_HOST = "messageverificationcerts.sandbox.paypal.com"
AUTH_ALGO = "SHA256withRSA"
KEY_SIZE = 2048
CERT_PATH = "/v1/notifications/certs/"
# Real sandbox certificate ids look like CERT-360caa42-fca2a594-<8 hex>; keep the shape.
CERT_ID_PREFIX = "CERT-360caa42-fca2a594-"


@dataclass(frozen=True)
class Pki:
    """A CA and the leaf certificate (with its key) that signs webhook transmissions."""

    ca_cert: x509.Certificate
    leaf_cert: x509.Certificate
    leaf_key: rsa.RSAPrivateKey
    cert_id: str

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate, PEM."""
        return self.ca_cert.public_bytes(serialization.Encoding.PEM)

    @property
    def leaf_pem(self) -> bytes:
        """The signing certificate, PEM (what the cert URL serves)."""
        return self.leaf_cert.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str, org: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "California"),
        x509.NameAttribute(NameOID.LOCALITY_NAME, "San Jose"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def generate_pki(now: datetime, host: str = SANDBOX_CERT_HOST) -> Pki:
    """A fresh self-signed CA and a leaf for `host`, valid around `now` (an aware datetime)."""
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
    ca_name = _name("paywire emulator webhook CA", "paywire emulator")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    # Back-date a day so a receiver whose clock lags the emulator's still accepts the certs.
    start = now - timedelta(days=1)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(host, "PayPal, Inc.")).issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        # About PayPal's own lifetime (a year); the emulator clock can be advanced well past that
        # only in tests that do not look at webhooks.
        .not_valid_before(start).not_valid_after(now + timedelta(days=398))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return Pki(ca_cert=ca_cert, leaf_cert=leaf_cert, leaf_key=leaf_key,
               cert_id=CERT_ID_PREFIX + secrets.token_hex(4))


def crc32(body: bytes) -> int:
    """The unsigned CRC-32 of the raw body bytes, as PayPal puts it in the signed message."""
    return zlib.crc32(body) & 0xFFFFFFFF


def signed_message(transmission_id: str, transmission_time: str, webhook_id: str,
                   body: bytes) -> bytes:
    """The exact bytes PayPal signs for one transmission."""
    return f"{transmission_id}|{transmission_time}|{webhook_id}|{crc32(body)}".encode()


def sign(key: rsa.RSAPrivateKey, transmission_id: str, transmission_time: str, webhook_id: str,
         body: bytes) -> str:
    """`PAYPAL-TRANSMISSION-SIG`: base64 SHA256withRSA over the signed message."""
    message = signed_message(transmission_id, transmission_time, webhook_id, body)
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def verify(cert_pem: bytes, transmission_id: str, transmission_time: str, webhook_id: str,
           body: bytes, signature: str) -> bool:
    """Whether `signature` is the certificate's SHA256withRSA signature of this transmission.

    Checks only the signature: trusting the certificate (chain, validity, host) is the caller's.
    """
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        raw_sig = base64.b64decode(signature, validate=True)
    except (ValueError, binascii.Error):
        return False
    public_key = cert.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        return False
    message = signed_message(transmission_id, transmission_time, webhook_id, body)
    try:
        public_key.verify(raw_sig, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def raw_json_member(document: bytes, key: str) -> bytes | None:
    """The bytes of top-level member `key` of a JSON object exactly as they appear in `document`.

    Postback verification must check the event as PayPal sent it, so the emulator reads the
    `webhook_event` value as a slice of the request rather than re-serializing a parsed copy.
    None if the document is not a JSON object or has no such member (the last one wins, as in
    `json.loads`).
    """
    try:
        text = document.decode("utf-8")
    except UnicodeDecodeError:
        return None
    decoder = json.JSONDecoder()
    ws = " \t\n\r"
    found: tuple[int, int] | None = None
    try:
        i = len(text) - len(text.lstrip(ws))
        if text[i:i + 1] != "{":
            return None
        i += 1
        while text[i] in ws:
            i += 1
        if text[i] == "}":
            return None  # an empty object has no members
        while True:
            while text[i] in ws:
                i += 1
            if text[i] != '"':
                return None
            name, i = decoder.raw_decode(text, i)
            while text[i] in ws:
                i += 1
            if text[i] != ":":
                return None
            i += 1
            while text[i] in ws:
                i += 1
            _, end = decoder.raw_decode(text, i)
            if name == key:
                found = (i, end)
            i = end
            while text[i] in ws:
                i += 1
            if text[i] == "}":
                break
            if text[i] != ",":
                return None
            i += 1
    except (ValueError, IndexError):
        return None
    if text[i + 1:].strip(ws):
        return None
    return text[found[0]:found[1]].encode("utf-8") if found else None
