"""PayPal's webhook transmission signature, as pure functions of (raw bytes, headers, ids, now).

PayPal signs `<transmission_id>|<transmission_time>|<webhook_id>|<crc32 of the raw body>` with
SHA256withRSA (PKCS#1 v1.5) and names the signing certificate in `PAYPAL-CERT-URL`. Everything
here is pure (no I/O, no clock): the verifiers in `webhook_verifier` fetch, cache and decide.
A failure for good raises `SignatureError` naming the check and, where it can tell, the likely
cause; `explain` tells a sandbox/live mix-up, the simulator and a rewritten body from a forgery.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from paywire.domain.errors import SignatureError

AUTH_ALGO = "SHA256withRSA"
SIMULATOR_WEBHOOK_ID = "WEBHOOKSIMULATOR"  # what PayPal's webhook simulator signs for
CERT_PATH_PREFIX = "/v1/notifications/certs/"
# Where PayPal serves webhook signing certificates (exact hosts, https only).
PAYPAL_CERT_HOSTS = ("api.paypal.com", "api-m.paypal.com", "api.sandbox.paypal.com",
                     "api-m.sandbox.paypal.com")
# The signing certificate's subject, as PayPal's own Java SDK checked it (live, sandbox).
PAYPAL_LEAF_NAMES = ("messageverificationcerts.paypal.com",
                     "messageverificationcerts.sandbox.paypal.com")
DEFAULT_MAX_AGE = timedelta(days=4)  # beyond PayPal's 3-day retry horizon
DEFAULT_MAX_FUTURE = timedelta(hours=1)  # clock skew, generously
MAX_CHAIN_DEPTH = 4

H_ID, H_TIME = "PAYPAL-TRANSMISSION-ID", "PAYPAL-TRANSMISSION-TIME"
H_SIG, H_CERT, H_ALGO = "PAYPAL-TRANSMISSION-SIG", "PAYPAL-CERT-URL", "PAYPAL-AUTH-ALGO"
REQUIRED_HEADERS = (H_ID, H_TIME, H_SIG, H_CERT, H_ALGO)

_HOST_PORT = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?::[0-9]{1,5})?")
_CERT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True, slots=True)
class TransmissionHeaders:
    """PayPal's transmission headers of one delivery, exactly as received."""

    transmission_id: str
    transmission_time: str
    transmission_sig: str
    cert_url: str
    auth_algo: str


def transmission_headers(headers: Mapping[str, str]) -> TransmissionHeaders:
    """PayPal's headers, looked up case-insensitively; a missing, empty or repeated one is
    refused (with two values, which one a proxy or log saw and which one was verified differ)."""
    pairs = [(k.lower(), v.strip()) for k, v in headers.items()]
    names = [k for k, _ in pairs]
    repeated = [name for name in REQUIRED_HEADERS if names.count(name.lower()) > 1]
    if repeated:
        raise SignatureError(f"repeated webhook header(s): {', '.join(repeated)}",
                             check="headers", likely_cause="forged, or a proxy that added a "
                             f"second {repeated[0]} header", status=400)
    lower = dict(pairs)
    missing = [name for name in REQUIRED_HEADERS if not lower.get(name.lower())]
    if missing:
        raise SignatureError(f"missing webhook header(s): {', '.join(missing)}", check="headers",
                             likely_cause="not a PayPal webhook delivery, or a proxy dropped "
                                          f"the {missing[0]} header", status=400)
    return TransmissionHeaders(*(lower[name.lower()] for name in REQUIRED_HEADERS))


def check_auth_algo(auth_algo: str) -> None:
    """Refuse any algorithm but SHA256withRSA."""
    if auth_algo != AUTH_ALGO:
        raise SignatureError(f"{H_ALGO} {auth_algo[:40]!r} is not {AUTH_ALGO}", check="auth_algo",
                             likely_cause="forged, or a PayPal change paywire does not know")


def parse_transmission_time(text: str) -> datetime:
    """`PAYPAL-TRANSMISSION-TIME` (ISO 8601) as an aware datetime; no zone means UTC."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise SignatureError(f"{H_TIME} {text[:40]!r} is not an ISO 8601 time",
                             check="transmission_time", likely_cause="forged or corrupted "
                             "headers") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def check_transmission_time(text: str, now: datetime, max_age: timedelta = DEFAULT_MAX_AGE,
                            max_future: timedelta = DEFAULT_MAX_FUTURE) -> datetime:
    """The transmission time, refused when older than `max_age` or beyond `now + max_future`."""
    when = parse_transmission_time(text)
    if when < now - max_age:
        raise SignatureError(f"transmission time {text} is older than {max_age}",
                             check="transmission_time",
                             likely_cause="a replayed delivery: PayPal stops retrying after "
                                          "3 days, so a transmission this old is not a retry")
    if when > now + max_future:
        raise SignatureError(f"transmission time {text} is in the future",
                             check="transmission_time",
                             likely_cause="the sender's clock (or ours) is far off, or forged")
    return when


def crc32(body: bytes) -> int:
    """The unsigned CRC-32 of the raw body bytes."""
    return zlib.crc32(body) & 0xFFFFFFFF


def message(transmission_id: str, transmission_time: str, webhook_id: str, body: bytes) -> bytes:
    """The exact bytes PayPal signs for one transmission."""
    return f"{transmission_id}|{transmission_time}|{webhook_id}|{crc32(body)}".encode()


def decode_signature(signature_b64: str) -> bytes | None:
    """The raw signature bytes, or None if the header is not strict base64."""
    try:
        return base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return None


def verify_signature(cert: x509.Certificate, transmission_id: str, transmission_time: str,
                     webhook_id: str, body: bytes, signature_b64: str) -> bool:
    """Whether the signature is the certificate's SHA256withRSA signature of this transmission."""
    raw = decode_signature(signature_b64)
    key = cert.public_key()
    if raw is None or not isinstance(key, rsa.RSAPublicKey):
        return False
    try:
        key.verify(raw, message(transmission_id, transmission_time, webhook_id, body),
                   padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


# --- the certificate URL ------------------------------------------------------------------


def _host_key(entry: str, default_port: str) -> str:
    host, _, port = entry.lower().partition(":")
    return host if port in ("", default_port) else f"{host}:{port}"


def host_allowlist(entries: Iterable[str], default_port: str) -> frozenset[str]:
    """Allowlist entries (`host` or `host:port`) normalised; ValueError for a malformed one."""
    out = set()
    for entry in entries:
        if not _HOST_PORT.fullmatch(entry.lower()):
            raise ValueError(f"not a host or host:port: {entry!r}")
        out.add(_host_key(entry, default_port))
    return frozenset(out)


def check_cert_url(url: str, allowed_hosts: Collection[str],
                   allowed_path_prefix: str = CERT_PATH_PREFIX,
                   allow_http_hosts: Collection[str] = ()) -> str:
    """The URL to fetch, rebuilt from checked parts; refused unless https on an allowed host.

    Hosts match exactly (no suffixes), with no userinfo and no port but the default unless
    allowlisted as `host:port`; http only for `allow_http_hosts` (the emulator in dev/tests),
    which are allowed for https too. The path is the prefix plus one certificate id.
    """
    https_ok = host_allowlist([*allowed_hosts, *allow_http_hosts], "443")
    http_ok = host_allowlist(allow_http_hosts, "80")

    def refuse(reason: str, cause: str) -> SignatureError:
        return SignatureError(f"{H_CERT} refused: {reason}", check="cert_url", likely_cause=cause,
                              details={"cert_url": url[:300]})

    not_allowed = (f"the cert host is not allowed (https on {', '.join(sorted(https_ok))} "
                   "only): a forged delivery, or a cert host missing from the allowlist")
    if len(url) > 2048 or any(c.isspace() or not c.isprintable() or c == "\\" for c in url):
        raise refuse("malformed URL", not_allowed)
    try:
        parts = urlsplit(url)
    except ValueError:
        raise refuse("malformed URL", not_allowed) from None
    scheme, netloc = parts.scheme.lower(), parts.netloc.lower()
    if "@" in netloc:
        raise refuse("the URL carries userinfo (user@host)", not_allowed)
    if scheme not in ("https", "http") or not _HOST_PORT.fullmatch(netloc):
        raise refuse("not an https URL with a plain host", not_allowed)
    key = _host_key(netloc, "443" if scheme == "https" else "80")
    if scheme == "http" and key not in http_ok:
        raise refuse(f"http to {key} (https only)", not_allowed)
    if scheme == "https" and key not in https_ok:
        raise refuse(f"host {key} is not on the allowlist", not_allowed)
    rest = parts.path[len(allowed_path_prefix):]
    if (parts.query or parts.fragment or not parts.path.startswith(allowed_path_prefix)
            or not _CERT_ID.fullmatch(rest) or ".." in rest):
        raise refuse(f"the path is not {allowed_path_prefix}<certificate id>",
                     f"the cert URL is not allowed (not under {allowed_path_prefix}): forged")
    return f"{scheme}://{key}{parts.path}"


# --- the certificate and its chain ------------------------------------------------------------


def parse_certificates(pem: bytes) -> list[x509.Certificate]:
    """The PEM certificates the cert URL served (leaf first); refused if there are none."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError:
        certs = []
    if not certs:
        raise SignatureError("the cert URL served no PEM certificate", check="cert_url",
                             likely_cause="the cert URL does not serve a PayPal certificate")
    return certs


def _cert_error(check: str, reason: str, cause: str) -> SignatureError:
    return SignatureError(f"signing certificate refused: {reason}", check=check,
                          likely_cause=cause)


def _check_dates(cert: x509.Certificate, now: datetime, what: str) -> None:
    if now < cert.not_valid_before_utc:
        raise _cert_error("cert_dates", f"the {what} is not valid before "
                          f"{cert.not_valid_before_utc}",
                          "a certificate dated in the future: forged, or our clock is wrong")
    if now > cert.not_valid_after_utc:
        raise _cert_error("cert_dates", f"the {what} expired at {cert.not_valid_after_utc}",
                          "an expired certificate: PayPal rotates them, so this is a replay "
                          "or a forgery (or our clock is wrong)")


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def leaf_names(cert: x509.Certificate) -> set[str]:
    """The certificate's common names and DNS subject alternative names, lowercased."""
    names = {str(a.value).lower() for a in cert.subject.get_attributes_for_oid(
        NameOID.COMMON_NAME)}
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names.update(n.lower() for n in san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        pass
    return names


def check_leaf(leaf: x509.Certificate, now: datetime, *,
               names: Collection[str] | None = PAYPAL_LEAF_NAMES,
               require_key_usage: bool = False) -> tuple[datetime, datetime]:
    """Check that `leaf` is a PayPal message-verification certificate valid at `now`.

    Outside its dates -> `cert_dates`; not named as one of `names` (None skips the check), a CA
    certificate, or a key usage without digital signatures (or none at all, with
    `require_key_usage`) -> `cert_leaf`. Returns the leaf's validity window (for caching).
    """
    _check_dates(leaf, now, "signing certificate")
    if names is not None and not leaf_names(leaf) & {n.lower() for n in names}:
        raise _cert_error("cert_leaf", f"its subject is none of {', '.join(names)}",
                          "not PayPal's webhook signing certificate: forged")
    if _is_ca(leaf):
        raise _cert_error("cert_leaf", "it is a CA certificate, not a signing certificate",
                          "not PayPal's webhook signing certificate: forged")
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        if require_key_usage:
            raise _cert_error("cert_leaf", "it states no key usage (digital signature)",
                              "not PayPal's webhook signing certificate: forged") from None
    else:
        if not usage.digital_signature:
            raise _cert_error("cert_leaf", "its key usage excludes digital signatures",
                              "forged")
    return leaf.not_valid_before_utc, leaf.not_valid_after_utc


def check_chain(leaf: x509.Certificate, ca_certs: Sequence[x509.Certificate], now: datetime, *,
                intermediates: Sequence[x509.Certificate] = (),
                names: Collection[str] | None = PAYPAL_LEAF_NAMES) -> tuple[datetime, datetime]:
    """`check_leaf`, then the leaf's chain to a CA in `ca_certs` (`cert_chain`; a CA outside
    its dates -> `cert_dates`).

    Returns the window in which the whole path is valid (for caching the verdict). `names`
    None skips the subject check.
    """
    start, end = check_leaf(leaf, now, names=names)
    current = leaf
    for _ in range(MAX_CHAIN_DEPTH):
        for anchor in ca_certs:
            if anchor.subject == current.issuer and _issued_by(current, anchor):
                _check_dates(anchor, now, "CA certificate")
                return max(start, anchor.not_valid_before_utc), min(end,
                                                                    anchor.not_valid_after_utc)
        parent = next((c for c in intermediates if c is not current and _is_ca(c)
                       and c.subject == current.issuer and _issued_by(current, c)), None)
        if parent is None:
            break
        _check_dates(parent, now, "intermediate certificate")
        start, end = max(start, parent.not_valid_before_utc), min(end, parent.not_valid_after_utc)
        current = parent
    raise _cert_error("cert_chain", "it does not chain to a trusted CA",
                      "an untrusted issuer: forged, the CA bundle lacks PayPal's current "
                      "issuing chain (PayPal serves the leaf alone: the bundle needs the "
                      "intermediate too), or (in dev) the emulator's CA is not the configured "
                      "trust anchor")


# --- why a signature failed ---------------------------------------------------------------------


def reserialised_forms(body: bytes) -> Iterator[tuple[str, bytes]]:
    """The body re-serialised the ways frameworks do, each distinct from the body itself."""
    try:
        doc: Any = json.loads(body)
    except (ValueError, RecursionError):
        return
    seen = {body}
    for seps, sep_name in ((None, "default separators"), ((",", ":"), "compact separators")):
        for sort in (False, True):
            for ascii_only in (False, True):
                try:
                    form = json.dumps(doc, separators=seps, sort_keys=sort,
                                      ensure_ascii=ascii_only).encode("utf-8")
                except (ValueError, TypeError, RecursionError):
                    continue
                if form not in seen:
                    seen.add(form)
                    how = [sep_name, *(["sorted keys"] if sort else []),
                           "ASCII escapes" if ascii_only else "UTF-8"]
                    yield ", ".join(how), form


def explain(cert: x509.Certificate, transmission_id: str, transmission_time: str,
            signature_b64: str, body: bytes, *, webhook_id: str,
            other_webhook_ids: Sequence[str] = ()) -> str:
    """The likely cause of a signature that does not verify for `webhook_id` over `body`."""
    if decode_signature(signature_b64) is None:
        return f"forged or corrupted: {H_SIG} is not base64"

    def signed(wid: str, data: bytes) -> bool:
        return verify_signature(cert, transmission_id, transmission_time, wid, data,
                                signature_b64)

    for other in other_webhook_ids:
        if other != webhook_id and signed(other, body):
            return (f"signed for webhook id {other}, not ours ({webhook_id}): a sandbox/live "
                    "or environment mix-up")
    if webhook_id != SIMULATOR_WEBHOOK_ID and signed(SIMULATOR_WEBHOOK_ID, body):
        return (f"signed for {SIMULATOR_WEBHOOK_ID}: an event from PayPal's webhook simulator, "
                "which cannot be verified (locally or by postback)")
    for how, form in reserialised_forms(body):
        if signed(webhook_id, form):
            return (f"the body was re-serialised (a proxy or framework rewrote the bytes): the "
                    f"signature verifies over the body as JSON with {how}; verify the raw "
                    "request bytes")
    return ("forged or corrupted: the signature matches this body under no configured webhook "
            "id, nor any re-serialised form of it")
