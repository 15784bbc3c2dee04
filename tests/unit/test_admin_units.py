"""The dashboard's pure parts: password hashes, signed cookies, the sign-in throttle, where a
sign-in may lead, the orders page's filters, redaction, and the `Resolved` fact."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from paywire.admin import auth
from paywire.admin.app import Filters, _safe_next
from paywire.admin.auth import (
    Credentials,
    Signer,
    Throttle,
    check_password,
    hash_password,
    session_key,
    valid_hash,
)
from paywire.domain.errors import ValidationError
from paywire.domain.facts import Resolved
from paywire.domain.money import Money
from paywire.domain.order import Intent, Order, OrderLine, OrderStatus, Verdict
from paywire.domain.transition import transition
from paywire.services.dashboard import HIDDEN, redact

T0 = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)


def test_password_hashes_check_only_their_password() -> None:
    """A hash checks its password, not another; a malformed or foreign hash checks nothing."""
    encoded = hash_password("open sesame, please", n=2**10)
    assert valid_hash(encoded) and encoded.count("$") == 5
    assert check_password("open sesame, please", encoded)
    assert not check_password("open sesame, pleasE", encoded)
    for bad in ("", "scrypt$1$2", "bcrypt$1$1$1$00$00", "scrypt$x$8$1$00$00",
                encoded.replace("scrypt", "md5")):
        assert not check_password("open sesame, please", bad)
        assert not valid_hash(bad)
    with pytest.raises(ValueError):
        hash_password("")


def test_signed_values_resist_tampering_and_other_purposes() -> None:
    """A value reads back only unaltered, under its purpose, with the key that signed it."""
    signer = Signer(b"k" * 32)
    value = signer.sign("flash", {"ok": True, "text": "done"})
    assert signer.unsign("flash", value) == {"ok": True, "text": "done"}
    assert signer.unsign("session", value) is None
    assert Signer(b"j" * 32).unsign("flash", value) is None
    body, mac = value.split(".")
    assert signer.unsign("flash", body + "x." + mac) is None
    assert signer.unsign("flash", None) is None and signer.unsign("flash", "a.b.c") is None
    cookie, session = signer.session("dana", 60, now=1000.0, credential="key_x")
    assert signer.read_session(cookie, now=1059.0) == session
    assert signer.read_session(cookie, now=1060.0) is None  # ended
    assert "k" * 32 not in repr(signer)


def test_the_session_key_comes_from_a_secret() -> None:
    """The key is an HMAC under the configured secret, or under the API keys (in any order:
    the same for the same keys, another when one changes); never a plain hash of them, and
    random when nothing is configured."""
    keys = [SecretStr("key-one-0123456789abcdef"), SecretStr("key-two-0123456789abcdef")]
    assert session_key(None, keys) == session_key(None, keys[::-1])
    assert session_key(None, keys) != session_key(None, keys[:1])
    assert session_key(None, keys) == hmac.new(
        b"".join(len(k).to_bytes(4, "big") + k for k in sorted(
            key.get_secret_value().encode() for key in keys)),
        b"paywire-admin-session", hashlib.sha256).digest()
    secret = SecretStr("s" * 32)
    assert session_key(secret, keys) == session_key(secret, []) == hmac.new(
        b"s" * 32, b"paywire-admin-session", hashlib.sha256).digest()
    assert session_key(None, []) != session_key(None, [])  # nothing signs in: random


async def test_credentials_name_the_caller_never_the_secret() -> None:
    """An API key signs in as its caller id, the password as the user; nothing else does."""
    creds = Credentials([SecretStr("key-one-0123456789abcdef")], "ops",
                        SecretStr(hash_password("the password 123", n=2**10)))
    who = await creds.identify("key-one-0123456789abcdef")
    assert who is not None and who.actor.startswith("key_") and "key-one" not in who.actor
    assert who.credential == who.actor and creds.current(who.credential)
    by_password = await creds.identify("the password 123")
    assert by_password is not None and by_password.actor == "ops"
    assert by_password.credential.startswith("pw_") and creds.current(by_password.credential)
    assert await creds.identify("") is None and await creds.identify("nope") is None
    assert creds.configured and not Credentials([], "ops", None).configured
    assert "0123456789" not in repr(creds)
    # Another key list or another password hash: those sessions' credentials are not current.
    rotated = Credentials([SecretStr("key-two-0123456789abcdef")], "ops",
                          SecretStr(hash_password("the password 123", n=2**10)))
    assert not rotated.current(who.credential) and not rotated.current(by_password.credential)
    assert not creds.current("") and not creds.current("anything")


async def test_password_checks_run_off_the_loop_two_at_a_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The scrypt check runs in worker threads, never the event loop's, and no more than
    two at once: while two are held, the loop still runs and the others wait their turn."""
    held = threading.Event()
    inside: list[int] = []
    most = 0
    lock = threading.Lock()

    def slow_check(password: str, encoded: str) -> bool:
        nonlocal most
        with lock:
            inside.append(threading.get_ident())
            most = max(most, len(inside))
        held.wait(30)
        with lock:
            inside.remove(threading.get_ident())
        return password == "right"

    monkeypatch.setattr(auth, "check_password", slow_check)
    creds = Credentials([], "ops", SecretStr("scrypt$1024$8$1$ab$cd"))
    checks = [asyncio.create_task(creds.identify(p)) for p in ("right", "x", "y", "z", "w")]
    for _ in range(3000):  # the loop keeps turning while checks are held
        if len(inside) == 2:
            break
        await asyncio.sleep(0.01)
    for _ in range(20):  # and the others stay queued
        await asyncio.sleep(0.01)
    assert len(inside) == 2 and threading.get_ident() not in inside
    held.set()
    found = await asyncio.gather(*checks)
    assert [f and f.actor for f in found] == ["ops", None, None, None, None]
    assert most == 2


def test_the_throttle_counts_failures_per_client_in_a_window() -> None:
    """Three failures lock a client out until the first leaves the window; others are free;
    a success forgets; the table of clients is bounded."""
    throttle = Throttle(3, 60, max_clients=2)
    for t in (0.0, 10.0, 20.0):
        assert throttle.retry_after("a", now=t) == 0
        throttle.failed("a", now=t)
    assert throttle.retry_after("a", now=30.0) == 31
    assert throttle.retry_after("b", now=30.0) == 0
    assert throttle.retry_after("a", now=60.5) == 0  # the first failure left the window
    throttle.succeeded("a")
    throttle.failed("b", now=1.0)
    throttle.failed("c", now=2.0)
    throttle.failed("d", now=3.0)
    assert len(throttle._failures) <= 2


@pytest.mark.parametrize(("asked", "goes"), [
    ("/admin/orders?status=PENDING", "/orders?status=PENDING"), ("/admin/", "/"),
    ("//evil.example/admin/", "/"), ("https://evil.example/", "/"), (None, "/"),
    ("/admin//evil.example", "/"), ("/\\evil", "/"), ("/prod/admin/audit", "/audit")])
def test_a_sign_in_leads_back_inside_the_dashboard_only(asked: str | None, goes: str) -> None:
    """`next` is a path inside the dashboard; anything else goes to its front page."""
    assert _safe_next(asked) == goes


def test_the_orders_filters_read_and_refuse() -> None:
    """Query strings become the store's filter; a bad field is a ValidationError naming it."""
    f = Filters.of({"status": "pending", "attention": "1", "from": "2025-03-01",
                    "to": "2025-03-02", "min": "10.5", "max": "20", "q": " PP-1 "}, "USD")
    where = f.where()
    assert where.status is OrderStatus.PENDING and where.needs_attention
    assert where.created_from == datetime(2025, 3, 1, tzinfo=UTC)
    assert where.created_to == datetime(2025, 3, 3, tzinfo=UTC)  # "to" includes its day
    assert (where.min_minor, where.max_minor, where.currency) == (1050, 2000, "USD")
    assert Filters.of({"min": "100", "currency": "jpy"}, "USD").where().min_minor == 100
    assert Filters.of({}, "USD").where().currency is None
    assert "attention=1" in f.query(cursor="c") and "cursor=c" in f.query(cursor="c")
    for params, field in (({"status": "NOPE"}, "status"), ({"from": "03/01/2025"}, "from"),
                          ({"min": "-1"}, "min"), ({"max": "NaN"}, "max")):
        with pytest.raises(ValidationError) as caught:
            Filters.of(params, "USD").where()
        assert caught.value.field == field


def test_redact_hides_credentials_and_card_numbers() -> None:
    """Credential-like fields are hidden whatever their nesting; digit runs of card length are
    masked to their last four; everything else is kept."""
    shown = redact({"access_code": "zx81", "signature": "abc", "id": "PP-1",
                    "payer": {"card": "4111 1111 1111 1111", "name": "A. Buyer"},
                    "links": [{"token": "t"}, {"href": "https://x/4111111111111111"}],
                    "amount": 2500, "phone": "0123456", "empty_secret": ""})
    assert shown == {"access_code": HIDDEN, "signature": HIDDEN, "id": "PP-1",
                     "payer": {"card": "•••• 1111", "name": "A. Buyer"},
                     "links": [{"token": HIDDEN}, {"href": "https://x/•••• 1111"}],
                     "amount": 2500, "phone": "0123456", "empty_secret": ""}


def test_resolved_clears_the_flag_and_keeps_the_note() -> None:
    """On a flagged order the flag goes and a NOTE line keeps who, why and the note; on an
    order not flagged the note is kept and nothing moves."""
    order = Order.new("o-1", Intent.CAPTURE, [OrderLine("mug", "Mug", 1, Money(1250, "USD"))],
                      T0)
    flagged = order.evolve(T0, needs_attention="stuck:PENDING")
    done = transition(flagged, Resolved("checked at PayPal", "dana"), T0 + timedelta(hours=1))
    assert done.verdict is Verdict.APPLY and done.order is not None
    assert done.order.needs_attention is None and done.order.version == flagged.version + 1
    assert [(ln.verdict, ln.detail) for ln in done.lines] == [
        ("NOTE", {"resolved": "stuck:PENDING", "note": "checked at PayPal", "by": "dana"})]
    assert done.announcements == ()
    idle = transition(order, Resolved("nothing to do", "dana"), T0)
    assert idle.verdict is Verdict.STALE and idle.order is None and len(idle.lines) == 1
