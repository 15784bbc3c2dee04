"""paywire's servers parse HTTP with httptools and keep h11's bound on a request's head
(`paywire.serving`): over real sockets, a head past 16 KiB is answered 431 and never reaches the
app, however it arrives; heads under it, bodies of any size and kept or pipelined requests pass.
(uvicorn's h11 protocol would answer 400 to the heads refused here: the test servers run what
`paywire serve` runs.)"""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from paywire.serving import MAX_HEAD
from paywire.testing import ServerThread

TIMEOUT = 5.0


class Recorder:
    """An ASGI app that answers each request with the size of the body it read, and keeps the
    requests it was called for."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

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
        self.calls.append((scope["path"], len(body)))
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


def head(path: str, filler: int, extra: bytes = b"") -> bytes:
    """A request head with one header of `filler` bytes."""
    return (f"GET {path} HTTP/1.1\r\nHost: paywire.test\r\nX-Filler: ".encode() + b"f" * filler
            + b"\r\n" + extra + b"\r\n")


def read_answers(sock: socket.socket, answers: int | None = None) -> bytes:
    """What the server sends until it closes the connection, or until `answers` whole answers
    arrived."""
    sock.settimeout(TIMEOUT)
    data = b""
    while chunk := sock.recv(65536):
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


def connect(server: ServerThread) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=TIMEOUT)


def test_a_head_past_the_bound_in_one_read_is_refused_431(served: tuple[ServerThread,
                                                                        Recorder]) -> None:
    server, app = served
    with connect(server) as sock:
        sock.sendall(head("/big", MAX_HEAD + 1024))
        answer = read_answers(sock)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b"connection: close" in answer
    assert app.calls == []


def test_a_head_trickling_in_past_the_bound_is_refused_before_it_ends(
        served: tuple[ServerThread, Recorder]) -> None:
    """A head sent 1 KiB at a time and never finished: refused once the bytes received for it
    pass the bound, long before the 64 KiB this client would send."""
    server, app = served
    sent = 0
    with connect(server) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: paywire.test\r\nX-Filler: ")
        while sent < 64 * 1024:
            sock.sendall(b"f" * 1024)
            sent += 1024
            # Wait for the server to read each piece (so it closes with nothing left unread,
            # and the answer is not lost to a reset); an answer ends the sending.
            if select.select([sock], [], [], 0.05)[0]:
                break
        answer = read_answers(sock)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert MAX_HEAD - 1024 <= sent <= MAX_HEAD + 2048
    assert app.calls == []


def test_heads_under_the_bound_pass_one_after_another_and_pipelined(
        served: tuple[ServerThread, Recorder]) -> None:
    """The count starts again with each request: two heads of 12 KiB, together past the
    bound, pass on one kept connection, sent one after the other and in one write."""
    server, app = served
    one, two = head("/one", 12 * 1024), head("/two", 12 * 1024)
    with connect(server) as sock:
        sock.sendall(one)
        first = read_answers(sock, answers=1)
        sock.sendall(two)
        second = read_answers(sock, answers=1)
        sock.sendall(one + two)
        both = read_answers(sock, answers=2)
    assert first.startswith(b"HTTP/1.1 200 ") and second.startswith(b"HTTP/1.1 200 ")
    assert both.count(b"HTTP/1.1 200 ") == 2
    assert app.calls == [("/one", 0), ("/two", 0), ("/one", 0), ("/two", 0)]


def test_a_large_body_behind_a_small_head_is_not_counted(
        served: tuple[ServerThread, Recorder]) -> None:
    """The head and 200 KiB of body in one write: only the head is bounded."""
    server, app = served
    body = b"b" * (200 * 1024)
    request = (b"POST /body HTTP/1.1\r\nHost: paywire.test\r\nContent-Length: "
               + str(len(body)).encode() + b"\r\n\r\n" + body)
    with connect(server) as sock:
        sock.sendall(request)
        answer = read_answers(sock, answers=1)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(str(len(body)).encode())
    assert app.calls == [("/body", len(body))]


def test_a_malformed_request_is_still_answered_400(served: tuple[ServerThread,
                                                                 Recorder]) -> None:
    server, app = served
    with connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost paywire.test\r\n\r\n")
        answer = read_answers(sock)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert app.calls == []
