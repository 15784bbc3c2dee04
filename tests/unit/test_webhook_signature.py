"""PayPal webhook signatures, pure: headers, message, RSA check, cert URL, chain, age, explain."""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from paywire.domain.errors import SignatureError
from paywire.emulator.paypal.signing import generate_pki, sign
from paywire.providers.paypal import webhook_signature as ws

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
LEAF_NAME = "messageverificationcerts.sandbox.paypal.com"
OURS, LIVE = "WH-OURS-1AB23456CD789012E", "WH-LIVE-9ZY87654XW321098V"
TID, TTIME = "b2f1e7a0-3c4d-11ef-9a2b-0123456789ab", "2025-06-01T11:59:30Z"
KEYS = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]
CA_KEY, LEAF_KEY, OTHER_KEY = KEYS
BODY = json.dumps({"id": "WH-1", "event_type": "CHECKOUT.ORDER.APPROVED", "summary": "crème",
                   "resource": {"id": "5O190127TN364715T", "amount": {"value": "10.00"}}},
                  separators=(",", ":"), ensure_ascii=False).encode()


def issue(cn: str, key: rsa.RSAPrivateKey, issuer: tuple[x509.Certificate, rsa.RSAPrivateKey]
          | None = None, start: datetime = NOW - DAY, end: datetime = NOW + 365 * DAY, *,
          ca: bool = False, signing: bool = True) -> x509.Certificate:
    """A certificate for `cn` signed by `issuer` (self-signed when None)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    usage = dict.fromkeys(("content_commitment", "key_encipherment", "data_encipherment",
                           "key_agreement", "encipher_only", "decipher_only"), False)
    return (x509.CertificateBuilder().subject_name(name)
            .issuer_name(issuer_cert.subject if issuer_cert else name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=signing, key_cert_sign=ca,
                                         crl_sign=ca, **usage), critical=True)
            .sign(issuer_key, hashes.SHA256()))


CA = issue("test webhook CA", CA_KEY, ca=True, end=NOW + 3650 * DAY)
LEAF = issue(LEAF_NAME, LEAF_KEY, (CA, CA_KEY))


def signature(webhook_id: str = OURS, body: bytes = BODY, key: rsa.RSAPrivateKey = LEAF_KEY,
              tid: str = TID, when: str = TTIME) -> str:
    """PAYPAL-TRANSMISSION-SIG for a transmission."""
    raw = key.sign(ws.message(tid, when, webhook_id, body), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(raw).decode()


def why(sig: str, body: bytes = BODY, others: tuple[str, ...] = (LIVE,)) -> str:
    """The explanation for a failed signature."""
    return ws.explain(LEAF, TID, TTIME, sig, body, webhook_id=OURS, other_webhook_ids=others)


def headers(**override: str) -> dict[str, str]:
    """A full set of transmission headers, in the lowercase a server hands over."""
    out = {"paypal-transmission-id": TID, "paypal-transmission-time": TTIME,
           "paypal-transmission-sig": signature(), "paypal-auth-algo": "SHA256withRSA",
           "paypal-cert-url": "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-1",
           "paypal-auth-version": "v2"}
    out.update(override)
    return out


# --- headers, message, signature --------------------------------------------------------------


def test_headers_are_read_case_insensitively() -> None:
    """Upper, lower or mixed case header names all work."""
    upper = {k.upper(): v for k, v in headers().items()}
    assert ws.transmission_headers(upper) == ws.transmission_headers(headers())
    assert ws.transmission_headers(upper).transmission_id == TID


@pytest.mark.parametrize("name", ws.REQUIRED_HEADERS)
@pytest.mark.parametrize("empty", [True, False])
def test_missing_or_empty_header_is_named(name: str, empty: bool) -> None:
    """A missing or empty transmission header -> 400 `headers`, naming it."""
    h = headers()
    if empty:
        h[name.lower()] = "  "
    else:
        del h[name.lower()]
    with pytest.raises(SignatureError) as err:
        ws.transmission_headers(h)
    assert (err.value.check, err.value.status) == ("headers", 400)
    assert name in err.value.message


def test_only_sha256withrsa_is_accepted() -> None:
    """Another auth algo is refused as `auth_algo`."""
    ws.check_auth_algo("SHA256withRSA")
    with pytest.raises(SignatureError) as err:
        ws.check_auth_algo("SHA1withRSA")
    assert err.value.check == "auth_algo"


def test_message_uses_unsigned_decimal_crc32_of_raw_bytes() -> None:
    """The signed message ends with the unsigned CRC-32 of the exact bytes."""
    body = b"\xff" * 7  # CRC-32 with the top bit set: signed would be negative
    assert ws.crc32(body) == zlib.crc32(body) & 0xFFFFFFFF > 2**31
    assert ws.message("t", "w", "h", body) == f"t|w|h|{ws.crc32(body)}".encode()


def test_genuine_signature_verifies() -> None:
    """A transmission signed for our webhook id over the raw bytes verifies."""
    assert ws.verify_signature(LEAF, TID, TTIME, OURS, BODY, signature())


def test_emulator_signatures_verify() -> None:
    """What the emulator signs, this module verifies (the same wire format)."""
    pki = generate_pki(NOW)
    sig = sign(pki.leaf_key, TID, TTIME, OURS, BODY)
    assert ws.verify_signature(pki.leaf_cert, TID, TTIME, OURS, BODY, sig)
    assert ws.check_chain(pki.leaf_cert, [pki.ca_cert], NOW)


def test_one_byte_changed_body_fails_as_forged_or_corrupted() -> None:
    """One byte changed -> no verification; explained as forged or corrupted."""
    body = BODY.replace(b"10.00", b"90.00")
    assert not ws.verify_signature(LEAF, TID, TTIME, OURS, body, signature())
    assert why(signature(), body).startswith("forged or corrupted")


def test_forged_signature_fails() -> None:
    """Signed with another key, or not base64 at all: forged."""
    forged = signature(key=OTHER_KEY)
    assert not ws.verify_signature(LEAF, TID, TTIME, OURS, BODY, forged)
    assert why(forged).startswith("forged or corrupted")
    assert not ws.verify_signature(LEAF, TID, TTIME, OURS, BODY, "not*base64")
    assert "not base64" in why("not*base64")


def test_wrong_webhook_id_is_explained_by_naming_the_other_id() -> None:
    """Signed for another configured webhook id -> a sandbox/live mix-up naming it."""
    sig = signature(webhook_id=LIVE)
    assert not ws.verify_signature(LEAF, TID, TTIME, OURS, BODY, sig)
    cause = why(sig, others=("WH-UNRELATED", LIVE))
    assert LIVE in cause and "sandbox/live" in cause
    assert why(sig, others=()).startswith("forged or corrupted")  # an id we were not told


def test_simulator_event_is_explained() -> None:
    """Signed for WEBHOOKSIMULATOR -> PayPal's simulator, which cannot be verified."""
    cause = why(signature(webhook_id=ws.SIMULATOR_WEBHOOK_ID))
    assert "simulator" in cause and "cannot be verified" in cause


@pytest.mark.parametrize("rewrite", [
    lambda d: json.dumps(d),
    lambda d: json.dumps(d, ensure_ascii=False),
    lambda d: json.dumps(d, indent=2),
    lambda d: json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
], ids=["default", "default-utf8", "pretty", "sorted"])
def test_reserialised_body_is_explained_as_rewritten(rewrite: Callable[[Any], str]) -> None:
    """A body a framework parsed and dumped again -> "re-serialised", not "forged"."""
    received = rewrite(json.loads(BODY)).encode()
    assert received != BODY
    assert not ws.verify_signature(LEAF, TID, TTIME, OURS, received, signature())
    assert "re-serialised" in why(signature(), received)


# --- the cert URL -------------------------------------------------------------------------------

PAYPAL = ws.PAYPAL_CERT_HOSTS
CERT = "/v1/notifications/certs/CERT-360caa42-fca2a594-1d93a270"


@pytest.mark.parametrize(("url", "fetched"), [
    (f"https://api.paypal.com{CERT}", f"https://api.paypal.com{CERT}"),
    (f"https://API.Sandbox.PayPal.com:443{CERT}", f"https://api.sandbox.paypal.com{CERT}"),
    (f"HTTP://127.0.0.1:8090{CERT}", f"http://127.0.0.1:8090{CERT}"),
    (f"https://127.0.0.1:8090{CERT}", f"https://127.0.0.1:8090{CERT}"),
])
def test_allowed_cert_urls_are_rebuilt_from_checked_parts(url: str, fetched: str) -> None:
    """Allowlisted https hosts (and the emulator's http host:port) pass, normalised."""
    assert ws.check_cert_url(url, PAYPAL, allow_http_hosts=["127.0.0.1:8090"]) == fetched


@pytest.mark.parametrize("url", [
    f"https://api.paypal.com.evil.example{CERT}",
    f"https://evil.example.api.paypal.com{CERT}",
    f"https://evil@api.paypal.com{CERT}",
    f"https://api.paypal.com:x@evil.example{CERT}",
    f"https://api.paypal.com\\@evil.example{CERT}",
    f"https://api.paypal.com.{CERT}",
    f"https://api.paypal.com:8443{CERT}",
    f"http://api.paypal.com{CERT}",
    f"http://127.0.0.1:9999{CERT}",
    f"http://127.0.0.1{CERT}",
    f"https://[::1]{CERT}",
    f"https://api%2epaypal.com{CERT}",
    f"ftp://api.paypal.com{CERT}",
    f"//api.paypal.com{CERT}",
    "https://api.paypal.com/v1/notifications/certs/",
    "https://api.paypal.com/v1/oauth2/token",
    "https://api.paypal.com/v1/notifications/certs/../../oauth2/token",
    "https://api.paypal.com/v1/notifications/certs/a/b",
    f"https://api.paypal.com{CERT}?next=https://evil.example",
    f"https://api.paypal.com{CERT}#frag",
    f"https://api.paypal.com{CERT} ",
    "",
])
def test_off_allowlist_cert_urls_are_refused(url: str) -> None:
    """Suffix tricks, userinfo, ports, http, other paths and junk -> `cert_url`, not allowed."""
    with pytest.raises(SignatureError) as err:
        ws.check_cert_url(url, PAYPAL, allow_http_hosts=["127.0.0.1:8090"])
    assert err.value.check == "cert_url"
    assert "not allowed" in (err.value.likely_cause or "")


def test_host_port_allowlist_entries() -> None:
    """`host:port` entries allow exactly that port; malformed entries are refused."""
    url = f"https://certs.example:8443{CERT}"
    assert ws.check_cert_url(url, ["certs.example:8443"]) == url
    with pytest.raises(SignatureError):
        ws.check_cert_url(url, ["certs.example"])
    with pytest.raises(ValueError, match="host"):
        ws.host_allowlist(["https://api.paypal.com/"], "443")


# --- certificates and the chain ------------------------------------------------------------------


def test_parse_certificates_refuses_non_pem() -> None:
    """A body that is no PEM certificate -> `cert_url`; a served chain parses leaf first."""
    with pytest.raises(SignatureError) as err:
        ws.parse_certificates(b"<html>not a cert</html>")
    assert err.value.check == "cert_url"
    pem = LEAF.public_bytes(Encoding.PEM) + CA.public_bytes(Encoding.PEM)
    assert ws.parse_certificates(pem) == [LEAF, CA]


def test_trusted_chain_returns_its_validity_window() -> None:
    """Leaf issued by a configured CA -> the window both are valid in."""
    assert ws.check_chain(LEAF, [LEAF, CA], NOW) == (LEAF.not_valid_before_utc,
                                                     LEAF.not_valid_after_utc)


@pytest.mark.parametrize(("leaf", "ca", "at", "check", "expected"), [
    (LEAF, CA, NOW + 400 * DAY, "cert_dates", "expired"),
    (LEAF, CA, NOW - 2 * DAY, "cert_dates", "not valid before"),
    (issue(LEAF_NAME, LEAF_KEY, (CA, CA_KEY), NOW - 30 * DAY, NOW - DAY), CA, NOW, "cert_dates",
     "expired"),
    (LEAF, issue("elsewhere CA", OTHER_KEY, ca=True), NOW, "cert_chain", "does not chain"),
    (issue(LEAF_NAME, LEAF_KEY), CA, NOW, "cert_chain", "does not chain"),  # self-signed
    (issue(LEAF_NAME, LEAF_KEY, (CA, OTHER_KEY)), CA, NOW, "cert_chain",
     "does not chain"),  # bad issuer signature
    (LEAF, issue("test webhook CA", CA_KEY, ca=True, start=NOW - 9 * DAY, end=NOW - 2 * DAY),
     NOW, "cert_dates", "CA certificate expired"),
    (issue("evil.example", LEAF_KEY, (CA, CA_KEY)), CA, NOW, "cert_leaf", "subject"),
    (issue(LEAF_NAME, LEAF_KEY, (CA, CA_KEY), signing=False), CA, NOW, "cert_leaf",
     "key usage"),
    (issue(LEAF_NAME, LEAF_KEY, (CA, CA_KEY), ca=True), CA, NOW, "cert_leaf", "CA certificate"),
], ids=["leaf-expired", "leaf-not-yet-valid", "leaf-expired-2", "untrusted-ca",
        "self-signed", "bad-issuer-signature", "ca-expired", "wrong-name", "no-signing-usage",
        "leaf-is-a-ca"])
def test_bad_chains_are_refused(leaf: x509.Certificate, ca: x509.Certificate, at: datetime,
                                check: str, expected: str) -> None:
    """Outside its dates -> `cert_dates`; untrusted -> `cert_chain`; not a PayPal signing
    certificate (name, usage, a CA) -> `cert_leaf`."""
    with pytest.raises(SignatureError) as err:
        ws.check_chain(leaf, [ca], at)
    assert (err.value.check, expected in err.value.message) == (check, True), err.value.message


def _no_key_usage(cn: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(CA.subject)
            .public_key(LEAF_KEY.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - DAY).not_valid_after(NOW + DAY).sign(CA_KEY, hashes.SHA256()))


def test_leaf_checks_alone_for_fetched_trust() -> None:
    """`check_leaf` (fetched trust) needs no CA: PayPal's name, dates and a stated
    digital-signature usage; any other subject, a missing usage or a CA is `cert_leaf`."""
    untrusted_issuer = issue(LEAF_NAME, LEAF_KEY, (issue("nobody", OTHER_KEY, ca=True),
                                                   OTHER_KEY))
    assert ws.check_leaf(untrusted_issuer, NOW, require_key_usage=True) == (
        untrusted_issuer.not_valid_before_utc, untrusted_issuer.not_valid_after_utc)
    bare = _no_key_usage(LEAF_NAME)
    assert ws.check_leaf(bare, NOW)
    refusals = [(bare, "no key usage"), (issue("evil.example", LEAF_KEY), "subject"),
                (issue(LEAF_NAME, LEAF_KEY, ca=True), "CA certificate"),
                (issue(LEAF_NAME, LEAF_KEY, signing=False), "key usage")]
    for cert, expected in refusals:
        with pytest.raises(SignatureError) as err:
            ws.check_leaf(cert, NOW, require_key_usage=True)
        assert err.value.check == "cert_leaf" and expected in err.value.message, expected
    with pytest.raises(SignatureError) as err:
        ws.check_leaf(LEAF, NOW + 400 * DAY, require_key_usage=True)
    assert err.value.check == "cert_dates"


def test_intermediates_served_with_the_leaf_complete_the_chain() -> None:
    """Leaf <- intermediate (served) <- root (configured); without the intermediate, refused."""
    inter = issue("test intermediate", OTHER_KEY, (CA, CA_KEY), ca=True)
    leaf = issue(LEAF_NAME, LEAF_KEY, (inter, OTHER_KEY))
    assert ws.check_chain(leaf, [CA], NOW, intermediates=[inter])
    with pytest.raises(SignatureError, match="does not chain"):
        ws.check_chain(leaf, [CA], NOW)
    not_ca = issue("test intermediate", OTHER_KEY, (CA, CA_KEY))
    with pytest.raises(SignatureError, match="does not chain"):
        ws.check_chain(issue(LEAF_NAME, LEAF_KEY, (not_ca, OTHER_KEY)), [CA], NOW,
                       intermediates=[not_ca])
    assert ws.check_chain(issue("any.example", LEAF_KEY, (CA, CA_KEY)), [CA], NOW, names=None)


# --- transmission time ----------------------------------------------------------------------------


def test_transmission_time_window() -> None:
    """Within 4 days back (PayPal retries for 3) and an hour ahead: accepted; else refused."""
    assert ws.check_transmission_time("2025-06-01T11:59:30Z", NOW) == NOW - timedelta(seconds=30)
    assert ws.check_transmission_time("2025-05-29T00:00:00Z", NOW)  # a late retry, 3.5 days
    assert ws.check_transmission_time("2025-06-01T11:00:00", NOW).tzinfo is not None
    for text, fragment in [("2025-05-28T11:00:00Z", "older"), ("2025-06-01T14:00:00Z", "future"),
                           ("yesterday", "ISO 8601")]:
        with pytest.raises(SignatureError, match=fragment) as err:
            ws.check_transmission_time(text, NOW)
        assert err.value.check == "transmission_time"


# --- property: no mutation verifies ---------------------------------------------------------------

GENUINE = signature()


@st.composite
def mutations(draw: st.DrawFn) -> tuple[str, str, str, bytes, str]:
    """A signed transmission with one random part changed."""
    tid, when, wid, body, sig = TID, TTIME, OURS, BODY, GENUINE
    part = draw(st.sampled_from(["body", "insert", "delete", "tid", "time", "id", "sig"]))
    if part == "body":  # a burst of up to 4 bytes: CRC-32 detects every such change
        at = draw(st.integers(0, len(body) - 1))
        span = draw(st.binary(min_size=1, max_size=min(4, len(body) - at)))
        old = body[at:at + len(span)]
        span = span if span != old else bytes([old[0] ^ 1]) + span[1:]
        body = body[:at] + span + body[at + len(span):]
    elif part == "insert":
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.binary(min_size=1, max_size=8)) + body[at:]
    elif part == "delete":
        at = draw(st.integers(0, len(body) - 1))
        body = body[:at] + body[at + draw(st.integers(1, 8)):]
    elif part == "sig":
        raw = bytearray(base64.b64decode(sig))
        raw[draw(st.integers(0, len(raw) - 1))] ^= draw(st.integers(1, 255))
        sig = base64.b64encode(bytes(raw)).decode()
    else:
        text = draw(st.text(min_size=1, max_size=40))
        tid, when, wid = (text if part == "tid" else tid, text if part == "time" else when,
                          text if part == "id" else wid)
    return tid, when, wid, body, sig


@given(mutations())
def test_random_mutations_never_verify(case: tuple[str, str, str, bytes, str]) -> None:
    """Change the body, an id, the time or the signature, and it no longer verifies."""
    tid, when, wid, body, sig = case
    assert (tid, when, wid, body, sig) != (TID, TTIME, OURS, BODY, GENUINE)
    assert not ws.verify_signature(LEAF, tid, when, wid, body, sig)


URL_PARTS = st.tuples(
    st.sampled_from(["https://", "http://", "HTTPS://", "https:/", "//", ""]),
    st.sampled_from(["", "evil@", "api.paypal.com@", "a:b@"]),
    st.sampled_from(["api.paypal.com", "API.PAYPAL.COM", "api.paypal.com.", "evil.example",
                     "api.paypal.com.evil.example", "127.0.0.1", "api.paypal.com\\@evil.example",
                     "api%2epaypal.com"]),
    st.sampled_from(["", ":443", ":8090", ":80", ":0443", ":"]),
    st.sampled_from([CERT, ws.CERT_PATH_PREFIX, f"{ws.CERT_PATH_PREFIX}../x", f"/x{CERT}"]),
    st.sampled_from(["", "#@evil.example", "?a=1", "/..", " ", "\t", "@evil.example"]),
)


@given(URL_PARTS)
def test_cert_url_allowlist_matches_an_oracle(parts: tuple[str, ...]) -> None:
    """Accepted exactly when allowed, and httpx and urllib then read the same allowed host."""
    scheme, userinfo, host, port, path, suffix = parts
    https = scheme.lower() == "https://"
    expected = (not userinfo and not suffix and path == CERT and (
        (https and host.lower() == "api.paypal.com" and port in ("", ":443"))
        or (scheme.lower() in ("https://", "http://") and host == "127.0.0.1"
            and port == ":8090")))
    try:
        fetched = ws.check_cert_url("".join(parts), PAYPAL, allow_http_hosts=["127.0.0.1:8090"])
    except SignatureError:
        assert not expected
        return
    assert expected
    parsed = httpx.URL(fetched)
    assert parsed.host == urlsplit(fetched).hostname
    assert (parsed.host, parsed.port) in {(h, None) for h in PAYPAL} | {("127.0.0.1", 8090)}
    assert parsed.path == CERT and not parsed.query
