"""Webhook verification on real signed deliveries from the emulator over HTTP, both modes."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from paywire.domain.errors import ProviderError, SignatureError
from paywire.ports import VerifiedDelivery
from paywire.providers.paypal.client import PayPalClient
from paywire.providers.paypal.webhook_verifier import LocalVerifier, PostbackVerifier
from paywire.testing import EmulatorServer, ServerThread, free_port
from testkit import CLIENT_ID, CLIENT_SECRET, approve, get_token, order_body

CERTS = "/v1/notifications/certs/"


@dataclass
class Hit:
    """One request a recorder got, byte for byte."""

    method: str
    path: str
    body: bytes
    headers: dict[str, str]


@dataclass
class Recorder:
    """A loopback server recording every request; answers 200, or redirects when told to."""

    redirect_to: str | None = None
    hits: list[Hit] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.server = ServerThread(Starlette(routes=[Route(
            "/{path:path}", self._any, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])]))

    async def _any(self, request: Request) -> Response:
        hit = Hit(request.method, request.url.path, await request.body(), dict(request.headers))
        with self._lock:
            self.hits.append(hit)
        if self.redirect_to:
            return RedirectResponse(self.redirect_to, status_code=302)
        return Response(status_code=200)

    def wait(self, count: int, timeout: float = 10.0) -> list[Hit]:
        """Block until `count` requests have arrived."""
        deadline = time.monotonic() + timeout
        while len(self.hits) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"got {len(self.hits)} of {count} requests")
            time.sleep(0.01)
        return list(self.hits)


@contextmanager
def serve(recorder: Recorder) -> Iterator[Recorder]:
    """Run a recorder for the duration of the block."""
    recorder.server.start()
    try:
        yield recorder
    finally:
        recorder.server.stop()


@pytest.fixture
def receiver() -> Iterator[Recorder]:
    """Our webhook endpoint: records what the emulator delivers."""
    with serve(Recorder()) as recorder:
        yield recorder


@pytest.fixture
def foreign() -> Iterator[Recorder]:
    """A host that must never be contacted (the SSRF target)."""
    with serve(Recorder()) as recorder:
        yield recorder


@dataclass
class Delivered:
    """A subscription, one genuine signed delivery to it, and the emulator's trust anchor."""

    emulator: EmulatorServer
    paypal: httpx.Client
    webhook_id: str
    hit: Hit
    ca_pem: bytes

    @property
    def emulator_host(self) -> str:
        """The emulator's host:port (allowlisted for http, as in dev)."""
        return f"127.0.0.1:{self.emulator.port}"

    def cert_fetches(self) -> int:
        """How many certificate GETs the emulator has served."""
        return sum(1 for e in self.emulator.emu.request_log if e.path.startswith(CERTS))

    def local(self, ids: list[str] | None = None, **kw: Any) -> LocalVerifier:
        """A LocalVerifier trusting the emulator's CA and http host."""
        kw.setdefault("allow_http_hosts", [self.emulator_host])
        return LocalVerifier(ids or [self.webhook_id], allowed_hosts=(),
                             ca_pems=[self.ca_pem], **kw)

    def client(self) -> PayPalClient:
        """A PayPalClient for the emulator."""
        return PayPalClient(self.emulator.url, CLIENT_ID, CLIENT_SECRET)


@pytest.fixture
def delivered(emulator: EmulatorServer, receiver: Recorder) -> Iterator[Delivered]:
    """Subscribe, create and approve an order, and wait for the signed APPROVED delivery."""
    with httpx.Client(base_url=emulator.url, timeout=10, headers={
            "Authorization": f"Bearer {get_token(emulator.url)}"}) as paypal:
        r = paypal.post("/v1/notifications/webhooks", json={
            "url": f"{receiver.server.url}/webhooks/paypal",
            "event_types": [{"name": "CHECKOUT.ORDER.APPROVED"}]})
        assert r.status_code == 201, r.text
        created = paypal.post("/v2/checkout/orders", json=order_body())
        assert created.status_code in (200, 201), created.text
        approve(paypal, created.json()["id"])
        hit = receiver.wait(1)[0]
        ca_pem = paypal.get("/_emulator/ca.pem").content
        yield Delivered(emulator, paypal, r.json()["id"], hit, ca_pem)


async def refused(call: Awaitable[VerifiedDelivery], check: str) -> SignatureError:
    """Await a verification that must fail for good with `check`."""
    with pytest.raises(SignatureError) as err:
        await call
    assert err.value.check == check, (err.value.check, err.value.message)
    assert 400 <= err.value.status < 500
    return err.value


# --- local verification ---------------------------------------------------------------------


async def test_genuine_delivery_verifies_locally_with_one_cert_fetch(
        delivered: Delivered) -> None:
    """Genuine -> VerifiedDelivery; the cert is fetched once (then cached), no API call made."""
    before = len(delivered.emulator.emu.request_log)
    async with delivered.local() as verifier:
        first = await verifier.verify(delivered.hit.headers, delivered.hit.body)
        second = await verifier.verify(delivered.hit.headers, delivered.hit.body)
    assert first == second
    assert first.transmission_id == delivered.hit.headers["paypal-transmission-id"]
    assert first.webhook_id == delivered.webhook_id
    assert abs(first.transmission_time - datetime.now(UTC)) < timedelta(minutes=1)
    assert delivered.cert_fetches() == 1
    assert [e.path for e in delivered.emulator.emu.request_log[before:]] == [
        delivered.hit.headers["paypal-cert-url"].split(delivered.emulator_host, 1)[1]]


async def test_concurrent_first_deliveries_share_one_cert_fetch(delivered: Delivered) -> None:
    """Ten verifications racing on a cold cache fetch the certificate once."""
    async with delivered.local() as verifier:
        results = await asyncio.gather(*(verifier.verify(delivered.hit.headers,
                                                         delivered.hit.body) for _ in range(10)))
    assert len(set(results)) == 1 and delivered.cert_fetches() == 1


async def test_cache_expires_after_its_ttl(delivered: Delivered) -> None:
    """Past `cache_ttl` the certificate is fetched again."""
    now = [datetime.now(UTC)]
    async with delivered.local(clock=lambda: now[0], cache_ttl=timedelta(minutes=5)) as verifier:
        await verifier.verify(delivered.hit.headers, delivered.hit.body)
        now[0] += timedelta(minutes=6)
        await verifier.verify(delivered.hit.headers, delivered.hit.body)
    assert delivered.cert_fetches() == 2


Tamper = Callable[[Delivered], tuple[dict[str, str], bytes]]


def _reserialised(d: Delivered) -> tuple[dict[str, str], bytes]:
    return d.hit.headers, json.dumps(json.loads(d.hit.body)).encode()


def _one_byte(d: Delivered) -> tuple[dict[str, str], bytes]:
    i = d.hit.body.index(b'"APPROVED"') + 1
    return d.hit.headers, d.hit.body[:i] + b"B" + d.hit.body[i + 1:]


def _header(name: str, value: str | None) -> Tamper:
    """Set (or with None, drop) one header."""
    def tamper(d: Delivered) -> tuple[dict[str, str], bytes]:
        headers = {k: v for k, v in d.hit.headers.items() if k != name}
        return (headers if value is None else {**headers, name: value}), d.hit.body
    return tamper


def _forged_sig(d: Delivered) -> tuple[dict[str, str], bytes]:
    sig = d.hit.headers["paypal-transmission-sig"]
    return _header("paypal-transmission-sig", sig[:10] + ("B" if sig[10] == "A" else "A")
                   + sig[11:])(d)


TAMPERING: list[tuple[str, Tamper, str, str]] = [
    ("one byte", _one_byte, "signature", "forged or corrupted"),
    ("forged signature", _forged_sig, "signature", "forged or corrupted"),
    ("re-serialised", _reserialised, "signature", "re-serialised"),
    ("no signature", _header("paypal-transmission-sig", None), "headers",
     "PAYPAL-TRANSMISSION-SIG"),
    ("SHA1", _header("paypal-auth-algo", "SHA1withRSA"), "auth_algo", "forged"),
    ("old", _header("paypal-transmission-time", "2020-01-01T00:00:00Z"), "transmission_time",
     "3 days"),
]


async def test_tampered_deliveries_are_refused_and_explained(delivered: Delivered) -> None:
    """Each kind of tampering fails its own check, with the right likely cause."""
    async with delivered.local() as verifier:
        for name, tamper, check, cause in TAMPERING:
            err = await refused(verifier.verify(*tamper(delivered)), check)
            assert cause in (err.likely_cause or ""), (name, err.likely_cause)


async def test_wrong_webhook_id_names_the_id_it_was_signed_for(delivered: Delivered) -> None:
    """Configured with another environment's id first -> a mix-up naming the signed id."""
    async with delivered.local(["WH-LIVE-0000000000000000", delivered.webhook_id]) as verifier:
        err = await refused(verifier.verify(delivered.hit.headers, delivered.hit.body),
                            "signature")
    assert delivered.webhook_id in (err.likely_cause or "")
    assert "sandbox/live" in (err.likely_cause or "")


async def test_simulator_event_is_explained_in_both_modes(
        delivered: Delivered, receiver: Recorder) -> None:
    """A simulate-event delivery: refused locally and by postback, explained as the simulator."""
    r = delivered.paypal.post("/v1/notifications/simulate-event", json={
        "webhook_id": delivered.webhook_id, "event_type": "CHECKOUT.ORDER.APPROVED"})
    assert r.status_code == 202, r.text
    hit = receiver.wait(2)[1]
    async with delivered.local() as verifier, delivered.client() as client:
        err = await refused(verifier.verify(hit.headers, hit.body), "signature")
        assert "simulator" in (err.likely_cause or "")
        plain = PostbackVerifier(client, delivered.webhook_id)
        err = await refused(plain.verify(hit.headers, hit.body), "signature")
        assert "simulator" in (err.likely_cause or "")
        diagnosed = PostbackVerifier(client, delivered.webhook_id, diagnoser=verifier)
        err = await refused(diagnosed.verify(hit.headers, hit.body), "signature")
        assert (err.likely_cause or "").startswith("signed for WEBHOOKSIMULATOR")


async def test_unreachable_cert_host_is_transient(delivered: Delivered) -> None:
    """An allowlisted cert host that refuses connections -> transient ProviderError (5xx)."""
    closed = f"127.0.0.1:{free_port()}"
    cert_id = delivered.hit.headers["paypal-cert-url"].rsplit("/", 1)[1]
    headers = {**delivered.hit.headers, "paypal-cert-url": f"http://{closed}{CERTS}{cert_id}"}
    async with delivered.local(allow_http_hosts=[delivered.emulator_host, closed]) as verifier:
        with pytest.raises(ProviderError) as err:
            await verifier.verify(headers, delivered.hit.body)
    assert (err.value.kind, err.value.provider) == ("transient", "paypal")


FOREIGN_URLS = [
    "{foreign}{certs}{cert_id}",
    "http://{emu}@{foreign_host}{certs}{cert_id}",
    "http://{foreign_host}{certs}{cert_id}#@{emu}",
    "http://{foreign_host}\\@{emu}{certs}{cert_id}",
    "https://{foreign_host}{certs}{cert_id}",
    "http://{emu}.{foreign_host}{certs}{cert_id}",
    "{redirector}{certs}{cert_id}",  # allowlisted, but redirects to the foreign host
]


async def test_foreign_cert_url_is_refused_without_contacting_it(
        delivered: Delivered, foreign: Recorder) -> None:
    """Off-allowlist cert URLs, or a redirect to one -> `cert_url`; the host gets no request."""
    cert_id = delivered.hit.headers["paypal-cert-url"].rsplit("/", 1)[1]
    with serve(Recorder(redirect_to=f"{foreign.server.url}{CERTS}{cert_id}")) as redirector:
        allowed = [delivered.emulator_host, f"127.0.0.1:{redirector.server.port}"]
        async with httpx.AsyncClient(follow_redirects=True) as http, delivered.local(
                http=http, allow_http_hosts=allowed) as verifier:
            for template in FOREIGN_URLS:
                url = template.format(
                    foreign=foreign.server.url, foreign_host=f"127.0.0.1:{foreign.server.port}",
                    emu=delivered.emulator_host, certs=CERTS, redirector=redirector.server.url,
                    cert_id=cert_id)
                err = await refused(verifier.verify(
                    {**delivered.hit.headers, "paypal-cert-url": url}, delivered.hit.body),
                    "cert_url")
                cause = err.likely_cause or ""
                assert "not allowed" in cause or "redirects" in cause, (url, cause)
        assert len(redirector.hits) == 1
    assert foreign.hits == []
    assert delivered.cert_fetches() == 0


# --- postback -------------------------------------------------------------------------------


async def test_postback_verifies_genuine_and_refuses_tampered(delivered: Delivered) -> None:
    """Postback: genuine raw bytes -> verified; a changed byte or another id -> `signature`."""
    hit = delivered.hit
    async with delivered.client() as client:
        verifier = PostbackVerifier(client, delivered.webhook_id)
        ok = await verifier.verify(hit.headers, hit.body)
        assert ok.transmission_id == hit.headers["paypal-transmission-id"]
        err = await refused(verifier.verify(*_one_byte(delivered)), "signature")
        assert "simulator" in (err.likely_cause or "") and "FAILURE" in (err.likely_cause or "")
        await refused(verifier.verify(*_reserialised(delivered)), "signature")
        other = PostbackVerifier(client, "WH-LIVE-0000000000000000")
        await refused(other.verify(hit.headers, hit.body), "signature")
        await refused(verifier.verify(hit.headers, b"[1, 2]"), "json")
        await refused(verifier.verify(*TAMPERING[-1][1](delivered)), "transmission_time")
    posts = [e for e in delivered.emulator.emu.request_log
             if e.path == "/v1/notifications/verify-webhook-signature"]
    assert len(posts) == 4 and delivered.cert_fetches() == 0


async def test_postback_unreachable_is_transient(delivered: Delivered) -> None:
    """PayPal unreachable for the postback -> transient ProviderError."""
    async with PayPalClient(f"http://127.0.0.1:{free_port()}", CLIENT_ID, CLIENT_SECRET,
                            max_attempts=1) as client:
        with pytest.raises(ProviderError) as err:
            await PostbackVerifier(client, delivered.webhook_id).verify(
                delivered.hit.headers, delivered.hit.body)
    assert err.value.kind == "transient"


async def test_postback_splices_the_raw_event_bytes() -> None:
    """The postback body carries the event exactly as received, oddly formatted or not."""
    raw = b'{ "id" : "WH-1",\n  "summary":"cr\\u00e8me br\xc3\xbbl\xc3\xa9e", "n": 1.50 }'
    sent: list[bytes] = []

    async def paypal(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/oauth2/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        sent.append(request.content)
        return httpx.Response(200, json={"verification_status": "SUCCESS"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(paypal)) as http:
        client = PayPalClient("https://api-m.sandbox.paypal.com", CLIENT_ID, CLIENT_SECRET, http)
        verified = await client.verify_webhook_signature(
            auth_algo="SHA256withRSA", cert_url="https://x/c", transmission_id="t1",
            transmission_sig="c2ln", transmission_time="2025-01-01T00:00:00Z",
            webhook_id="WH-9", event_body=raw)
    assert verified
    assert sent[0].endswith(b',"webhook_event":' + raw + b"}")
    assert json.loads(sent[0])["webhook_id"] == "WH-9"


# --- certificate fetch edge cases (no emulator: a scripted transport) ---------------------------


def synthetic_headers() -> dict[str, str]:
    """Headers that pass every check before the fetch."""
    return {"PAYPAL-TRANSMISSION-ID": "t1", "PAYPAL-TRANSMISSION-SIG": "c2ln",
            "PAYPAL-TRANSMISSION-TIME": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "PAYPAL-AUTH-ALGO": "SHA256withRSA",
            "PAYPAL-CERT-URL": f"https://api.paypal.com{CERTS}CERT-360caa42-fca2a594-1"}


@pytest.mark.parametrize(("answer", "outcome"), [
    (httpx.Response(404), "cert_url"),
    (httpx.Response(302, headers={"location": "https://evil.example/"}), "cert_url"),
    (httpx.Response(200, content=b"<html>hello</html>"), "cert_url"),
    (httpx.Response(200, content=b"-----BEGIN CERTIFICATE-----\n" + b"A" * 70_000), "cert_url"),
    (httpx.Response(503), "transient"),
    (httpx.Response(429), "transient"),
    (httpx.ConnectError("refused"), "transient"),
    (httpx.ReadTimeout("slow"), "transient"),
], ids=["404", "redirect", "not-pem", "too-big", "503", "429", "connect", "timeout"])
async def test_cert_fetch_outcomes(answer: httpx.Response | Exception, outcome: str) -> None:
    """404, redirects, non-PEM or oversize -> `cert_url`; 5xx, 429, network -> transient."""
    def cert_host(request: httpx.Request) -> httpx.Response:
        if isinstance(answer, Exception):
            raise answer
        return answer

    async with httpx.AsyncClient(transport=httpx.MockTransport(cert_host)) as http:
        verify = LocalVerifier(["WH-1"], http=http).verify(synthetic_headers(), b"{}")
        if outcome == "transient":
            with pytest.raises(ProviderError) as err:
                await verify
            assert err.value.kind == "transient"
        else:
            await refused(verify, outcome)
