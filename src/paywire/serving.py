"""How paywire's HTTP servers run under uvicorn: httptools's parser, with h11's bound on a head.

uvicorn parses HTTP with h11 (pure Python) or httptools (llhttp, in C). On the webhook path
httptools costs paywire about 14 % less CPU per delivery (docs/benchmarks.md, the seventh round),
but uvicorn's httptools protocol sets no bound on a request's head: llhttp hands over the URL
and headers in pieces and the protocol keeps adding them up, so a client that never finishes its
head grows the process's memory for as long as the connection lasts. uvicorn's h11 protocol
refuses a head past 16 KiB (h11's `max_incomplete_event_size`). `BoundedHttpToolsProtocol`
keeps that bound on httptools: a head (request line and header fields) past `MAX_HEAD` bytes is
answered 431 and the connection closed, and the app never sees the request.

`UVICORN_OPTIONS` is what every server of paywire's passes to uvicorn (`paywire serve`,
`paywire dev`, the test servers, the benches' paywire and echo), so they all parse alike.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

MAX_HEAD: Final = 16 * 1024  # h11's default bound, which uvicorn's h11 protocol keeps
_FIELD_OVERHEAD: Final = 4  # ": " and CRLF around each header field


class _HeadTooLarge(Exception):
    """Raised inside a parser callback to stop parsing a head that passed `MAX_HEAD`."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol refusing, with 431, a request head longer than `MAX_HEAD`.

    Two counts, because llhttp reports a head in pieces as it arrives:
    - the bytes received while a head is under way (from the end of the previous request, or the
      connection's start, until the head is complete): past the bound with the head still
      incomplete, it is refused. This bounds what a slow or endless head can make the parser
      hold to `MAX_HEAD` plus one read from the socket.
    - the head's own bytes (request target and header fields, as the callbacks report them): a
      head that arrives complete in one read is refused too once past the bound, before the app
      is called. The received count alone would miss it, and it cannot be checked earlier without
      counting the body that follows the head in the same read.
    Bytes after a request's end in the read that ended it (a pipelined request) go uncounted,
    which loosens the bound by less than one read and never refuses a request wrongly.
    """

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._received: int | None = 0  # bytes received for the head under way; None: complete
        self._head = 0  # the head's own bytes so far
        self._too_large = False

    def data_received(self, data: bytes) -> None:
        if self._too_large:
            return
        if self._received is not None:
            self._received += len(data)
        super().data_received(data)
        if self._received is not None and self._received > MAX_HEAD:
            self._refuse()

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers 400 to every parser error, a callback's exception included (httptools
        # raises HttpParserCallbackError for it); the callbacks here raise only for a head past
        # the bound, which is answered 431.
        if self._too_large:
            self._refuse()
        else:
            super().send_400_response(msg)

    def on_message_begin(self) -> None:
        self._head = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + _FIELD_OVERHEAD)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._received = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._received = 0
        super().on_message_complete()

    def _count(self, size: int) -> None:
        self._head += size
        if self._head > MAX_HEAD:
            self._too_large = True
            raise _HeadTooLarge

    def _refuse(self) -> None:
        """Answer 431 and close; the request never reaches the app."""
        self._too_large = True
        if self.transport.is_closing():
            return
        msg = b"Request header fields too large."
        self.logger.warning("Request head over %d bytes refused.", MAX_HEAD)
        self.transport.write(b"".join([
            STATUS_LINE[431], b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: ", str(len(msg)).encode("ascii"), b"\r\n",
            b"connection: close\r\n\r\n", msg]))
        self.transport.close()


# uvicorn's settings for every paywire server (see the module's docstring).
UVICORN_OPTIONS: Final[dict[str, Any]] = {"http": BoundedHttpToolsProtocol}

__all__ = ["MAX_HEAD", "UVICORN_OPTIONS", "BoundedHttpToolsProtocol"]
