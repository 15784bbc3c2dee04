"""What the benchmark scripts share: a script re-run as a child server, and waiting for it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx


def spawn(script: str, *args: str) -> subprocess.Popen[bytes]:
    """`script --serve ARGS` in a child process (no PAYWIRE_* settings leak into it)."""
    return subprocess.Popen([sys.executable, script, "--serve", *args],  # noqa: S603 - ours
                            env={k: v for k, v in os.environ.items()
                                 if not k.startswith("PAYWIRE_")})


def wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Poll `url` until it answers (any status) or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server for {url} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not come up within {timeout:.0f} s")
