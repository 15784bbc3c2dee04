"""paywire's servers parse HTTP with httptools and a 16 KiB bound on a request's head
(`paywire.serving`): over real sockets, a head past it is answered 431 and never reaches the
app, however it arrives; heads under it, bodies of any size, chunked bodies and kept or
pipelined requests pass. The test servers run what `paywire serve` runs (uvicorn's own
httptools protocol would take every head refused here; its h11 protocol those that arrive whole
in one read)."""

from __future__ import annotations

import asyncio
import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from paywire.serving import uvicorn_options
from paywire.serving.bounded import MAX_HEAD, BoundedHttpToolsProtocol
from paywire.testing import ServerThread

TIMEOUT = 5.0


class Recorder:
    """An ASGI app that answers each request with the size of the body it read (`/slow` after
    0.3 s), and keeps the requests it was called for and their headers."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.headers: list[list[tuple[bytes, bytes]]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] == "/slow":
            await asyncio.sleep(0.3)
        self.calls.append((scope["path"], len(body)))
        self.headers.append(list(scope["headers"]))
        answer = str(len(body)).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(answer)).encode())]})
        await send({"type": "http.response.body", "body": answer})


@pytest.fixture
def served() -> Iterator[tuple[ServerThread, Recorder]]:
    app = Recorder()
    server = ServerThread(app)
    server.start()
    try:
        yield server, app
    finally:
        server.stop()


def head(path: str, filler: int) -> bytes:
    """A request head with one header of `filler` bytes."""
    return (f"GET {path} HTTP/1.1\r\nHost: paywire.test\r\nX-Filler: ".encode() + b"f" * filler
            + b"\r\n\r\n")


def read_answers(sock: socket.socket, answers: int | None = None) -> bytes:
    """What the server sends until it closes the connection, or until `answers` whole answers
    arrived. A reset after the server's answer (it closed with bytes of ours unread) ends the
    reading like a close."""
    sock.settimeout(TIMEOUT)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            if not data:
                raise
            break
        if not chunk:
            break
        data += chunk
        if answers is not None and data.count(b"HTTP/1.1 ") >= answers and _complete(data):
            break
    return data


def _complete(data: bytes) -> bool:
    """Whether the last answer in `data` has its whole body (content-length)."""
    last = data.rfind(b"HTTP/1.1 ")
    head_end = data.find(b"\r\n\r\n", last)
    if head_end < 0:
        return False
    length = 0
    for line in data[last:head_end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return len(data) - (head_end + 4) >= length


def statuses(data: bytes) -> list[int]:
    """The status codes of the answers in `data`, in order."""
    return [int(part[:3]) for part in data.split(b"HTTP/1.1 ")[1:]]


def connect(server: ServerThread) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=TIMEOUT)


def trickle(sock: socket.socket, start: bytes, most: int) -> int:
    """Send `start`, then 1 KiB pieces, waiting for the server to read each, until an answer
    arrives or `most` bytes of pieces were sent; the bytes sent, `start` included."""
    sock.sendall(start)
    sent = 0
    while sent < most and not select.select([sock], [], [], 0.05)[0]:
        sock.sendall(b"f" * 1024)
        sent += 1024
    return len(start) + sent


def test_paywire_servers_parse_with_the_bounded_protocol_when_httptools_is_installed() -> None:
    assert uvicorn_options() == {"http": BoundedHttpToolsProtocol}


PROBE = """
import sys
sys.modules["httptools"] = None  # as if paywire[speed] were not installed
import socket
import httpx
from paywire.serving import uvicorn_options
from paywire.testing import serving

async def app(scope, receive, send):
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

with serving(app) as server:
    small = httpx.get(server.url).status_code
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\\r\\nHost: x\\r\\nX-Filler: " + b"f" * 20000)  # unfinished
        big = sock.recv(100)[9:12].decode()
print(uvicorn_options(), small, big, "httptools" in sys.modules and sys.modules["httptools"])
"""


def test_without_httptools_paywire_servers_parse_with_h11() -> None:
    """`paywire[speed]` not installed: uvicorn's h11 protocol, whose own bound (on a head still
    unfinished past 16 KiB) answers 400."""
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,  # noqa: S603
                         check=True, timeout=60).stdout
    assert out.split() == ["{'http':", "'h11'}", "204", "400", "None"]


BROKEN = """
import logging, sys
sys.modules["uvicorn.protocols.http.httptools_impl"] = None  # httptools there, but unusable
logging.basicConfig(level=logging.WARNING, format="%(name)s %(message)s")
from paywire.serving import uvicorn_options
print(uvicorn_options())
"""


def test_an_httptools_that_cannot_be_imported_falls_back_to_h11_with_a_warning() -> None:
    done = subprocess.run([sys.executable, "-c", BROKEN], capture_output=True, text=True,  # noqa: S603
                          check=True, timeout=60)
    assert done.stdout.strip() == "{'http': 'h11'}"
    assert "paywire.serving httptools is installed but cannot be used" in done.stderr


def test_a_head_past_the_bound_in_one_read_is_refused_431(served: tuple[ServerThread,
                                                                        Recorder]) -> None:
    server, app = served
    with connect(server) as sock:
        sock.sendall(head("/big", MAX_HEAD + 1024))
        answer = read_answers(sock)
    assert statuses(answer) == [431]
    assert b"connection: close" in answer
    assert app.calls == []


def test_a_request_target_past_the_bound_is_refused_431(served: tuple[ServerThread,
                                                                      Recorder]) -> None:
    server, app = served
    with connect(server) as sock:
        sock.sendall(f"GET /{'t' * (MAX_HEAD + 1)} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        answer = read_answers(sock)
    assert statuses(answer) == [431]
    assert app.calls == []


def test_a_head_trickling_in_past_the_bound_is_refused_before_it_ends(
        served: tuple[ServerThread, Recorder]) -> None:
    """A head sent 1 KiB at a time and never finished: refused once the bytes received for it
    pass the bound."""
    server, app = served
    with connect(server) as sock:
        sent = trickle(sock, b"GET /slowly HTTP/1.1\r\nHost: x\r\nX-Filler: ", 4 * MAX_HEAD)
        answer = read_answers(sock)
    assert statuses(answer) == [431]
    assert MAX_HEAD < sent <= MAX_HEAD + 2048
    assert app.calls == []


def test_the_count_starts_again_with_each_request_on_a_kept_connection(
        served: tuple[ServerThread, Recorder]) -> None:
    """A request answered, then the next head trickles in past the bound on the same
    connection: refused (a count left stopped by the first request's body would never end)."""
    server, app = served
    with connect(server) as sock:
        sock.sendall(b"POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        first = read_answers(sock, answers=1)
        trickle(sock, b"GET /second HTTP/1.1\r\nHost: x\r\nX-Filler: ", 4 * MAX_HEAD)
        second = read_answers(sock)
    assert statuses(first) == [200]
    assert statuses(second) == [431]
    assert app.calls == [("/first", 3)]


def test_heads_under_the_bound_pass_one_after_another_and_pipelined(
        served: tuple[ServerThread, Recorder]) -> None:
    """Two heads of 12 KiB, together past the bound, pass on one kept connection, sent one
    after the other and in one write."""
    server, app = served
    one, two = head("/one", 12 * 1024), head("/two", 12 * 1024)
    with connect(server) as sock:
        sock.sendall(one)
        first = read_answers(sock, answers=1)
        sock.sendall(two)
        second = read_answers(sock, answers=1)
        sock.sendall(one + two)
        both = read_answers(sock, answers=2)
    assert statuses(first) == statuses(second) == [200]
    assert statuses(both) == [200, 200]
    assert app.calls == [("/one", 0), ("/two", 0), ("/one", 0), ("/two", 0)]


def test_a_head_refused_behind_a_request_in_flight_waits_for_its_answer(
        served: tuple[ServerThread, Recorder]) -> None:
    """A slow request and, in the same write, a head past the bound: the slow request gets its
    own answer first, then the 431, then the connection closes (the 431 never stands for the
    answer to a request the app is still handling)."""
    server, app = served
    with connect(server) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n" + head("/big", MAX_HEAD + 1024))
        answer = read_answers(sock)
    assert statuses(answer) == [200, 431]
    assert app.calls == [("/slow", 0)]


def test_a_large_body_behind_a_small_head_is_not_counted(
        served: tuple[ServerThread, Recorder]) -> None:
    """The head and 200 KiB of body in one write: only the head is bounded."""
    server, app = served
    body = b"b" * (200 * 1024)
    request = (b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: "
               + str(len(body)).encode() + b"\r\n\r\n" + body)
    with connect(server) as sock:
        sock.sendall(request)
        answer = read_answers(sock, answers=1)
    assert statuses(answer) == [200]
    assert answer.endswith(str(len(body)).encode())
    assert app.calls == [("/body", len(body))]


def chunked(path: str, trailer: bytes) -> bytes:
    """A chunked POST of two 40 KiB chunks, its last chunk followed by `trailer` (unfinished
    unless it ends with CRLF CRLF)."""
    chunk = b"c" * (40 * 1024)
    size = f"{len(chunk):x}".encode()
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
            + (size + b"\r\n" + chunk + b"\r\n") * 2 + b"0\r\n" + trailer)


def test_a_chunked_body_passes_and_its_trailers_are_dropped(
        served: tuple[ServerThread, Recorder]) -> None:
    """Chunks far past the bound pass; a trailer field never joins the headers the app holds
    (as with h11)."""
    server, app = served
    with connect(server) as sock:
        sock.sendall(chunked("/chunked", b"X-Trailer: late\r\n\r\n"))
        answer = read_answers(sock, answers=1)
    assert statuses(answer) == [200]
    assert app.calls == [("/chunked", 80 * 1024)]
    assert b"x-trailer" not in dict(app.headers[0])
    assert dict(app.headers[0])[b"transfer-encoding"] == b"chunked"


def test_trailers_trickling_in_past_the_bound_are_refused(
        served: tuple[ServerThread, Recorder]) -> None:
    server, _ = served
    with connect(server) as sock:
        sent = trickle(sock, chunked("/chunked", b"X-Trailer: "), 4 * MAX_HEAD)
        answer = read_answers(sock)
    assert statuses(answer) == [431]
    assert sent <= len(chunked("/chunked", b"X-Trailer: ")) + MAX_HEAD + 2048


def test_trailers_refused_behind_a_request_in_flight_wait_and_their_request_never_runs(
        served: tuple[ServerThread, Recorder]) -> None:
    """A slow request, then in the same write a chunked request whose trailers pass the bound:
    the slow request's answer first, then the 431; the chunked request is never handled."""
    server, app = served
    with connect(server) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
                     + chunked("/chunked", b"X-Trailer: " + b"t" * (MAX_HEAD + 1024) + b"\r\n\r\n"))
        answer = read_answers(sock)
    assert statuses(answer) == [200, 431]
    assert app.calls == [("/slow", 0)]


def test_a_malformed_request_is_still_answered_400(served: tuple[ServerThread,
                                                                 Recorder]) -> None:
    server, app = served
    with connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost paywire.test\r\n\r\n")
        answer = read_answers(sock)
    assert statuses(answer) == [400]
    assert app.calls == []
