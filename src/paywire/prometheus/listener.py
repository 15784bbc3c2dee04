"""`MetricsListener`: `GET /metrics` on a port of its own (`PAYWIRE_METRICS=port`), for a scraper
on a private network, with nothing else of the API reachable there.

A deliberately small HTTP/1.1 responder on asyncio (one request per connection, then close):
Prometheus sends a plain GET. Under several `serve` workers each tries to bind the port and
the first wins; since counts add up across processes (multiprocess mode), any one of them
answers for all.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("paywire.prometheus")

Render = Callable[[], Awaitable[bytes]]
_MAX_HEAD = 16 * 1024
_READ_TIMEOUT = 10.0


class MetricsListener:
    """Serves `render()` at GET /metrics on `host`:`port` (`token`: Bearer required)."""

    def __init__(self, host: str, port: int, render: Render, content_type: str,
                 token: str | None = None) -> None:
        self.host = host
        self.port = port
        self.render = render
        self.content_type = content_type
        self.token = token
        self._server: asyncio.Server | None = None

    async def start(self) -> bool:
        """Listen; False if the port is taken (another worker of this serve has it)."""
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self.port)
        except OSError as exc:
            log.info("metrics port %s:%d not bound here (%s): another worker serves it",
                     self.host, self.port, exc.strerror)
            return False
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)
        return True

    async def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT)
            status, body, kind = await self._answer(head[:_MAX_HEAD])
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                ConnectionError):
            writer.close()
            return
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: " + kind.encode()
                     + b"\r\nContent-Length: " + str(len(body)).encode()
                     + b"\r\nConnection: close\r\n\r\n" + body)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    async def _answer(self, head: bytes) -> tuple[bytes, bytes, str]:
        lines = head.decode("latin-1").split("\r\n")
        method, _, rest = lines[0].partition(" ")
        path = rest.partition(" ")[0].partition("?")[0]
        if method != "GET" or path != "/metrics":
            return b"404 Not Found", b'{"error":{"code":"not_found","message":"GET /metrics"}}', (
                "application/json")
        if self.token is not None:
            given = next((line.partition(":")[2].strip() for line in lines[1:]
                          if line.lower().startswith("authorization:")), "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                return b"401 Unauthorized", (b'{"error":{"code":"unauthorized","message":'
                                             b'"Authorization: Bearer <metrics token>"}}'), (
                    "application/json")
        return b"200 OK", await self.render(), self.content_type
