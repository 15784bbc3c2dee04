"""`paywire doctor`'s checks of Amazon Payment Services, when `aps` is in PAYWIRE_PROVIDERS.

- `aps-settings`: the access code, merchant identifier and both SHA phrases are set (named when
  missing or padded with blanks, never shown); the SHA type is one APS offers; the hosts match
  `PAYWIRE_APS_ENV` (APS refuses a sandbox account on its live hosts like a wrong access code).
- `aps-signature`: the signer signs and verifies with both phrases (`Signer.self_test`).
- `aps-credentials`: one CHECK_STATUS (a read-only query, `paywire.providers.aps.probe`) for a
  reference paywire never makes, at the configured API URL. APS checks the access code, the
  merchant identifier and the request signature before it looks the reference up, and signs
  every answer with the response phrase, so the answer names the wrong setting: "not found"
  (message 036) or a found transaction = all right; `00010` / `00009` = access code / merchant
  identifier refused; `00008` that verifies = the request phrase (the SHA type is right, or the
  answer would not verify); a taken request whose answer does not verify = the response phrase;
  `00008` that does not verify either = the SHA type (the others are tried to name the right
  one) or both phrases; no connection, an HTTP error or no JSON = the URL or host.
- `aps-feedback`: APS's "Direct Transaction Feedback" and "Notification Transaction Feedback"
  URLs live in its dashboard, which paywire cannot read, so the doctor prints the URL to enter
  in both (`--aps-feedback-url`, else PAYWIRE_APS_RETURN_URL's base + `/webhooks/aps`) and
  checks what it can: the return URL is https for a live account; neither URL is a loopback or
  private address outside emulator mode; and paywire there answers an unsigned probe with its
  refusal (400 `webhook_rejected`), so the URL reaches a paywire that takes APS feedback. The
  probe's bytes never change: the rejection log holds it once (`event_id`
  `paywire-doctor-probe`), and the doctor's rejection check leaves it out.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import httpx

from paywire.cli.doctor.checks import Check
from paywire.domain.errors import ConfigError, ProviderError
from paywire.providers.aps.client import ApsClient
from paywire.providers.aps.codes import ResponseCode
from paywire.providers.aps.forms import Merchant
from paywire.providers.aps.mapping import ERROR_KINDS
from paywire.providers.aps.probe import ProbeAnswer, check_status_probe
from paywire.providers.aps.signature import ShaType, Signer
from paywire.settings import APS_URLS

if TYPE_CHECKING:
    from pydantic import SecretStr

    from paywire.ports import WebhookRejection
    from paywire.settings import Settings

PROBE_REFERENCE = "paywire-doctor-probe"  # never `<order id>-<attempt>`: no order of ours
PROBE_CURRENCY = "USD"  # only reads totals, which a not-found answer has none of
PROBE_BODY = json.dumps({"id": PROBE_REFERENCE, "event_type": "paywire.doctor.probe",
                         "note": "paywire doctor: is this paywire's APS feedback endpoint? "
                                 "Refusing this unsigned body is right."},
                        separators=(",", ":")).encode()
PROBE_SHA256 = hashlib.sha256(PROBE_BODY).hexdigest()
TIMEOUT_SECONDS = 10.0
RETURN_PATH = "/v1/aps/return"
FEEDBACK_PATH = "/webhooks/aps"
SECURITY = "APS's dashboard (Integration settings > Security settings)"
ACCESS_CODE, IDENTIFIER = "PAYWIRE_APS_ACCESS_CODE", "PAYWIRE_APS_MERCHANT_IDENTIFIER"
REQUEST, RESPONSE = "PAYWIRE_APS_REQUEST_PHRASE", "PAYWIRE_APS_RESPONSE_PHRASE"
SHA, API_URL = "PAYWIRE_APS_SHA_TYPE", "PAYWIRE_APS_API_URL"
_NOT_FOUND = "036"
_REFUSED = {
    "010": (f"APS refused the access code: {ACCESS_CODE} is wrong",
            f"copy the access code from {SECURITY} into {ACCESS_CODE}; a sandbox account's is "
            "refused on the live hosts and the reverse, so check PAYWIRE_APS_ENV too"),
    "009": (f"APS does not know the merchant identifier: {IDENTIFIER} is wrong",
            f"copy the merchant identifier from {SECURITY} into {IDENTIFIER} (and check "
            "PAYWIRE_APS_ENV: sandbox and live accounts differ)"),
    "008": (f"APS refused the request signature, and its answer verified: {REQUEST} is wrong "
            "(the SHA type is right)",
            f"copy the SHA request phrase from {SECURITY} into {REQUEST}"),
    "015": ("APS says the merchant account is inactive",
            "ask APS to activate the account (or use the account of PAYWIRE_APS_ENV)"),
}


def is_probe(rejection: WebhookRejection) -> bool:
    """Whether a recorded rejection is the doctor's own feedback URL probe."""
    return rejection.provider == "aps" and rejection.body_sha256 == PROBE_SHA256


def feedback_url(return_url: str) -> str:
    """paywire's `/webhooks/aps` beside the return page the browser reaches (the return URL's
    base when it ends in `/v1/aps/return`, else its origin)."""
    parts = urlsplit(return_url)
    path = parts.path.rstrip("/")
    base = path[: -len(RETURN_PATH)] if path.endswith(RETURN_PATH) else ""
    return urlunsplit((parts.scheme, parts.netloc, base + FEEDBACK_PATH, "", ""))


async def aps_checks(settings: Settings, url: str | None) -> list[Check]:
    """The APS checks, in order: settings, signature self-test, credentials, feedback."""
    found, signer = _settings(settings)
    checks = [found]
    if signer is None:
        checks += [Check("aps-signature", "skip", "the APS settings are not usable"),
                   Check("aps-credentials", "skip", "the APS settings are not usable")]
    else:
        ok = signer.self_test()
        checks.append(Check("aps-signature", "ok", f"signs and verifies with both phrases "
                            f"({signer.sha_type.value})") if ok else Check(
            "aps-signature", "fail", "the signer does not verify its own signature",
            "report this as a paywire bug"))
        checks.append(await _credentials(settings, signer))
    checks.append(await _feedback(settings, url))
    return checks


def _reveal(value: SecretStr | None) -> str:
    return "" if value is None else value.get_secret_value()


def _settings(s: Settings) -> tuple[Check, Signer | None]:
    values = {ACCESS_CODE: _reveal(s.aps.access_code), IDENTIFIER: s.aps.merchant_identifier or "",
              REQUEST: _reveal(s.aps.request_phrase), RESPONSE: _reveal(s.aps.response_phrase)}
    missing = [name for name, value in values.items() if not value.strip()]
    if missing:
        return Check("aps-settings", "fail", f"{', '.join(missing)} not set",
                     f"copy them from {SECURITY} (`paywire emulator` prints its own account)"
                     ), None
    try:
        sha = ShaType.parse(s.aps.sha_type)
    except ConfigError as exc:
        return Check("aps-settings", "fail", exc.message,
                     f"set {SHA} to the SHA type {SECURITY} shows"), None
    api, page = s.aps.urls(s.paypal)
    problems = []
    if s.aps.env in APS_URLS:
        other = "live" if s.aps.env == "sandbox" else "sandbox"
        for name, value, theirs in (("API", api, APS_URLS[other][0]),
                                    ("PAGE", page, APS_URLS[other][1])):
            if _host(value) == _host(theirs):
                problems.append(f"PAYWIRE_APS_{name}_URL is APS's {other} host {_host(value)} "
                                f"while PAYWIRE_APS_ENV={s.aps.env}")
    if problems:
        return Check("aps-settings", "fail", "; ".join(problems),
                     "unset PAYWIRE_APS_API_URL and PAYWIRE_APS_PAGE_URL (PAYWIRE_APS_ENV "
                     "chooses APS's hosts), or set PAYWIRE_APS_ENV to the account's "
                     "environment"), None
    signer = Signer(sha, values[REQUEST], values[RESPONSE])
    found = (f"account {s.aps.merchant_identifier} (PAYWIRE_APS_ENV={s.aps.env}, "
             f"{sha.value}); API {api}; payment page {page}")
    padded = [name for name, value in values.items() if value != value.strip()]
    if padded:
        return Check("aps-settings", "warn", f"{', '.join(padded)} begin(s) or end(s) with "
                     f"blanks (a copy-and-paste slip?): {found}",
                     f"copy them again from {SECURITY}, without the blanks"), signer
    return Check("aps-settings", "ok", found), signer


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


async def _ask(s: Settings, signer: Signer) -> ProbeAnswer:
    api, page = s.aps.urls(s.paypal)
    merchant = Merchant(access_code=_reveal(s.aps.access_code),
                        merchant_identifier=s.aps.merchant_identifier or "", signer=signer,
                        language=s.aps.language)
    async with ApsClient(api, merchant, page_url=page, max_attempts=1,
                         timeout=min(s.aps.timeout_seconds, TIMEOUT_SECONDS)) as client:
        return await check_status_probe(client, PROBE_REFERENCE, PROBE_CURRENCY)


async def _credentials(s: Settings, signer: Signer) -> Check:
    api, _ = s.aps.urls(s.paypal)
    answer = await _ask(s, signer)
    if answer.error is not None:
        return _unreachable(s, api, answer.error)
    if answer.verified:
        return _verified(answer)
    if answer.message is None:
        return Check("aps-credentials", "fail", f"{api} answered without a signed APS response "
                     "code: is it APS's server-to-server API?",
                     f"correct {API_URL} (it ends in /FortAPI/paymentApi) or PAYWIRE_APS_ENV")
    if answer.message not in ("008", *_REFUSED):
        return Check("aps-credentials", "fail", f"APS took the request and answered "
                     f"{answer.said}, but the answer failed the response signature check: "
                     f"{RESPONSE} is wrong",
                     f"copy the SHA response phrase from {SECURITY} into {RESPONSE}")
    if answer.message in _REFUSED and answer.message != "008":
        what, fix = _REFUSED[answer.message]
        return Check("aps-credentials", "fail", f"{what} ({answer.said}); its answer also "
                     f"failed the response signature check ({RESPONSE} or {SHA} is wrong too)",
                     f"{fix}; then copy the SHA response phrase and SHA type too")
    return await _signature_mismatch(s, signer, answer)


def _verified(answer: ProbeAnswer) -> Check:
    rc = ResponseCode.parse(answer.code)
    if answer.message == _NOT_FOUND or (rc is not None and rc.code == "12000"):
        return Check("aps-credentials", "ok", f"APS answered a CHECK_STATUS for "
                     f"{PROBE_REFERENCE} with {answer.said}: it took the access code, the "
                     "merchant identifier and the request signature, and its answer verified "
                     "with the response phrase")
    if answer.message in _REFUSED:
        what, fix = _REFUSED[answer.message]
        return Check("aps-credentials", "fail", f"{what} ({answer.said})", fix)
    kind = ERROR_KINDS.get(answer.message or "")
    if kind == "transient":
        return Check("aps-credentials", "warn", f"APS could not answer now: {answer.said}",
                     "retry later; check APS's status")
    return Check("aps-credentials", "fail", f"APS refused the probe CHECK_STATUS: {answer.said}",
                 "see APS's answer; ask APS support if the account should allow CHECK_STATUS")


async def _signature_mismatch(s: Settings, signer: Signer, answer: ProbeAnswer) -> Check:
    """APS refused the request signature and its answer did not verify: try the other SHA
    types with the same phrases to name the right one."""
    found = f"APS's answer ({answer.said}) failed the response signature check"
    if answer.message == "008":
        found = ("APS refused the request signature, and its answer failed the response "
                 "signature check")
    for sha in ShaType:
        if sha is signer.sha_type:
            continue
        other = await _ask(s, Signer(sha, _reveal(s.aps.request_phrase),
                                     _reveal(s.aps.response_phrase)))
        if not other.verified:
            continue
        if other.message in _REFUSED and other.message != "008":
            what, fix = _REFUSED[other.message]
            return Check("aps-credentials", "fail", f"{found} with {signer.sha_type.value}; "
                         f"with {sha.value} the answer verifies: {SHA} is wrong, and {what} "
                         f"({other.said})", f"set {SHA}={sha.value}; {fix}")
        if other.message == "008":
            return Check("aps-credentials", "fail", f"{found} with {signer.sha_type.value}; "
                         f"with {sha.value} it verifies but the request signature is still "
                         f"refused: {SHA} and {REQUEST} are wrong",
                         f"set {SHA}={sha.value} and copy the SHA request phrase from "
                         f"{SECURITY} into {REQUEST}")
        return Check("aps-credentials", "fail", f"{found} with {signer.sha_type.value}; with "
                     f"{sha.value} APS takes the request ({other.said}): {SHA} is wrong",
                     f"set {SHA}={sha.value}, the SHA type {SECURITY} shows")
    return Check("aps-credentials", "fail", f"{found}, whichever SHA type signs: {RESPONSE} is "
                 f"wrong, and {REQUEST} or {SHA} too",
                 f"copy both SHA phrases and the SHA type from {SECURITY} into {REQUEST}, "
                 f"{RESPONSE} and {SHA}")


def _unreachable(s: Settings, api: str, exc: ProviderError) -> Check:
    if exc.kind == "transient" and exc.status is not None:
        return Check("aps-credentials", "warn", f"{exc.message} at {api}",
                     "retry later; check APS's status")
    if s.aps.env == "emulator":
        where = (f"start `paywire emulator` (its APS API is {s.paypal.url}/aps/FortAPI/"
                 f"paymentApi), or correct {API_URL}")
    else:
        where = (f"correct {API_URL} (unset: {APS_URLS[s.aps.env][0]} for "
                 f"PAYWIRE_APS_ENV={s.aps.env})")
    if exc.kind == "transient":
        return Check("aps-credentials", "fail", f"cannot reach APS's API at {api}: "
                     f"{exc.message}", f"{where}, or allow outbound HTTPS to {_host(api)} "
                     "(firewall, proxy, DNS)")
    return Check("aps-credentials", "fail", f"{api} is not APS's server-to-server API: "
                 f"{exc.message}", f"{where}: it ends in /FortAPI/paymentApi")


def internal_host(url: str) -> bool:
    """Whether `url`'s host is loopback, private or link-local (unreachable from APS)."""
    host = _host(url)
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_unspecified


async def _feedback(s: Settings, given: str | None) -> Check:
    ret = s.aps.return_url or ""
    url = given or feedback_url(ret)
    if s.aps.env == "emulator":
        enter = ("the emulator sends feedback there when started with `paywire emulator "
                 f"--aps-feedback-url {url}`")
    else:
        enter = (f"enter {url} in APS's dashboard (Integration settings > Technical settings) "
                 "as both the Direct Transaction Feedback URL and the Notification Transaction "
                 "Feedback URL")
    problems = []
    if s.aps.env == "live" and urlsplit(ret).scheme != "https":
        problems.append(f"PAYWIRE_APS_RETURN_URL {ret} is not https (the buyer's browser "
                        "brings the signed result back over it)")
    if s.aps.env != "emulator":
        problems += [f"{what} {u} is a loopback or private address APS cannot reach"
                     for what, u in (("the feedback URL", url), ("PAYWIRE_APS_RETURN_URL", ret))
                     if internal_host(u)]
    if problems:
        return Check("aps-feedback", "fail", "; ".join(problems),
                     "set PAYWIRE_APS_RETURN_URL to paywire's public https://<host>/v1/aps/"
                     f"return (or pass --aps-feedback-url), then {enter}")
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS, trust_env=False,
                                     follow_redirects=False) as http:
            resp = await http.post(url, content=PROBE_BODY,
                                   headers={"Content-Type": "application/json"})
    except httpx.HTTPError as exc:
        if s.aps.env == "emulator":
            return Check("aps-feedback", "warn", f"{url} is unreachable ({type(exc).__name__}):"
                         " is paywire running there?", "start paywire (`paywire serve`) at that "
                         "address, or correct PAYWIRE_APS_RETURN_URL (or pass "
                         f"--aps-feedback-url); {enter}")
        return Check("aps-feedback", "warn", f"{url} is unreachable from here "
                     f"({type(exc).__name__}); APS must reach it",
                     f"make sure {url} reaches paywire from the internet; {enter}")
    return _probed(url, resp, enter)


def _probed(url: str, resp: httpx.Response, enter: str) -> Check:
    status = resp.status_code
    try:
        body = resp.json()
        code = body["error"]["code"] if isinstance(body, dict) else None
    except (ValueError, KeyError, TypeError):
        code = None
    if status == 400 and code == "webhook_rejected":
        return Check("aps-feedback", "ok", f"{url} reaches a paywire that takes APS feedback "
                     f"(it refused the unsigned probe, as it must); {enter}")
    if status >= 500:
        return Check("aps-feedback", "fail", f"{url} answered HTTP {status}: APS's deliveries "
                     "would be retried, then lost (CHECK_STATUS reconciliation recovers them)",
                     "run `paywire doctor` where that paywire runs (its database?)")
    if status == 404:
        return Check("aps-feedback", "fail", f"{url} answered 404: no paywire taking APS "
                     "feedback there", "add aps to PAYWIRE_PROVIDERS of the paywire serving "
                     f"it, or correct the URL (--aps-feedback-url, PAYWIRE_APS_RETURN_URL); "
                     f"{enter}")
    if 300 <= status < 400:
        return Check("aps-feedback", "warn", f"{url} redirects (HTTP {status}) to "
                     f"{resp.headers.get('location')}: APS may not follow redirects",
                     f"use the final URL: {enter}")
    return Check("aps-feedback", "warn", f"{url} answered HTTP {status} to an unsigned POST, "
                 "not paywire's refusal (400): is something else in front of it (a login, a "
                 "firewall)? APS posts without credentials", enter)
