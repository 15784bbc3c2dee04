"""The test servers' ports: a server built without one claims it at once, and ports chosen
together are distinct (CI once handed two servers the same port)."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest

from paywire.testing import ServerThread, free_ports


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A one-line ASGI app (lifespan accepted)."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def test_a_server_built_without_a_port_holds_it_before_it_starts() -> None:
    """Two servers built before either starts get different ports, each already taken (no
    one else can listen on it), and the server then serves on it."""
    first, second = ServerThread(hello), ServerThread(hello)
    try:
        assert first.port != second.port
        with socket.socket() as other, pytest.raises(OSError):
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            other.bind(("127.0.0.1", first.port))
            other.listen()
        first.start()
        assert httpx.get(first.url, timeout=5).text == "hello"
    finally:
        first.stop()
        second.stop()  # never started: its port is given back


def test_ports_chosen_together_are_distinct() -> None:
    """free_ports holds each port until all are chosen."""
    ports = free_ports(50)
    assert len(set(ports)) == 50
