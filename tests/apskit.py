"""Helpers for paying paywire orders through the APS emulator (inside `paywire emulator`).

`aps_overrides(emulator)` are the settings that give a paywire the emulator's APS merchant
account (both providers offered, PayPal first); `point_feedback(emulator, paywire_url)` aims the
emulator's two feedback channels at that paywire's `/webhooks/aps`; `pay_on_page(form)` is a
buyer on the hosted payment page, driven over HTTP (no browser): card page, card, 3-D Secure
challenge if the card asks for one, and the signed parameters APS returns to `return_url`.

For the feedback suites: `aps_control` (the emulator's control API), `aps_fault` /
`clear_aps_faults`, `feedback_of` / `settled_feedback` (what the emulator sent about a
transaction, and waiting for its delivery to settle), `sign_feedback` (sign parameters as APS
does) and `aps_requests` (the S2S calls the emulator processed).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from apikit import Paywire, serve, sqlite_url
from paywire.emulator.aps.cards import CARDS, CHALLENGE, DECLINE, PENDING, SUCCESS, UNCERTAIN
from paywire.emulator.aps.feedback import Feedback
from paywire.emulator.aps.ledger import sign_answer
from paywire.emulator.aps.state import ApsState, RequestEntry
from paywire.testing import EmulatorServer

CARD = {b: next(c.number for c in CARDS if c.behaviour == b)
        for b in (SUCCESS, CHALLENGE, DECLINE, UNCERTAIN, PENDING)}
RETURN_PATH = "/v1/aps/return"


def aps_state(emulator: EmulatorServer) -> ApsState:
    """The APS emulator's state inside `emulator`."""
    state: ApsState = emulator.app.aps
    return state


def aps_overrides(emulator: EmulatorServer, *, return_base: str = "http://127.0.0.1:9",
                  providers: tuple[str, ...] = ("paypal", "aps")) -> dict[str, Any]:
    """Settings for a paywire taking cards through the emulator's APS account."""
    cred = aps_state(emulator).config.credentials
    return {"providers": list(providers), "aps_env": "emulator",
            "aps_access_code": cred.access_code,
            "aps_merchant_identifier": cred.merchant_identifier,
            "aps_request_phrase": cred.request_phrase,
            "aps_response_phrase": cred.response_phrase, "aps_sha_type": cred.sha_type,
            "aps_return_url": f"{return_base}{RETURN_PATH}", "aps_timeout_seconds": 5}


def point_feedback(emulator: EmulatorServer, paywire_url: str | None, *,
                   retry_delays: tuple[float, ...] = (0.2,) * 5, **changes: Any) -> None:
    """Aim both feedback channels at `paywire_url`'s `/webhooks/aps` (None: send none)."""
    state = aps_state(emulator)
    url = f"{paywire_url}/webhooks/aps" if paywire_url else None
    state.config = dataclasses.replace(state.config, direct_feedback_url=url,
                                       notification_feedback_url=url,
                                       feedback_retry_delays=retry_delays,
                                       feedback_time_scale=1.0, **changes)


@contextmanager
def card_shop(emulator: EmulatorServer, data_dir: Path, **overrides: Any) -> Iterator[Paywire]:
    """paywire taking PayPal and cards (APS), both on the emulator, on SQLite in `data_dir`
    (settings `overrides` on top), with the APS emulator's feedback pointed at it."""
    with serve(emulator, sqlite_url(data_dir), data_dir, **overrides,
               **aps_overrides(emulator)) as pw:
        point_feedback(emulator, pw.url)
        yield pw


def hidden_fields(html: str) -> dict[str, str]:
    """The hidden inputs of a page's form."""
    return {k: _unescape(v) for k, v in
            re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html)}


def _unescape(value: str) -> str:
    return (value.replace("&#34;", '"').replace("&#39;", "'").replace("&lt;", "<")
            .replace("&gt;", ">").replace("&amp;", "&"))


def pay_on_page(http: httpx.Client, form: dict[str, Any], *, card: str = SUCCESS,
                challenge: str = "approve") -> dict[str, str]:
    """Be the buyer: post the order's `checkout_form`, pay with the test card of behaviour
    `card` (a 3-D Secure challenge is answered `challenge`), and answer the signed parameters
    the page sends back to `return_url` (not followed: the caller posts them if it wants)."""
    page = http.post(form["url"], data=form["fields"])
    assert page.status_code == 200, page.text[:500]
    session = hidden_fields(page.text)
    done = http.post(f"{form['url']}/card", data={
        **session, "card_number": CARD[card], "expiry_date": "3512",
        "card_security_code": "123", "card_holder_name": "A Buyer", "action": "pay"})
    assert done.status_code == 200, done.text[:500]
    if 'id="approve"' in done.text:
        action = re.search(r'action="([^"]+)"', done.text)
        assert action is not None
        done = http.post(_unescape(action.group(1)),
                         data={**hidden_fields(done.text), "action": challenge})
        assert done.status_code == 200, done.text[:500]
    return hidden_fields(done.text)


def tokenize(http: httpx.Client, aps_url: str, number: str = CARD[SUCCESS]) -> str:
    """A token for a test card, made through the APS emulator's control API at `aps_url`
    (the APS app's own base URL: `<emulator>/aps` inside `paywire emulator`)."""
    resp = http.post(f"{aps_url}/_aps/tokens", json={"card_number": number,
                                                     "expiry_date": "3512"})
    assert resp.status_code == 201, resp.text
    name: str = resp.json()["token_name"]
    return name


def until(condition: Callable[[], object], timeout: float = 10.0, step: float = 0.05) -> None:
    """Wait until `condition()` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(step)


# --- the emulator's side of APS, for the feedback suites (control API, logs, signing) ----------

CONTROL = "/aps/_aps"


def aps_control(emulator: EmulatorServer, method: str, path: str,
                body: dict[str, Any] | None = None,
                expect: tuple[int, ...] = (200, 201, 202, 204)) -> Any:
    """Call the APS emulator's control API (`path` under `/aps/_aps`); its JSON answer."""
    with httpx.Client(base_url=emulator.url, timeout=10) as emu:
        r = emu.request(method, f"{CONTROL}{path}", json=body)
    assert r.status_code in expect, f"{method} {path}: {r.status_code} {r.text}"
    return r.json() if r.content else None


def aps_fault(emulator: EmulatorServer, **rule: Any) -> dict[str, Any]:
    """Add an APS emulator fault rule (http: error/latency/timeout on a path; webhook:
    drop/duplicate/delay/reorder of feedback whose `<channel>:<command>` matches
    `event_type`)."""
    added: dict[str, Any] = aps_control(emulator, "POST", "/faults", rule, expect=(201,))
    return added


def clear_aps_faults(emulator: EmulatorServer) -> None:
    """Remove every APS emulator fault rule."""
    aps_control(emulator, "DELETE", "/faults", expect=(204,))


def feedback_of(emulator: EmulatorServer, merchant_reference: str, *,
                channel: str | None = None, command: str | None = None) -> list[Feedback]:
    """The feedback the emulator made about one transaction, oldest first."""
    return [f for f in list(aps_state(emulator).deliverer.feedback)
            if f.merchant_reference == merchant_reference and channel in (None, f.channel)
            and command in (None, f.command)]


def settled_feedback(emulator: EmulatorServer, merchant_reference: str, count: int = 1, *,
                     channel: str | None = None, command: str | None = None,
                     timeout: float = 10.0) -> list[Feedback]:
    """Wait until at least `count` such feedback exist and none is still being delivered
    (delivered, failed for good, or dropped by a fault rule); them, oldest first."""
    def done() -> bool:
        found = feedback_of(emulator, merchant_reference, channel=channel, command=command)
        return len(found) >= count and all(f.status != "pending" for f in found)

    until(done, timeout)
    return feedback_of(emulator, merchant_reference, channel=channel, command=command)


def sign_feedback(emulator: EmulatorServer, params: dict[str, str]) -> dict[str, str]:
    """`params` signed as the emulator's APS signs feedback (the response phrase)."""
    return sign_answer(aps_state(emulator), params)


def aps_requests(emulator: EmulatorServer, merchant_reference: str | None = None,
                 command: str | None = None) -> list[RequestEntry]:
    """The S2S requests the emulator processed (not those a fault rule answered), oldest
    first; parameters without the signature and access code."""
    state = aps_state(emulator)
    with state.lock:
        entries = list(state.requests)
    return [e for e in entries if merchant_reference in (None, e.merchant_reference)
            and command in (None, e.command)]
