"""`paywire doctor`'s APS checks against the APS emulator (and a served paywire for the feedback
URL), and `paywire emulator` printing the APS account it accepts, as a real process: each wrong
setting is named with its fix, and no access code or phrase ever reaches the output."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from apikit import serve, sqlite_url
from apskit import aps_overrides, aps_state
from paywire.cli import app
from paywire.cli.doctor.aps import PROBE_REFERENCE
from paywire.emulator import AppCredentials, EmulatorConfig
from paywire.settings import DEMO_CATALOG
from paywire.testing import EmulatorServer, free_port
from testkit import CLIENT_ID, CLIENT_SECRET
from webhookkit import PayPal

WRONG = {"request": "wrong-request-phrase-5c1e", "response": "wrong-response-phrase-9d0b",
         "access": "wrong-access-code-77aa"}


@dataclass
class Account:
    """The CLI's environment for a paywire taking cards through the emulator's APS account,
    and every secret that must never be printed."""

    env: dict[str, str]
    secrets: list[str]


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    """One emulator (PayPal, and APS under /aps) for the module: the doctor only asks."""
    server = EmulatorServer(EmulatorConfig(apps=[AppCredentials(CLIENT_ID, CLIENT_SECRET)]))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No .env and no PAYWIRE_* of the developer's."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("PAYWIRE_")]:
        monkeypatch.delenv(name)


def account(emulator: EmulatorServer, tmp_path: Path, return_base: str,
            webhook_id: str = "") -> Account:
    """The environment `aps_overrides` describes, as `PAYWIRE_*` variables."""
    aps = aps_overrides(emulator, return_base=return_base)
    env = {"PAYWIRE_PAYPAL_ENV": "emulator", "PAYWIRE_PAYPAL_BASE_URL": emulator.url,
           "PAYWIRE_PAYPAL_CLIENT_ID": CLIENT_ID, "PAYWIRE_PAYPAL_CLIENT_SECRET": CLIENT_SECRET,
           "PAYWIRE_DATABASE_URL": sqlite_url(tmp_path), "PAYWIRE_DATA_DIR": str(tmp_path),
           "PAYWIRE_PAYPAL_WEBHOOK_ID": webhook_id, "PAYWIRE_PROVIDERS": "paypal,aps",
           "PAYWIRE_PAYPAL_RETRY_BACKOFF_SECONDS": "0.01", "COLUMNS": "250",
           # A shop off the emulator (APS sandbox/live below) names its catalog.
           "PAYWIRE_CATALOG_PATH": str(DEMO_CATALOG)}
    env.update({f"PAYWIRE_{k.upper()}": str(v) for k, v in aps.items() if k.startswith("aps_")})
    secrets = [aps["aps_access_code"], aps["aps_request_phrase"], aps["aps_response_phrase"],
               *WRONG.values()]
    return Account(env, secrets)


def run(acc: Account, *args: str, code: int, **env: str) -> Result:
    """`paywire ARGS`; asserts the exit code and that no secret is in the output."""
    result = CliRunner().invoke(app, list(args), env={**acc.env, **env})
    assert result.exit_code == code, (args, result.exit_code, result.output, result.exception)
    leaked = [s for s in acc.secrets if s in result.output]
    assert not leaked, result.output
    return result


def doctor(acc: Account, code: int, *args: str, **env: str) -> dict[str, dict[str, str]]:
    """`paywire doctor --json`: each check by name."""
    out = json.loads(run(acc, "doctor", "--json", *args, code=code, **env).stdout)
    assert out["ok"] is (code == 0)
    return {c["name"]: c for c in out["checks"]}


@pytest.fixture
def offline(emulator: EmulatorServer, tmp_path: Path) -> Account:
    """The emulator's account, APS only (the PayPal checks skip), with no paywire serving the
    feedback URL."""
    acc = account(emulator, tmp_path, f"http://127.0.0.1:{free_port()}")
    acc.env["PAYWIRE_PROVIDERS"] = "aps"
    return acc


def test_doctor_green_against_a_served_paywire(emulator: EmulatorServer,
                                               tmp_path: Path) -> None:
    """With the emulator's account and a paywire serving the return URL's base, every check
    passes; the feedback URL to enter is printed; the unsigned probe is refused (recorded once
    as paywire-doctor-probe) and never counted by the doctor's own rejection check."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    hook = asyncio.run(PayPal(emulator, CLIENT_ID, CLIENT_SECRET).subscribe(
        f"{base}/webhooks/paypal"))
    acc = account(emulator, tmp_path, base, hook)
    with serve(emulator, sqlite_url(tmp_path), tmp_path, listen_port=port,
               **aps_overrides(emulator, return_base=base)):
        for _ in range(2):
            checks = doctor(acc, 0)
            assert {n: c["status"] for n, c in checks.items()} == dict.fromkeys(
                ("settings", "database", "outbox", "orders", "rejections", "credentials",
                 "webhook", "certs", "aps-settings", "aps-signature", "aps-credentials",
                 "aps-feedback"), "ok")
        assert "11036" in checks["aps-credentials"]["detail"]
        assert f"{base}/webhooks/aps reaches a paywire" in checks["aps-feedback"]["detail"]
        assert f"--aps-feedback-url {base}/webhooks/aps" in checks["aps-feedback"]["detail"]
        assert "all good" in run(acc, "doctor", code=0).stdout
        rows = json.loads(run(acc, "rejections", "list", "--json", code=0).stdout)["data"]
        assert [(r["provider"], r["event_id"]) for r in rows] == [("aps", PROBE_REFERENCE)]
        # A paywire that does not take APS (the emulator's PayPal half) answers 404.
        elsewhere = doctor(acc, 1, "--aps-feedback-url", f"{emulator.url}/webhooks/aps")
        assert elsewhere["aps-feedback"]["status"] == "fail"
        assert "PAYWIRE_PROVIDERS" in elsewhere["aps-feedback"]["fix"]
    requests = aps_state(emulator).requests
    assert {r.merchant_reference for r in requests} == {PROBE_REFERENCE}


@pytest.mark.parametrize(("env", "named", "fix"), [
    ({"PAYWIRE_APS_REQUEST_PHRASE": WRONG["request"]}, "PAYWIRE_APS_REQUEST_PHRASE is wrong",
     "copy the SHA request phrase"),
    ({"PAYWIRE_APS_RESPONSE_PHRASE": WRONG["response"]}, "PAYWIRE_APS_RESPONSE_PHRASE is wrong",
     "copy the SHA response phrase"),
    ({"PAYWIRE_APS_ACCESS_CODE": WRONG["access"]}, "PAYWIRE_APS_ACCESS_CODE is wrong",
     "PAYWIRE_APS_ACCESS_CODE"),
    ({"PAYWIRE_APS_MERCHANT_IDENTIFIER": "NOTOURS1"}, "PAYWIRE_APS_MERCHANT_IDENTIFIER is wrong",
     "PAYWIRE_APS_MERCHANT_IDENTIFIER"),
    ({"PAYWIRE_APS_SHA_TYPE": "SHA-512"}, "PAYWIRE_APS_SHA_TYPE is wrong",
     "PAYWIRE_APS_SHA_TYPE=SHA-256"),
    ({"PAYWIRE_APS_SHA_TYPE": "SHA-512", "PAYWIRE_APS_REQUEST_PHRASE": WRONG["request"]},
     "PAYWIRE_APS_SHA_TYPE and PAYWIRE_APS_REQUEST_PHRASE are wrong",
     "PAYWIRE_APS_SHA_TYPE=SHA-256"),
    ({"PAYWIRE_APS_SHA_TYPE": "SHA-512", "PAYWIRE_APS_ACCESS_CODE": WRONG["access"]},
     "PAYWIRE_APS_ACCESS_CODE is wrong", "then copy the SHA response phrase and SHA type"),
    ({"PAYWIRE_APS_REQUEST_PHRASE": WRONG["request"],
      "PAYWIRE_APS_RESPONSE_PHRASE": WRONG["response"]},
     "PAYWIRE_APS_RESPONSE_PHRASE is wrong, and PAYWIRE_APS_REQUEST_PHRASE or "
     "PAYWIRE_APS_SHA_TYPE too", "copy both SHA phrases"),
], ids=["request-phrase", "response-phrase", "access-code", "merchant-identifier", "sha-type",
        "sha-type-and-request-phrase", "sha-type-and-access-code", "both-phrases"])
def test_doctor_names_the_wrong_credential(offline: Account, env: dict[str, str], named: str,
                                           fix: str) -> None:
    """A live CHECK_STATUS names the one wrong setting, and the fix, without printing it."""
    checks = doctor(offline, 1, **env)
    assert {checks[n]["status"] for n in ("credentials", "webhook", "certs")} == {"skip"}
    assert checks["aps-settings"]["status"] == "ok"
    assert checks["aps-signature"]["status"] == "ok"
    creds = checks["aps-credentials"]
    assert creds["status"] == "fail"
    assert named in creds["detail"]
    assert fix in creds["fix"]


def test_doctor_names_a_wrong_api_url(offline: Account, emulator: EmulatorServer) -> None:
    """Nothing listening, or something that is not APS's API, is named with the setting."""
    dead = f"http://127.0.0.1:{free_port()}/aps/FortAPI/paymentApi"
    checks = doctor(offline, 1, PAYWIRE_APS_API_URL=dead)
    assert checks["aps-credentials"]["detail"].startswith(f"cannot reach APS's API at {dead}")
    assert "PAYWIRE_APS_API_URL" in checks["aps-credentials"]["fix"]
    assert "paywire emulator" in checks["aps-credentials"]["fix"]
    wrong = f"{emulator.url}/aps/FortAPI/nothing"
    checks = doctor(offline, 1, PAYWIRE_APS_API_URL=wrong)
    assert f"{wrong} is not APS's server-to-server API" in checks["aps-credentials"]["detail"]
    assert "HTTP 404" in checks["aps-credentials"]["detail"]


def test_doctor_checks_the_settings_before_asking(offline: Account) -> None:
    """A missing phrase stops start-up (named), an unknown SHA type or a sandbox account on
    live hosts fails without calling APS, blanks around a phrase are a warning, and outside
    emulator mode a loopback or plain-http URL is named as one APS cannot use."""
    missing = doctor(offline, 1, PAYWIRE_APS_RESPONSE_PHRASE="")["settings"]
    assert "PAYWIRE_APS_RESPONSE_PHRASE" in missing["detail"]
    sha = doctor(offline, 1, PAYWIRE_APS_SHA_TYPE="SHA-3")
    assert sha["aps-settings"]["status"] == "fail" and "SHA-3" in sha["aps-settings"]["detail"]
    assert "PAYWIRE_APS_SHA_TYPE" in sha["aps-settings"]["fix"]
    assert sha["aps-credentials"]["status"] == "skip"
    padded = offline.env["PAYWIRE_APS_REQUEST_PHRASE"] + " "
    blanks = doctor(offline, 1, PAYWIRE_APS_REQUEST_PHRASE=padded)
    assert blanks["aps-settings"]["status"] == "warn"
    assert "PAYWIRE_APS_REQUEST_PHRASE begin(s) or end(s) with blanks" in (
        blanks["aps-settings"]["detail"])
    assert "PAYWIRE_APS_REQUEST_PHRASE is wrong" in blanks["aps-credentials"]["detail"]
    mixed = doctor(offline, 1, PAYWIRE_APS_ENV="sandbox",
                   PAYWIRE_APS_API_URL="https://paymentservices.payfort.com/FortAPI/paymentApi")
    assert "PAYWIRE_APS_API_URL is APS's live host" in mixed["aps-settings"]["detail"]
    assert mixed["aps-credentials"]["status"] == "skip"
    live = doctor(offline, 1, PAYWIRE_APS_ENV="live",
                  PAYWIRE_APS_API_URL=f"https://127.0.0.1:{free_port()}/FortAPI/paymentApi",
                  PAYWIRE_APS_PAGE_URL="https://shop.example/FortAPI/paymentPage")
    feedback = live["aps-feedback"]
    assert feedback["status"] == "fail"
    assert "is not https" in feedback["detail"]
    assert "loopback or private address APS cannot reach" in feedback["detail"]
    assert "Direct Transaction Feedback URL and the Notification Transaction Feedback URL" in (
        feedback["fix"])


def _read_until(proc: subprocess.Popen[str], marker: str, timeout: float = 30.0) -> list[str]:
    """The process's output lines up to and including the first one starting with `marker`."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, "".join(lines)
        lines.append(line.rstrip("\n"))
        if line.startswith(marker):
            return lines
    raise AssertionError("".join(lines))


@pytest.fixture
def emulator_process(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """`paywire emulator` with a fixed APS account and feedback URL, as a process."""
    port = free_port()
    args = ["emulator", "--port", str(port), "--aps-access-code", "cli-access-code-31f0",
            "--aps-merchant-identifier", "CLIMERCH", "--aps-request-phrase",
            "cli-request-phrase", "--aps-response-phrase", "cli-response-phrase",
            "--aps-sha-type", "SHA-512", "--aps-feedback-url", "http://127.0.0.1:9/webhooks/aps"]
    proc = subprocess.Popen([sys.executable, "-m", "paywire.cli", *args],  # noqa: S603
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "250"},
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        yield port, proc
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)


def test_emulator_prints_its_aps_account_and_lines_that_work(
        emulator_process: tuple[int, subprocess.Popen[str]], tmp_path: Path) -> None:
    """`paywire emulator --aps-...` prints the account, its URLs and `PAYWIRE_*` lines which,
    pasted as they are, give a doctor-green APS account."""
    port, proc = emulator_process
    lines = _read_until(proc, "PAYWIRE_APS_RETURN_URL=")
    base = f"http://127.0.0.1:{port}"
    text = "\n".join(lines)
    for shown in ("access code:         cli-access-code-31f0",
                  "SHA response phrase: cli-response-phrase", "SHA type:            SHA-512",
                  f"payment page:        {base}/aps/FortAPI/paymentPage",
                  f"API:                 {base}/aps/FortAPI/paymentApi",
                  "feedback URL:        http://127.0.0.1:9/webhooks/aps"):
        assert shown in text
    pasted = dict(line.split("=", 1) for line in lines if line.startswith("PAYWIRE_"))
    assert pasted["PAYWIRE_APS_REQUEST_PHRASE"] == "cli-request-phrase"
    assert pasted["PAYWIRE_APS_API_URL"] == f"{base}/aps/FortAPI/paymentApi"
    assert pasted["PAYWIRE_PROVIDERS"] == "paypal,aps"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/aps/_aps/", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    env: dict[str, Any] = {**pasted, "PAYWIRE_DATA_DIR": str(tmp_path), "COLUMNS": "250"}
    acc = Account(env, ["cli-access-code-31f0", "cli-request-phrase", "cli-response-phrase",
                        pasted["PAYWIRE_PAYPAL_CLIENT_SECRET"]])
    checks = doctor(acc, 1)  # no webhook id, no paywire at the return URL: not all green
    assert checks["aps-settings"]["status"] == "ok" and "SHA-512" in (
        checks["aps-settings"]["detail"])
    assert checks["aps-credentials"]["status"] == "ok"
    assert checks["aps-feedback"]["status"] == "warn"
    assert "is paywire running there?" in checks["aps-feedback"]["detail"]
