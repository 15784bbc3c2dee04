"""`paywire.providers.http.LeanTransport` under `httpx.AsyncClient`, against real loopback servers:
answers and bodies, kept connections, the pool's limits, and every failure surfacing as the httpx
exception the retry rules catch."""

from __future__ import annotations

import asyncio
import contextlib
import http.cookiejar
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from paywire.providers.http import LeanTransport, happy_eyeballs, lean_client
from paywire.providers.paypal.webhook_verifier import fetch_failure
from paywire.testing import free_port, serving
from testkit import tls_server

BIG = bytes(range(256)) * 20_000  # 5 MB, every byte value


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """GET /big: BIG; GET /port: the client's port (tells connections apart); POST: the body
    back; /slow: answers after 0.3 s (it only fills the pool); /cookie: sets a cookie and
    answers the Cookie header it was sent."""
    if scope["type"] != "http":
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    path = scope["path"]
    if path == "/slow":
        await asyncio.sleep(0.3)
    answer = (BIG if path == "/big" else str(scope["client"][1]).encode() if path == "/port"
              else body)
    headers = [(b"content-type", b"application/octet-stream"),
               (b"x-seen-length", str(len(body)).encode())]
    if path == "/cookie":
        answer = dict(scope["headers"]).get(b"cookie", b"")
        headers.append((b"set-cookie", b"seen=1; Path=/"))
    await send({"type": "http.response.start", "status": 201 if body else 200,
                "headers": headers})
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The app over real HTTP (uvicorn on a thread)."""
    with serving(app) as running:
        yield running.url


@contextlib.contextmanager
def scripted(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A loopback TCP server running `handle` on each connection (then closing it): its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    handle(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def read_request(conn: socket.socket) -> bytes:
    """Bytes up to the end of a request's head (the tests' requests have no body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def lean(**limits: Any) -> httpx.AsyncClient:
    """A client on the lean transport (no environment proxies in play)."""
    return httpx.AsyncClient(timeout=5, transport=LeanTransport(limits=httpx.Limits(**limits)))


async def test_answers_status_headers_and_bodies(server: str) -> None:
    """A GET's answer and a POST's JSON body arrive intact, with status and headers."""
    async with lean() as client:
        got = await client.get(f"{server}/port")
        posted = await client.post(f"{server}/echo", json={"amount": {"value": "10.00"}})
    assert got.status_code == 200 and got.text.isdigit()
    assert got.http_version == "HTTP/1.1"
    assert posted.status_code == 201 and posted.json() == {"amount": {"value": "10.00"}}
    assert posted.headers["x-seen-length"] == str(len(posted.content))


async def test_large_bodies_both_ways(server: str) -> None:
    """5 MB down, streamed in several chunks, and 5 MB up, byte for byte."""
    async with lean() as client:
        async with client.stream("GET", f"{server}/big") as resp:
            chunks = [chunk async for chunk in resp.aiter_raw()]
        echoed = await client.post(f"{server}/echo", content=BIG)
    assert b"".join(chunks) == BIG and len(chunks) > 1
    assert echoed.content == BIG and echoed.headers["x-seen-length"] == str(len(BIG))


async def test_keeps_the_connection_between_requests(server: str) -> None:
    """Sequential requests reuse one connection: the server sees one client port."""
    async with lean() as client:
        ports = {(await client.get(f"{server}/port")).text for _ in range(5)}
    assert len(ports) == 1


async def test_keepalive_expiry_is_honoured(server: str) -> None:
    """With keepalive_expiry=0 no idle connection is reused: each request gets a new one."""
    async with lean(keepalive_expiry=0) as client:
        first = (await client.get(f"{server}/port")).text
        await asyncio.sleep(0.01)
        again = (await client.get(f"{server}/port")).text
    assert first != again


async def test_an_unread_answer_does_not_go_back_to_the_pool(server: str) -> None:
    """A streamed answer closed before its end closes its connection; the next gets a new one."""
    async with lean() as client:
        first = (await client.get(f"{server}/port")).text
        async with client.stream("GET", f"{server}/big") as resp:
            async for _ in resp.aiter_raw():
                break
        again = (await client.get(f"{server}/port")).text
    assert first != again


async def test_max_connections_is_honoured(server: str) -> None:
    """With max_connections=1, eight concurrent requests all succeed on one connection."""
    async with lean(max_connections=1) as client:
        answers = await asyncio.gather(*(client.get(f"{server}/port") for _ in range(8)))
    assert {r.text for r in answers} == {answers[0].text}


async def test_pool_timeout(server: str) -> None:
    """A request that finds the only connection busy past the pool timeout -> PoolTimeout;
    the pool still serves afterwards."""
    async with lean(max_connections=1) as client:
        busy = asyncio.create_task(client.get(f"{server}/slow"))
        await asyncio.sleep(0.05)
        with pytest.raises(httpx.PoolTimeout):
            await client.get(f"{server}/port", timeout=httpx.Timeout(5, pool=0.01))
        assert (await busy).status_code == 200
        assert (await client.get(f"{server}/port")).status_code == 200


async def test_connection_refused_is_a_connect_error() -> None:
    """Nothing listening -> httpx.ConnectError."""
    async with lean() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{free_port()}/")


async def test_a_silent_server_is_a_read_timeout() -> None:
    """A server that takes the request and never answers -> httpx.ReadTimeout."""
    release = threading.Event()

    def silent(conn: socket.socket) -> None:
        read_request(conn)
        release.wait(5)

    with scripted(silent) as port:
        async with lean() as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.get(f"http://127.0.0.1:{port}/", timeout=httpx.Timeout(5, read=0.2))
        release.set()


async def test_a_server_closing_without_an_answer_is_a_protocol_error() -> None:
    """A server that reads the request and hangs up -> httpx.RemoteProtocolError; one that hangs
    up halfway through the body -> RemoteProtocolError too."""
    with scripted(read_request) as port:
        async with lean() as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get(f"http://127.0.0.1:{port}/")

    def half(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)

    with scripted(half) as port:
        async with lean() as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get(f"http://127.0.0.1:{port}/")


async def test_malformed_answer_is_a_protocol_error() -> None:
    """Bytes that are not HTTP -> httpx.RemoteProtocolError."""

    def garbage(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")

    with scripted(garbage) as port:
        async with lean() as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get(f"http://127.0.0.1:{port}/")


async def test_an_endless_head_is_a_protocol_error() -> None:
    """An answer whose headers never end (past httpcore's 100 KiB) -> RemoteProtocolError."""

    def endless(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"a" * 200_000 + b"\r\n")

    with scripted(endless) as port:
        async with lean() as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get(f"http://127.0.0.1:{port}/")


async def test_a_kept_connection_the_server_closed_is_not_reused() -> None:
    """A server that answers once per connection and closes it (without saying so): the next
    request goes out on a new connection and succeeds."""
    seen: list[bytes] = []

    def once(conn: socket.socket) -> None:
        seen.append(read_request(conn))
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    with scripted(once) as port:
        async with lean() as client:
            first = await client.get(f"http://127.0.0.1:{port}/")
            await asyncio.sleep(0.2)  # the server's close reaches the idle connection
            second = await client.get(f"http://127.0.0.1:{port}/")
    assert first.text == second.text == "ok" and len(seen) == 2


@pytest.mark.parametrize(("first", "method"), [
    (b"HTTP/1.1 204 No Content\r\n\r\n", "POST"),  # a 204 that (wrongly) carries a body
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD"),  # a HEAD answered with one
])
async def test_bytes_past_an_answer_never_answer_the_next_request(first: bytes,
                                                                  method: str) -> None:
    """What a server sends after an answer's end, read into h11 with it, is not taken for the
    next request's answer: that connection is not kept."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    seen.append(head.split(b"\r\n", 1)[0])
                    if len(seen) == 1:  # the answer, then bytes nobody asked for, at once
                        writer.write(first + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
                                             b"EVIL!")
                    else:
                        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreal")
                    await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(transport=LeanTransport(), timeout=5) as client:
            await client.request(method, f"http://127.0.0.1:{port}/v1/payments/captures")
            second = await client.get(f"http://127.0.0.1:{port}/v1/checkout/orders/X")
    finally:
        server.close()
        await server.wait_closed()
    assert second.text == "real"
    assert len(seen) == 2


async def test_tls_is_verified(tmp_path: Path) -> None:
    """A self-signed server: refused by default as a ConnectError whose cause is the failed
    verification (as `fetch_failure` reports it); accepted with its certificate as the CA."""
    with tls_server(tmp_path, body=b"hello") as (port, pem):
        url = f"https://127.0.0.1:{port}/"
        async with lean() as client:
            with pytest.raises(httpx.ConnectError) as refused:
                await client.get(url)
        assert fetch_failure(refused.value).startswith("TLS verification failed")
        trusting = ssl.create_default_context(cadata=pem.decode())
        async with httpx.AsyncClient(transport=LeanTransport(ssl_context=trusting)) as client:
            answer = await client.get(url)
    assert answer.status_code == 200 and answer.text == "hello"


async def test_tls_trusts_ssl_cert_file_as_httpx_does(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """SSL_CERT_FILE names the CAs with trust_env (httpx's default transport reads it too), and
    is ignored without it."""
    with tls_server(tmp_path, body=b"hello") as (port, pem):
        (tmp_path / "server.pem").write_bytes(pem)
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "server.pem"))
        url = f"https://127.0.0.1:{port}/"
        async with lean_client(timeout=5) as trusting:
            assert (await trusting.get(url)).text == "hello"
        async with lean_client(timeout=5, trust_env=False) as strict:
            with pytest.raises(httpx.ConnectError):
                await strict.get(url)


class CountingJar(http.cookiejar.CookieJar):
    """A cookie jar that counts the answers it is asked to read."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def extract_cookies(self, response: Any, request: Any) -> None:
        self.reads += 1
        super().extract_cookies(response, request)


async def test_cookies_are_kept_and_answers_without_them_skip_the_jar(server: str) -> None:
    """`lean_client` keeps the cookies an answer sets and sends them back, in the jar it was
    given; answers that set none are not handed to the jar at all."""
    jar = CountingJar()
    async with lean_client(timeout=5, cookies=jar) as client:
        await client.get(f"{server}/port")
        assert jar.reads == 0
        first = await client.get(f"{server}/cookie")
        again = await client.get(f"{server}/cookie")
        client.cookies = {"set": "later"}  # the setter keeps the lean jar
        await client.get(f"{server}/port")
        last = await client.get(f"{server}/cookie")
    assert (first.text, again.text, last.text) == ("", "seen=1", "set=later")
    assert jar.reads == 2 and [c.name for c in jar] == ["seen"]


async def test_an_environment_proxy_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """With HTTP_PROXY set, `lean_client` sends through the proxy as httpx would (the lean
    transport speaks to origins only, so the default transport is kept for that case)."""
    lines: list[bytes] = []

    def proxy(conn: socket.socket) -> None:
        lines.append(read_request(conn).split(b"\r\n", 1)[0])
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nproxied")

    with scripted(proxy) as port:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        async with lean_client(timeout=5) as client:
            answer = await client.get("http://paypal.paywire-test.invalid/v1/x")
    assert answer.text == "proxied"
    assert lines == [b"GET http://paypal.paywire-test.invalid/v1/x HTTP/1.1"]


async def test_closing_closes_idle_connections() -> None:
    """`aclose` (the client's, on leaving its block) closes the kept connection (the server
    reads its end), and the transport refuses requests afterwards."""
    hung_up = threading.Event()

    def kept(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        if conn.recv(65536) == b"":
            hung_up.set()

    transport = LeanTransport()
    with scripted(kept) as port:
        url = f"http://127.0.0.1:{port}/"
        async with httpx.AsyncClient(transport=transport) as client:
            assert (await client.get(url)).text == "ok"
            assert not hung_up.is_set()
        assert await asyncio.to_thread(hung_up.wait, 5)
        with pytest.raises(RuntimeError):
            await transport.handle_async_request(httpx.Request("GET", url))



async def test_happy_eyeballs_on_asyncio_s_own_loop_only() -> None:
    """asyncio's loop is asked for Happy Eyeballs; a loop that is not asyncio's own (uvloop,
    which uvicorn runs on when installed, refuses the arguments with a TypeError: found running
    the PostgreSQL ingest bench with uvloop 0.23 on the path) is asked for a plain connect."""
    assert happy_eyeballs(asyncio.get_running_loop()) == {"happy_eyeballs_delay": 0.25,
                                                          "interleave": 1}

    class NotAsyncios(asyncio.AbstractEventLoop):
        """Stands for uvloop's Loop: an AbstractEventLoop, not a BaseEventLoop."""

    assert happy_eyeballs(NotAsyncios()) == {}
