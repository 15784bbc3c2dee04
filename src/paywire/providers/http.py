"""A lean HTTP/1.1 transport under httpx: kept connections over asyncio streams, parsed by h11.

Why: on two cores, httpx's default transport (httpcore) costs the PayPal calls more CPU than
paywire's own work around them. httpcore scans its whole pool, under anyio locks, at the start
and end of every request (encode/httpcore #1035, #928), and wraps each socket operation in anyio.
This transport keeps what a REST client to one or two hosts needs: a list of idle connections
per origin, one h11 connection each, asyncio's streams. httpx stays on top (`lean_client`), so
callers, their error handling and the tests that inject an `httpx.MockTransport` or an
`httpx.ASGITransport` see no difference. bench/http_client.py measures both.

What holds, as with httpx's default transport:

- TLS is verified with `httpx.create_ssl_context()`'s context (certifi, or SSL_CERT_FILE /
  SSL_CERT_DIR), unless the caller passes its own context. There is no way to turn it off.
- httpx's timeouts: `connect` (TCP and TLS handshake), `read` and `write` (each socket
  operation), `pool` (waiting for a free connection under `max_connections`), raised as
  `httpx.ConnectTimeout`, `ReadTimeout`, `WriteTimeout`, `PoolTimeout`.
- Failures as httpx's classes: `ConnectError` (refused, DNS, TLS verification), `ReadError`,
  `WriteError`, `RemoteProtocolError` (a malformed answer, or the server closing before it
  finished one), so the retry rules that catch `httpx.TransportError` are unchanged.
- `httpx.Limits`: at most `max_connections` open, `max_keepalive_connections` kept idle, each
  for at most `keepalive_expiry` seconds. A connection is reused only after its answer was read
  to the end; one closed early (an exception, an unread body) is closed, not returned.
- The answer's body is streamed as it arrives (`Response.aiter_bytes` bounds it as before).
- No proxies: `lean_client` falls back to httpx's default transport when the environment names
  one (what `trust_env` would honour), so a proxied deployment keeps working as it did.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import h11
import httpx

READ_SIZE = 65536  # bytes asked of the socket at a time (httpcore's figure)
MAX_HEAD = 100 * 1024  # an answer's status line and headers at most (httpcore's figure)
_PORTS = {b"http": 80, b"https": 443}
_Origin = tuple[bytes, bytes, int]


def _timeouts(request: httpx.Request) -> dict[str, float | None]:
    return request.extensions.get("timeout", {})  # type: ignore[no-any-return]


class _Connection:
    """One HTTP/1.1 connection to one origin: the h11 state and the stream pair."""

    __slots__ = ("h11", "idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        self.reader, self.writer = reader, writer
        self.idle_since = 0.0

    def stale(self, now: float, expiry: float | None) -> bool:
        """Closed by the server while idle, sent something unasked, or idle too long."""
        return (self.writer.is_closing() or self.reader.at_eof()
                # Bytes nobody asked for (a 408 before a close, say) would pass for the next
                # answer; asyncio offers no public peek, so its buffer is looked at.
                or bool(self.reader._buffer)  # type: ignore[attr-defined]
                or (expiry is not None and now - self.idle_since > expiry))

    def close(self) -> None:
        self.writer.close()


class _Body(httpx.AsyncByteStream):
    """An answer's body as it arrives; returns the connection to the pool once fully read."""

    __slots__ = ("_conn", "_done", "_origin", "_read_timeout", "_transport")

    def __init__(self, transport: LeanTransport, origin: _Origin, conn: _Connection,
                 read_timeout: float | None) -> None:
        self._transport, self._origin, self._conn = transport, origin, conn
        self._read_timeout = read_timeout
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        while not self._done:
            event = await _next_event(conn, self._read_timeout)
            if type(event) is h11.Data:
                yield bytes(event.data)
            elif type(event) is h11.EndOfMessage:
                self._done = True

    async def aclose(self) -> None:
        conn = self._conn
        if conn is None:
            return
        self._conn = None  # type: ignore[assignment]
        # Bytes after the answer's end, already read into h11 (a HEAD or 204 answer followed by
        # a body, more than its Content-Length), would pass for the next request's answer.
        reusable = (self._done and conn.h11.our_state is h11.DONE
                    and conn.h11.their_state is h11.DONE and not conn.h11.trailing_data[0])
        if reusable:
            conn.h11.start_next_cycle()
        self._transport._release(self._origin, conn, reusable=reusable)


async def _next_event(conn: _Connection, read_timeout: float | None) -> Any:
    """The next h11 event of the answer, reading from the socket as needed."""
    h = conn.h11
    while True:
        try:
            event = h.next_event()
        except h11.RemoteProtocolError as exc:
            raise httpx.RemoteProtocolError(str(exc)) from exc
        if event is not h11.NEED_DATA:
            return event
        try:
            async with asyncio.timeout(read_timeout):
                data = await conn.reader.read(READ_SIZE)
        except TimeoutError as exc:
            raise httpx.ReadTimeout("timed out reading the answer") from exc
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__) from exc
        if not data and h.their_state is h11.SEND_RESPONSE:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        h.receive_data(data)  # b"" is the end of the stream, which h11 judges


def happy_eyeballs(loop: asyncio.AbstractEventLoop) -> dict[str, Any]:
    """Happy Eyeballs (RFC 8305) for `loop.create_connection`, as httpcore's connect: an IPv6
    route that swallows packets costs 250 ms, not the whole connect timeout. asyncio's own
    loop takes the arguments; uvloop's (uvicorn runs on it when it is installed, as
    `uvicorn[standard]` installs it) refuses them with a TypeError, and tries the addresses
    one after another."""
    if isinstance(loop, asyncio.BaseEventLoop):
        return {"happy_eyeballs_delay": 0.25, "interleave": 1}
    return {}


class LeanTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over kept asyncio connections (see the module's docstring)."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None, trust_env: bool = True,
                 limits: httpx.Limits = httpx.Limits()) -> None:  # noqa: B008 - immutable
        if ssl_context is None:
            # httpx's own context, as its default transport makes it: verified, certifi's CAs
            # (or, with trust_env, SSL_CERT_FILE's or SSL_CERT_DIR's); httpcore adds the ALPN.
            ssl_context = httpx.create_ssl_context(trust_env=trust_env)
            ssl_context.set_alpn_protocols(["http/1.1"])
        self._ssl = ssl_context
        self._max = limits.max_connections
        self._max_idle = limits.max_keepalive_connections
        self._expiry = limits.keepalive_expiry
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._idle_count = 0
        self._open = 0  # connections open, idle or in use
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed = False

    # --- the pool ------------------------------------------------------------------------

    async def _acquire(self, origin: _Origin, request: httpx.Request) -> _Connection:
        """A kept connection to `origin`, or a new one once `max_connections` allow it."""
        deadline: float | None = None
        waited = False
        while True:
            idle = self._idle.get(origin)
            now = time.monotonic()
            while idle:
                conn = idle.pop()
                self._idle_count -= 1
                if not conn.stale(now, self._expiry):
                    return conn
                self._discard(conn)
            if self._max is None or self._open < self._max:
                break
            if self._idle_count:
                self._close_oldest_idle()  # another origin's idle connection makes room
                break
            if not waited:  # httpx's pool timeout bounds the whole wait
                pool = _timeouts(request).get("pool")
                deadline = None if pool is None else asyncio.get_running_loop().time() + pool
                waited = True
            await self._wait_for_room(deadline)
        self._open += 1
        try:
            return await self._connect(origin, _timeouts(request).get("connect"))
        except BaseException:
            self._open -= 1
            self._notify()
            raise

    async def _wait_for_room(self, deadline: float | None) -> None:
        """Until a connection is returned or closed (`_notify`), or `deadline` (loop time)."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self._notify()  # woken, but leaving: the wake goes to the next waiter
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise httpx.PoolTimeout("no connection became free in time") from exc
            raise

    def _close_oldest_idle(self) -> None:
        for origin, conns in self._idle.items():
            if conns:
                self._discard(conns.pop(0))
                self._idle_count -= 1
                if not conns:
                    del self._idle[origin]
                return

    async def _connect(self, origin: _Origin, within: float | None) -> _Connection:
        scheme, host, port = origin
        tls = self._ssl if scheme == b"https" else None
        name = host.decode("ascii")
        try:
            async with asyncio.timeout(within):
                reader, writer = await asyncio.open_connection(
                    name, port, ssl=tls, server_hostname=name if tls else None,
                    limit=READ_SIZE, **happy_eyeballs(asyncio.get_running_loop()))
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connecting to {name}:{port} timed out") from exc
        except OSError as exc:  # refused, DNS, TLS verification (ssl.SSLError is an OSError)
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        return _Connection(reader, writer)

    def _release(self, origin: _Origin, conn: _Connection, *, reusable: bool) -> None:
        if reusable and not self._closed and (self._max_idle is None
                                               or self._idle_count < self._max_idle):
            conn.idle_since = time.monotonic()
            self._idle.setdefault(origin, []).append(conn)
            self._idle_count += 1
        else:
            self._discard(conn)
        self._notify()

    def _discard(self, conn: _Connection) -> None:
        conn.close()
        self._open -= 1

    def _notify(self) -> None:
        """Wake the longest waiting `_acquire`, which looks again."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    # --- one request ---------------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request` on a kept (or new) connection; the body is read as it is consumed."""
        if self._closed:
            raise RuntimeError("the transport is closed")
        url = request.url
        scheme = url.raw_scheme
        if scheme not in _PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}")
        origin = (scheme, url.raw_host, url.port or _PORTS[scheme])
        conn = await self._acquire(origin, request)
        timeouts = _timeouts(request)
        try:
            await self._send(conn, request, timeouts.get("write"))
            read_timeout = timeouts.get("read")
            event = await _next_event(conn, read_timeout)
            while type(event) is h11.InformationalResponse:
                event = await _next_event(conn, read_timeout)
            if type(event) is not h11.Response:
                raise httpx.RemoteProtocolError(f"expected an answer, got {event!r}")
        except BaseException:
            self._release(origin, conn, reusable=False)
            raise
        return httpx.Response(event.status_code, headers=event.headers,
                              stream=_Body(self, origin, conn, read_timeout),
                              extensions={"http_version": b"HTTP/1.1",
                                          "reason_phrase": event.reason})

    @staticmethod
    async def _send(conn: _Connection, request: httpx.Request, within: float | None) -> None:
        h = conn.h11
        try:
            head = h.send(h11.Request(method=request.method, target=request.url.raw_path,
                                      headers=request.headers.raw))
            out = [head] if head else []
            async for chunk in request.stream:  # type: ignore[union-attr]
                if chunk:
                    out.append(h.send(h11.Data(data=chunk)) or b"")
            out.append(h.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError as exc:
            raise httpx.LocalProtocolError(str(exc)) from exc
        try:
            conn.writer.write(b"".join(out))
            if conn.writer.transport.get_write_buffer_size():  # only when the kernel is full
                async with asyncio.timeout(within):
                    await conn.writer.drain()
        except TimeoutError as exc:
            raise httpx.WriteTimeout("timed out sending the request") from exc
        except (OSError, ssl.SSLError) as exc:
            raise httpx.WriteError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        """Close every idle connection; those in use close when their answer is done."""
        self._closed = True
        idle = [conn for conns in self._idle.values() for conn in conns]
        self._idle.clear()
        self._idle_count = 0
        for conn in idle:
            self._discard(conn)
        for conn in idle:
            with contextlib.suppress(OSError, ssl.SSLError):
                await conn.writer.wait_closed()


def env_proxied() -> bool:
    """Whether the environment names a proxy that httpx's `trust_env` would honour."""
    proxies = httpx._utils.get_environment_proxies()
    return any(proxy is not None for proxy in proxies.values())  # None: a NO_PROXY entry


class _Cookies(httpx.Cookies):
    """httpx's cookie jar, which reads an answer only when it sets a cookie.

    Why (issue 18's profile of the checkout): httpx hands every answer to the standard
    library's `CookieJar`, wrapping the request and the answer in urllib objects first (the
    URL parsed again), only for the jar to find no `Set-Cookie` header: a sixth of a PayPal
    call's CPU. An answer without `Set-Cookie` or `Set-Cookie2` (the only headers the jar
    reads) changes nothing in it, so it is skipped; any other is stored as before."""

    def extract_cookies(self, response: httpx.Response) -> None:
        headers = response.headers
        if "set-cookie" in headers or "set-cookie2" in headers:
            super().extract_cookies(response)


class LeanClient(httpx.AsyncClient):
    """`httpx.AsyncClient` whose cookie jar is `_Cookies`, whatever cookies it is given."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # httpx keeps the jar in `_cookies` (its `cookies` setter wraps what it is given in a
        # plain `httpx.Cookies`): replaced here, and by the setter below.
        # The same jar object (a `CookieJar` the caller passed stays the one filled).
        self._cookies = _Cookies(self._cookies.jar)

    @property
    def cookies(self) -> httpx.Cookies:
        """The client's cookies (a `_Cookies` jar)."""
        return self._cookies

    @cookies.setter
    def cookies(self, cookies: httpx._types.CookieTypes) -> None:
        self._cookies = _Cookies(cookies)


def lean_client(*, timeout: float, limits: httpx.Limits = httpx.Limits(),  # noqa: B008
                **kwargs: Any) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` (a `LeanClient`) on `LeanTransport`, or on httpx's default
    transport when the environment names a proxy (the lean transport speaks to origins only).
    `kwargs` go to `httpx.AsyncClient` (not `transport`, `verify`, `proxy` or `mounts`)."""
    trust_env = kwargs.get("trust_env", True)
    if trust_env and env_proxied():
        return LeanClient(timeout=timeout, limits=limits, **kwargs)
    return LeanClient(timeout=timeout, **kwargs,
                      transport=LeanTransport(limits=limits, trust_env=trust_env))
