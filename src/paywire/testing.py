"""Test helpers paywire's users get too: a real emulator server on a free loopback port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from paywire.emulator import EmulatorConfig, create_app
from paywire.emulator.app import PayPalEdge
from paywire.emulator.state import EmulatorState


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerThread:
    """Any ASGI app served by uvicorn on a background thread (real HTTP over loopback)."""

    def __init__(self, app: Any, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port()
        self.config = uvicorn.Config(app, host=host, port=self.port, log_level="warning",
                                     lifespan="on", access_log=False)
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start serving and wait until it accepts connections."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"server on {self.url} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        self.server.should_exit = True
        self.thread.join(timeout=10)


class EmulatorServer(ServerThread):
    """The PayPal emulator over real HTTP; `emu` is its live state."""

    def __init__(self, config: EmulatorConfig | None = None, port: int | None = None) -> None:
        self.app: PayPalEdge = create_app(config)
        super().__init__(self.app, port)

    @property
    def emu(self) -> EmulatorState:
        """The emulator's state (for assertions and direct control in tests)."""
        return self.app.emu


@contextmanager
def run_emulator(config: EmulatorConfig | None = None) -> Iterator[EmulatorServer]:
    """Serve a fresh emulator for the duration of the block."""
    server = EmulatorServer(config)
    server.start()
    try:
        yield server
    finally:
        server.stop()
