"""The long-running CLI commands as real processes: `emulator`, `serve`, `migrate`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from paywire.cli import app
from paywire.store import migrate
from paywire.testing import free_port


def _start(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "paywire.cli", *args],  # noqa: S603
                            env={**os.environ, **env}, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _wait_ok(url: str, proc: subprocess.Popen[str], timeout: float = 30.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            r = httpx.get(url, timeout=2)
            if r.status_code == 200:
                return r
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered 200")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    return out


def test_emulator_command_serves_and_prints_its_credentials(tmp_path: Path) -> None:
    """`paywire emulator --port N` serves the control API, prints the app it accepts, and
    stops cleanly on Ctrl-C."""
    port = free_port()
    proc = _start(["emulator", "--port", str(port), "--client-id", "cid",
                   "--client-secret", "csecret"], {}, tmp_path)
    try:
        _wait_ok(f"http://127.0.0.1:{port}/_emulator/", proc)
        token = httpx.post(f"http://127.0.0.1:{port}/v1/oauth2/token", auth=("cid", "csecret"),
                           data={"grant_type": "client_credentials"})
        assert token.status_code == 200
    finally:
        out = _stop(proc)
    assert "cid" in out


def test_migrate_then_serve(tmp_path: Path) -> None:
    """`paywire migrate` brings a database to head; `paywire serve` answers /healthz and
    /readyz on it, refuses a request head past 16 KiB with 431 (httptools with a bound:
    paywire.serving) and exits 0 on Ctrl-C."""
    url = f"sqlite:///{tmp_path}/paywire.db"
    env = {"PAYWIRE_DATABASE_URL": url, "PAYWIRE_DATA_DIR": str(tmp_path),
           "PAYWIRE_PAYPAL_CLIENT_ID": "cid", "PAYWIRE_PAYPAL_CLIENT_SECRET": "csecret",
           "PAYWIRE_PAYPAL_BASE_URL": f"http://127.0.0.1:{free_port()}"}
    result = CliRunner().invoke(app, ["migrate"], env=env)
    assert result.exit_code == 0, result.output
    assert migrate.check(url) == []
    port = free_port()
    proc = _start(["serve", "--port", str(port)], env, tmp_path)
    try:
        _wait_ok(f"http://127.0.0.1:{port}/healthz", proc)
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
        too_long = httpx.get(f"http://127.0.0.1:{port}/healthz", headers={"x-filler": "f" * 20000})
        assert too_long.status_code == 431
    finally:
        _stop(proc)
