"""uvicorn's httptools protocol, with a 16 KiB bound on a request's head and trailers."""

from __future__ import annotations

import asyncio
from typing import Any, Final

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

MAX_HEAD: Final = 16 * 1024  # h11's default bound on an unfinished event (and Node's on a head)
_FIELD_OVERHEAD: Final = 4  # ": " and CRLF around each header field
_REFUSAL: Final = b"Request header fields too large."


class _HeadTooLarge(Exception):
    """Raised inside a parser callback to stop parsing a head past `MAX_HEAD`."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol refusing, with 431, a request head longer than `MAX_HEAD`,
    and the trailers of a chunked body likewise.

    llhttp reports a head in pieces as it arrives, and httptools gathers each header field
    until it is whole, so two counts:
    - the bytes received while a head is under way (or the trailers after a chunked body's
      last chunk): past the bound with it still unfinished, it is refused. What a slow or
      endless head can make the parser hold is thus `MAX_HEAD` plus one read from the socket.
    - the head's own bytes (request target and header fields, as the callbacks report them): a
      head that arrives whole in one read is refused once past the bound too, before the app
      is called. The received count alone would miss it, and could not be checked earlier
      without counting the body that follows the head in the same read.
    Bytes after a request's end in the read that ended it (a pipelined request) go uncounted:
    that loosens the bound by less than one read and never refuses a request wrongly.

    A head (or trailers) refused while earlier requests on the connection are still being
    answered waits for them: they are answered, then the 431, then the connection is closed; a
    request refused for its trailers while still queued behind them is never run. Trailer
    fields are dropped, as h11 drops them: uvicorn's protocol would add them to the headers of a
    scope the app already holds.
    """

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._received: int | None = 0  # bytes received for a head or trailers under way
        self._head = 0  # the head's (or the trailers') own bytes so far
        self._in_head = True  # a request's head is under way (or the next one may start)
        self._refusing = False  # past the bound: nothing more is parsed; 431 when idle
        self._answered = False  # the 431 was sent (or the connection closed instead)

    def data_received(self, data: bytes) -> None:
        if self._refusing:
            return
        if self._received is not None:
            self._received += len(data)
        super().data_received(data)
        if not self._refusing and self._received is not None and self._received > MAX_HEAD:
            self._refuse()

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers 400 to every parser error, a callback's exception included (httptools
        # raises HttpParserCallbackError for it); the callbacks here raise only past the bound.
        if self._refusing:
            self._refuse()
        else:
            super().send_400_response(msg)

    # The head.
    def on_message_begin(self) -> None:
        self._head, self._in_head = 0, True
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + _FIELD_OVERHEAD)
        if self._in_head:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._received, self._head, self._in_head = None, 0, False
        super().on_headers_complete()

    # A chunked body: from each chunk's size line to its data, so the trailers after the last
    # chunk (which has none) are counted as a head is.
    def on_chunk_header(self) -> None:
        self._received = 0

    def on_body(self, body: bytes) -> None:
        self._received = None
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._received, self._in_head = 0, True
        super().on_message_complete()

    def on_response_complete(self) -> None:
        queued = bool(self.pipeline)  # uvicorn starts the next queued request, if any
        super().on_response_complete()
        if self._refusing:
            self.flow.pause_reading()  # uvicorn resumed it for the next request
            if not self._answered and not queued:  # the last request before the refused one
                self._answer()

    def _count(self, size: int) -> None:
        self._head += size
        if self._head > MAX_HEAD:
            self._refusing = True
            raise _HeadTooLarge

    def _refuse(self) -> None:
        self._refusing = True
        self.flow.pause_reading()
        client = "%s:%d - " % self.client if self.client else ""  # noqa: UP031 - uvicorn's form
        self.logger.warning("%sRequest head (or trailers) over %d bytes refused (431).", client,
                            MAX_HEAD)
        if self._in_head:
            # A new request's head: `self.cycle` is the last request before it, answered in
            # order after every earlier one.
            in_flight = self.cycle is not None and not self.cycle.response_complete
        elif self.pipeline and self.pipeline[0][0] is self.cycle:
            # Trailers of a request still queued behind one in flight: it will never run.
            self.pipeline.popleft()
            in_flight = True
        else:  # trailers of the request being handled: none before it is left
            in_flight = False
        if not in_flight:
            self._answer()
        # else: answered once the requests before it are (on_response_complete)

    def _answer(self) -> None:
        """431 and close; with trailers past the bound after the app began its response, close."""
        self._answered = True
        if self.transport.is_closing():
            return
        if self._in_head or self.cycle is None or not self.cycle.response_started:
            self.transport.write(b"".join([
                STATUS_LINE[431], b"content-type: text/plain; charset=utf-8\r\n",
                b"content-length: ", str(len(_REFUSAL)).encode("ascii"), b"\r\n",
                b"connection: close\r\n\r\n", _REFUSAL]))
        self.transport.close()
