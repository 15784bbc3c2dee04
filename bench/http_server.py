"""Inbound HTTP parsing CPU: uvicorn's h11 protocol, its httptools protocol, paywire's bounded one.

    .venv/bin/python bench/http_server.py [--requests 5000] [--rounds 5]

Why: every request to paywire (and to the benches' baselines) is parsed and answered by one of
uvicorn's protocol classes before the app sees it; `paywire.serving` picks httptools with a
16 KiB bound on the head when `paywire[speed]` is installed. This measures what that layer costs
per request, with nothing else in the way: no sockets (a transport that drops what is written),
one kept connection, the same webhook-shaped request each time (PayPal's headers, 1.3 KB of
JSON body), and an ASGI app that reads the body and answers 200 with a small JSON body. Each
protocol is run `--rounds` times, alternating, `--requests` requests a round, reading
`time.process_time()` around each round. Prints the median CPU per request in microseconds and
each protocol's ratio to h11 in the same run, with the core count. Not part of `make bench` (no
goal of its own); docs/benchmarks.md, the seventh round, has its figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from paywire.serving.bounded import BoundedHttpToolsProtocol

PROTOCOLS: dict[str, type[asyncio.Protocol]] = {
    "h11": H11Protocol, "httptools": HttpToolsProtocol, "bounded": BoundedHttpToolsProtocol}


def delivery() -> bytes:
    """A request shaped like a PayPal webhook delivery (its headers, about its body's size)."""
    body = json.dumps({"id": "WH-BENCH", "event_type": "PAYMENT.CAPTURE.COMPLETED",
                       "resource": {"id": "CAPTURE-BENCH", "padding": "p" * 1200}}).encode()
    headers = {
        "Host": "127.0.0.1:8000", "User-Agent": "PayPal/AUHD-214.0-58843002",
        "Content-Type": "application/json", "Accept": "*/*",
        "PAYPAL-TRANSMISSION-ID": "69cd13f0-d67a-11e5-baa3-778b53f4ae55",
        "PAYPAL-TRANSMISSION-TIME": "2026-12-07T20:01:35Z",
        "PAYPAL-TRANSMISSION-SIG": "S" * 344,  # a 2048-bit RSA signature in base64
        "PAYPAL-CERT-URL": "https://api.paypal.com/v1/notifications/certs/CERT-360caa42",
        "PAYPAL-AUTH-ALGO": "SHA256withRSA", "PAYPAL-AUTH-VERSION": "v2",
        "Content-Length": str(len(body))}
    head = "POST /webhooks/paypal HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in
                                                          headers.items()) + "\r\n"
    return head.encode() + body


class NullTransport(asyncio.Transport):
    """A connection's transport that counts what is written and drops it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes += 1

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name,
                                                                                     default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Read the body, answer 200 with a small JSON body."""
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"status":"applied"}'})


async def one_round(protocol: type[asyncio.Protocol], request: bytes, requests: int) -> float:
    """Microseconds of CPU per request over `requests` requests on one kept connection."""
    config = Config(app, log_level="warning", access_log=False, lifespan="off")
    config.load()
    state = ServerState()
    proto: Any = protocol(config, state, {}, asyncio.get_running_loop())  # type: ignore[call-arg]
    transport = NullTransport()
    proto.connection_made(transport)
    start = time.process_time()
    for _ in range(requests):
        proto.data_received(request)
        await asyncio.wait(state.tasks)  # the app's task, until it has answered
    spent = time.process_time() - start
    if transport.closing or transport.writes < requests:
        raise SystemExit(f"{protocol.__name__}: {transport.writes} writes for {requests} requests")
    return spent / requests * 1e6


async def measure(requests: int, rounds: int) -> dict[str, list[float]]:
    request = delivery()
    for protocol in PROTOCOLS.values():  # warm up
        await one_round(protocol, request, max(requests // 10, 1))
    figures: dict[str, list[float]] = {name: [] for name in PROTOCOLS}
    for _ in range(rounds):
        for name, protocol in PROTOCOLS.items():
            figures[name].append(await one_round(protocol, request, requests))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    figures = asyncio.run(measure(args.requests, args.rounds))
    print(f"uvicorn protocols, CPU per request ({args.requests} requests x {args.rounds} rounds, "
          f"alternating): {os.cpu_count()} cores, {platform.machine()}, "
          f"Python {platform.python_version()}")
    base = statistics.median(figures["h11"])
    for name, spent in figures.items():
        median = statistics.median(spent)
        print(f"  {name:10} {median:7.1f} us  ({' '.join(f'{s:.1f}' for s in spent)})  "
              f"{median / base:.2f}x h11")


if __name__ == "__main__":
    main()
