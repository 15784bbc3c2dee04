"""The emulator is separable from paywire (emulator/README.md): `python -m paywire.emulator`
serves both providers with paywire's service-side dependencies unimportable, and importing it
loads no module of paywire beyond what `import paywire` itself loads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from paywire.testing import free_port

# paywire's dependencies the emulator must not need (its own: starlette, uvicorn, httpx,
# cryptography, jinja2).
NOT_NEEDED = ["fastapi", "pydantic", "pydantic_settings", "sqlalchemy", "alembic", "psycopg",
              "aiosqlite", "typer", "boto3", "botocore", "mangum"]

# Runs `python -m paywire.emulator ARGS` with NOT_NEEDED refusing to import.
LAUNCHER = """
import importlib.abc, runpy, sys
blocked = set(sys.argv[1].split(","))

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"{name} is not an emulator dependency")
        return None

sys.meta_path.insert(0, Refuse())
sys.argv = ["paywire.emulator", *sys.argv[2:]]
runpy.run_module("paywire.emulator", run_name="__main__", alter_sys=True)
"""


def _wait_ok(url: str, proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered 200")


def test_python_m_serves_both_providers_without_paywires_dependencies(tmp_path: Path) -> None:
    """With paywire's service-side dependencies refused, `python -m paywire.emulator` prints the
    credentials it was given, serves PayPal (token, order) and APS, and stops on Ctrl-C."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    aps = ["--aps-access-code", "ac", "--aps-merchant-identifier", "mid",
           "--aps-request-phrase", "req", "--aps-response-phrase", "resp"]
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-c", LAUNCHER, ",".join(NOT_NEEDED), "--port", str(port),
         "--client-id", "cid", "--client-secret", "csecret", *aps],
        env=dict(os.environ), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        _wait_ok(f"{base}/_emulator/", proc)
        token = httpx.post(f"{base}/v1/oauth2/token", auth=("cid", "csecret"),
                           data={"grant_type": "client_credentials"}).json()["access_token"]
        order = httpx.post(f"{base}/v2/checkout/orders", headers={
            "Authorization": f"Bearer {token}"}, json={
            "intent": "CAPTURE",
            "purchase_units": [{"amount": {"currency_code": "USD", "value": "1.00"}}]})
        assert order.status_code == 201, order.text
        assert order.headers["paypal-debug-id"]
        assert httpx.get(f"{base}/aps/_aps/").status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert "cid" in out and "mid" in out
    assert "is not an emulator dependency" not in out


@pytest.mark.parametrize("argv", [["--client-id", "only-id"], ["--aps-access-code", "ac"],
                                  ["--aps-feedback-url", "ftp://x"]])
def test_python_m_refuses_half_given_options(argv: list[str]) -> None:
    """Half an app, half an APS account or a non-HTTP feedback URL is a usage error (exit 2)."""
    done = subprocess.run([sys.executable, "-m", "paywire.emulator", *argv],  # noqa: S603
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert "usage:" in done.stderr


def test_the_emulator_loads_nothing_of_paywire_beyond_its_own_package() -> None:
    """Whatever `import paywire` loads aside, building and serving-ready the emulator loads only
    `paywire.emulator` modules (checked in a fresh interpreter)."""
    probe = ("import sys, paywire\nbefore = set(sys.modules)\n"
             "import paywire.emulator.__main__ as m\nfrom paywire.emulator import create_app\n"
             "create_app(m.config_from(m.parser().parse_args([])))\n"
             "new = sorted(n for n in set(sys.modules) - before if n.startswith('paywire') "
             "and not n.startswith('paywire.emulator'))\nprint(','.join(new))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,  # noqa: S603
                          check=True)
    assert done.stdout.strip() == "", f"the emulator loaded {done.stdout.strip()}"
