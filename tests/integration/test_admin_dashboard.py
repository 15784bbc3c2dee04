"""The dashboard over real HTTP: sign-in (API key, password), the session cookie's flags, CSRF on
every form, the sign-in throttle, signed-out and forged sessions, the actions (reconcile now,
refund with the over-refund check, resolve, outbox retry) and their audit lines, and pages that
never show a secret. paywire runs as in production (`create_app`, SQLite, the emulator).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from apikit import API_KEY, CLIENT_SECRET, dynamodb_table, postgres_database
from dashkit import PASSWORD, DashStack, csrf_of, dashboard_stack, refund_id_of, run, sign_in
from paywire.admin.auth import Signer, check_password, hash_password, session_key
from paywire.api.keys import ApiKeys
from paywire.cli import app as cli
from paywire.domain.facts import Announcement
from paywire.ports import AuditEntry, DeliveryAttempt, InboxEvent, TruthTask
from paywire.services.reconcile import Reconciler
from paywire.store.sql import SqlStore
from paywire.testing import EmulatorServer


@pytest.fixture
def stack(emulator: EmulatorServer, tmp_path: Path) -> Iterator[DashStack]:
    """paywire with its dashboard (three failed sign-ins allowed per address)."""
    with dashboard_stack(emulator, tmp_path, admin_login_attempts=3) as s:
        yield s


@pytest.fixture
def browser(stack: DashStack) -> Iterator[httpx.Client]:
    """A cookie-keeping client, not signed in, that does not follow redirects."""
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        yield client


def test_pages_send_the_signed_out_to_sign_in(browser: httpx.Client) -> None:
    """Every page redirects to the sign-in form (remembering where it was going); every action
    is refused."""
    for path in ("/admin/", "/admin/orders?status=PENDING", "/admin/orders/ord_x",
                 "/admin/rejections", "/admin/truth", "/admin/outbox", "/admin/audit"):
        r = browser.get(path)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/admin/login?next=%2Fadmin%2F"), path
    for path in ("/admin/orders/ord_x/refund", "/admin/outbox/msg_x/retry", "/admin/logout"):
        assert browser.post(path, data={"csrf": "x"}).status_code == 403, path


def test_an_api_key_signs_in_to_a_strict_http_only_cookie(browser: httpx.Client) -> None:
    """The session cookie is HttpOnly, SameSite=Strict, scoped to /admin; not Secure on
    loopback; the page names the operator, never the key."""
    r = sign_in(browser, API_KEY, name="Dana")
    assert r.status_code == 303 and r.headers["location"] == "/admin/"
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("paywire_admin="))
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/admin"} <= flags
    assert "secure" not in flags
    home = browser.get("/admin/")
    assert home.status_code == 200
    assert "Dana (key_" in home.text and API_KEY not in home.text
    assert home.headers["cache-control"] == "no-store"
    assert "script-src" not in home.headers["content-security-policy"]  # none at all
    assert "frame-ancestors 'none'" in home.headers["content-security-policy"]


def test_the_cookie_is_secure_off_loopback(stack: DashStack) -> None:
    """Asked for under another host name, the pre-session and session cookies are Secure (so a
    browser sends them over HTTPS only)."""
    with httpx.Client(base_url=stack.url, timeout=30,
                      headers={"Host": "pay.shop.example"}) as client:
        form = client.get("/admin/login")
        pre = next(h for h in form.headers.get_list("set-cookie")
                   if h.startswith("paywire_admin_pre="))
        assert "secure" in pre.lower()
        r = client.post("/admin/login", data={"csrf": csrf_of(form.text), "secret": PASSWORD},
                        headers={"Cookie": pre.split(";")[0]})  # as a browser over HTTPS would
        cookie = next(h for h in r.headers.get_list("set-cookie")
                      if h.startswith("paywire_admin="))
        assert "secure" in cookie.lower()


def test_the_password_signs_in_as_the_configured_user(browser: httpx.Client) -> None:
    """The password (checked against its scrypt hash) signs in as `admin_user`."""
    assert sign_in(browser, PASSWORD).status_code == 303
    assert ">admin<" in browser.get("/admin/").text


def test_wrong_secrets_are_refused_then_throttled(browser: httpx.Client,
                                                  stack: DashStack) -> None:
    """A wrong secret is 401 (and audited); after three, even the right one waits (429,
    Retry-After) for the window to pass."""
    for _ in range(3):
        assert sign_in(browser, "not-the-key-0123456789").status_code == 401
    r = sign_in(browser, API_KEY)
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert "paywire_admin=" not in " ".join(r.headers.get_list("set-cookie"))
    other = httpx.Client(base_url=stack.url, timeout=30)  # the throttle is per address:
    with other:  # loopback is one address, so this client waits too
        assert sign_in(other, API_KEY).status_code == 429


def test_sign_in_needs_its_form_token(browser: httpx.Client) -> None:
    """A sign-in posted without the form's pre-session token (a cross-site form) is 403."""
    browser.get("/admin/login")
    r = browser.post("/admin/login", data={"csrf": "forged", "secret": API_KEY})
    assert r.status_code == 403
    with httpx.Client(base_url=browser.base_url, timeout=30) as fresh:  # no pre-session cookie
        form = browser.get("/admin/login")
        r = fresh.post("/admin/login", data={"csrf": csrf_of(form.text), "secret": API_KEY})
        assert r.status_code == 403


async def test_actions_need_the_sessions_csrf_token(browser: httpx.Client,
                                                    stack: DashStack) -> None:
    """An action without the token, or with another session's, is 403 and does nothing."""
    order = await stack.stuck_order()
    sign_in(browser, API_KEY)
    with httpx.Client(base_url=stack.url, timeout=30) as other:
        sign_in(other, PASSWORD)
        theirs = csrf_of(other.get("/admin/").text)
    path = f"/admin/orders/{order['id']}/resolve"
    for data in ({"note": "no token"}, {"note": "wrong", "csrf": theirs}):
        r = browser.post(path, data=data)
        assert r.status_code == 403 and "CSRF" in r.text
    page = browser.get(f"/admin/orders/{order['id']}").text
    assert "stuck:PENDING" in page and "No operator has acted on this order." in page


def test_forged_altered_and_ended_sessions_are_signed_out(browser: httpx.Client,
                                                          stack: DashStack) -> None:
    """A cookie signed with another key, altered, or past its end is no session."""
    assert sign_in(browser, API_KEY).status_code == 303
    good = browser.cookies["paywire_admin"]
    ours = Signer(session_key(stack.settings.admin_session_secret, stack.settings.api_keys))
    key_id = ApiKeys(stack.settings.api_keys).identify(API_KEY)
    assert key_id is not None
    forged, _ = Signer(b"k" * 32).session("mallory", 3600, credential=key_id)
    ended, _ = ours.session("dana", 60, now=1_000_000.0, credential=key_id)
    altered = good[:-2] + ("A" if good[-2] != "A" else "B") + good[-1]
    for value in (forged, ended, altered, "garbage"):
        browser.cookies.set("paywire_admin", value, domain="127.0.0.1", path="/admin")
        assert browser.get("/admin/").status_code == 303, value


async def test_the_actions_are_done_and_audited(browser: httpx.Client,
                                                stack: DashStack) -> None:
    """Reconcile now brings the stuck order to COMPLETED; an over-refund is refused before
    PayPal; a partial refund is made; resolve clears the flag with its note; each is an audit
    line on the order's page and in the audit log."""
    order = await stack.stuck_order()
    order_id = order["id"]
    sign_in(browser, API_KEY, name="Dana")
    home = browser.get("/admin/")
    assert order_id in home.text and "stuck:PENDING" in home.text
    token = csrf_of(home.text)
    await stack.complete_at_paypal(order_id)

    def act(action: str, **data: str) -> str:
        if action == "refund":  # as the order's page's form sends it
            data["refund_id"] = refund_id_of(browser.get(f"/admin/orders/{order_id}").text)
        r = browser.post(f"/admin/orders/{order_id}/{action}", data={"csrf": token, **data})
        assert r.status_code == 303 and r.headers["location"] == f"/admin/orders/{order_id}"
        return browser.get(f"/admin/orders/{order_id}").text

    page = act("reconcile")
    assert "reconciled with paypal: moved PENDING → COMPLETED" in page
    page = act("refund", amount=" ", reason="no amount given")
    assert "give an amount" in page  # an empty amount never means "all that is left"
    assert '<span class="status s-completed">COMPLETED</span>' in page
    assert "<td>refund</td>" not in page.split("<h2>Audit</h2>")[1]
    page = act("refund", amount="3.00", full="1", reason="both buttons")
    assert "an amount was typed but “refund all that is left” was pressed" in page
    assert '<span class="status s-completed">COMPLETED</span>' in page  # nothing refunded
    page = act("refund", amount="25.01", reason="too much")
    assert "exceeds the 25.00 USD left to refund" in page
    page = act("refund", amount="5.00", reason="chipped mug")
    assert "5.00 USD: completed; the order is PARTIALLY_REFUNDED" in page
    page = act("resolve", note="capture cleared at PayPal; partial refund for damage")
    assert "resolved (stuck:PENDING)" in page
    assert "needs attention: stuck" not in page
    audit = page.split("<h2>Audit</h2>")[1]
    for line in ("reconcile", "refund", "resolve"):
        assert f"<td>{line}</td>" in audit
    assert audit.count("Dana (key_") == 4 and ">refused<" in audit
    log = browser.get("/admin/audit").text
    assert log.count(f"/admin/orders/{order_id}") == 4 and ">login<" in log
    assert order_id not in browser.get("/admin/").text  # no longer needs attention


async def test_the_timeline_tells_the_story_without_secrets(browser: httpx.Client,
                                                            stack: DashStack) -> None:
    """An order's page lists its provider calls (operation keys), its transitions with their
    verdicts, stored events, announcements and trace ids; card numbers in an event body are
    masked and no secret of the deployment appears."""
    order = await stack.stuck_order()
    store = SqlStore(stack.settings.database_url)
    try:
        async with store.transaction() as uow:
            await uow.put_inbox_event(InboxEvent(
                provider="paypal", event_id="WH-DASH-1", event_type="PAYMENT.CAPTURE.PENDING",
                received_at=stack.clock.now(), order_id=order["id"], status="applied",
                body=b'{"card": {"number": "4111111111111111"}, "access_code": "zx81"}'))
            stored = await uow.get_order(order["id"])
            assert stored is not None and stored.trace_id is not None
    finally:
        await store.close()
    sign_in(browser, API_KEY)
    page = browser.get(f"/admin/orders/{order['id']}").text
    for text in (f"{order['id']}:create", "create at the provider", "capture at the provider",
                 "CREATED → PENDING", "APPLY", "NOTE", "stuck:PENDING",
                 "announced order.needs_attention", "WH-DASH-1", "•••• 1111", stored.trace_id):
        assert text in page, text
    for secret in (API_KEY, CLIENT_SECRET, PASSWORD, "4111111111111111", "zx81",
                   stack.settings.admin_password_hash.get_secret_value()):  # type: ignore[union-attr]
        assert secret not in page


async def test_search_filters_and_outbox_retry(browser: httpx.Client, stack: DashStack) -> None:
    """The orders page filters (status, id search, flagged, dates, bad input 422); a dead
    message is retried from the outbox page, audited on its order."""
    order = await stack.stuck_order()
    sign_in(browser, API_KEY)
    pending = browser.get("/admin/orders?status=PENDING").text
    assert order["id"] in pending
    assert order["id"] not in browser.get("/admin/orders?status=COMPLETED").text
    assert order["id"] in browser.get(f"/admin/orders?q={order['provider_order_id']}").text
    assert order["id"] in browser.get("/admin/orders?attention=1&provider=paypal").text
    today = stack.clock.now().date()
    assert order["id"] not in browser.get(
        f"/admin/orders?from={today + timedelta(days=1)}").text
    assert order["id"] in browser.get(f"/admin/orders?to={today - timedelta(days=7)}").text
    for bad in ("status=NOPE", "from=yesterday", "min=-1", "cursor=garbage"):
        assert browser.get(f"/admin/orders?{bad}").status_code == 422, bad
    store = SqlStore(stack.settings.database_url)
    try:
        async with store.transaction() as uow:
            await uow.add_announcement(Announcement(f"dash-{order['id']}", "order.completed",
                                                    order["id"], {"x": 1}),
                                       "msg_dash_dead", stack.clock.now())
            claimed = await uow.claim_outbox("t", stack.clock.now(),
                                             stack.clock.now() + timedelta(minutes=1), 50)
            for m in claimed:
                await uow.finish_outbox(m.id, "t", status="dead", attempts=9,
                                        next_attempt_at=None, last_error="http: 410 Gone",
                                        now=stack.clock.now())
    finally:
        await store.close()
    dead = browser.get("/admin/outbox?status=dead").text
    assert "msg_dash_dead" in dead and "http: 410 Gone" in dead
    r = browser.post("/admin/outbox/msg_dash_dead/retry", data={"csrf": csrf_of(dead)})
    assert r.status_code == 303 and r.headers["location"] == f"/admin/orders/{order['id']}"
    page = browser.get(r.headers["location"]).text
    assert "is pending again" in page and "<td>outbox_retry</td>" in page


@pytest.mark.parametrize("backend", ["postgresql", "dynamodb"])
def test_the_dashboard_on_postgresql_and_dynamodb(
        backend: str, emulator: EmulatorServer, tmp_path: Path,
        request: pytest.FixtureRequest) -> None:
    """The same pages and actions over PostgreSQL and DynamoDB (moto): the stuck order in the
    queue and the status search, reconciled, refunded, resolved, each audited on its page."""
    database: AbstractContextManager[str] = (
        postgres_database() if backend == "postgresql"
        else dynamodb_table(request.getfixturevalue("moto_server"), "paywire-dash"))
    with database as url, dashboard_stack(emulator, tmp_path, database_url=url) as stack, \
            httpx.Client(base_url=stack.url, timeout=30) as client:
        order = run(stack.stuck_order())
        assert sign_in(client, API_KEY).status_code == 303
        home = client.get("/admin/")
        assert order["id"] in home.text and "stuck:PENDING" in home.text
        assert order["id"] in client.get("/admin/orders?status=PENDING&provider=paypal").text
        assert order["id"] in client.get(f"/admin/orders?q={order['id']}").text
        token = csrf_of(home.text)
        run(stack.complete_at_paypal(order["id"]))
        refund_id = refund_id_of(client.get(f"/admin/orders/{order['id']}").text)
        for action, data in (("reconcile", {}),
                             ("refund", {"amount": "2.50", "refund_id": refund_id}),
                             ("resolve", {"note": "settled"})):
            r = client.post(f"/admin/orders/{order['id']}/{action}",
                            data={"csrf": token, **data})
            assert r.status_code == 303, (action, r.text)
        page = client.get(f"/admin/orders/{order['id']}").text
        assert "PARTIALLY_REFUNDED" in page and "needs attention:" not in page
        audit = page.split("<h2>Audit</h2>")[1]
        assert all(f"<td>{a}</td>" in audit for a in ("reconcile", "refund", "resolve"))
        assert ">refused<" not in audit
        assert order["id"] not in client.get("/admin/").text


def test_sign_out_ends_the_session_in_the_browser(browser: httpx.Client) -> None:
    """Sign-out needs the token, is audited, and drops the cookie."""
    sign_in(browser, API_KEY)
    token = csrf_of(browser.get("/admin/").text)
    assert browser.post("/admin/logout", data={}).status_code == 403
    r = browser.post("/admin/logout", data={"csrf": token})
    assert r.status_code == 303 and "paywire_admin=\"\"" in " ".join(
        r.headers.get_list("set-cookie")).replace("paywire_admin=;", "paywire_admin=\"\";")
    assert browser.get("/admin/").status_code == 303


def test_hash_password_prints_a_hash_that_checks() -> None:
    """`paywire admin hash-password` prints a scrypt hash of the password (never the
    password), refuses a short one, and the hash checks only that password."""
    result = CliRunner().invoke(cli, ["admin", "hash-password", "--password-stdin"],
                                input="a long enough passphrase\n")
    assert result.exit_code == 0, result.output
    encoded = result.output.strip()
    assert encoded.startswith("scrypt$") and "passphrase" not in encoded
    assert check_password("a long enough passphrase", encoded)
    assert not check_password("a long enough passphrasf", encoded)
    short = CliRunner().invoke(cli, ["admin", "hash-password", "--password-stdin"],
                               input="short\n")
    assert short.exit_code == 2
    assert hash_password("x", n=2**10) != hash_password("x", n=2**10)  # salted


async def test_a_refund_form_sent_twice_refunds_once(browser: httpx.Client,
                                                     stack: DashStack) -> None:
    """The refund form carries a refund id: sent twice (a double click, a resubmit) it names
    the same refund, so PayPal is asked once and one refund is stored; a form without an id
    this dashboard made is refused before PayPal."""
    order = await stack.stuck_order()
    await stack.complete_at_paypal(order["id"])
    sign_in(browser, API_KEY)
    path = f"/admin/orders/{order['id']}"
    page = browser.get(path).text
    token = csrf_of(page)
    assert browser.post(f"{path}/reconcile", data={"csrf": token}).status_code == 303
    form = {"csrf": token, "amount": "3.00", "reason": "dented",
            "refund_id": refund_id_of(browser.get(path).text)}
    assert refund_id_of(browser.get(path).text) != form["refund_id"]  # fresh per page
    for _ in range(2):
        assert browser.post(f"{path}/refund", data=form).status_code == 303
    page = browser.get(path).text
    assert "this form was already sent: refund " + form["refund_id"] in page
    asked = [e for e in stack.emulator.emu.request_log
             if e.method == "POST" and e.path.endswith("/refund")]
    assert len(asked) == 1
    store = SqlStore(stack.settings.database_url)
    try:
        async with store.snapshot() as uow:
            refunds = await uow.refunds_for_order(order["id"])
            stored = await uow.get_order(order["id"])
    finally:
        await store.close()
    assert [r.id for r in refunds] == [form["refund_id"]]
    assert stored is not None and str(stored.refunded) == "3.00 USD"
    for bad in ("", "ref_guessed", "ord_" + "0" * 24):
        r = browser.post(f"{path}/refund", data={**form, "refund_id": bad})
        assert r.status_code == 303
        assert "no refund id this dashboard made" in browser.get(path).text, bad
    assert len([e for e in stack.emulator.emu.request_log
                if e.method == "POST" and e.path.endswith("/refund")]) == 1


@pytest.mark.parametrize("revoked", ["api_key", "password"])
def test_sessions_end_when_their_credential_is_revoked(
        revoked: str, emulator: EmulatorServer, tmp_path: Path) -> None:
    """A session records the credential it signed in with: restarted with that API key
    removed (or the password's hash changed), paywire ends its sessions, while the sessions
    of the credential still configured go on (the session secret is the same)."""
    with dashboard_stack(emulator, tmp_path) as first:
        cookies = {}
        for secret in (API_KEY, PASSWORD):
            with httpx.Client(base_url=first.url, timeout=30) as client:
                assert sign_in(client, secret).status_code == 303
                cookies[secret] = client.cookies["paywire_admin"]
        same_hash = first.settings.admin_password_hash
    other_key = "another-api-key-0123456789abcdef"
    changed = ({"api_keys": [other_key], "admin_password_hash": same_hash}
               if revoked == "api_key" else {})  # the default: a new hash (a fresh salt)
    with dashboard_stack(emulator, tmp_path, **changed) as second, \
            httpx.Client(base_url=second.url, timeout=30) as client:
        assert second.settings.admin_session_secret == first.settings.admin_session_secret
        ended = API_KEY if revoked == "api_key" else PASSWORD
        kept = PASSWORD if revoked == "api_key" else API_KEY
        for secret, code in ((ended, 303), (kept, 200)):
            r = client.get("/admin/", headers={"Cookie": f"paywire_admin={cookies[secret]}"})
            assert r.status_code == code, secret
        r = client.post("/admin/logout", data={"csrf": "x"},
                        headers={"Cookie": f"paywire_admin={cookies[ended]}"})
        assert r.status_code == 403 and "session has ended" in r.text


def test_non_ascii_cookies_and_tokens_are_refused_not_errors(browser: httpx.Client,
                                                              stack: DashStack) -> None:
    """A session cookie, a form's CSRF token or the sign-in form's token that is not ASCII
    is no session / a wrong token (a redirect to sign in, 403), never a 500."""
    for cookie in ("é.é", "eyJ9.signé", "€"):
        r = browser.get("/admin/", headers={"Cookie": f"paywire_admin={cookie}".encode()})
        assert r.status_code == 303 and "/admin/login" in r.headers["location"], cookie
    form = browser.get("/admin/login")
    r = browser.post("/admin/login", data={"csrf": "jeton-é", "secret": API_KEY})
    assert r.status_code == 403, r.text
    assert browser.post("/admin/login", data={"csrf": csrf_of(form.text),
                                              "secret": "clé-ü"}).status_code == 401
    sign_in(browser, API_KEY)
    r = browser.post("/admin/logout", data={"csrf": "jeton-é"})
    assert r.status_code == 403 and "CSRF" in r.text
    assert browser.get("/admin/").status_code == 200  # still signed in


async def test_error_texts_and_notes_are_redacted(browser: httpx.Client,
                                                  stack: DashStack) -> None:
    """Card-number-like digits in an outbox message's last error, a delivery attempt's
    answer, a stored event's note and a truth task's last error are masked on every page
    that shows them (the order's, the outbox's, the truth queue's)."""
    order = await stack.stuck_order()
    now = stack.clock.now()
    cards = {"outbox": "4000000000000002", "attempt": "5555555555554444",
             "note": "4242424242424242", "truth": "378282246310005"}
    store = SqlStore(stack.settings.database_url)
    try:
        async with store.transaction() as uow:
            await uow.put_inbox_event(InboxEvent(
                provider="paypal", event_id="WH-DASH-NOTE", event_type="PAYMENT.CAPTURE.PENDING",
                received_at=now, order_id=order["id"], status="applied", body=b"{}",
                note=f"card {cards['note']} in a note"))
            await uow.add_announcement(Announcement(f"dash-red-{order['id']}", "order.completed",
                                                    order["id"], {"x": 1}), "msg_dash_red", now)
            for m in await uow.claim_outbox("t", now, now + timedelta(minutes=1), 50):
                await uow.finish_outbox(m.id, "t", status="dead", attempts=1,
                                        next_attempt_at=None, now=now,
                                        last_error=f"http: 400 card {cards['outbox']}")
            await uow.record_delivery_attempts([DeliveryAttempt(
                "msg_dash_red", order["id"], now, 1, "dead",
                error=f"shop: bad card {cards['attempt']}", message_type="order.completed")])
            task = TruthTask(id="paypal:capture:CAP-RED", provider="paypal", kind="capture",
                             resource_id="CAP-RED", reason="test", created_at=now,
                             next_attempt_at=now, order_id=order["id"])
            assert await uow.enqueue_truth(task)
            assert await uow.claim_truth_task(task.id, "t", now, now + timedelta(minutes=1))
            assert await uow.finish_truth_task(task.id, "t", status="failed", attempts=1,
                                               next_attempt_at=now, now=now,
                                               last_error=f"provider: card {cards['truth']}")
    finally:
        await store.close()
    sign_in(browser, API_KEY)
    pages = {"order": browser.get(f"/admin/orders/{order['id']}").text,
             "outbox": browser.get("/admin/outbox").text,
             "truth": browser.get("/admin/truth").text}
    for name, page in pages.items():
        for card in cards.values():
            assert card not in page, (name, card)
    for card in ("outbox", "attempt", "note"):
        assert "•••• " + cards[card][-4:] in pages["order"], card
    assert "•••• " + cards["outbox"][-4:] in pages["outbox"]
    assert "•••• " + cards["truth"][-4:] in pages["truth"]


async def _audit_lines(stack: DashStack) -> list[AuditEntry]:
    store = SqlStore(stack.settings.database_url)
    try:
        async with store.snapshot() as uow:
            return await uow.list_audit(limit=100)
    finally:
        await store.close()


async def test_refused_posts_and_throttled_sign_ins_are_audited(
        browser: httpx.Client, stack: DashStack) -> None:
    """A sign-in form without its token, a POST with no session or an ended one, an action
    with a wrong CSRF token and a throttled sign-in each write a refused audit line (who,
    where from), not only a log line."""
    browser.get("/admin/login")
    assert browser.post("/admin/login", data={"csrf": "forged"}).status_code == 403
    assert browser.post("/admin/orders/ord_x/resolve", data={"csrf": "x"}).status_code == 403
    sign_in(browser, API_KEY, name="Dana")
    assert browser.post("/admin/logout", data={"csrf": "wrong"}).status_code == 403
    for _ in range(3):
        sign_in(browser, "not-the-key-0123456789")
    assert sign_in(browser, API_KEY).status_code == 429
    lines = {(a.actor.split(" (")[0], a.action, a.outcome, a.detail.get("path"))
             for a in await _audit_lines(stack)}
    assert ("anonymous", "csrf_refused", "refused", "/admin/login") in lines
    assert ("anonymous", "session_refused", "refused", "/admin/orders/ord_x/resolve") in lines
    assert ("Dana", "csrf_refused", "refused", "/admin/logout") in lines
    assert ("anonymous", "login_throttled", "refused", None) in lines


async def test_unauthenticated_audit_lines_are_capped_per_client(
        browser: httpx.Client, stack: DashStack) -> None:
    """A client with no session cannot grow the audit log without bound: past
    ANON_AUDIT_PER_CLIENT refused POSTs a minute, the refusals are still answered 403 but only
    logged."""
    from paywire.admin.app import ANON_AUDIT_PER_CLIENT

    browser.get("/admin/login")
    for _ in range(ANON_AUDIT_PER_CLIENT + 5):
        assert browser.post("/admin/login", data={"csrf": "forged"}).status_code == 403
    refused = [a for a in await _audit_lines(stack)
               if (a.actor, a.action) == ("anonymous", "csrf_refused")]
    assert len(refused) == ANON_AUDIT_PER_CLIENT


async def test_an_action_that_fails_unexpectedly_is_audited(
        browser: httpx.Client, stack: DashStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """An action that raises something other than paywire's own errors (a bug, an outage)
    writes its audit line with outcome "error" before the error goes on."""
    order = await stack.stuck_order()

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the store went away")

    monkeypatch.setattr(Reconciler, "reconcile_now", broken)
    sign_in(browser, API_KEY)
    token = csrf_of(browser.get("/admin/").text)
    r = browser.post(f"/admin/orders/{order['id']}/reconcile", data={"csrf": token})
    assert r.status_code == 500
    [line] = [a for a in await _audit_lines(stack) if a.action == "reconcile"]
    assert line.outcome == "error" and line.order_id == order["id"]
    assert line.detail["error"] == "RuntimeError"
